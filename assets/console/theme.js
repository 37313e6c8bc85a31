// Apply the saved theme before the first paint, so it never flashes.
// A classic (blocking) script, loaded from the page's head: the console's
// Content-Security-Policy allows no inline script.
try {
  const saved = localStorage.getItem("tailcast.theme");
  const light = saved ? saved === "light" : matchMedia("(prefers-color-scheme: light)").matches;
  document.documentElement.dataset.theme = light ? "light" : "dark";
} catch (_) {}
