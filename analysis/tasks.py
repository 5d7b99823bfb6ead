"""Celery tasks: thin wrappers that load the run, execute it and store the result."""

from celery import shared_task

from .models import AnalysisRun
from .runs import execute


@shared_task(acks_late=True, reject_on_worker_lost=False)
def run_analysis_task(run_id: str):
    run = AnalysisRun.objects.get(pk=run_id)
    execute(run)
    return str(run_id)
