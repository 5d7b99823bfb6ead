// CTCAE v4.03 pick-list helper: shows the grades that exist for the chosen term and their
// definitions, from the dictionary the page embeds. The server checks the grade on save.
(function () {
  "use strict";
  var source = document.getElementById("ctcae-dictionary");
  var termInput = document.querySelector("[data-ctcae-term]");
  var gradeSelect = document.querySelector("[data-ctcae-grade]");
  var panel = document.getElementById("ctcae-grades");
  if (!source || !termInput || !panel) return;
  var dictionary = JSON.parse(source.textContent);

  function text(tag, content, className) {
    var el = document.createElement(tag);
    el.textContent = content;
    if (className) el.className = className;
    return el;
  }

  function render() {
    var name = termInput.value.trim();
    var entry = dictionary[name];
    panel.replaceChildren();
    if (!name) {
      panel.append(text("span", "Pick a CTCAE v4.03 term to see its grades."));
      return;
    }
    if (!entry) {
      panel.append(text("span", "“" + name + "” is not a CTCAE v4.03 term: pick one from the list.", "text-danger"));
      return;
    }
    panel.append(text("div", name + ": grades " + entry.grades.join(", ") + " exist.", "fw-semibold mb-1"));
    var list = document.createElement("dl");
    list.className = "row mb-0";
    var chosen = gradeSelect ? parseInt(gradeSelect.value, 10) : NaN;
    for (var grade = 1; grade <= 5; grade++) {
      var exists = entry.grades.indexOf(grade) >= 0;
      var definition = entry.definitions[grade] || (exists ? "" : "Does not exist for this term.");
      var dt = text("dt", "Grade " + grade, "col-sm-2" + (exists ? "" : " text-muted"));
      var dd = text("dd", definition, "col-sm-10" + (exists ? "" : " text-muted"));
      if (grade === chosen) {
        dt.classList.add(exists ? "text-success" : "text-danger");
        dd.classList.add(exists ? "text-success" : "text-danger");
      }
      dt.dataset.grade = grade;
      dt.dataset.exists = exists;
      list.append(dt, dd);
    }
    panel.append(list);
  }

  termInput.addEventListener("input", render);
  termInput.addEventListener("change", render);
  if (gradeSelect) gradeSelect.addEventListener("change", render);
  render();
})();
