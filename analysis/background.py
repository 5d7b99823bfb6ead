"""Runs without a broker: the Celery task's body in a thread of the web process.

With no REDIS_URL (the demo) there is no worker to hand a run to. Running the task inside the
request made "Run analysis" hang with no feedback until the run was over; here the request
only starts a thread and returns, and the run's page polls its progress like any other run.
The thread uses its own database connections, closed when it ends.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)

# The threads started by this process, by run id (tests wait for them; nothing else needs to).
THREADS: dict[str, threading.Thread] = {}


def enabled() -> bool:
    """Runs go to a background thread when there is no broker (settings.ANALYSIS_IN_THREAD)."""
    return getattr(settings, "ANALYSIS_IN_THREAD", False)


def start(run_id: str) -> threading.Thread:
    thread = threading.Thread(
        target=_run, args=(str(run_id),), name=f"analysis-run-{run_id}", daemon=True
    )
    THREADS[str(run_id)] = thread
    thread.start()
    return thread


def _run(run_id: str) -> None:
    from .tasks import run_analysis_task

    try:
        # The task's own body, as a worker would run it; a failure is already recorded on the
        # run (execute() marks it failed, with the reason), so it is only logged here.
        run_analysis_task.apply(args=[run_id], throw=False)
    except Exception:  # never let a thread's error escape into the web process
        logger.exception("Analysis run %s failed in its background thread", run_id)
    finally:
        connections.close_all()
        THREADS.pop(run_id, None)
