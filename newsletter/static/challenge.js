// The sign-up forms' proof of work (NEWSLETTER_SIGNUP_CHALLENGE=altcha), served from our own
// static folder: no other site is asked for anything. It speaks ALTCHA's v1 protocol, which
// the server checks with the altcha library: fetch a signed challenge, find the number n with
// SHA-256(salt + n) == challenge, and send {algorithm, challenge, number, salt, signature}
// as base64 JSON in the form's "altcha" field. A form sent before that waits for it.
(function () {
  "use strict";

  function hex(buffer) {
    var bytes = new Uint8Array(buffer), out = "";
    for (var i = 0; i < bytes.length; i++) out += (bytes[i] < 16 ? "0" : "") + bytes[i].toString(16);
    return out;
  }

  async function solve(challenge) {
    var encoder = new TextEncoder();
    for (var n = 0; n <= challenge.maxNumber; n++) {
      var digest = await crypto.subtle.digest("SHA-256", encoder.encode(challenge.salt + n));
      if (hex(digest) === challenge.challenge) return n;
    }
    return null;
  }

  function setUp(form) {
    var field = form.querySelector('input[name="altcha"]');
    var status = form.querySelector("[data-challenge-status]");
    if (!field) return;
    var say = function (key) {
      if (status) status.textContent = form.getAttribute("data-challenge-" + key) || "";
    };
    var submitting = false;
    say("working");
    var done = fetch(form.getAttribute("data-challenge"), { credentials: "omit", cache: "no-store" })
      .then(function (response) { return response.json(); })
      .then(function (challenge) {
        return solve(challenge).then(function (number) {
          if (number === null) throw new Error("unsolved");
          field.value = btoa(JSON.stringify({
            algorithm: challenge.algorithm, challenge: challenge.challenge, number: number,
            salt: challenge.salt, signature: challenge.signature
          }));
          form.setAttribute("data-challenge-solved", "");
          say("done");
        });
      })
      .catch(function () { say("failed"); });
    form.addEventListener("submit", function (event) {
      if (field.value || submitting) return;
      event.preventDefault();
      submitting = true;
      done.then(function () { if (field.value) form.submit(); else submitting = false; });
    });
  }

  document.querySelectorAll("form[data-challenge]").forEach(setUp);
})();
