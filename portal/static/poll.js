// Keeps a status panel current: every second it asks the portal for the panel's HTML
// ({status, terminal, html}) and swaps it in, and stops once the status is terminal.
(function () {
  "use strict";
  var INTERVAL_MS = 1000;
  var SLOW_AFTER_MS = 10 * 60 * 1000; // a transfer in review may wait for hours: ease off
  var SLOW_INTERVAL_MS = 10000;

  function start(panel) {
    var url = panel.getAttribute("data-poll-url");
    var started = Date.now();
    var stopped = false;

    function schedule() {
      if (stopped) return;
      var wait = Date.now() - started > SLOW_AFTER_MS ? SLOW_INTERVAL_MS : INTERVAL_MS;
      window.setTimeout(tick, wait);
    }

    function tick() {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
        .then(function (response) {
          if (response.redirected || response.status === 401 || response.status === 403) {
            // Session over: a full load shows the login page.
            stopped = true;
            window.location.reload();
            return null;
          }
          if (!response.ok) return null;
          return response.json();
        })
        .then(function (body) {
          if (!body) return;
          if (body.status !== panel.getAttribute("data-status")) {
            panel.innerHTML = body.html;
            panel.setAttribute("data-status", body.status);
            panel.dispatchEvent(new CustomEvent("ledgerflow:updated", { bubbles: true }));
          }
          if (body.terminal) {
            stopped = true;
            panel.removeAttribute("data-poll-url");
            panel.setAttribute("data-terminal", "true");
          }
        })
        .catch(function () { /* a network hiccup: try again on the next tick */ })
        .then(schedule);
    }

    schedule();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var panels = document.querySelectorAll("[data-poll-url]");
    for (var i = 0; i < panels.length; i++) start(panels[i]);
  });
})();
