// Localises every <time datetime="..."> to the reader's language and time zone. The server
// renders RFC 3339 UTC (machine-readable, and the text a browser without JavaScript shows).
(function () {
  "use strict";
  var format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

  function localise(root) {
    var nodes = (root || document).querySelectorAll("time[datetime]");
    for (var i = 0; i < nodes.length; i++) {
      var node = nodes[i];
      var when = new Date(node.getAttribute("datetime"));
      if (isNaN(when.getTime())) continue;
      node.title = node.getAttribute("datetime");
      node.textContent = format.format(when);
    }
  }

  window.ledgerflowLocalise = localise;
  document.addEventListener("DOMContentLoaded", function () { localise(document); });
  // Parts of a page replaced later (the transfer status poller) announce themselves.
  document.addEventListener("ledgerflow:updated", function (event) { localise(event.target); });
})();
