// The template editor: after a failed save, put the cursor on the line the error names.
(function () {
  "use strict";
  var form = document.querySelector("form[data-error-line]");
  if (!form) return;
  var part = form.getAttribute("data-error-part");
  var line = parseInt(form.getAttribute("data-error-line"), 10);
  var area = form.querySelector("textarea[name='" + part + "']");
  if (!area || !line) return;
  var lines = area.value.split("\n");
  var start = 0;
  for (var i = 0; i < line - 1 && i < lines.length; i++) start += lines[i].length + 1;
  var end = start + (lines[line - 1] || "").length;
  area.focus();
  area.setSelectionRange(start, end);
  // Scroll the textarea so the line shows (line height from the computed style).
  var height = parseFloat(window.getComputedStyle(area).lineHeight) || 18;
  area.scrollTop = Math.max(0, (line - 4) * height);
})();
