// Shows the response category the server derives for the values being typed.
// The rule lives only in registry.rules.derive_response: this asks the case's JSON endpoint,
// which checks each value with its model field's validators and runs ResponseAssessment.derive().
// While a value is invalid the server answers no category, only why: the box shows just that.
// The box is an aria-live region (polite, atomic), so a screen reader hears each new answer.
// Its own words are translated with gettext() (the djangojs catalogue, loaded by base.html).
(function () {
  "use strict";
  var gettext = window.gettext || function (s) { return s; };
  var box = document.getElementById("derived-box");
  var out = document.getElementById("derived-response");
  if (!box || !out) return;
  var result = document.getElementById("derived-result");
  var label = document.getElementById("derived-label");
  var invalid = document.getElementById("derived-invalid");
  var form = box.closest("form");
  // Next to the values it is derived from (the form's HTML comes whole from the server).
  var place = document.getElementById("div_id_emd_status");
  var wrapper = document.getElementById("derived-field");
  if (place && wrapper) place.after(wrapper);
  var names = ["marrow_blasts_pct", "anc_10e9_per_l", "platelets_10e9_per_l", "emd_status"];
  var timer = null;
  var latest = 0;

  function show(response, labelText, message) {
    out.textContent = response || "—";
    out.dataset.response = response || "";
    label.textContent = labelText ? "(" + labelText + ")" : "";
    invalid.textContent = message || "";
    result.hidden = Boolean(message);
    invalid.hidden = !message;
    box.classList.toggle("alert-info", !message);
    box.classList.toggle("alert-warning", Boolean(message));
  }

  function update() {
    var params = new URLSearchParams();
    names.forEach(function (name) {
      var field = form.elements[name];
      if (field) params.set(name, field.value);
    });
    var ticket = ++latest;
    box.setAttribute("aria-busy", "true");
    fetch(out.dataset.url + "?" + params.toString(), {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (ticket !== latest) return;  // an older answer arriving late
        box.removeAttribute("aria-busy");
        if (!data) show("", "", gettext("Could not derive the response: reload the page."));
        else show(data.response, data.label, data.message);
      })
      .catch(function () {
        if (ticket !== latest) return;
        box.removeAttribute("aria-busy");
        show("", "", gettext("Could not derive the response: check the connection."));
      });
  }

  form.addEventListener("input", function (event) {
    if (names.indexOf(event.target.name) < 0) return;
    clearTimeout(timer);
    timer = setTimeout(update, 150);
  });
  form.addEventListener("change", function (event) {
    if (names.indexOf(event.target.name) >= 0) update();
  });
  update();
})();
