// Pages with a #live element (order, ops) re-render it every 1.5 s until it says data-final="1".
// Not while a field of one of its forms has the focus: the re-render would wipe what is being typed.
(function refresh() {
  const live = document.getElementById("live");
  if (!live || live.dataset.final === "1") return;
  setTimeout(async () => {
    try {
      const typing = document.activeElement?.form && live.contains(document.activeElement);
      if (!typing) {
        const html = await (await fetch(location.href, {cache: "no-store"})).text();
        const next = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        if (next) document.getElementById("live").replaceWith(next);
      }
    } catch (e) { /* keep the last view and try again */ }
    refresh();
  }, 1500);
})();
