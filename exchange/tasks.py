"""Celery task: build a background export in the worker (in a thread of the web process when
there is no broker, as analysis runs: analysis.background)."""

from celery import shared_task
from celery.signals import task_failure
from django.db import transaction
from django.utils import timezone

from . import jobs
from .models import LOST_ERROR, ExportJob


# As analysis runs and site archives: acks_late so a message whose worker died is delivered
# again, and a pool process that died mid-export fails the job below rather than re-queueing it.
@shared_task(acks_late=True, reject_on_worker_lost=False)
def run_export_task(job_id: str):
    job = ExportJob.objects.select_related("requested_by").get(pk=job_id)
    if job.is_finished:  # delivered again after it was failed as stale, or built
        return str(job_id)
    jobs.build(job)
    return str(job_id)


@task_failure.connect(sender=run_export_task)
def _mark_failed(sender=None, task_id=None, exception=None, args=None, **kwargs):
    job_id = (args or [None])[0] or (kwargs.get("kwargs") or {}).get("job_id")
    if not job_id:
        return
    ExportJob.objects.filter(pk=job_id, status__in=[ExportJob.QUEUED, ExportJob.RUNNING]).update(
        status=ExportJob.FAILED,
        finished_at=timezone.now(),
        error=LOST_ERROR % {"error": type(exception).__name__},
    )


def start(job: ExportJob) -> None:
    """Hand the job to the worker, or to a thread of this process without a broker."""
    from analysis import background

    if background.enabled():
        # After the commit: the thread must find the job's row.
        transaction.on_commit(
            lambda: background.start_task(run_export_task, str(job.pk), name=f"export-{job.pk}")
        )
    else:
        run_export_task.delay(str(job.pk))
