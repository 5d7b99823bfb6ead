"""Background exports: the file of an ExportJob, written by a Celery task (exchange.tasks).

Whole-registry files take longer than a request (the ODM at 100,000 cases: minutes; the
dataset's workbook: most of a minute), so they are built here, with the job's progress and
heartbeat kept on its row, and downloaded when ready. Each file is streamed as the synchronous
downloads stream it (exchange.export, exchange.odm, analysis.dataset), written beside its final
name and renamed when complete: a download never sees half a file.
"""

import logging
import os
import time

from django.utils import timezone

from registry.access import exported_patients, full_access_sites

from . import export, odm
from .models import ExportJob

log = logging.getLogger(__name__)
BEAT_EVERY_S = 2.0  # progress and heartbeat written at most this often


class _Progress:
    def __init__(self, job: ExportJob):
        self.rows = ExportJob.objects.filter(pk=job.pk)
        self.done = 0
        self.last = time.monotonic()

    def add(self, n=1):
        self.done += n
        if time.monotonic() - self.last >= BEAT_EVERY_S:
            self.rows.update(done=self.done, heartbeat_at=timezone.now())
            self.last = time.monotonic()


def _template(job, patients, path, progress):
    full_sites = full_access_sites(job.requested_by)
    progress.rows.update(total=sum(export.row_counts(patients).values()))
    export.write_zip(path, patients, full_sites, on_row=progress.add)


def _odm(job, patients, path, progress):
    full_sites = full_access_sites(job.requested_by)
    progress.rows.update(total=patients.count())
    with open(path, "wb") as f:
        for chunk in odm.odm_chunks(patients, full_sites=full_sites, on_cases=progress.add):
            f.write(chunk)


def _dataset_xlsx(job, patients, path, progress):
    # The numerical stack only in the job, never at start-up (tests/test_startup_imports.py).
    from analysis.dataset import VARIABLES, iter_dataset_frames
    from analysis.outputs import write_xlsx_frames

    progress.rows.update(total=patients.count())
    frames = iter_dataset_frames(patients)
    write_xlsx_frames(frames, VARIABLES, path, "analysis_dataset", on_frame=progress.add)


WRITERS = {
    ExportJob.TEMPLATE: _template,
    ExportJob.ODM: _odm,
    ExportJob.DATASET_XLSX: _dataset_xlsx,
}


def build(job: ExportJob) -> ExportJob:
    """Write the job's file; its status, progress and error are kept on its row."""
    progress = _Progress(job)
    started = timezone.now()
    progress.rows.update(
        status=ExportJob.RUNNING, started_at=started, heartbeat_at=started, done=0, error=""
    )
    final = job.path
    final.parent.mkdir(parents=True, exist_ok=True)
    part = final.with_name(final.name + ".part")
    try:
        dataset = job.kind == ExportJob.DATASET_XLSX
        patients = exported_patients(job.requested_by, job.scope, dataset=dataset)
        WRITERS[job.kind](job, patients, part, progress)
        os.replace(part, final)
        progress.rows.update(
            status=ExportJob.SUCCEEDED,
            done=progress.done,
            finished_at=timezone.now(),
            heartbeat_at=timezone.now(),
            size_bytes=final.stat().st_size,
        )
    except Exception as exc:  # recorded on the job (its page shows it), never re-raised
        log.exception("export job %s (%s) failed", job.pk, job.kind)
        part.unlink(missing_ok=True)
        progress.rows.update(
            status=ExportJob.FAILED,
            finished_at=timezone.now(),
            error=f"{type(exc).__name__}: {exc}"[:2000],
        )
    job.refresh_from_db()
    return job
