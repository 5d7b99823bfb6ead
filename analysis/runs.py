"""Execute an AnalysisRun: snapshot the registry, write the outputs, record state."""

import hashlib
import os
import subprocess
import time
import traceback
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from registry import paper_twin
from registry.models import Patient

from .dataset import Cuts, load_registry
from .models import AnalysisRun


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


def execute(run: AnalysisRun) -> AnalysisRun:
    """Run the analysis; whatever happens, the run ends as succeeded or failed."""

    def progress(pct, step):
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
        progress_pct=0,
        progress_step="Reading the registry",
    )
    try:
        cuts = Cuts(**run.parameters.get("cuts", {}))
        snapshot = load_registry(cuts=cuts)
        version = code_version()
        AnalysisRun.objects.filter(pk=run.pk).update(
            snapshot_hash=snapshot.content_hash(),
            code_version=version,
            n_patients=len(snapshot.dataset),
        )
        write_run(
            snapshot,
            run.output_dir,
            run.parameters,
            metadata={
                "run_id": str(run.pk),
                "code_version": version,
                "generated_at": now.isoformat(),
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
            error=f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc(limit=5)}",
        )
        raise
    AnalysisRun.objects.filter(pk=run.pk).update(
        status=AnalysisRun.SUCCEEDED,
        finished_at=timezone.now(),
        progress_pct=100,
        progress_step="Done",
    )
    run.refresh_from_db()
    return run
