"""An analysis run: its parameters, frozen data snapshot, state and output files."""

import uuid
from pathlib import Path

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

# A run whose worker stopped sending heartbeats for this long is marked failed, so a killed
# worker never leaves a run shown as running.
STALE_AFTER_SECONDS = 15 * 60


class AnalysisRun(models.Model):
    QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
    STATUS_CHOICES = [
        (QUEUED, _("Queued")),
        (RUNNING, _("Running")),
        (SUCCEEDED, _("Succeeded")),
        (FAILED, _("Failed")),
    ]
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    source = models.CharField(max_length=20, default="dashboard")  # dashboard | command line
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default=QUEUED)
    progress_pct = models.PositiveSmallIntegerField(default=0)
    progress_step = models.CharField(max_length=120, blank=True)
    error = models.TextField(blank=True)
    parameters = models.JSONField(default=dict)
    snapshot_hash = models.CharField(_("SHA-256 of the data snapshot"), max_length=64, blank=True)
    code_version = models.CharField(max_length=80, blank=True)
    n_patients = models.PositiveIntegerField(null=True, blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    output_path = models.CharField(
        max_length=500, blank=True, help_text=_("Where a command-line run wrote its files.")
    )
    # The words of report.html and report.docx (README "Languages"): the language of the page
    # the run was started from. The data files, figures and codes are the same in every language.
    language = models.CharField(
        _("report language"), max_length=8, choices=settings.LANGUAGES, default="en"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"Run {str(self.id)[:8]} ({self.status})"

    @property
    def output_dir(self) -> Path:
        if self.output_path:
            return Path(self.output_path)
        return Path(settings.MEDIA_ROOT) / "analysis_runs" / str(self.id)

    @property
    def is_finished(self):
        return self.status in (self.SUCCEEDED, self.FAILED)

    @property
    def error_summary(self) -> str:
        """Why the run failed, in words (the error's first paragraph)."""
        return self.error.split("\n\n", 1)[0]

    @property
    def error_details(self) -> str:
        """The technical part of the error (exception and traceback), for the administrator."""
        parts = self.error.split("\n\n", 1)
        return parts[1] if len(parts) > 1 else ""

    @classmethod
    def fail_stale_runs(cls, stale_after_seconds=None):
        """Mark runs whose worker went silent as failed (a killed worker sends no signal).

        Silent = no heartbeat for settings.ANALYSIS_STALE_AFTER_SECONDS (default 15 minutes).
        """
        if stale_after_seconds is None:
            stale_after_seconds = getattr(
                settings, "ANALYSIS_STALE_AFTER_SECONDS", STALE_AFTER_SECONDS
            )
        cutoff = timezone.now() - timezone.timedelta(seconds=stale_after_seconds)
        return cls.objects.filter(status=cls.RUNNING, heartbeat_at__lt=cutoff).update(
            status=cls.FAILED,
            finished_at=timezone.now(),
            error="The analysis worker stopped responding (worker lost); start the run again.",
        )
