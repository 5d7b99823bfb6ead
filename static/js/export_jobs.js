// Polls each background export still running and shows its progress; reloads once one has
// finished (its row then offers the download, or says why it failed).
(function () {
  const rows = Array.from(document.querySelectorAll("tr.export-job[data-finished='0']"));
  if (!rows.length) return;
  const poll = () =>
    Promise.all(
      rows.map((row) =>
        fetch(row.dataset.statusUrl, { credentials: "same-origin" })
          .then((r) => r.json())
          .then((s) => {
            row.querySelector(".job-state").textContent = s.label;
            row.querySelector(".job-pct").textContent = s.progress_pct;
            row.querySelector(".job-done").textContent = s.done;
            row.querySelector(".job-total").textContent = s.total;
            return s.finished;
          })
      )
    ).then((finished) => {
      if (finished.some(Boolean)) window.location.reload();
      else setTimeout(poll, 2000);
    });
  setTimeout(poll, 2000);
})();
