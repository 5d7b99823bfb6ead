// Polls a run's state while it is queued or running: the status, the percentage, the steps
// done, the current one and, if it fails, why; then reloads once to show the results.
// The server's JSON is in the page's language; the steps' states are named with gettext().
(function () {
  const pgettext = window.pgettext || ((context, s) => s);
  const stateNames = {
    done: pgettext("step", "done"),
    current: pgettext("step", "current"),
    failed: pgettext("step", "failed"),
    pending: pgettext("step", "pending"),
  };
  const box = document.getElementById("run-state");
  if (!box || box.dataset.finished === "1") return;
  const byId = (id) => document.getElementById(id);
  const show = (s) => {
    const badge = byId("run-status");
    badge.textContent = s.status_display;
    badge.className = "badge run-badge-" + s.status;
    byId("run-step").textContent = s.progress_step;
    byId("run-progress").textContent = s.progress_pct;
    const bar = byId("run-progressbar");
    bar.value = s.progress_pct;
    bar.textContent = s.progress_pct + "%";
    const list = byId("run-steps");
    list.replaceChildren(
      ...s.steps.map((step) => {
        const item = document.createElement("li");
        item.className = "step-" + step.state;
        item.dataset.pct = step.pct;
        item.textContent = step.label;
        const state = document.createElement("span");
        state.className = "visually-hidden";
        state.textContent = " (" + (stateNames[step.state] || step.state) + ")";
        item.appendChild(state);
        return item;
      })
    );
    if (s.status === "failed") {
      byId("run-error").textContent = s.error;
      byId("run-error-box").hidden = false;
    }
  };
  const poll = () =>
    fetch(box.dataset.statusUrl, { credentials: "same-origin" })
      .then((r) => r.json())
      .then((s) => {
        show(s);
        if (s.finished) window.location.reload();
        else setTimeout(poll, 700);
      })
      .catch(() => setTimeout(poll, 3000));
  setTimeout(poll, 300);
})();
