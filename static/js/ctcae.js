// CTCAE v4.03 pick-list helper, from the dictionary the page embeds (registry/ctcae.py):
// - the grade select offers only the grades that exist for the chosen term (all five while no
//   term is chosen); the server still refuses an impossible grade with a field error;
// - a panel under the grade field lists the term's grades and their definitions, saying in words
//   which grade is chosen and whether it exists (aria-live, so changes are announced);
// - a term that is not in the dictionary gets one message, in the field's own error slot, once
//   the field is left (change): never while the term is still being typed.
// Its words are translated with gettext() (the djangojs catalogue, loaded by base.html); the
// CTCAE term names and their grade definitions stay in English, as MedDRA publishes them.
(function () {
  "use strict";
  var gettext = window.gettext || function (s) { return s; };
  var interpolate = window.interpolate || function (fmt, obj) {
    return fmt.replace(/%\((\w+)\)s/g, function (m, key) { return String(obj[key]); });
  };
  function format(fmt, values) { return interpolate(fmt, values, true); }
  var source = document.getElementById("ctcae-dictionary");
  var termInput = document.querySelector("[data-ctcae-term]");
  var gradeSelect = document.querySelector("[data-ctcae-grade]");
  var panel = document.getElementById("ctcae-grades");
  if (!source || !termInput || !panel) return;
  var dictionary = JSON.parse(source.textContent);

  var card = document.getElementById("ctcae-panel");
  var gradeField = gradeSelect && document.getElementById("div_id_" + gradeSelect.name);
  if (card && gradeField) gradeField.after(card);

  // Every grade the select was rendered with, to restore them when the term changes.
  var allGrades = gradeSelect
    ? Array.prototype.filter.call(gradeSelect.options, function (o) { return o.value !== ""; })
        .map(function (o) { return { value: o.value, label: o.textContent }; })
    : [];
  var dropped = null;  // a chosen grade the term does not have: said in words in the panel

  function text(tag, content, className) {
    var el = document.createElement(tag);
    el.textContent = content;
    if (className) el.className = className;
    return el;
  }

  function currentTerm() {
    var name = termInput.value.trim();
    return { name: name, entry: Object.prototype.hasOwnProperty.call(dictionary, name) ? dictionary[name] : null };
  }

  // --- The term field's error message (one: the server's, replaced by ours once it changes) ---
  var errorId = termInput.id + "_error";

  function describedBy(add, id) {
    var ids = (termInput.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
    ids = ids.filter(function (x) { return x !== id; });
    if (add) ids.push(id);
    if (ids.length) termInput.setAttribute("aria-describedby", ids.join(" "));
    else termInput.removeAttribute("aria-describedby");
  }

  function setTermError(message) {
    var box = document.getElementById(errorId);
    if (!message) {
      if (box) box.remove();
      termInput.classList.remove("is-invalid");
      termInput.removeAttribute("aria-invalid");
      describedBy(false, errorId);
      return;
    }
    if (!box) {
      box = document.createElement("div");
      box.id = errorId;
      box.className = "invalid-feedback";
      termInput.after(box);
    }
    box.replaceChildren(text("strong", message));
    termInput.classList.add("is-invalid");
    termInput.setAttribute("aria-invalid", "true");
    describedBy(true, errorId);
  }

  // Only the dictionary rule is the page's to say: an empty field keeps the server's message.
  function checkTerm(whileTyping) {
    var term = currentTerm();
    if (term.entry) setTermError("");
    else if (term.name && !whileTyping) {
      setTermError(format(gettext("“%(term)s” is not a CTCAE v4.03 term: pick one from the list."), { term: term.name }));
    }
  }

  // --- The grade select ---------------------------------------------------------------------
  // `interactive`: the user changed the term, so a chosen grade it lacks is dropped and said so
  // in the panel; on page load the server's own grade message (if any) says it already.
  function limitGrades(entry, interactive) {
    if (!gradeSelect) return;
    var chosen = gradeSelect.value;
    var allowed = entry ? entry.grades.map(String) : allGrades.map(function (g) { return g.value; });
    var current = Array.prototype.map.call(gradeSelect.options, function (o) { return o.value; })
      .filter(function (v) { return v !== ""; });
    if (current.join() !== allowed.join()) {
      Array.prototype.slice.call(gradeSelect.options).forEach(function (o) {
        if (o.value !== "") o.remove();
      });
      allGrades.forEach(function (g) {
        if (allowed.indexOf(g.value) >= 0) gradeSelect.add(new Option(g.label, g.value));
      });
    }
    if (chosen && allowed.indexOf(chosen) < 0) {
      if (interactive) dropped = chosen;
      gradeSelect.value = "";
    } else {
      gradeSelect.value = chosen;
      if (chosen) dropped = null;
    }
  }

  // --- The panel ----------------------------------------------------------------------------
  function render() {
    var term = currentTerm();
    panel.replaceChildren();
    if (!term.entry) {
      panel.append(text("span", gettext("Pick a CTCAE v4.03 term to see its grades.")));
      return;
    }
    var entry = term.entry;
    panel.append(text("div", format(gettext("%(term)s: grades %(grades)s exist."), { term: term.name, grades: entry.grades.join(", ") }), "fw-semibold mb-1"));
    var chosen = gradeSelect ? parseInt(gradeSelect.value, 10) : NaN;
    if (dropped) {
      panel.append(text("div", format(gettext("Grade %(grade)s does not exist for %(term)s: choose one of grades %(grades)s."),
        { grade: dropped, term: term.name, grades: entry.grades.join(", ") }), "text-danger mb-1"));
    } else if (chosen) {
      panel.append(text("div", format(gettext("Chosen: grade %(grade)s, which exists for this term."), { grade: chosen }), "mb-1"));
    }
    var list = document.createElement("dl");
    list.className = "row mb-0";
    for (var grade = 1; grade <= 5; grade++) {
      var exists = entry.grades.indexOf(grade) >= 0;
      var definition = entry.definitions[grade] || "";
      var title = exists
        ? format(grade === chosen ? gettext("Grade %(grade)s (chosen)") : gettext("Grade %(grade)s"), { grade: grade })
        : format(gettext("Grade %(grade)s (does not exist)"), { grade: grade });
      var dt = text("dt", title, "col-sm-3" + (exists ? "" : " text-muted"));
      var dd = text("dd", exists ? definition : gettext("Does not exist for this term."), "col-sm-9" + (exists ? "" : " text-muted"));
      if (exists) dd.lang = "en";  // CTCAE's own words, in English: said so to screen readers
      if (grade === chosen) {
        dt.classList.add("ctcae-chosen");
        dd.classList.add("ctcae-chosen");
      }
      dt.dataset.grade = grade;
      dt.dataset.exists = exists;
      list.append(dt, dd);
    }
    panel.append(list);
  }

  function update(interactive) {
    limitGrades(currentTerm().entry, interactive);
    render();
  }

  termInput.addEventListener("input", function () { update(true); checkTerm(true); });
  termInput.addEventListener("change", function () { update(true); checkTerm(false); });
  if (gradeSelect) gradeSelect.addEventListener("change", function () { dropped = null; render(); });
  update(false);
})();
