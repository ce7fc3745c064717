// Pages with a #live element (order, ops) bring it up to date every 1.5 s until it says data-final="1".
// Not while a field of one of its forms has the focus: the update would wipe what is being typed.
// Only what changed is touched (`update`): a button keeps being the same element while its page moves on,
// so a click never lands on one the refresh just threw away, and selected text stays selected.
(function refresh() {
  const live = document.getElementById("live");
  if (!live || live.dataset.final === "1") return;
  setTimeout(async () => {
    try {
      const typing = document.activeElement?.form && live.contains(document.activeElement);
      if (!typing) {
        const html = await (await fetch(location.href, {cache: "no-store"})).text();
        const next = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        if (next) update(document.getElementById("live"), next);
      }
    } catch (e) { /* keep the last view and try again */ }
    refresh();
  }, 1500);
})();

// Make `node` look like `next` (from the fetched page): same kind of node, so its text, attributes and
// children are brought in line one by one; a different kind is replaced whole.
function update(node, next) {
  if (node.nodeType !== next.nodeType || node.nodeName !== next.nodeName) {
    node.replaceWith(document.importNode(next, true));
  } else if (node.nodeType === Node.ELEMENT_NODE) {
    for (const {name} of [...node.attributes]) if (!next.hasAttribute(name)) node.removeAttribute(name);
    for (const {name, value} of next.attributes) if (node.getAttribute(name) !== value) node.setAttribute(name, value);
    const children = [...node.childNodes];
    next.childNodes.forEach((child, i) =>
      i < children.length ? update(children[i], child) : node.append(document.importNode(child, true)));
    children.slice(next.childNodes.length).forEach((child) => child.remove());
  } else if (node.nodeValue !== next.nodeValue) {
    node.nodeValue = next.nodeValue;
  }
}
