// Polls each archive still building and shows its progress; reloads once one is finished
// (the row then offers the download).
(function () {
  const rows = Array.from(document.querySelectorAll("tr.archive[data-finished='0']"));
  if (!rows.length) return;
  const poll = () =>
    Promise.all(
      rows.map((row) =>
        fetch(row.dataset.statusUrl, { credentials: "same-origin" })
          .then((r) => r.json())
          .then((s) => {
            row.querySelector(".archive-state").textContent = s.label;
            row.querySelector(".archive-pct").textContent = s.progress_pct;
            row.querySelector(".archive-done").textContent = s.cases_done;
            row.querySelector(".archive-total").textContent = s.cases_total;
            return s.finished;
          })
      )
    ).then((finished) => {
      if (finished.some(Boolean)) window.location.reload();
      else setTimeout(poll, 2000);
    });
  setTimeout(poll, 2000);
})();
