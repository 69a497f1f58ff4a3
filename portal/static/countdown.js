// The OTP step's "time remaining": counts down to data-countdown (RFC 3339) every second.
(function () {
  "use strict";

  function start(node) {
    var deadline = new Date(node.getAttribute("data-countdown")).getTime();
    if (isNaN(deadline)) return;
    function tick() {
      var left = Math.max(0, Math.floor((deadline - Date.now()) / 1000));
      var seconds = left % 60;
      node.textContent = Math.floor(left / 60) + ":" + (seconds < 10 ? "0" : "") + seconds;
      if (left === 0) {
        node.textContent = "expired";
        node.classList.add("expired");
        return;
      }
      window.setTimeout(tick, 1000);
    }
    tick();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var nodes = document.querySelectorAll("[data-countdown]");
    for (var i = 0; i < nodes.length; i++) start(nodes[i]);
  });
})();
