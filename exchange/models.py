"""A background export: a whole-registry file (or a user's sites') built by a Celery task."""

import uuid
from pathlib import Path

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _

from analysis import background

# Why a job failed, as the registry itself writes it: stored in English (ExportJob.error, for the
# administrator and the logs, whoever asked), shown in the page's language (error_text). Each
# names the exception's class, which stays as it is.
STALE_ERROR = gettext_noop("The worker stopped responding; start the export again.")
LOST_ERROR = gettext_noop("The worker was lost (%(error)s); start the export again.")
UNAVAILABLE_ERROR = gettext_noop("The job service is unavailable (%(error)s).")
KNOWN_ERRORS = (STALE_ERROR, LOST_ERROR, UNAVAILABLE_ERROR)


class ExportJob(models.Model):
    QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
    STATUS_CHOICES = [
        (QUEUED, _("Queued")),
        (RUNNING, _("Running")),
        (SUCCEEDED, _("Ready")),
        (FAILED, _("Failed")),
    ]
    TEMPLATE, ODM, DATASET_XLSX = "template", "odm", "dataset_xlsx"
    KIND_CHOICES = [
        (TEMPLATE, _("Cases in the import template's format (zip of CSV files)")),
        (ODM, _("CDISC ODM 1.3.2 with the clinical data (XML)")),
        (DATASET_XLSX, _("Analysis dataset as an Excel workbook (xlsx)")),
    ]
    FILENAMES = {
        TEMPLATE: "registry_cases.zip",
        ODM: "blinatumomab_registry_odm.xml",
        DATASET_XLSX: "analysis_dataset.xlsx",
    }
    REGISTRY = "registry"  # scope: every site; otherwise the site codes the requester reads

    id = models.UUIDField(_("id"), primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(_("export"), max_length=20, choices=KIND_CHOICES)
    # Who asked: the only user who sees the job and downloads its file.
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("requested by"),
        on_delete=models.CASCADE,
        related_name="+",
    )
    # What it covers, fixed when it was asked for: "registry", or the site codes ("KR01 KR02").
    scope = models.CharField(_("scope"), max_length=500)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    heartbeat_at = models.DateTimeField(_("heartbeat at"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=STATUS_CHOICES, default=QUEUED)
    # rows (template) or cases to write
    total = models.PositiveIntegerField(_("total"), default=0)
    done = models.PositiveIntegerField(_("done"), default=0)
    error = models.TextField(_("error"), blank=True)
    size_bytes = models.PositiveBigIntegerField(_("size bytes"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("background export")
        verbose_name_plural = _("background exports")

    def __str__(self):
        return f"{self.get_kind_display()} ({self.get_status_display().lower()})"

    @property
    def whole_registry(self) -> bool:
        return self.scope == self.REGISTRY

    @property
    def site_codes(self) -> list[str]:
        return [] if self.whole_registry else self.scope.split()

    @property
    def scope_label(self) -> str:
        return gettext("Whole registry") if self.whole_registry else ", ".join(self.site_codes)

    @property
    def error_text(self) -> str:
        """Why the job failed, in the page's language: a reason the registry writes (KNOWN_ERRORS)
        translated, the exception's class kept; any other error (a writer's exception, technical)
        as stored."""
        return background.reason_in_language(self.error, KNOWN_ERRORS)

    @property
    def filename(self) -> str:
        stamp = timezone.localtime(self.created_at).strftime("%Y%m%d-%H%M%S")
        stem, _, ext = self.FILENAMES[self.kind].rpartition(".")
        return f"{stem}-{stamp}.{ext}"

    @property
    def path(self) -> Path:
        ext = self.FILENAMES[self.kind].rpartition(".")[2]
        return Path(settings.MEDIA_ROOT) / "exports" / f"{self.pk}.{ext}"

    @property
    def progress_pct(self) -> int:
        if self.status == self.SUCCEEDED:
            return 100
        if not self.total:
            return 0
        return min(99, int(100 * self.done / self.total))

    @property
    def is_finished(self) -> bool:
        return self.status in (self.SUCCEEDED, self.FAILED)

    @classmethod
    def fail_stale(cls):
        """Jobs whose worker went silent (killed: it sends nothing) are failed, so none shows as
        running forever; every batch written beats. A queued job waits for a free worker."""
        cutoff = timezone.now() - timezone.timedelta(seconds=settings.EXPORT_STALE_AFTER_SECONDS)
        return cls.objects.filter(status=cls.RUNNING, heartbeat_at__lt=cutoff).update(
            status=cls.FAILED,
            finished_at=timezone.now(),
            error=STALE_ERROR,
        )
