/* Admin pages: ask before irreversible actions, follow a send's progress.
   Loaded as a file (no inline script): the Content-Security-Policy allows only this origin's. */
(function () {
  "use strict";
  Array.prototype.forEach.call(document.querySelectorAll("form.confirm-form"), function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });
  var box = document.getElementById("progress");
  if (!box || box.getAttribute("data-active") !== "true") { return; }
  var url = box.getAttribute("data-url");
  function set(name, value) {
    var el = box.querySelector('[data-field="' + name + '"]');
    if (el) { el.textContent = String(value); }
  }
  function duration(seconds) {
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = Math.round(seconds % 60);
    function two(n) { return (n < 10 ? "0" : "") + n; }
    if (h) { return h + " h " + two(m) + " min"; }
    if (m) { return m + " min " + two(s) + " s"; }
    return s + " s";
  }
  function poll() {
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) { window.setTimeout(poll, 5000); return; }
        ["total", "sent", "failed", "pending", "skipped"].forEach(function (name) {
          if (name in data) { set(name, data[name]); }
        });
        if ("rate" in data) { set("rate", data.rate === null ? "…" : data.rate); }
        if ("seconds_left" in data) {
          set("left", data.seconds_left === null ? "finish not estimated yet"
                                                 : "about " + duration(data.seconds_left) + " left");
        }
        var bar = box.querySelector("progress");
        if (bar) { bar.max = data.total || 1; bar.value = data.total - data.pending; }
        var badge = box.querySelector('[data-field="status"] .badge');
        if (badge) { badge.textContent = data.status; badge.className = "badge badge-" + data.status; }
        if (data.status === "sending" || data.status === "scheduled") {
          window.setTimeout(poll, 2000);
        } else {
          window.location.reload();
        }
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  window.setTimeout(poll, 1000);
})();
