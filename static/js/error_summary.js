// After a failed save the page opens on its error summary (templates/_error_summary.html): the
// focus moves there so a keyboard or screen-reader user starts from the list of problems, and
// each entry, followed, puts the focus in its field (a fragment link alone only scrolls).
(function () {
  "use strict";
  var summary = document.querySelector("[data-error-summary]");
  if (!summary) return;
  summary.focus();
  summary.addEventListener("click", function (event) {
    var link = event.target.closest("a[data-field]");
    if (!link) return;
    var field = document.getElementById(link.dataset.field);
    if (!field) return;
    event.preventDefault();
    // The label sits above the field: show it too, then focus without scrolling again.
    var label = document.querySelector("label[for='" + field.id + "']");
    (label || field).scrollIntoView({ block: "start" });
    field.focus({ preventScroll: true });
    history.replaceState(null, "", "#" + field.id);
  });
})();
