"""Data monitoring: queries on data, edit-check findings, signatures, lock events, audit trail.

The per-CRF facts (open query count, source data verification, lock) live on
registry.CrfStatus, whose `status` follows them; the site lock on registry.Institution. The
refusal to change a locked case is in the registry's model layer (registry.models.lock_message).
"""

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from registry.models import CrfStatus, Institution, Patient


class Query(models.Model):
    """A monitor's question on one field (or one record, or one CRF) of a case."""

    OPEN, ANSWERED, CLOSED = "open", "answered", "closed"
    STATUS_CHOICES = [
        (OPEN, _("Open")),
        (ANSWERED, _("Answered")),
        (CLOSED, _("Closed")),
    ]
    UNRESOLVED = (OPEN, ANSWERED)  # counted as open queries until a monitor closes them

    patient = models.ForeignKey(
        Patient, verbose_name=_("patient"), on_delete=models.CASCADE, related_name="queries"
    )
    crf = models.CharField(_("CRF"), max_length=16, choices=CrfStatus.CRF_CHOICES)
    content_type = models.ForeignKey(
        ContentType,
        verbose_name=_("content type"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    object_id = models.PositiveBigIntegerField(_("object id"), null=True, blank=True)
    record = GenericForeignKey("content_type", "object_id")
    record_label = models.CharField(
        _("record label"),
        max_length=200,
        blank=True,
        help_text=_("The record as named when the query was opened."),
    )
    field_name = models.CharField(
        _("field name"),
        max_length=64,
        blank=True,
        help_text=_("Empty: the query is about the whole record or CRF."),
    )
    message = models.TextField(_("message"), help_text=_("The question, as first asked."))
    status = models.CharField(_("status"), max_length=10, choices=STATUS_CHOICES, default=OPEN)
    check_key = models.CharField(
        _("check key"),
        max_length=200,
        blank=True,
        db_index=True,
        help_text=_(
            "The edit-check finding it was opened from; re-running the checks closes the "
            "query when the finding is gone."
        ),
    )
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("opened by"),
        on_delete=models.PROTECT,
        null=True,
        related_name="+",
    )
    opened_at = models.DateTimeField(_("opened at"), default=timezone.now)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["-opened_at", "-pk"]
        verbose_name_plural = _("queries")
        indexes = [models.Index(fields=["patient", "crf", "status"])]

    def __str__(self):
        return f"Query #{self.pk} on {self.patient} {self.target_label}"

    @property
    def is_unresolved(self) -> bool:
        return self.status in self.UNRESOLVED

    @property
    def model(self):
        return self.content_type.model_class() if self.content_type_id else None

    @property
    def field_label(self) -> str:
        model = self.model
        if not (model and self.field_name):
            return ""
        try:
            return str(model._meta.get_field(self.field_name).verbose_name)
        except LookupError:
            return self.field_name

    @property
    def target_label(self) -> str:
        parts = [self.record_label or self.get_crf_display()]
        if self.field_label:
            parts.append(self.field_label)
        return ": ".join(parts)


class QueryEvent(models.Model):
    """One step of a query's thread; never changed or deleted through the application."""

    OPENED = "opened"
    ANSWERED = "answered"
    CLOSED = "closed"
    REOPENED = "reopened"
    AUTO_CLOSED = "auto_closed"
    DATA_CHANGED = "data_changed"
    ACTION_CHOICES = [
        (OPENED, _("Opened")),
        (ANSWERED, _("Answered")),
        (CLOSED, _("Closed")),
        (REOPENED, _("Re-opened")),
        (AUTO_CLOSED, _("Closed by the edit checks")),
        (DATA_CHANGED, _("Value changed")),
    ]
    query = models.ForeignKey(
        Query, verbose_name=_("query"), on_delete=models.CASCADE, related_name="events"
    )
    action = models.CharField(_("action"), max_length=16, choices=ACTION_CHOICES)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("Empty: the system (edit checks)."),
    )
    at = models.DateTimeField(_("at"), default=timezone.now)
    message = models.TextField(_("message"), blank=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self):
        return f"{self.get_action_display()} by {self.user or 'system'} at {self.at:%Y-%m-%d %H:%M}"


class Finding(models.Model):
    """A problem the edit checks found at their last run (monitoring.checks)."""

    key = models.CharField(_("key"), max_length=200, unique=True)
    rule = models.CharField(_("rule"), max_length=40)
    patient = models.ForeignKey(
        Patient, verbose_name=_("patient"), on_delete=models.CASCADE, related_name="findings"
    )
    crf = models.CharField(_("CRF"), max_length=16, choices=CrfStatus.CRF_CHOICES)
    content_type = models.ForeignKey(
        ContentType,
        verbose_name=_("content type"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    object_id = models.PositiveBigIntegerField(_("object id"), null=True, blank=True)
    record = GenericForeignKey("content_type", "object_id")
    record_label = models.CharField(_("record label"), max_length=200, blank=True)
    field_name = models.CharField(_("field name"), max_length=64, blank=True)
    message = models.TextField(
        _("message"),
    )
    first_found_at = models.DateTimeField(_("first found at"), default=timezone.now)
    last_found_at = models.DateTimeField(_("last found at"), default=timezone.now)

    class Meta:
        ordering = ["patient__study_id", "crf", "pk"]

    def __str__(self):
        return f"{self.patient}: {self.message}"

    @property
    def rule_label(self) -> str:
        from .checks import RULES

        return RULES.get(self.rule, self.rule)

    @property
    def field_label(self) -> str:
        model = self.content_type.model_class() if self.content_type_id else None
        if not (model and self.field_name):
            return ""
        return str(model._meta.get_field(self.field_name).verbose_name)


class EditCheckRun(models.Model):
    institution = models.ForeignKey(
        Institution, verbose_name=_("institution"), on_delete=models.CASCADE, related_name="+"
    )
    ran_at = models.DateTimeField(_("ran at"), default=timezone.now)
    ran_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("ran by"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    findings_n = models.PositiveIntegerField(_("findings n"), default=0)
    queries_closed_n = models.PositiveIntegerField(_("queries closed n"), default=0)

    class Meta:
        ordering = ["-ran_at", "-pk"]
        get_latest_by = "ran_at"

    def __str__(self):
        return f"Edit checks of {self.institution.code} at {self.ran_at:%Y-%m-%d %H:%M}"


class Signature(models.Model):
    """The principal investigator's electronic signature of a complete case."""

    # Stored with each signature as shown to the signer, in the language of their page
    # (monitoring.views.sign shows and passes gettext(MEANING)).
    MEANING = gettext_noop(
        "I attest that the data in this case are accurate and complete, and that I have "
        "reviewed them as the principal investigator of this site."
    )
    patient = models.ForeignKey(
        Patient, verbose_name=_("patient"), on_delete=models.CASCADE, related_name="signatures"
    )
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("signed by"),
        on_delete=models.PROTECT,
        related_name="+",
    )
    signed_at = models.DateTimeField(_("signed at"), default=timezone.now)
    meaning = models.TextField(
        _("meaning"), help_text=_("The statement signed, as shown to the signer.")
    )
    voided_at = models.DateTimeField(_("voided at"), null=True, blank=True)
    void_reason = models.CharField(_("void reason"), max_length=300, blank=True)

    class Meta:
        ordering = ["-signed_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient"],
                condition=Q(voided_at__isnull=True),
                name="one_valid_signature_per_case",
            )
        ]

    def __str__(self):
        state = f"voided {self.voided_at:%Y-%m-%d}" if self.voided_at else "valid"
        return f"Signature of {self.patient} by {self.signed_by} ({state})"

    @property
    def is_valid(self) -> bool:
        return self.voided_at is None


class LockEvent(models.Model):
    """Every lock and unlock of a case or a site, with who, when and why."""

    LOCK, UNLOCK = "lock", "unlock"
    ACTION_CHOICES = [(LOCK, _("Locked")), (UNLOCK, _("Unlocked"))]
    institution = models.ForeignKey(
        Institution, verbose_name=_("institution"), on_delete=models.PROTECT, related_name="+"
    )
    patient = models.ForeignKey(
        Patient,
        verbose_name=_("patient"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="lock_events",
        help_text=_("Empty: the whole site."),
    )
    action = models.CharField(_("action"), max_length=8, choices=ACTION_CHOICES)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.PROTECT, related_name="+"
    )
    at = models.DateTimeField(_("at"), default=timezone.now)
    reason = models.TextField(_("reason"), blank=True)

    class Meta:
        ordering = ["-at", "-pk"]

    def __str__(self):
        what = self.patient or f"site {self.institution.code}"
        return f"{what} {self.get_action_display().lower()} by {self.user}"


def audited_model_choices():
    from .audit import audited_history_models

    return [
        (h.instance_type._meta.model_name, str(h.instance_type._meta.verbose_name))
        for h in audited_history_models()
    ]


class AuditEntry(models.Model):
    """One row of the audit trail: a database view (monitoring.audit) that unions the
    django-simple-history tables of every case model. Read-only: the view has no writes."""

    CREATED, CHANGED, REMOVED = "+", "~", "-"
    TYPE_CHOICES = [(CREATED, _("Created")), (CHANGED, _("Changed")), (REMOVED, _("Removed"))]

    id = models.CharField(_("id"), primary_key=True, max_length=64)
    model = models.CharField(_("model"), max_length=40, choices=audited_model_choices)
    history_id = models.IntegerField(
        _("history id"),
    )
    object_id = models.BigIntegerField(_("record id"))
    case_pk = models.BigIntegerField(_("case pk"), db_column="patient_id", null=True)
    study_id = models.CharField(_("study ID"), max_length=20, null=True)
    institution = models.ForeignKey(
        Institution,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        related_name="+",
        verbose_name=_("site"),
    )
    history_date = models.DateTimeField(_("when"))
    history_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        related_name="+",
        verbose_name=_("user"),
    )
    history_type = models.CharField(_("action"), max_length=1, choices=TYPE_CHOICES)
    history_change_reason = models.CharField(_("reason"), max_length=100, null=True)

    class Meta:
        managed = False
        db_table = "monitoring_audit_trail"
        ordering = ["-history_date", "-history_id"]
        verbose_name = _("audit trail entry")
        verbose_name_plural = _("audit trail")

    def __str__(self):
        return f"{self.get_model_display()} #{self.object_id} {self.get_history_type_display()}"

    def historical_record(self):
        from .audit import history_model_for

        return history_model_for(self.model).objects.filter(history_id=self.history_id).first()
