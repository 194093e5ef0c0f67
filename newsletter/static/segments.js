/* The segment form: a live count of the typed query (debounced), the error's column shown
   in the box, and a small builder whose rows write query text. Loaded as a file (no inline
   script); every value it writes is quoted the way the query language reads it. */
(function () {
  "use strict";
  var box = document.querySelector("textarea[data-count-url]");
  if (!box) { return; }
  var out = document.getElementById("segment-count");
  var timer = null, asked = 0;

  function show(text, isError) {
    out.textContent = text;
    out.className = "segment-count" + (isError ? " field-error" : " muted");
  }

  function count() {
    var query = box.value.trim();
    if (!query) { show("", false); return; }
    var mine = ++asked;
    var body = new URLSearchParams();
    body.set("query", box.value);
    body.set("csrf_token", box.getAttribute("data-count-token"));
    show("Counting…", false);
    fetch(box.getAttribute("data-count-url"), {
      method: "POST", credentials: "same-origin", body: body,
      headers: {"Accept": "application/json"}
    }).then(function (response) { return response.json(); })
      .then(function (data) {
        if (mine !== asked) { return; }  // a later keystroke asked again
        if (data.error) {
          show(data.error.message, true);
          box.setAttribute("aria-invalid", "true");
          return;
        }
        box.removeAttribute("aria-invalid");
        show(data.count + (data.count === 1 ? " subscriber matches" : " subscribers match") + " now.", false);
      })
      .catch(function () { if (mine === asked) { show("Could not count just now.", true); } });
  }

  function later() {
    window.clearTimeout(timer);
    timer = window.setTimeout(count, 400);
  }
  box.addEventListener("input", later);
  count();

  // --- the builder --------------------------------------------------------------------
  var builder = document.getElementById("segment-builder");
  if (!builder) { return; }
  builder.hidden = false;
  var rows = builder.querySelector("[data-rows]");
  var lists = (builder.getAttribute("data-lists") || "").split(" ").filter(Boolean);
  var FIELDS = [
    ["list", "is confirmed on list", ["=", "!="], "list"],
    ["attributes", "attribute", ["=", "!=", "contains", "<", "<=", ">", ">="], "text"],
    ["email", "email", ["=", "!=", "contains"], "text"],
    ["name", "name", ["=", "!=", "contains"], "text"],
    ["status", "status", ["=", "!="], "status"],
    ["subscribed_at", "subscribed", ["=", ">=", "<=", ">", "<"], "date"],
    ["confirmed_at", "confirmed", ["=", ">=", "<=", ">", "<"], "date"],
    ["received", "received issue (id)", ["=", "!="], "number"],
    ["bounced", "bounced", ["="], "boolean"]
  ];

  function element(tag, attributes, text) {
    var el = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) { el.setAttribute(name, attributes[name]); });
    if (text) { el.textContent = text; }
    return el;
  }
  function options(select, values) {
    select.textContent = "";
    values.forEach(function (pair) { select.appendChild(element("option", {value: pair[0]}, pair[1])); });
  }
  function quote(text) { return '"' + text.replace(/\\/g, "\\\\").replace(/"/g, '\\"') + '"'; }

  function addRow() {
    var row = element("div", {"class": "builder-row"});
    var field = element("select", {"aria-label": "Field"});
    options(field, FIELDS.map(function (f) { return [f[0], f[1]]; }));
    var key = element("input", {type: "text", placeholder: "key, e.g. city", "aria-label": "Attribute key"});
    var op = element("select", {"aria-label": "Operator"});
    var value = element("span", {"class": "builder-value"});
    var remove = element("button", {type: "button", "class": "link-button"}, "Remove");
    function spec() { return FIELDS.filter(function (f) { return f[0] === field.value; })[0]; }
    function refresh() {
      var s = spec();
      key.hidden = s[0] !== "attributes";
      options(op, s[2].map(function (o) { return [o, o]; }));
      value.textContent = "";
      var input;
      if (s[3] === "list") {
        input = element("select", {"aria-label": "List"});
        options(input, lists.map(function (slug) { return [slug, slug]; }));
      } else if (s[3] === "status") {
        input = element("select", {"aria-label": "Status"});
        options(input, [["active", "active"], ["blocklisted", "blocklisted"]]);
      } else if (s[3] === "boolean") {
        input = element("select", {"aria-label": "Value"});
        options(input, [["true", "yes"], ["false", "no"]]);
      } else {
        input = element("input", {type: s[3] === "text" ? "text" : s[3], "aria-label": "Value"});
      }
      value.appendChild(input);
    }
    row.text = function () {
      var s = spec(), input = value.firstChild, raw = input.value;
      var name = s[0] === "attributes" ? "attributes." + (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(key.value) ? key.value : quote(key.value)) : s[0];
      var literal;
      if (s[3] === "boolean") { literal = raw; }
      else if (s[3] === "number") { literal = String(parseInt(raw, 10) || 0); }
      else if (s[0] === "attributes" && /^-?\d+(\.\d+)?$/.test(raw) && op.value !== "contains") { literal = raw; }
      else { literal = quote(raw); }
      return name + " " + op.value + " " + literal;
    };
    field.addEventListener("change", refresh);
    remove.addEventListener("click", function () { rows.removeChild(row); });
    [field, key, op, value, remove].forEach(function (el) { row.appendChild(el); });
    rows.appendChild(row);
    refresh();
  }

  builder.querySelector("[data-add-row]").addEventListener("click", addRow);
  Array.prototype.forEach.call(builder.querySelectorAll("[data-write]"), function (button) {
    button.addEventListener("click", function () {
      var join = " " + builder.querySelector("[data-join]").value + " ";
      var parts = Array.prototype.map.call(rows.children, function (row) { return row.text(); });
      if (!parts.length) { return; }
      var text = parts.join(join);
      if (button.getAttribute("data-write") === "append" && box.value.trim()) {
        text = "(" + box.value.trim() + ")" + join + (parts.length > 1 ? "(" + text + ")" : text);
      }
      box.value = text;
      later();
    });
  });
  addRow();
}());
