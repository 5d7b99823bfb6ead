"""A site archive: every case book of one site in one zip, built by a Celery task."""

import uuid
from pathlib import Path

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from analysis.background import UNAVAILABLE, reason_in_language
from registry.models import Institution

# Why an archive failed, as the registry writes it: stored in English (SiteArchive.error, for the
# administrator and the logs), shown in the page's language (error_text); the exception's class
# stays as it is. Any other error (a case book's exception, technical) is shown as stored.
STALE_ERROR = gettext_noop("The worker stopped responding; build the archive again.")
LOST_ERROR = gettext_noop("The worker was lost (%(error)s); build the archive again.")
KNOWN_ERRORS = (STALE_ERROR, LOST_ERROR, UNAVAILABLE)


class SiteArchive(models.Model):
    QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
    STATUS_CHOICES = [
        (QUEUED, _("Queued")),
        (RUNNING, _("Building")),
        (SUCCEEDED, _("Ready")),
        (FAILED, _("Failed")),
    ]
    id = models.UUIDField(_("id"), primary_key=True, default=uuid.uuid4, editable=False)
    institution = models.ForeignKey(
        Institution, verbose_name=_("institution"), on_delete=models.CASCADE, related_name="+"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("requested by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    heartbeat_at = models.DateTimeField(_("heartbeat at"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=STATUS_CHOICES, default=QUEUED)
    cases_total = models.PositiveIntegerField(_("cases total"), default=0)
    cases_done = models.PositiveIntegerField(_("cases done"), default=0)
    error = models.TextField(_("error"), blank=True)
    size_bytes = models.PositiveBigIntegerField(_("size bytes"), null=True, blank=True)
    sha256 = models.CharField(_("SHA-256 of the zip"), max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"Archive of {self.institution.code} ({self.get_status_display().lower()})"

    @property
    def filename(self) -> str:
        stamp = timezone.localtime(self.created_at).strftime("%Y%m%d-%H%M%S")
        return f"casebooks-{self.institution.code}-{stamp}.zip"

    @property
    def path(self) -> Path:
        return Path(settings.MEDIA_ROOT) / "casebooks" / f"{self.pk}.zip"

    @property
    def progress_pct(self) -> int:
        if self.status == self.SUCCEEDED:
            return 100
        if not self.cases_total:
            return 0
        return min(99, int(100 * self.cases_done / self.cases_total))

    @property
    def error_text(self) -> str:
        """Why the archive failed, in the page's language (KNOWN_ERRORS translated)."""
        return reason_in_language(self.error, KNOWN_ERRORS)

    @property
    def is_finished(self) -> bool:
        return self.status in (self.SUCCEEDED, self.FAILED)

    @classmethod
    def fail_stale(cls):
        """Archives whose worker went silent (killed: it sends nothing) are failed, so none is
        shown as building forever. Each case book written beats. A queued archive waits for a
        free worker however long that takes (Redis keeps the message)."""
        cutoff = timezone.now() - timezone.timedelta(
            seconds=settings.CASEBOOK_ARCHIVE_STALE_AFTER_SECONDS
        )
        return cls.objects.filter(status=cls.RUNNING, heartbeat_at__lt=cutoff).update(
            status=cls.FAILED,
            finished_at=timezone.now(),
            error=STALE_ERROR,
        )
