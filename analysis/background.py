"""Runs without a broker: the Celery task's body in a thread of the web process.

With no REDIS_URL (the demo) there is no worker to hand a run to. Running the task inside the
request made "Run analysis" hang with no feedback until the run was over; here the request
only starts a thread and returns, and the run's page polls its progress like any other run.
The thread uses its own database connections, closed when it ends. The background exports
(exchange.tasks) and the case-book archives start their jobs the same way (start_task), and all
three show why a job failed in the page's language the same way (reason_in_language).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable

from django.conf import settings
from django.db import connections
from django.utils.translation import gettext, gettext_noop

logger = logging.getLogger(__name__)

# Why a job that never started failed (the broker is down): stored so on an analysis run or a
# case-book archive, shown with reason_in_language.
UNAVAILABLE = gettext_noop("The job service is unavailable (%(error)s); try again later.")

# The threads started by this process, by run or job id (tests wait for them; nothing else
# needs to).
THREADS: dict[str, threading.Thread] = {}


def enabled() -> bool:
    """Runs go to a background thread when there is no broker (settings.ANALYSIS_IN_THREAD)."""
    return getattr(settings, "ANALYSIS_IN_THREAD", False)


def start(run_id: str) -> threading.Thread:
    from .tasks import run_analysis_task

    return start_task(run_analysis_task, str(run_id), name=f"analysis-run-{run_id}")


def start_task(task, job_id: str, name: str | None = None) -> threading.Thread:
    """Run a Celery task's body, task(job_id), in a thread: analysis runs and the background
    exports (exchange.tasks) share this."""
    thread = threading.Thread(
        target=_run, args=(task, str(job_id)), name=name or f"job-{job_id}", daemon=True
    )
    THREADS[str(job_id)] = thread
    thread.start()
    return thread


def _run(task, job_id: str) -> None:
    try:
        # The task's own body, as a worker would run it; a failure is already recorded on the
        # job (it is marked failed, with the reason), so it is only logged here.
        task.apply(args=[job_id], throw=False)
    except Exception:  # never let a thread's error escape into the web process
        logger.exception("Background job %s (%s) failed in its thread", job_id, task.name)
    finally:
        connections.close_all()
        THREADS.pop(job_id, None)


# An exception's text inside a stored reason: on one line (the reason is the error's first
# paragraph) and cut to this length, the whole of it kept with the technical details.
EXCEPTION_CHARS = 500
MATCHED_CHARS = 2000


def one_line(text: str) -> str:
    """An exception's text as a reason quotes it: whitespace collapsed, at most EXCEPTION_CHARS."""
    text = " ".join(str(text).split())
    return text if len(text) <= EXCEPTION_CHARS else text[: EXCEPTION_CHARS - 1] + "…"


def reason_in_language(
    stored: str, reasons: Iterable[str], translate: Callable[[str, str], str] | None = None
) -> str:
    """Why a job failed, in the active language. A job stores its reason in English, one of
    `reasons` (gettext_noop templates with %(name)s placeholders) filled in, so that whoever
    reads it later (the requester, an administrator, the logs) reads it in their own language:
    the template is translated and the placeholders' values kept (an exception's class and
    text), or passed through translate(name, value). Anything else is shown as stored."""
    if len(stored) > MATCHED_CHARS:  # the registry's reasons are short (see one_line)
        return stored
    for reason in reasons:
        parts = re.split(r"%\((\w+)\)s", reason)
        pattern = "".join(
            re.escape(part) if i % 2 == 0 else f"(?P<{part}>.*?)" for i, part in enumerate(parts)
        )
        found = re.fullmatch(pattern, stored, re.DOTALL)
        if found:
            values = found.groupdict()
            if translate is not None:
                values = {name: translate(name, value) for name, value in values.items()}
            # A reason without placeholders is not %-formatted: a "%" in its translation stays.
            return gettext(reason) % values if values else gettext(reason)
    return stored
