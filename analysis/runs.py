"""Execute an AnalysisRun: snapshot the registry, write the outputs, record state."""

import hashlib
import os
import subprocess
import time
import traceback
from pathlib import Path

from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext

from registry import paper_twin
from registry.models import Patient

from .background import one_line
from .dataset import Cuts, load_registry
from .models import (
    NOT_WRITTEN,
    NOTHING_TO_ANALYSE,
    OUT_OF_MEMORY,
    STOPPED,
    AnalysisRun,
    doing,
)
from .progress import PROGRESS_STEPS


class NothingToAnalyse(Exception):
    """The registry has no patients: a run would only fail further on, less clearly."""


def failure_message(step: str, exc: BaseException) -> str:
    """Why a run failed, in words a statistician can act on (the traceback follows it, for the
    administrator, in AnalysisRun.error); stored in English, shown in the page's language."""
    at = doing(step)
    if isinstance(exc, NothingToAnalyse):
        return NOTHING_TO_ANALYSE
    if isinstance(exc, MemoryError):
        return OUT_OF_MEMORY % {"doing": at}
    if isinstance(exc, OSError):
        return NOT_WRITTEN % {"doing": at, "reason": one_line(exc.strerror or exc)}
    detail = one_line(exc).rstrip(".") or type(exc).__name__
    return STOPPED % {"doing": at, "detail": detail, "error": type(exc).__name__}


def progress_view(run: AnalysisRun) -> dict:
    """The run's steps for its page: each done, current, failed or pending, in the page's
    language (the run stores the step's English name)."""
    steps = []
    for pct, label in PROGRESS_STEPS.values():
        if run.status == AnalysisRun.SUCCEEDED or pct < run.progress_pct:
            state = "done"
        elif label == run.progress_step and run.status == AnalysisRun.RUNNING:
            state = "current"
        elif label == run.progress_step and run.status == AnalysisRun.FAILED:
            state = "failed"
        else:
            state = "pending"
        steps.append({"pct": pct, "label": gettext(label), "state": state})
    current = gettext(run.progress_step) if run.progress_step else ""
    if run.status == AnalysisRun.QUEUED:
        step = gettext("Waiting to start")
    elif run.status == AnalysisRun.FAILED:
        step = (
            gettext("Stopped at: %(step)s") % {"step": current} if current else gettext("Stopped")
        )
    else:
        step = current
    return {"step": step, "steps": steps}


def code_version() -> str:
    """The git commit when available, plus a hash of the analysis code itself."""
    source = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        source.update(path.read_bytes())
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "nogit"
    return f"{commit}+{source.hexdigest()[:12]}"


def test_pause():
    """Fault tests only: with ANALYSIS_TEST_DELAY_S set, wait that long after each progress step,
    so a test can kill the worker in the middle of a run (tests/security/test_worker_faults.py).
    Unset (always, outside that test), it does nothing."""
    delay = os.environ.get("ANALYSIS_TEST_DELAY_S")
    if delay:
        time.sleep(float(delay))


def write_run(*args, **kwargs):
    """outputs.write_run, imported on the first run: the web and Celery processes import this
    module (via tasks and URLs) at start-up, and outputs brings pandas, scipy, lifelines and
    matplotlib."""
    from .outputs import write_run as write

    return write(*args, **kwargs)


def execute(run: AnalysisRun, on_step=lambda step: None) -> AnalysisRun:
    """Run the analysis; whatever happens, the run ends as succeeded or failed. `on_step` is
    called with each step's text as it starts (`run_analysis -v 2` times them)."""

    current = {"step": PROGRESS_STEPS["read"][1]}
    on_step(current["step"])

    def progress(pct, step):
        current["step"] = step
        on_step(step)
        AnalysisRun.objects.filter(pk=run.pk).update(
            progress_pct=pct, progress_step=step, heartbeat_at=timezone.now()
        )
        test_pause()

    now = timezone.now()
    AnalysisRun.objects.filter(pk=run.pk).update(
        status=AnalysisRun.RUNNING,
        started_at=now,
        heartbeat_at=now,
        error="",
        progress_pct=PROGRESS_STEPS["read"][0],
        progress_step=PROGRESS_STEPS["read"][1],
    )
    try:
        cuts = Cuts(**run.parameters.get("cuts", {}))
        snapshot = load_registry(cuts=cuts)
        if snapshot.dataset.empty:
            raise NothingToAnalyse()
        version = code_version()
        AnalysisRun.objects.filter(pk=run.pk).update(
            snapshot_hash=snapshot.content_hash(),
            code_version=version,
            n_patients=len(snapshot.dataset),
        )
        # The data files and the formatted tables in English whatever thread or request runs
        # this; the report in the run's language (outputs.write_run, metadata "language").
        with translation.override("en"):
            write_run(
                snapshot,
                run.output_dir,
                run.parameters,
                metadata={
                    "run_id": str(run.pk),
                    "code_version": version,
                    "generated_at": now.isoformat(),
                    "language": run.language,
                    # The demo twin is labelled synthetic wherever its results show.
                    "synthetic": paper_twin.LABEL
                    if paper_twin.registry_holds_twin(Patient.objects.all())
                    else "",
                },
                progress=progress,
            )
    except Exception as exc:  # any failure must end the run as failed, with the error shown
        AnalysisRun.objects.filter(pk=run.pk).update(
            status=AnalysisRun.FAILED,
            finished_at=timezone.now(),
            error=f"{failure_message(current['step'], exc)}\n\n"
            f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}",
        )
        raise
    AnalysisRun.objects.filter(pk=run.pk).update(
        status=AnalysisRun.SUCCEEDED,
        finished_at=timezone.now(),
        progress_pct=PROGRESS_STEPS["done"][0],
        progress_step=PROGRESS_STEPS["done"][1],
    )
    run.refresh_from_db()
    return run
