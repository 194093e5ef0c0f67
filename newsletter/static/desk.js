/* The writing desk: the Markdown editor's toolbar, its live preview rendered by the server,
   image uploads, the statements' order in the compose form, and the preview widths.
   A file of our own (the Content-Security-Policy runs no inline script); every page still
   works without it. */
(function () {
  "use strict";

  function csrfToken(form) {
    var field = form && form.querySelector('input[name="csrf_token"]');
    return field ? field.value : "";
  }

  /* --- the editor -------------------------------------------------------------------- */
  var editor = document.querySelector("form.statement-editor");
  if (editor) {
    var body = editor.querySelector("textarea[name=body]");
    var preview = document.getElementById("live-preview");
    var state = editor.querySelector(".preview-state");
    var previewed = document.getElementById("previewed");
    var toolbar = editor.querySelector(".toolbar");
    var statementId = editor.getAttribute("data-statement-id");
    var timer = null, sent = 0, shown = 0;

    var render = function () {
      var number = ++sent;
      if (state) { state.textContent = "updating…"; }
      var payload = {markdown: body.value};
      if (statementId) { payload.statement_id = parseInt(statementId, 10); }
      /* relative links resolve against the address the slug and date will give it */
      ["slug", "date"].forEach(function (name) {
        var input = editor.querySelector('input[name="' + name + '"]');
        if (input && input.value) { payload[name] = input.value; }
      });
      fetch(editor.getAttribute("data-preview-url"), {
        method: "POST",
        credentials: "same-origin",
        headers: {"Content-Type": "application/json", "Accept": "application/json",
                  "X-CSRFToken": csrfToken(editor)},
        body: JSON.stringify(payload)
      }).then(function (response) {
        return response.ok ? response.json() : Promise.reject(response.status);
      }).then(function (data) {
        if (number < shown) { return; }  /* an older answer arriving late */
        shown = number;
        /* The server cleaned this HTML (nh3: formatting tags and http(s) links only). */
        preview.innerHTML = data.html;
        if (previewed) { previewed.value = "1"; }
        if (state) { state.textContent = number === sent ? "" : "updating…"; }
      }).catch(function () {
        if (state) { state.textContent = "the preview could not be updated"; }
      });
    };
    var schedule = function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(render, 350);
    };
    body.addEventListener("input", schedule);
    if (body.value.trim()) { render(); }

    var replaceSelection = function (before, after, placeholder) {
      var start = body.selectionStart, end = body.selectionEnd;
      var chosen = body.value.slice(start, end) || placeholder;
      body.setRangeText(before + chosen + after, start, end, "end");
      body.selectionStart = start + before.length;
      body.selectionEnd = start + before.length + chosen.length;
      body.focus();
      schedule();
    };
    var prefixLines = function (prefix) {
      var start = body.value.lastIndexOf("\n", body.selectionStart - 1) + 1;
      var end = body.selectionEnd;
      var lines = body.value.slice(start, end).split("\n").map(function (line) {
        return prefix + line;
      }).join("\n");
      body.setRangeText(lines, start, end, "end");
      body.focus();
      schedule();
    };
    var insertText = function (text) {
      /* A block of its own, after the line the cursor is on (never inside a word or a mark). */
      var at = body.value.indexOf("\n", body.selectionEnd);
      if (at < 0) { at = body.value.length; }
      var before = at > 0 ? "\n\n" : "";
      body.setRangeText(before + text + "\n", at, at, "end");
      body.focus();
      schedule();
    };

    if (toolbar) {
      toolbar.hidden = false;
      toolbar.addEventListener("click", function (event) {
        var button = event.target.closest("button.tool");
        if (!button) { return; }
        if (button.hasAttribute("data-wrap")) {
          var mark = button.getAttribute("data-wrap");
          replaceSelection(mark, mark, "text");
        } else if (button.hasAttribute("data-line")) {
          prefixLines(button.getAttribute("data-line"));
        } else if (button.hasAttribute("data-link")) {
          var url = window.prompt("Link to (https://…)", "https://");
          if (url) { replaceSelection("[", "](" + url + ")", "link text"); }
        }
      });
      var upload = toolbar.querySelector("input[type=file]");
      var status = editor.querySelector(".upload-status");
      if (upload) {
        upload.addEventListener("change", function () {
          if (!upload.files || !upload.files.length) { return; }
          var data = new FormData();
          data.append("file", upload.files[0]);
          data.append("csrf_token", csrfToken(editor));
          if (status) { status.textContent = "Uploading " + upload.files[0].name + "…"; }
          fetch(upload.getAttribute("data-upload-url"), {
            method: "POST", credentials: "same-origin", body: data,
            headers: {"Accept": "application/json"}
          }).then(function (response) {
            return response.json().then(function (json) { return {ok: response.ok, json: json}; });
          }).then(function (result) {
            if (!result.ok) { throw new Error(result.json.error ? result.json.error.message : "refused"); }
            insertText(result.json.markdown);
            if (status) { status.textContent = "Image added to the text and to the media library."; }
          }).catch(function (error) {
            if (status) { status.textContent = "Not uploaded: " + error.message; }
          }).then(function () { upload.value = ""; });
        });
      }
    }
  }

  /* --- the statements' order in the compose form --------------------------------------- */
  var list = document.querySelector(".statement-picker .pick-list");
  if (list) {
    var renumber = function () {
      var position = 1;
      Array.prototype.forEach.call(list.querySelectorAll(".pick-row"), function (row) {
        var box = row.querySelector("input[type=checkbox]");
        var number = row.querySelector(".position input");
        if (number) { number.value = box && box.checked ? String(position++) : ""; }
      });
    };
    Array.prototype.forEach.call(list.querySelectorAll(".order-buttons"), function (buttons) {
      buttons.hidden = false;
    });
    list.addEventListener("click", function (event) {
      var button = event.target.closest("button[data-move]");
      if (!button) { return; }
      var row = button.closest(".pick-row");
      if (button.getAttribute("data-move") === "up" && row.previousElementSibling) {
        list.insertBefore(row, row.previousElementSibling);
      } else if (button.getAttribute("data-move") === "down" && row.nextElementSibling) {
        list.insertBefore(row.nextElementSibling, row);
      }
      var box = row.querySelector("input[type=checkbox]");
      if (box) { box.checked = true; }
      renumber();
      button.focus();
    });
    list.addEventListener("change", function (event) {
      if (event.target.type === "checkbox") { renumber(); }
    });
  }

  /* --- what the chosen template adds ----------------------------------------------- */
  var select = document.querySelector("select[name=template]");
  var notes = document.querySelectorAll(".template-note");
  if (select && notes.length) {
    var showNote = function () {
      Array.prototype.forEach.call(notes, function (note) {
        note.hidden = note.getAttribute("data-template") !== select.value;
      });
    };
    select.addEventListener("change", showNote);
    showNote();
  }

  /* --- preview widths, without reloading -------------------------------------------- */
  var frame = document.getElementById("issue-preview");
  var widths = document.querySelectorAll(".preview-widths a[data-width]");
  Array.prototype.forEach.call(widths, function (link) {
    link.addEventListener("click", function (event) {
      if (!frame) { return; }
      event.preventDefault();
      Array.prototype.forEach.call(widths, function (other) {
        frame.classList.remove(other.getAttribute("data-width"));
        other.classList.remove("is-current");
        other.removeAttribute("aria-current");
      });
      frame.classList.add(link.getAttribute("data-width"));
      link.classList.add("is-current");
      link.setAttribute("aria-current", "true");
    });
  });
})();
