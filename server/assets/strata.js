// Strata dashboard: optional niceties; every page works without this script.
// A form with data-confirm asks before it posts (an in-place restore, a forget).
document.addEventListener("submit", function (ev) {
  var msg = ev.target.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) {
    ev.preventDefault();
  }
});
