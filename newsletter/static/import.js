/* The import job's page: follow the job's progress until it ends, then reload for the summary.
   Loaded as a file (no inline script): the Content-Security-Policy allows only this origin's. */
(function () {
  "use strict";
  var box = document.getElementById("import-progress");
  if (!box || box.getAttribute("data-active") !== "true") { return; }
  var url = box.getAttribute("data-url");
  function set(name, value) {
    var el = box.querySelector('[data-field="' + name + '"]');
    if (el) { el.textContent = String(value); }
  }
  function poll() {
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) { window.setTimeout(poll, 5000); return; }
        ["percent", "rows_done", "imported", "bad"].forEach(function (name) { set(name, data[name]); });
        set("created", (data.counts && data.counts.created) || 0);
        var bar = box.querySelector("progress");
        if (bar) { bar.value = data.percent; }
        var badge = box.querySelector('[data-field="status"] .badge');
        if (badge) { badge.textContent = data.status; badge.className = "badge badge-" + data.status; }
        var report = document.getElementById("import-report");
        if (report && data.bad > 0) { report.hidden = false; }
        if (data.finished) { window.location.reload(); } else { window.setTimeout(poll, 1500); }
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  window.setTimeout(poll, 1000);
})();
