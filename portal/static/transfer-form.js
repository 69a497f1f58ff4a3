// The new-transfer form: keeps the indicative FX preview current as the customer types (the
// "Preview conversion" button does the same without JavaScript), and disables the submit
// button after the first click (the hidden Idempotency-Key already makes a double submit
// harmless; this only spares the customer the doubt).
(function () {
  "use strict";

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("transfer-form");
    if (!form) return;
    var target = document.getElementById("fx-preview");
    var url = form.getAttribute("data-quote-url");
    var timer = null;
    var seq = 0;

    function refresh() {
      var params = new URLSearchParams();
      ["source_account_id", "payee_id", "destination_account_number", "amount", "currency"].forEach(function (name) {
        if (form.elements[name]) params.set(name, form.elements[name].value);
      });
      var mine = ++seq;
      fetch(url + "?" + params.toString(), { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (body) {
          if (body && mine === seq) target.innerHTML = body.html;
        })
        .catch(function () { /* the preview is optional */ });
    }

    function later() {
      window.clearTimeout(timer);
      timer = window.setTimeout(refresh, 300);
    }

    // Picking another source account suggests its currency (the common case: what leaves it).
    form.elements.source_account_id.addEventListener("change", function () {
      var option = form.elements.source_account_id.selectedOptions[0];
      if (option && option.getAttribute("data-currency")) form.elements.currency.value = option.getAttribute("data-currency");
      later();
    });
    ["payee_id", "destination_account_number", "amount", "currency"].forEach(function (name) {
      if (!form.elements[name]) return;
      form.elements[name].addEventListener("input", later);
      form.elements[name].addEventListener("change", later);
    });

    form.addEventListener("submit", function (event) {
      var button = event.submitter;
      if (!button || button.value !== "send") return;
      if (form.getAttribute("data-sent")) { event.preventDefault(); return; }
      form.setAttribute("data-sent", "true");
      window.setTimeout(function () { button.disabled = true; }, 0);
    });
  });
})();
