"""Celery tasks: thin wrappers that load the run, execute it and store the result."""

from celery import shared_task
from celery.signals import task_failure
from django.utils import timezone

from .background import one_line
from .models import LOST, AnalysisRun
from .runs import execute


# acks_late: a message whose worker died before acknowledging it is delivered again (after the
# broker's visibility timeout); reject_on_worker_lost=False: a run whose pool process died is not
# re-queued at once (a run that kills its worker would loop), it is marked failed below.
@shared_task(acks_late=True, reject_on_worker_lost=False)
def run_analysis_task(run_id: str):
    run = AnalysisRun.objects.get(pk=run_id)
    if run.is_finished:  # delivered again after the run was failed (worker lost) or finished
        return str(run_id)
    execute(run)
    return str(run_id)


@task_failure.connect(sender=run_analysis_task)
def _mark_run_failed(sender=None, task_id=None, exception=None, args=None, **kwargs):
    """The worker's main process reports a pool process that died mid-run (WorkerLostError:
    killed, out of memory); errors inside the run are recorded by execute() itself."""
    run_id = (args or [None])[0] or (kwargs.get("kwargs") or {}).get("run_id")
    if not run_id:
        return
    AnalysisRun.objects.filter(
        pk=run_id, status__in=[AnalysisRun.QUEUED, AnalysisRun.RUNNING]
    ).update(
        status=AnalysisRun.FAILED,
        finished_at=timezone.now(),
        error=LOST % {"error": one_line(f"{type(exception).__name__}: {exception}")},
    )
