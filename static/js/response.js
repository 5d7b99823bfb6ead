// Shows the response category the server derives for the values being typed.
// The rule lives only in registry.rules.derive_response: this asks the case's JSON endpoint,
// which runs ResponseAssessment.derive(). The saved value is derived again on save.
(function () {
  "use strict";
  var out = document.getElementById("derived-response");
  if (!out) return;
  var label = document.getElementById("derived-label");
  var form = out.closest("form");
  var names = ["marrow_blasts_pct", "anc_10e9_per_l", "platelets_10e9_per_l", "emd_status"];
  var timer = null;
  var latest = 0;

  function update() {
    var params = new URLSearchParams();
    names.forEach(function (name) {
      var field = form.elements[name];
      if (field) params.set(name, field.value);
    });
    var ticket = ++latest;
    out.setAttribute("aria-busy", "true");
    fetch(out.dataset.url + "?" + params.toString(), {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data || ticket !== latest) return;  // an older answer arriving late
        out.textContent = data.response || "—";
        out.dataset.response = data.response;
        label.textContent = data.label ? "(" + data.label + ")" : "";
        out.removeAttribute("aria-busy");
      })
      .catch(function () { label.textContent = "(could not derive: check the connection)"; });
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
