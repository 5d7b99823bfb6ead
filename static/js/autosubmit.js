// Submits a form when a control marked data-autosubmit changes (e.g. the case list's site
// switcher). Kept in a file: the Content-Security-Policy allows no inline scripts or handlers.
(function () {
  "use strict";
  document.querySelectorAll("[data-autosubmit]").forEach(function (control) {
    control.addEventListener("change", function () {
      if (control.form) control.form.submit();
    });
  });
})();
