// Pages with a #live element (order, ops) re-render it every 1.5 s until it says data-final="1".
(function refresh() {
  const live = document.getElementById("live");
  if (!live || live.dataset.final === "1") return;
  setTimeout(async () => {
    try {
      const html = await (await fetch(location.href, {cache: "no-store"})).text();
      const next = new DOMParser().parseFromString(html, "text/html").getElementById("live");
      if (next) document.getElementById("live").replaceWith(next);
    } catch (e) { /* keep the last view and try again */ }
    refresh();
  }, 1500);
})();
