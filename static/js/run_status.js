// Polls a run's state until it finishes, then reloads to show the results.
(function () {
  const box = document.getElementById("run-state");
  if (!box || box.dataset.finished === "1") return;
  const poll = () =>
    fetch(box.dataset.statusUrl, { credentials: "same-origin" })
      .then((r) => r.json())
      .then((s) => {
        document.getElementById("run-status").textContent = s.status;
        document.getElementById("run-progress").textContent = s.progress_pct;
        document.getElementById("run-step").textContent = s.progress_step;
        if (s.finished) window.location.reload();
        else setTimeout(poll, 1500);
      });
  setTimeout(poll, 1500);
})();
