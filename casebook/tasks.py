"""Celery task: build a site archive in the worker (in-process when there is no broker)."""

from celery import shared_task
from celery.signals import task_failure
from django.utils import timezone

from . import archive as site_archive
from .models import LOST_ERROR, SiteArchive


# As analysis runs: acks_late so a message whose worker died is delivered again, and a pool
# process that died mid-build fails the archive below rather than re-queueing it at once.
@shared_task(acks_late=True, reject_on_worker_lost=False)
def build_site_archive_task(archive_id: str):
    archive = SiteArchive.objects.select_related("institution", "requested_by").get(pk=archive_id)
    if archive.is_finished:  # delivered again after it was failed as stale, or built
        return str(archive_id)
    site_archive.build(archive)
    return str(archive_id)


@task_failure.connect(sender=build_site_archive_task)
def _mark_failed(sender=None, task_id=None, exception=None, args=None, **kwargs):
    archive_id = (args or [None])[0] or (kwargs.get("kwargs") or {}).get("archive_id")
    if not archive_id:
        return
    SiteArchive.objects.filter(
        pk=archive_id, status__in=[SiteArchive.QUEUED, SiteArchive.RUNNING]
    ).update(
        status=SiteArchive.FAILED,
        finished_at=timezone.now(),
        error=LOST_ERROR % {"error": type(exception).__name__},
    )
