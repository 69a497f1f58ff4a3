// Account-number hint as the customer types: groups the number in fours and checks its two
// ISO 7064 mod 97-10 check digits (as IBAN does), so a mistyped digit or two swapped digits are
// pointed out before the form is sent. The server checks again; this is only a courtesy.
(function () {
  "use strict";

  function normalize(text) {
    return text.replace(/\s+/g, "").toUpperCase();
  }

  // The number's remainder mod 97 after moving the first four characters to the end and
  // turning letters into numbers (A = 10 ... Z = 35); digit by digit, so no big integers.
  function mod97(number) {
    var rearranged = number.slice(4) + number.slice(0, 4);
    var remainder = 0;
    for (var i = 0; i < rearranged.length; i++) {
      var code = rearranged.charCodeAt(i);
      var digits = code >= 65 && code <= 90 ? String(code - 55) : rearranged[i];
      for (var j = 0; j < digits.length; j++) remainder = (remainder * 10 + Number(digits[j])) % 97;
    }
    return remainder;
  }

  function verdict(number) {
    if (!number) return { state: "", text: "" };
    if (!/^LF[0-9]*$/.test(number)) return { state: "bad", text: "An account number is LF followed by 18 digits." };
    if (number.length < 20) return { state: "", text: (20 - number.length) + " more digit" + (number.length === 19 ? "" : "s") + "…" };
    if (number.length > 20) return { state: "bad", text: "Too many digits: an account number is LF followed by 18 digits." };
    if (mod97(number) !== 1) return { state: "bad", text: "This number has a typing mistake: its check digits do not match." };
    return { state: "ok", text: "Check digits OK." };
  }

  document.addEventListener("DOMContentLoaded", function () {
    var input = document.querySelector("[data-account-number-check]");
    var hint = document.getElementById("account-number-check");
    var payee = document.getElementById("payee_id");
    if (!input || !hint) return;
    function update() {
      var result = verdict(normalize(input.value));
      hint.textContent = result.text;
      hint.setAttribute("data-state", result.state);
      if (result.state === "bad") input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    }
    input.addEventListener("input", update);
    input.addEventListener("blur", function () {
      var number = normalize(input.value);
      if (/^LF[0-9]{18}$/.test(number)) input.value = number.replace(/(.{4})/g, "$1 ").trim();
    });
    if (payee) payee.addEventListener("change", function () { if (payee.value) { input.value = ""; update(); } });
    update();
  });
})();
