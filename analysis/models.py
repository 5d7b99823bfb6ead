"""An analysis run: its parameters, frozen data snapshot, state and output files."""

import uuid
from pathlib import Path

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _

from .background import UNAVAILABLE, reason_in_language
from .progress import PROGRESS_STEPS

# A run whose worker stopped sending heartbeats for this long is marked failed, so a killed
# worker never leaves a run shown as running.
STALE_AFTER_SECONDS = 15 * 60

# Why a run failed, as the registry writes it: stored in English in AnalysisRun.error (the
# technical details after a blank line, for the administrator), shown in the page's language
# (error_summary). %(doing)s is the step the run was at, as in "while computing tables".
NOTHING_TO_ANALYSE = gettext_noop(
    "The registry has no patients yet, so there is nothing to analyse. Register patients, "
    "then start the run again."
)
OUT_OF_MEMORY = gettext_noop(
    "The server ran out of memory while %(doing)s. Start the run again when fewer runs are "
    "going on, or ask the administrator for more memory."
)
NOT_WRITTEN = gettext_noop(
    "The run's files could not be written while %(doing)s (%(reason)s). Ask the administrator "
    "to check the disk space and permissions of the media folder."
)
STOPPED = gettext_noop(
    "The run stopped while %(doing)s: %(detail)s (%(error)s). Nothing in the registry was "
    "changed; start the run again, and if it fails the same way, send this message to the "
    "administrator."
)
STALE = gettext_noop("The analysis worker stopped responding (worker lost); start the run again.")
LOST = gettext_noop("The analysis worker was lost (%(error)s); start the run again.")
FAILURES = (NOTHING_TO_ANALYSE, OUT_OF_MEMORY, NOT_WRITTEN, STOPPED, STALE, LOST, UNAVAILABLE)
STARTING = gettext_noop("starting")


def doing(step: str) -> str:
    """A step as the middle of a sentence ("while computing tables and survival models")."""
    return step[:1].lower() + step[1:] if step else STARTING


def _doing_in_language(name: str, value: str) -> str:
    if name != "doing":
        return value
    if value == STARTING:
        return gettext(STARTING)
    for _pct, step in PROGRESS_STEPS.values():
        if doing(step) == value:
            # English lowers the step's capital inside the sentence; a translation stands as
            # it is (Korean has no case, and "Kaplan-Meier" keeps its capital).
            translated = gettext(step)
            return doing(step) if translated == step else translated
    return value


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
    source = models.CharField(max_length=20, default="dashboard")  # a key of SOURCES
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

    # Where a run was started, as its page names it when nobody is recorded as its requester.
    SOURCES = {"dashboard": _("the dashboard"), "command line": _("the command line")}

    @property
    def source_label(self) -> str:
        return self.SOURCES.get(self.source, self.source)

    @property
    def error_summary(self) -> str:
        """Why the run failed, in words (the error's first paragraph), in the page's language."""
        return reason_in_language(self.error.split("\n\n", 1)[0], FAILURES, _doing_in_language)

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
            error=STALE,
        )
