"""The registry's data model, in the study's language.

Every rule sits in a model's clean() (or a database constraint), calling the pure functions of
registry.rules, so forms, imports, the API and the admin all enforce the same rules.
"""

import re
import unicodedata
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date
from functools import cache

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import connection, models, transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.db.models.signals import pre_delete
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from . import ctcae, rules


def not_in_future(value: date):
    if value and value > timezone.localdate():
        raise ValidationError(_("This date is in the future."))


# Characters that hide or disguise what a text holds: NUL and the other control characters (tab
# and line breaks aside), and the Unicode bidirectional controls, which reorder how the text
# around them displays ("Trojan Source"). Every case record refuses them in clean_fields(), so
# forms, the API and the import alike.
HIDDEN_CHARACTERS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def hidden_character_error(value) -> str | None:
    found = HIDDEN_CHARACTERS.search(value) if isinstance(value, str) else None
    if found is None:
        return None
    char = found.group()
    if char == "\x00":
        return gettext("Null characters are not allowed.")  # as Django's form fields say it
    name = unicodedata.name(char, "control character").lower()
    return gettext("Remove the invisible character U+%(code)04X (%(name)s).") % {
        "code": ord(char),
        "name": name,
    }


def DateField(verbose_name, **kwargs):  # noqa: N802 - reads like a field class
    kwargs.setdefault("validators", [not_in_future])
    return models.DateField(verbose_name, **kwargs)


class Institution(models.Model):
    code = models.CharField(
        _("code"),
        max_length=8,
        unique=True,
        help_text=_("Short site code used in study IDs, e.g. KR01."),
    )
    name = models.CharField(_("name"), max_length=200)
    locked_at = models.DateTimeField(
        _("locked at"),
        null=True,
        blank=True,
        editable=False,
        help_text=_(
            "Set while a monitor has locked the whole site: no case of it can change and no "
            "case can be registered (see monitoring)."
        ),
    )
    locked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("locked by"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
    )

    class Meta:
        verbose_name = _("institution")
        verbose_name_plural = _("institutions")
        ordering = ["code"]

    def __str__(self):
        return f"{self.code} {self.name}"


class Membership(models.Model):
    INVESTIGATOR = "investigator"
    STATISTICIAN = "statistician"
    MONITOR = "monitor"
    ROLE_CHOICES = [
        (INVESTIGATOR, _("Site investigator")),
        (STATISTICIAN, _("Working-party statistician")),
        (MONITOR, _("Data monitor")),
    ]
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="memberships",
    )
    institution = models.ForeignKey(
        Institution,
        verbose_name=_("institution"),
        on_delete=models.CASCADE,
        related_name="memberships",
    )
    role = models.CharField(_("role"), max_length=20, choices=ROLE_CHOICES)
    is_principal_investigator = models.BooleanField(_("is principal investigator"), default=False)

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [
            models.UniqueConstraint(fields=["user", "institution"], name="one_role_per_site")
        ]

    def __str__(self):
        return f"{self.user} – {self.get_role_display()} at {self.institution.code}"


# --- Locked cases ------------------------------------------------------------------------------
#
# A monitor locks a case (every CRF of it) or a whole site. The refusal lives here, in the model
# layer, so that every path is covered: the web forms, the admin, the bulk import and the API all
# end in save()/delete(). full_clean() refuses too, so forms and imports report it as an error
# instead of failing on save. QuerySet.update(), bulk_create() and raw SQL bypass save() and are
# not checked: the application never uses them on case records (seed_demo replaces demo data
# wholesale on purpose). Deletion is checked by a pre_delete receiver (below), so delete(),
# QuerySet.delete() and cascades from the patient are all refused.

_locked_changes_allowed = ContextVar("locked_changes_allowed", default=False)


class CaseLocked(PermissionDenied):
    """A change to a locked case was refused. Django and DRF answer it with a 403."""


@contextmanager
def allow_locked_changes():
    """Let the code inside change locked cases (data-management scripts; tests). Nothing in the
    application uses it: locking and unlocking write CRF statuses, not case records."""
    token = _locked_changes_allowed.set(True)
    try:
        yield
    finally:
        _locked_changes_allowed.reset(token)


def lock_message(patient_id=None, crf=None, institution_id=None) -> str | None:
    """Why a case (its CRF `crf`; any CRF when None) cannot change now, or None when it can.

    A new case (no patient_id) cannot be registered at a locked site (`institution_id`).
    """
    if _locked_changes_allowed.get():
        return None
    if patient_id is not None:
        with connection.cursor() as cursor:
            cursor.execute(
                _case_lock_sql(), {"case": patient_id, "crf": crf or "", "locked": CrfStatus.LOCKED}
            )
            case = cursor.fetchone()
        if case is None:
            return None
        study_id, site_code, site_locked, locked_crf = case
        if locked_crf:
            patient = Patient(study_id=study_id)
            status = CrfStatus(patient=patient, crf=locked_crf)
            return gettext(
                "%(case)s is locked (%(crf)s CRF): nothing in it can change until a monitor "
                "unlocks it."
            ) % {"case": patient, "crf": status.get_crf_display()}
    else:
        site = Institution.objects.filter(pk=institution_id).values("code", "locked_at").first()
        site_code, site_locked = (site["code"], site["locked_at"]) if site else (None, None)
    if site_locked:
        return gettext(
            "Site %(site)s is locked: none of its cases can change and no case can be "
            "registered until a monitor unlocks the site."
        ) % {"site": site_code}
    return None


@cache
def _case_lock_sql() -> str:
    """Both locks of a case in one query: its site's lock and its first locked CRF (that CRF only
    when %(crf)s is not empty). A CRF save checks twice (full_clean() and save()); written in SQL
    because building the same query with the ORM (a subquery annotation) cost ~2 ms of CPU per
    check, ten times the query itself."""
    q = connection.ops.quote_name
    status, patient, site = (q(m._meta.db_table) for m in (CrfStatus, Patient, Institution))
    return f"""
        SELECT p.study_id, site.code, site.locked_at,
               (SELECT s.crf FROM {status} s
                 WHERE s.patient_id = p.id AND s.status = %(locked)s
                   AND (%(crf)s = '' OR s.crf = %(crf)s)
                 ORDER BY s.crf LIMIT 1)
          FROM {patient} p JOIN {site} site ON site.id = p.institution_id
         WHERE p.id = %(case)s"""


class TrackedRecord(models.Model):
    """Common columns of every case record. `version` guards against lost concurrent edits."""

    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    version = models.PositiveIntegerField(_("version"), default=1, editable=False)

    class Meta:
        abstract = True

    def case_lock_message(self) -> str | None:
        """Why this record cannot be saved now (its case or CRF is locked), or None."""
        if isinstance(self, Patient):
            if self.pk is None:
                return lock_message(institution_id=self.institution_id)
            return lock_message(self.pk, CrfStatus.BASELINE)
        return lock_message(self.patient_id, CrfStatus.crf_of(type(self)))

    def get_constraints(self):
        """Constraints that model validation checks: the unique ones only. Each CheckConstraint
        restates a rule that clean() or a field validator already applies with a field-level
        message; Django would evaluate each again with a database query (three round trips per
        constraint, per save). The database still enforces them on every write."""
        return [
            (model, [c for c in constraints if not isinstance(c, models.CheckConstraint)])
            for model, constraints in super().get_constraints()
        ]

    def clean_fields(self, exclude=None):
        errors = {}
        try:
            super().clean_fields(exclude=exclude)
        except ValidationError as e:
            errors = e.update_error_dict(errors)
        for f in self._meta.concrete_fields:
            if f.name in errors or (exclude and f.name in exclude):
                continue
            if isinstance(f, models.CharField | models.TextField):
                message = hidden_character_error(getattr(self, f.attname))
                if message:
                    errors[f.name] = [message]
        if errors:
            raise ValidationError(errors)

    def full_clean(self, *args, check_lock=True, **kwargs):
        """Model validation; a locked case is an error too (forms and imports report it)."""
        if check_lock:
            message = self.case_lock_message()
            if message:
                # Keyed like every error of Model.full_clean() (a dict): the import and the admin
                # read it through message_dict, which a plain list error lacks.
                raise ValidationError({NON_FIELD_ERRORS: ValidationError(message, code="locked")})
        super().full_clean(*args, **kwargs)

    def save(self, *args, **kwargs):
        message = self.case_lock_message()
        if message:
            raise CaseLocked(message)
        if self.pk:
            self.version = (self.version or 0) + 1
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        # Refused before the deletion starts; the pre_delete receiver below covers
        # QuerySet.delete() and cascades.
        if isinstance(self, Patient):
            message = lock_message(self.pk)
        else:
            message = lock_message(self.patient_id, CrfStatus.crf_of(type(self)))
        if message:
            raise CaseLocked(message)
        return super().delete(*args, **kwargs)


# --- Patient and eligibility -----------------------------------------------------------------


class Patient(TrackedRecord):
    MALE, FEMALE = "male", "female"
    SEX_CHOICES = [(MALE, _("Male")), (FEMALE, _("Female"))]

    institution = models.ForeignKey(
        Institution,
        verbose_name=_("institution"),
        on_delete=models.PROTECT,
        related_name="patients",
    )
    sequence = models.PositiveIntegerField(editable=False)
    study_id = models.CharField(
        _("study id"),
        max_length=20,
        unique=True,
        editable=False,
        help_text=_(
            "Assigned by the registry: site code and a running number, e.g. KR01-001. "
            "Never a name or hospital number."
        ),
    )
    site_case_number = models.CharField(
        _("site case number"),
        max_length=40,
        blank=True,
        help_text=_(
            "Optional pseudonymous number the site uses for its own files (not a "
            "hospital number). Used to link legacy imports."
        ),
    )
    sex = models.CharField(_("sex"), max_length=6, choices=SEX_CHOICES)
    birth_year = models.PositiveIntegerField(
        _("birth year"),
        validators=[MinValueValidator(1900)],
        help_text=_("Year of birth (required)."),
    )
    birth_date = DateField(
        _("birth date"),
        null=True,
        blank=True,
        help_text=_(
            "Full birth date if the site records it; otherwise age uses 1 July of the year."
        ),
    )
    diagnosis_date = DateField(_("date of ALL diagnosis"))
    blinatumomab_start_date = DateField(
        _("blinatumomab start date"),
        help_text=_("Day 1 of cycle 1: the origin of EFS and OS."),
    )
    relapsed_refractory = models.BooleanField(
        _("relapsed or refractory disease"),
        default=True,
        help_text=_("The ALL relapsed after, or was refractory to, prior therapy."),
    )
    bcp_all = models.BooleanField(_("B-cell precursor ALL"), default=True)
    ph_negative = models.BooleanField(_("Philadelphia-negative"), default=True)
    cd19_positive = models.BooleanField(_("CD19-positive at diagnosis"), default=True)
    burkitt = models.BooleanField(_("Burkitt leukaemia/lymphoma"), default=False)

    history = HistoricalRecords()

    class Meta:
        verbose_name = _("patient")
        verbose_name_plural = _("patients")
        ordering = ["study_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["institution", "sequence"], name="study_number_per_site"
            ),
            models.CheckConstraint(
                condition=Q(blinatumomab_start_date__gte=models.F("diagnosis_date")),
                name="diagnosis_not_after_start",
            ),
            models.CheckConstraint(
                condition=Q(
                    relapsed_refractory=True,
                    bcp_all=True,
                    ph_negative=True,
                    cd19_positive=True,
                    burkitt=False,
                ),
                name="patient_eligible",
            ),
        ]

    def __str__(self):
        return self.study_id or "(new patient)"

    @property
    def age_at_start(self) -> int | None:
        born = rules.assumed_birth_date(self.birth_date, self.birth_year)
        if not (born and self.blinatumomab_start_date):
            return None
        return rules.age_in_years(born, self.blinatumomab_start_date)

    def eligibility_failures(self):
        return rules.eligibility_failures(
            relapsed_refractory=self.relapsed_refractory,
            bcp_all=self.bcp_all,
            ph_negative=self.ph_negative,
            cd19_positive=self.cd19_positive,
            burkitt=self.burkitt,
            age_at_start=self.age_at_start,
        )

    def clean(self):
        errors = {}  # field -> list of messages: several rules may fail on one field
        if self.birth_date and self.birth_year and self.birth_date.year != self.birth_year:
            errors["birth_date"] = [_("Birth date and birth year disagree.")]
        if self.birth_year and self.birth_year > timezone.localdate().year:
            errors["birth_year"] = [_("Birth year is in the future.")]
        if (
            self.diagnosis_date
            and self.blinatumomab_start_date
            and self.diagnosis_date > self.blinatumomab_start_date
        ):
            errors["blinatumomab_start_date"] = [
                _("Blinatumomab start is before the diagnosis date.")
            ]
        born = rules.assumed_birth_date(self.birth_date, self.birth_year)
        if born and self.diagnosis_date and self.diagnosis_date < born.replace(month=1, day=1):
            errors["diagnosis_date"] = [_("Diagnosis date is before the patient was born.")]
        for field, reason in self.eligibility_failures():
            errors.setdefault(field, []).append(gettext("Not eligible: %s") % reason)
        if self.pk and self.blinatumomab_start_date:
            first = self.earliest_record_date()
            if first and first < self.blinatumomab_start_date:
                errors.setdefault("blinatumomab_start_date", []).append(
                    gettext("Records of this case start on %(date)s, before this start date.")
                    % {"date": first}
                )
        if errors:
            raise ValidationError(errors)

    def earliest_record_date(self):
        candidates = [
            self.cycles.aggregate(d=models.Min("start_date"))["d"],
            self.assessments.aggregate(d=models.Min("assessment_date"))["d"],
        ]
        candidates = [d for d in candidates if d]
        return min(candidates) if candidates else None

    def save(self, *args, **kwargs):
        if not self.pk and not self.study_id:
            with transaction.atomic():
                # Lock the site row so two registrations at once never get the same number.
                site = Institution.objects.select_for_update().get(pk=self.institution_id)
                last = site.patients.aggregate(m=models.Max("sequence"))["m"] or 0
                self.sequence = last + 1
                self.study_id = f"{site.code}-{self.sequence:03d}"
                super().save(*args, **kwargs)
            return
        super().save(*args, **kwargs)

    def death_date(self):
        followup = getattr(self, "followup", None) if self.pk else None
        return followup.death_date if followup else None


def before_start_message(label, value, start) -> str:
    return gettext("%(what)s (%(date)s) is before blinatumomab start (%(start)s).") % {
        "what": label,
        "date": value,
        "start": start,
    }


class PatientRecord(TrackedRecord):
    """A record that belongs to one case; checks the case's date window in clean()."""

    class Meta:
        abstract = True

    # (field, label) pairs checked against the start and death dates.
    dated_fields: tuple[tuple[str, str], ...] = ()

    def date_window_errors(self, patient, errors=None) -> dict:
        """Add (without overwriting) an error for each date outside start..death."""
        errors = {} if errors is None else errors
        start = patient.blinatumomab_start_date
        death = patient.death_date()
        for field, label in self.dated_fields:
            value = getattr(self, field)
            if not value:
                continue
            if start and value < start:
                message = before_start_message(label, value, start)
            elif death and value > death:
                message = gettext(
                    "%(what)s (%(date)s) is after the patient's death (%(death)s)."
                ) % {
                    "what": label,
                    "date": value,
                    "death": death,
                }
            else:
                continue
            errors.setdefault(field, message)
        return errors


# --- Baseline at blinatumomab start ------------------------------------------------------------


class Baseline(TrackedRecord):
    SALVAGE_CHOICES = [
        (1, _("First salvage")),
        (2, _("Second salvage")),
        (3, _("Third or later")),
    ]
    MARROW_ONLY, EXTRAMEDULLARY_ONLY, BOTH = "marrow", "extramedullary", "both"
    RELAPSE_SITE_CHOICES = [
        (MARROW_ONLY, _("Bone marrow only")),
        (EXTRAMEDULLARY_ONLY, _("Extramedullary only")),
        (BOTH, _("Bone marrow + extramedullary")),
    ]
    PREPHASE_CHOICES = [
        ("none", _("None")),
        ("dex", _("Dexamethasone only")),
        ("hu_dex", _("Hydroxyurea + dexamethasone")),
        ("cy_dex", _("Cyclophosphamide + dexamethasone")),
        ("arac_dex_hu", _("Cytarabine + dexamethasone + hydroxyurea")),
        ("etop_dex", _("Etoposide + dexamethasone")),
        ("other", _("Other (specify)")),
    ]
    EMD_SITES = [
        "cns",
        "liver",
        "lymph_node",
        "uterus",
        "bone",
        "skin",
        "testis",
        "other",
    ]

    patient = models.OneToOneField(
        Patient, verbose_name=_("patient"), on_delete=models.CASCADE, related_name="baseline"
    )
    ecog = models.PositiveSmallIntegerField(
        _("ECOG performance status"), validators=[MaxValueValidator(4)], help_text=_("0-4.")
    )
    salvage_phase = models.PositiveSmallIntegerField(_("salvage phase"), choices=SALVAGE_CHOICES)
    prior_therapies_n = models.PositiveSmallIntegerField(
        _("number of prior therapies"),
        validators=[MinValueValidator(1), MaxValueValidator(20)],
        help_text=_("Lines of therapy before blinatumomab (at least 1: the disease is R/R)."),
    )
    prior_allo_sct = models.BooleanField(_("prior allogeneic SCT"), default=False)
    prior_allo_sct_date = DateField(_("date of prior allogeneic SCT"), null=True, blank=True)
    relapse_site = models.CharField(_("relapse site"), max_length=16, choices=RELAPSE_SITE_CHOICES)
    emd_cns = models.BooleanField(_("CNS"), default=False)
    emd_liver = models.BooleanField(_("liver"), default=False)
    emd_lymph_node = models.BooleanField(_("lymph node"), default=False)
    emd_uterus = models.BooleanField(_("uterus"), default=False)
    emd_bone = models.BooleanField(_("bone"), default=False)
    emd_skin = models.BooleanField(_("skin"), default=False)
    emd_testis = models.BooleanField(_("testis"), default=False)
    emd_other = models.BooleanField(_("other site"), default=False)
    emd_other_specify = models.CharField(_("other extramedullary site"), max_length=100, blank=True)
    marrow_blasts_pct = models.DecimalField(
        _("bone marrow blasts (%)"),
        max_digits=5,
        decimal_places=1,
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text=_("Percent of nucleated marrow cells, 0-100. Leave empty if no marrow was done."),
    )
    pb_blasts_per_ul = models.PositiveIntegerField(
        _("peripheral blood blasts (/µL)"),
        null=True,
        blank=True,
        validators=[MaxValueValidator(2_000_000)],
        help_text=_("Absolute count, cells per microlitre."),
    )
    # Cytogenetics: the findings that define risk; the risk group is derived, never typed.
    cyto_dx_done = models.BooleanField(_("cytogenetics done at diagnosis"), default=True)
    cyto_dx_abnormalities_n = models.PositiveSmallIntegerField(
        _("number of abnormalities at diagnosis"), null=True, blank=True
    )
    cyto_dx_modal_number = models.PositiveSmallIntegerField(
        _("modal chromosome number at diagnosis"),
        null=True,
        blank=True,
        validators=[MinValueValidator(20), MaxValueValidator(100)],
    )
    cyto_dx_kmt2a = models.BooleanField(_("KMT2A/MLL rearranged at diagnosis"), default=False)
    cyto_dx_risk = models.CharField(
        _("cytogenetic risk at diagnosis"), max_length=10, blank=True, editable=False
    )
    cyto_start_done = models.BooleanField(
        _("cytogenetics done at blinatumomab start"), default=True
    )
    cyto_start_abnormalities_n = models.PositiveSmallIntegerField(
        _("number of abnormalities at start"), null=True, blank=True
    )
    cyto_start_modal_number = models.PositiveSmallIntegerField(
        _("modal chromosome number at start"),
        null=True,
        blank=True,
        validators=[MinValueValidator(20), MaxValueValidator(100)],
    )
    cyto_start_kmt2a = models.BooleanField(_("KMT2A/MLL rearranged at start"), default=False)
    cyto_start_risk = models.CharField(
        _("cytogenetic risk at blinatumomab start"),
        max_length=10,
        blank=True,
        editable=False,
    )
    prephase_regimen = models.CharField(
        _("prephase regimen"), max_length=16, choices=PREPHASE_CHOICES, default="none"
    )
    prephase_other = models.CharField(_("other prephase regimen"), max_length=200, blank=True)
    dexamethasone_mg_before = models.DecimalField(
        _("cumulative dexamethasone before blinatumomab (mg)"),
        max_digits=7,
        decimal_places=1,
        validators=[MinValueValidator(0), MaxValueValidator(10000)],
        help_text=_("Total mg of dexamethasone given before day 1, prephase included."),
    )

    history = HistoricalRecords()

    class Meta:
        verbose_name = _("baseline")
        verbose_name_plural = _("baselines")
        constraints = [
            models.CheckConstraint(condition=Q(ecog__lte=4), name="ecog_0_4"),
            models.CheckConstraint(
                condition=Q(marrow_blasts_pct__isnull=True)
                | Q(marrow_blasts_pct__gte=0, marrow_blasts_pct__lte=100),
                name="baseline_blasts_0_100",
            ),
            models.CheckConstraint(
                condition=Q(prior_allo_sct=False) | Q(prior_allo_sct_date__isnull=False),
                name="prior_sct_has_date",
            ),
        ]

    def __str__(self):
        return f"Baseline of {self.patient}"

    @property
    def emd_sites(self) -> list[str]:
        return [s for s in self.EMD_SITES if getattr(self, f"emd_{s}")]

    @property
    def has_emd(self) -> bool:
        return self.relapse_site in (self.EXTRAMEDULLARY_ONLY, self.BOTH)

    def derive_risks(self):
        self.cyto_dx_risk = (
            rules.derive_cytogenetic_risk(
                self.cyto_dx_done,
                self.cyto_dx_abnormalities_n,
                self.cyto_dx_modal_number,
                self.cyto_dx_kmt2a,
            )
            or ""
        )
        self.cyto_start_risk = (
            rules.derive_cytogenetic_risk(
                self.cyto_start_done,
                self.cyto_start_abnormalities_n,
                self.cyto_start_modal_number,
                self.cyto_start_kmt2a,
            )
            or ""
        )

    def clean(self):
        errors = {}
        patient = self.patient if self.patient_id else None
        if self.prior_allo_sct and not self.prior_allo_sct_date:
            errors["prior_allo_sct_date"] = _("Give the date of the prior allogeneic SCT.")
        if not self.prior_allo_sct and self.prior_allo_sct_date:
            errors["prior_allo_sct_date"] = _(
                "A date is given but 'prior allogeneic SCT' is not set."
            )
        if patient and self.prior_allo_sct_date:
            if self.prior_allo_sct_date >= patient.blinatumomab_start_date:
                errors["prior_allo_sct_date"] = gettext(
                    "A prior SCT must be before blinatumomab start (%(start)s); record a later "
                    "one as a transplant."
                ) % {"start": patient.blinatumomab_start_date}
            elif self.prior_allo_sct_date < patient.diagnosis_date:
                errors["prior_allo_sct_date"] = _("The prior SCT is before the diagnosis date.")
        if self.has_emd and not self.emd_sites:
            errors["relapse_site"] = _("Tick at least one extramedullary site.")
        if self.relapse_site == self.MARROW_ONLY and self.emd_sites:
            errors["relapse_site"] = _(
                "Extramedullary sites are ticked but relapse is marrow only."
            )
        if self.relapse_site == self.EXTRAMEDULLARY_ONLY and self.marrow_blasts_pct is not None:
            if self.marrow_blasts_pct >= rules.REMISSION_BLASTS_BELOW_PCT:
                errors["marrow_blasts_pct"] = _(
                    # xgettext:no-python-format
                    "Marrow blasts of 5% or more mean marrow relapse: choose 'marrow + "
                    "extramedullary'."
                )
        # A marrow relapse is shown by the marrow blast count, or, where no marrow was examined,
        # by blasts in the blood: the paper has a count for 43 of its 45 marrow relapses.
        if (
            self.relapse_site in (self.MARROW_ONLY, self.BOTH)
            and self.marrow_blasts_pct is None
            and self.pb_blasts_per_ul is None
        ):
            errors["marrow_blasts_pct"] = _(
                "Marrow relapse needs the marrow blast percentage (or, when no marrow was "
                "examined, the peripheral blood blast count)."
            )
        if self.emd_other and not self.emd_other_specify.strip():
            errors["emd_other_specify"] = _("Name the other extramedullary site.")
        if self.prephase_regimen == "other" and not self.prephase_other.strip():
            errors["prephase_other"] = _("Name the prephase regimen.")
        for when in ("dx", "start"):
            done = getattr(self, f"cyto_{when}_done")
            n_abn = getattr(self, f"cyto_{when}_abnormalities_n")
            modal = getattr(self, f"cyto_{when}_modal_number")
            kmt2a = getattr(self, f"cyto_{when}_kmt2a")
            if done and (n_abn is None or modal is None):
                for f, v in (("abnormalities_n", n_abn), ("modal_number", modal)):
                    if v is None:
                        errors[f"cyto_{when}_{f}"] = _(
                            "Required when cytogenetics were done (0 abnormalities for a normal "
                            "karyotype; 46 for a normal modal number)."
                        )
            if not done and (n_abn is not None or modal is not None or kmt2a):
                errors[f"cyto_{when}_done"] = _(
                    "Findings are entered but cytogenetics are marked as not done."
                )
        if errors:
            raise ValidationError(errors)

    def save(self, *args, **kwargs):
        self.derive_risks()
        super().save(*args, **kwargs)


# --- Treatment cycles -------------------------------------------------------------------------

CYCLE1_STARTING_DOSE_UG = 9
TARGET_DOSE_UG = 28
CYCLE1_STEP_UP_DAY = 8


class Cycle(PatientRecord):
    COMPLETED, INTERRUPTED, DISCONTINUED, ONGOING = (
        "completed",
        "interrupted",
        "discontinued",
        "ongoing",
    )
    OUTCOME_CHOICES = [
        (COMPLETED, _("Completed as planned")),
        (INTERRUPTED, _("Completed after interruption(s)")),
        (DISCONTINUED, _("Discontinued early")),
        (ONGOING, _("Ongoing")),
    ]
    DISCONTINUATION_CHOICES = [
        ("progression", _("Disease progression")),
        ("adverse_event", _("Adverse event")),
        ("death", _("Death")),
        ("transplant", _("Proceeded to transplant")),
        ("patient_decision", _("Patient decision")),
        ("other", _("Other")),
    ]
    patient = models.ForeignKey(
        Patient, verbose_name=_("patient"), on_delete=models.CASCADE, related_name="cycles"
    )
    number = models.PositiveSmallIntegerField(
        _("cycle number"), validators=[MinValueValidator(1), MaxValueValidator(20)]
    )
    start_date = DateField(_("cycle start date"))
    end_date = DateField(
        _("last infusion day"),
        null=True,
        blank=True,
        help_text=_("Empty while the cycle is ongoing."),
    )
    starting_dose_ug_per_day = models.PositiveSmallIntegerField(
        _("starting dose (µg/day)"),
        validators=[MinValueValidator(1), MaxValueValidator(112)],
        help_text=_("Cycle 1: 9 µg/day on days 1-7; later cycles start at 28 µg/day."),
    )
    step_up_day = models.PositiveSmallIntegerField(
        _("dose step-up on day"),
        null=True,
        blank=True,
        validators=[MinValueValidator(2), MaxValueValidator(28)],
        help_text=_("Cycle 1: day 8. Empty when the dose was not stepped up."),
    )
    step_up_dose_ug_per_day = models.PositiveSmallIntegerField(
        _("dose after step-up (µg/day)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(112)],
        help_text=_("Cycle 1: 28 µg/day from day 8."),
    )
    interruption_days = models.PositiveSmallIntegerField(
        _("days of interruption"), default=0, validators=[MaxValueValidator(42)]
    )
    interruption_reason = models.CharField(_("interruption reason"), max_length=200, blank=True)
    dexamethasone_premedication = models.BooleanField(
        _("dexamethasone premedication (20 mg)"), default=True
    )
    outcome = models.CharField(_("how the cycle ended"), max_length=16, choices=OUTCOME_CHOICES)
    discontinuation_reason = models.CharField(
        _("discontinuation reason"), max_length=20, choices=DISCONTINUATION_CHOICES, blank=True
    )

    history = HistoricalRecords()
    dated_fields = (("start_date", _("Cycle start")), ("end_date", _("Cycle end")))

    class Meta:
        verbose_name = _("cycle")
        verbose_name_plural = _("cycles")
        ordering = ["patient", "number"]
        constraints = [
            models.UniqueConstraint(fields=["patient", "number"], name="one_cycle_per_number"),
            models.CheckConstraint(
                condition=Q(end_date__isnull=True) | Q(end_date__gte=models.F("start_date")),
                name="cycle_ends_after_start",
            ),
        ]

    def __str__(self):
        return f"Cycle {self.number} of {self.patient}"

    @classmethod
    def planned_doses(cls, number: int) -> dict:
        """The label's schedule, used to pre-fill a new cycle."""
        if number == 1:
            return {
                "starting_dose_ug_per_day": CYCLE1_STARTING_DOSE_UG,
                "step_up_day": CYCLE1_STEP_UP_DAY,
                "step_up_dose_ug_per_day": TARGET_DOSE_UG,
            }
        return {
            "starting_dose_ug_per_day": TARGET_DOSE_UG,
            "step_up_day": None,
            "step_up_dose_ug_per_day": None,
        }

    def clean(self):
        errors = {}
        patient = self.patient if self.patient_id else None
        if self.end_date and self.start_date and self.end_date < self.start_date:
            errors["end_date"] = _("The cycle ends before it starts.")
        if (self.step_up_day is None) != (self.step_up_dose_ug_per_day is None):
            errors["step_up_dose_ug_per_day"] = _(
                "Give both the step-up day and the new dose, or neither."
            )
        if self.step_up_dose_ug_per_day and self.starting_dose_ug_per_day:
            if self.step_up_dose_ug_per_day <= self.starting_dose_ug_per_day:
                errors["step_up_dose_ug_per_day"] = _(
                    "The step-up dose must be above the starting dose."
                )
        if self.interruption_days and not self.interruption_reason.strip():
            errors["interruption_reason"] = _("Give the reason for the interruption.")
        if self.outcome == self.INTERRUPTED and not self.interruption_days:
            errors["interruption_days"] = _("An interrupted cycle needs the days of interruption.")
        if self.outcome == self.DISCONTINUED and not self.discontinuation_reason:
            errors["discontinuation_reason"] = _("Say why the cycle was discontinued.")
        if self.outcome != self.DISCONTINUED and self.discontinuation_reason:
            errors["discontinuation_reason"] = _(
                "Only a discontinued cycle has a discontinuation reason."
            )
        if self.outcome == self.ONGOING and self.end_date:
            errors["end_date"] = _("An ongoing cycle has no end date yet.")
        if self.outcome and self.outcome != self.ONGOING and not self.end_date:
            errors["end_date"] = _("Give the last infusion day of a finished cycle.")
        if patient:
            self.date_window_errors(patient, errors)
            if (
                self.number == 1
                and self.start_date
                and self.start_date != patient.blinatumomab_start_date
            ):
                errors["start_date"] = gettext(
                    "Cycle 1 starts on the blinatumomab start date (%(start)s)."
                ) % {"start": patient.blinatumomab_start_date}
            if self.number and self.number > 1 and self.start_date:
                previous = patient.cycles.filter(number=self.number - 1).first()
                if previous is None:
                    errors["number"] = gettext("Enter cycle %(n)s first.") % {"n": self.number - 1}
                elif previous.end_date and self.start_date <= previous.end_date:
                    errors["start_date"] = gettext(
                        "Cycle %(n)s must start after cycle %(previous)s ended (%(end)s)."
                    ) % {"n": self.number, "previous": previous.number, "end": previous.end_date}
                elif previous.end_date is None:
                    errors["number"] = gettext("Cycle %(n)s has no end date yet.") % {
                        "n": previous.number
                    }
        if errors:
            raise ValidationError(errors)


# --- Response assessment -----------------------------------------------------------------------


class ResponseAssessment(PatientRecord):
    MRD_CHOICES = [
        ("not_done", _("Not done")),
        ("negative", _("Negative (< 10^-4)")),
        ("positive", _("Positive")),
    ]
    patient = models.ForeignKey(
        Patient, verbose_name=_("patient"), on_delete=models.CASCADE, related_name="assessments"
    )
    cycle = models.ForeignKey(
        Cycle,
        verbose_name=_("cycle"),
        on_delete=models.PROTECT,
        related_name="assessments",
        help_text=_("The cycle it follows."),
    )
    assessment_date = DateField(_("assessment date"))
    marrow_blasts_pct = models.DecimalField(
        _("bone marrow blasts (%)"),
        max_digits=5,
        decimal_places=1,
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text=_(
            "Remission needs blasts below 5%: exactly 5.0% is not remission. "
            "Empty = marrow not assessed (not evaluable)."
        ),
    )
    anc_10e9_per_l = models.DecimalField(
        _("absolute neutrophil count (×10^9/L)"),
        max_digits=6,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(500)],
        help_text=_("Recovered when above 1.0; exactly 1.0 counts as not recovered (CRi)."),
    )
    platelets_10e9_per_l = models.DecimalField(
        _("platelets (×10^9/L)"),
        max_digits=6,
        decimal_places=1,
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(3000)],
        help_text=_("Recovered when above 100; exactly 100 counts as not recovered (CRi)."),
    )
    emd_status = models.CharField(
        _("extramedullary disease"),
        max_length=16,
        choices=rules.EMD_STATUS_CHOICES,
        default=rules.EMD_NONE,
        help_text=_("CR/CRi need extramedullary disease absent or resolved."),
    )
    mrd_status = models.CharField(_("MRD"), max_length=10, choices=MRD_CHOICES, default="not_done")
    mrd_level = models.FloatField(
        _("MRD level (fraction of cells)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text=_("Optional, e.g. 0.0001 for 10^-4."),
    )
    response = models.CharField(
        _("response (derived)"),
        max_length=3,
        choices=rules.RESPONSE_CHOICES,
        editable=False,
    )

    history = HistoricalRecords()
    dated_fields = (("assessment_date", _("Assessment")),)

    class Meta:
        verbose_name = _("response assessment")
        verbose_name_plural = _("response assessments")
        ordering = ["patient", "assessment_date"]
        constraints = [
            models.CheckConstraint(
                condition=Q(marrow_blasts_pct__isnull=True)
                | Q(marrow_blasts_pct__gte=0, marrow_blasts_pct__lte=100),
                name="assessment_blasts_0_100",
            ),
            models.CheckConstraint(
                condition=Q(anc_10e9_per_l__isnull=True) | Q(anc_10e9_per_l__gte=0),
                name="anc_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(platelets_10e9_per_l__isnull=True) | Q(platelets_10e9_per_l__gte=0),
                name="platelets_not_negative",
            ),
        ]

    def __str__(self):
        return f"Assessment {self.assessment_date} of {self.patient}"

    def derive(self) -> str:
        baseline = getattr(self.patient, "baseline", None) if self.patient_id else None
        return rules.derive_response(
            _float(self.marrow_blasts_pct),
            _float(self.anc_10e9_per_l),
            _float(self.platelets_10e9_per_l),
            self.emd_status,
            _float(baseline.marrow_blasts_pct) if baseline else None,
        )

    def clean(self):
        errors = {}
        patient = self.patient if self.patient_id else None
        cycle = self.cycle if self.cycle_id else None
        if patient:
            self.date_window_errors(patient, errors)
        if cycle and patient and cycle.patient_id != patient.pk:
            errors["cycle"] = _("That cycle belongs to another patient.")
        elif cycle and self.assessment_date and self.assessment_date < cycle.start_date:
            errors.setdefault(
                "assessment_date",
                gettext("The assessment is before the start of cycle %(n)s (%(start)s).")
                % {"n": cycle.number, "start": cycle.start_date},
            )
        if self.mrd_level is not None and self.mrd_status == "not_done":
            errors["mrd_level"] = _("An MRD level is given but MRD is marked not done.")
        if errors:
            raise ValidationError(errors)

    def save(self, *args, **kwargs):
        self.response = self.derive()
        super().save(*args, **kwargs)


def _float(value):
    return None if value is None else float(value)


# --- Adverse events -----------------------------------------------------------------------------


class AdverseEvent(PatientRecord):
    ATTRIBUTION_CHOICES = [
        ("unrelated", _("Unrelated")),
        ("unlikely", _("Unlikely")),
        ("possible", _("Possible")),
        ("probable", _("Probable")),
        ("definite", _("Definite")),
    ]
    ACTION_CHOICES = [
        ("none", _("None")),
        ("interrupted", _("Blinatumomab interrupted")),
        ("discontinued", _("Blinatumomab discontinued")),
    ]
    FATAL = "fatal"
    OUTCOME_CHOICES = [
        ("recovered", _("Recovered / resolved")),
        ("recovered_sequelae", _("Recovered with sequelae")),
        ("recovering", _("Recovering")),
        ("not_recovered", _("Not recovered")),
        (FATAL, _("Fatal")),
        ("unknown", _("Unknown")),
    ]
    patient = models.ForeignKey(
        Patient, verbose_name=_("patient"), on_delete=models.CASCADE, related_name="adverse_events"
    )
    cycle = models.ForeignKey(
        Cycle,
        verbose_name=_("cycle"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="adverse_events",
    )
    ctcae_term = models.CharField(
        _("CTCAE v4.03 term"),
        max_length=120,
        help_text=_("Pick from the CTCAE v4.03 dictionary."),
    )
    other_specify = models.CharField(_("term, if 'Other, specify'"), max_length=200, blank=True)
    grade = models.PositiveSmallIntegerField(
        _("grade"),
        validators=[MinValueValidator(1), MaxValueValidator(5)],
        help_text=_("Only grades that exist for the term; grade 5 = death due to the event."),
    )
    onset_date = DateField(_("onset date"))
    resolution_date = DateField(_("resolution date"), null=True, blank=True)
    serious = models.BooleanField(_("serious adverse event"), default=False)
    attribution = models.CharField(
        _("attribution to blinatumomab"), max_length=10, choices=ATTRIBUTION_CHOICES
    )
    action_taken = models.CharField(
        _("action taken"), max_length=12, choices=ACTION_CHOICES, default="none"
    )
    outcome = models.CharField(_("outcome"), max_length=20, choices=OUTCOME_CHOICES)

    history = HistoricalRecords()
    dated_fields = (("onset_date", _("Onset")), ("resolution_date", _("Resolution")))

    class Meta:
        verbose_name = _("adverse event")
        verbose_name_plural = _("adverse events")
        ordering = ["patient", "onset_date"]
        constraints = [
            models.CheckConstraint(condition=Q(grade__gte=1, grade__lte=5), name="grade_1_5"),
            models.CheckConstraint(
                condition=Q(resolution_date__isnull=True)
                | Q(resolution_date__gte=models.F("onset_date")),
                name="ae_resolves_after_onset",
            ),
            models.CheckConstraint(
                condition=(Q(grade=5) & Q(outcome="fatal")) | (~Q(grade=5) & ~Q(outcome="fatal")),
                name="grade5_iff_fatal",
            ),
        ]

    def __str__(self):
        return f"{self.term_display} grade {self.grade} ({self.patient})"

    @property
    def term_display(self):
        return f"{self.ctcae_term}: {self.other_specify}" if self.other_specify else self.ctcae_term

    @property
    def term(self):
        return ctcae.get(self.ctcae_term)

    @property
    def soc(self):
        return self.term.soc if self.term else ""

    def clean(self):
        errors = {}
        term = self.term
        patient = self.patient if self.patient_id else None
        if self.ctcae_term and term is None:
            errors["ctcae_term"] = gettext(
                "'%(term)s' is not a CTCAE v4.03 term in the dictionary."
            ) % {"term": self.ctcae_term}
        if term and self.grade:
            message = rules.grade_error(term.term, term.grades, self.grade)
            if message:
                errors["grade"] = message
        if term and term.is_other_specify and not self.other_specify.strip():
            errors["other_specify"] = _("Name the event for an 'Other, specify' term.")
        if term and not term.is_other_specify and self.other_specify:
            errors["other_specify"] = _("Only 'Other, specify' terms take a free-text name.")
        if self.resolution_date and self.onset_date and self.resolution_date < self.onset_date:
            errors["resolution_date"] = _("The event resolves before its onset.")
        if self.grade == 5 and self.outcome != self.FATAL:
            errors["outcome"] = _(
                "Grade 5 means the patient died of the event: the outcome is fatal."
            )
        if self.outcome == self.FATAL and self.grade != 5:
            errors["grade"] = _("A fatal event is grade 5.")
        if patient:
            self.date_window_errors(patient, errors)
            if self.grade == 5:
                death = patient.death_date()
                if death is None:
                    errors.setdefault(
                        "grade",
                        _(
                            "Grade 5 means the patient died of this event: record the death in "
                            "follow-up first."
                        ),
                    )
                elif self.onset_date and self.onset_date > death:
                    pass  # reported by the date window check
                elif self.resolution_date and self.resolution_date != death:
                    errors["resolution_date"] = gettext(
                        "A fatal event ends on the date of death (%(death)s)."
                    ) % {"death": death}
        cycle = self.cycle if self.cycle_id else None
        if cycle and patient and cycle.patient_id != patient.pk:
            errors["cycle"] = _("That cycle belongs to another patient.")
        if errors:
            raise ValidationError(errors)


# --- After blinatumomab -------------------------------------------------------------------------


class Transplant(PatientRecord):
    DONOR_CHOICES = [
        ("matched_sibling", _("Matched sibling")),
        ("matched_unrelated", _("Matched unrelated")),
        ("mismatched_unrelated", _("Mismatched unrelated")),
        ("haploidentical", _("Haploidentical")),
        ("cord_blood", _("Cord blood")),
    ]
    patient = models.OneToOneField(
        Patient, verbose_name=_("patient"), on_delete=models.CASCADE, related_name="transplant"
    )
    sct_date = DateField(_("allogeneic SCT date"))
    donor_type = models.CharField(_("donor type"), max_length=24, choices=DONOR_CHOICES)

    history = HistoricalRecords()
    dated_fields = (("sct_date", _("The transplant")),)

    class Meta:
        verbose_name = _("transplant")
        verbose_name_plural = _("transplants")

    def __str__(self):
        return f"Allogeneic SCT of {self.patient}"

    def clean(self):
        if self.patient_id:
            errors = self.date_window_errors(self.patient)
            if errors:
                raise ValidationError(errors)


class SubsequentTherapy(PatientRecord):
    SALVAGE_CHEMO = "salvage_chemotherapy"
    CATEGORY_CHOICES = [
        (SALVAGE_CHEMO, _("Salvage chemotherapy")),
        ("targeted", _("Targeted / antibody therapy")),
        ("cellular", _("CAR-T or other cellular therapy")),
        ("other", _("Other")),
    ]
    patient = models.ForeignKey(
        Patient,
        verbose_name=_("patient"),
        on_delete=models.CASCADE,
        related_name="subsequent_therapies",
    )
    category = models.CharField(_("category"), max_length=24, choices=CATEGORY_CHOICES)
    regimen = models.CharField(_("regimen"), max_length=200)
    start_date = DateField(_("start date"))

    history = HistoricalRecords()
    dated_fields = (("start_date", _("Subsequent therapy")),)

    class Meta:
        verbose_name = _("subsequent therapy")
        ordering = ["patient", "start_date"]
        verbose_name_plural = _("subsequent therapies")

    def __str__(self):
        return f"{self.regimen} ({self.patient})"

    def clean(self):
        if self.patient_id:
            errors = self.date_window_errors(self.patient)
            if errors:
                raise ValidationError(errors)


class FollowUp(PatientRecord):
    ALIVE, DEAD, LOST = "alive", "dead", "lost"
    VITAL_CHOICES = [(ALIVE, _("Alive")), (DEAD, _("Dead")), (LOST, _("Lost to follow-up"))]
    DEATH_CAUSE_CHOICES = [
        ("disease", _("Leukaemia / progression")),
        ("infection", _("Infection")),
        ("treatment_toxicity", _("Toxicity of blinatumomab")),
        ("transplant_related", _("Transplant-related")),
        ("other", _("Other")),
        ("unknown", _("Unknown")),
    ]
    patient = models.OneToOneField(
        Patient, verbose_name=_("patient"), on_delete=models.CASCADE, related_name="followup"
    )
    last_contact_date = DateField(_("date of last contact"))
    vital_status = models.CharField(_("vital status"), max_length=6, choices=VITAL_CHOICES)
    relapse_or_progression_date = DateField(
        _("relapse or progression date"),
        null=True,
        blank=True,
        help_text=_("First relapse or progression after blinatumomab start (an EFS event)."),
    )
    death_date = DateField(_("date of death"), null=True, blank=True)
    death_cause = models.CharField(
        _("death cause"), max_length=20, choices=DEATH_CAUSE_CHOICES, blank=True
    )
    death_cause_detail = models.CharField(_("death cause detail"), max_length=200, blank=True)

    history = HistoricalRecords()
    dated_fields = (
        ("last_contact_date", _("Last contact")),
        ("relapse_or_progression_date", _("Relapse/progression")),
    )

    class Meta:
        verbose_name = _("follow up")
        verbose_name_plural = _("follow ups")
        constraints = [
            models.CheckConstraint(
                condition=(Q(vital_status="dead") & Q(death_date__isnull=False))
                | (~Q(vital_status="dead") & Q(death_date__isnull=True)),
                name="death_date_iff_dead",
            ),
        ]

    def __str__(self):
        return f"Follow-up of {self.patient}"

    def clean(self):
        errors = {}
        dead = self.vital_status == self.DEAD
        if dead and not self.death_date:
            errors["death_date"] = _("Give the date of death.")
        if not dead and self.death_date:
            errors["vital_status"] = _("A date of death is given: vital status must be 'dead'.")
        if dead and not self.death_cause:
            errors["death_cause"] = _("Give the cause of death.")
        if not dead and self.death_cause:
            errors["death_cause"] = _("Only a dead patient has a cause of death.")
        if self.death_date and self.last_contact_date and self.last_contact_date > self.death_date:
            errors["last_contact_date"] = _("Last contact is after the date of death.")
        if (
            self.relapse_or_progression_date
            and self.last_contact_date
            and self.relapse_or_progression_date > self.last_contact_date
        ):
            errors["relapse_or_progression_date"] = _("Relapse is after the last contact date.")
        if self.patient_id:
            start = self.patient.blinatumomab_start_date
            for field, label in self.dated_fields + (("death_date", _("Death")),):
                value = getattr(self, field)
                if value and start and value < start:
                    errors[field] = before_start_message(label, value, start)
            if self.death_date:
                later = self.patient_records_after(self.death_date)
                if later:
                    errors.setdefault("death_date", []).append(
                        gettext("These records are dated after this date of death: %(records)s")
                        % {"records": "; ".join(later)}
                    )
        if errors:
            raise ValidationError(errors)

    def patient_records_after(self, day) -> list[str]:
        p = self.patient
        found = []
        for c in p.cycles.filter(Q(start_date__gt=day) | Q(end_date__gt=day)):
            found.append(gettext("cycle %(n)s") % {"n": c.number})
        for a in p.assessments.filter(assessment_date__gt=day):
            found.append(gettext("assessment of %(date)s") % {"date": a.assessment_date})
        for ae in p.adverse_events.filter(Q(onset_date__gt=day) | Q(resolution_date__gt=day)):
            found.append(
                gettext("adverse event %(term)s (%(date)s)")
                % {"term": ae.term_display, "date": ae.onset_date}
            )
        if hasattr(p, "transplant") and p.transplant.sct_date > day:
            found.append(gettext("transplant of %(date)s") % {"date": p.transplant.sct_date})
        for t in p.subsequent_therapies.filter(start_date__gt=day):
            found.append(
                gettext("%(regimen)s from %(date)s") % {"regimen": t.regimen, "date": t.start_date}
            )
        return found


# --- Case report form workflow ------------------------------------------------------------------


class CrfStatus(models.Model):
    """Where one case report form (CRF) of one case stands.

    No row means the CRF was never marked: it is "not started" while it has no records and "in
    progress" once it has some. Marking complete stores a row; query open, verified and locked
    are set later by monitors. Once a CRF has been complete, every change to it needs a reason.

    `status` is derived from the facts stored beside it by refresh_status(): locked (the CRF or
    its site) > query open (unresolved monitor queries) > verified (source data verification) >
    complete > in progress / not started. The monitoring app keeps those facts.
    """

    BASELINE = "baseline"
    CYCLES = "cycles"
    ASSESSMENTS = "assessments"
    ADVERSE_EVENTS = "adverse_events"
    TRANSPLANT = "transplant"
    FOLLOW_UP = "follow_up"
    CRF_CHOICES = [
        (BASELINE, _("Registration and baseline")),
        (CYCLES, _("Blinatumomab cycles")),
        (ASSESSMENTS, _("Response assessments")),
        (ADVERSE_EVENTS, _("Adverse events")),
        (TRANSPLANT, _("Transplant and subsequent therapy")),
        (FOLLOW_UP, _("Follow-up")),
    ]
    NOT_STARTED = "not_started"
    IN_PROGRESS = "in_progress"
    COMPLETE = "complete"
    QUERY_OPEN = "query_open"
    VERIFIED = "verified"
    LOCKED = "locked"
    STATUS_CHOICES = [
        (NOT_STARTED, _("Not started")),
        (IN_PROGRESS, _("In progress")),
        (COMPLETE, _("Complete")),
        (QUERY_OPEN, _("Query open")),
        (VERIFIED, _("Verified")),
        (LOCKED, _("Locked")),
    ]
    DONE_STATUSES = frozenset({COMPLETE, VERIFIED, LOCKED})

    # The records each CRF holds (related names on Patient); the first model of each is what
    # "started" means. The registration data (Patient) belongs to the baseline CRF.
    RECORDS = {
        BASELINE: ("baseline",),
        CYCLES: ("cycles",),
        ASSESSMENTS: ("assessments",),
        ADVERSE_EVENTS: ("adverse_events",),
        TRANSPLANT: ("transplant", "subsequent_therapies"),
        FOLLOW_UP: ("followup",),
    }
    # CRFs that can only be complete once they hold a record (a case may have no adverse event,
    # transplant or evaluable assessment, but always has a baseline, a cycle and a follow-up).
    NEEDS_RECORD = frozenset({BASELINE, CYCLES, FOLLOW_UP})

    patient = models.ForeignKey(
        Patient, verbose_name=_("patient"), on_delete=models.CASCADE, related_name="crf_statuses"
    )
    crf = models.CharField(_("CRF"), max_length=16, choices=CRF_CHOICES)
    status = models.CharField(
        _("status"), max_length=12, choices=STATUS_CHOICES, default=IN_PROGRESS
    )
    marked_complete_at = models.DateTimeField(_("marked complete at"), null=True, blank=True)
    marked_complete_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("marked complete by"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    first_completed_at = models.DateTimeField(
        _("first completed at"),
        null=True,
        blank=True,
        help_text=_(
            "Set the first time the CRF is marked complete; from then on every change "
            "to it needs a reason."
        ),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    # Facts kept by the monitoring app; `status` follows them (refresh_status()).
    open_queries = models.PositiveIntegerField(
        _("open queries"),
        default=0,
        editable=False,
        help_text=_("Unresolved monitor queries on this CRF."),
    )
    verified_at = models.DateTimeField(_("source data verified at"), null=True, blank=True)
    verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("verified by"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    verification_cleared_at = models.DateTimeField(
        _("verification cleared at"), null=True, blank=True
    )
    verification_cleared_note = models.CharField(
        _("verification cleared note"),
        max_length=300,
        blank=True,
        help_text=_("Why the last verification no longer holds (the change that cleared it)."),
    )
    locked_at = models.DateTimeField(_("locked at"), null=True, blank=True)
    locked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("locked by"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )

    history = HistoricalRecords()

    class Meta:
        verbose_name = _("CRF status")
        verbose_name_plural = _("CRF statuses")
        ordering = ["patient", "crf"]
        constraints = [
            models.UniqueConstraint(fields=["patient", "crf"], name="one_status_per_crf"),
        ]

    def __str__(self):
        return f"{self.get_crf_display()} of {self.patient}: {self.get_status_display()}"

    @property
    def needs_reason(self) -> bool:
        """Once complete, or while a monitor's query is open on it, a change needs a reason."""
        return self.first_completed_at is not None or self.open_queries > 0

    def refresh_status(self):
        """Set `status` from the stored facts (see the class docstring); does not save."""
        site_locked = Institution.objects.filter(
            patients__pk=self.patient_id, locked_at__isnull=False
        ).exists()
        if self.locked_at or site_locked:
            self.status = self.LOCKED
        elif self.open_queries:
            self.status = self.QUERY_OPEN
        elif self.verified_at:
            self.status = self.VERIFIED
        elif self.marked_complete_at:
            self.status = self.COMPLETE
        elif self.crf_has_records(self.patient, self.crf):
            self.status = self.IN_PROGRESS
        else:
            self.status = self.NOT_STARTED
        return self.status

    @property
    def is_locked(self) -> bool:
        return self.status == self.LOCKED

    @classmethod
    def crf_of(cls, model) -> str:
        """The CRF a case record model belongs to."""
        if model is Patient:
            return cls.BASELINE
        for crf, related in cls.RECORDS.items():
            for name in related:
                if Patient._meta.get_field(name).related_model is model:
                    return crf
        raise LookupError(f"{model.__name__} is not part of a CRF")

    @classmethod
    def annotate_started(cls, patients):
        """Annotate `started_<crf>` (does the CRF hold any record?) without a query per case."""
        started = {}
        for crf, related in cls.RECORDS.items():
            exists = None
            for name in related:
                model = Patient._meta.get_field(name).related_model
                this = models.Exists(model.objects.filter(patient=models.OuterRef("pk")))
                exists = this if exists is None else exists | this
            started[f"started_{crf}"] = exists
        return patients.annotate(**started)

    @classmethod
    def for_patient(cls, patient) -> list["CrfStatus"]:
        """One status per CRF, in CRF order, unsaved for CRFs never marked.

        Uses `started_<crf>` annotations and prefetched `crf_statuses` when present.
        """
        stored = {s.crf: s for s in patient.crf_statuses.all()}
        result = []
        for crf, _label in cls.CRF_CHOICES:
            status = stored.get(crf)
            # A row kept only for monitoring facts says nothing about records: count them.
            if status is None or status.status in (cls.NOT_STARTED, cls.IN_PROGRESS):
                started = getattr(patient, f"started_{crf}", None)
                if started is None:
                    started = cls.crf_has_records(patient, crf)
                if status is None:
                    status = cls(patient=patient, crf=crf)
                status.status = cls.IN_PROGRESS if started else cls.NOT_STARTED
            result.append(status)
        return result

    @classmethod
    def crf_has_records(cls, patient, crf) -> bool:
        for name in cls.RECORDS[crf]:
            field = Patient._meta.get_field(name)
            if field.related_model.objects.filter(patient=patient).exists():
                return True
        return False

    # --- The whole case -------------------------------------------------------------------------
    #
    # One definition of what the CRF statuses say about a case (complete, locked, verified), for
    # the case page, the case list and the monitoring pages alike: CaseState on loaded statuses,
    # complete_cases()/locked_cases() on querysets. They must agree (tests/registry/
    # test_case_state.py compares them).

    @property
    def is_complete(self) -> bool:
        """Marked complete by an investigator; it stays complete while it is queried, verified
        or locked (a lock alone never makes a CRF complete)."""
        return self.marked_complete_at is not None

    @classmethod
    def case_state(cls, statuses) -> "CaseState":
        """The case's state from its CRF statuses (CrfStatus.for_patient(), one per CRF)."""
        statuses = list(statuses)
        return CaseState(
            crfs=len(cls.CRF_CHOICES),
            complete=sum(s.is_complete for s in statuses),
            verified=sum(s.verified_at is not None for s in statuses),
            open_queries=sum(s.open_queries for s in statuses),
            locked=any(s.is_locked for s in statuses),
        )

    @classmethod
    def complete_cases(cls, patients):
        """`patients` narrowed to complete cases (CaseState.is_complete), in one query."""
        done = (
            cls.objects.filter(
                patient=models.OuterRef("pk"), marked_complete_at__isnull=False, open_queries=0
            )
            .order_by()
            .values("patient")
            .annotate(n=models.Count("pk"))
            .values("n")
        )
        n_done = Coalesce(models.Subquery(done), 0)
        return patients.alias(n_crfs_done=n_done).filter(n_crfs_done=len(cls.CRF_CHOICES))

    @classmethod
    def locked_cases(cls, patients):
        """`patients` narrowed to locked cases (CaseState.locked): a CRF locked, by the case's
        lock or its site's."""
        locked = cls.objects.filter(patient=models.OuterRef("pk"), status=cls.LOCKED)
        return patients.filter(models.Exists(locked))


@dataclass(frozen=True)
class CaseState:
    """What a case's CRF statuses say about the whole case (CrfStatus.case_state())."""

    crfs: int  # CRFs per case
    complete: int  # CRFs marked complete (CrfStatus.is_complete)
    verified: int  # CRFs source-data verified
    open_queries: int  # unresolved monitor queries on the case's CRFs
    locked: bool  # the case (or its site) is locked

    @property
    def is_complete(self) -> bool:
        """Every CRF marked complete and no query unresolved: what the site's principal
        investigator signs. A locked case is complete only if this holds too."""
        return self.complete == self.crfs and not self.open_queries

    @property
    def is_verified(self) -> bool:
        return self.verified == self.crfs


# Every model that holds case data, the case (Patient) first.
CASE_MODELS = [
    Patient,
    Baseline,
    Cycle,
    ResponseAssessment,
    AdverseEvent,
    Transplant,
    SubsequentTherapy,
    FollowUp,
]


def _refuse_deleting_locked(sender, instance, **kwargs):
    """pre_delete: a locked case loses no record (delete(), QuerySet.delete(), cascades)."""
    if isinstance(instance, Patient):
        message = lock_message(instance.pk)
    else:
        message = lock_message(instance.patient_id, CrfStatus.crf_of(sender))
    if message:
        raise CaseLocked(message)


for _model in CASE_MODELS:
    pre_delete.connect(
        _refuse_deleting_locked, sender=_model, dispatch_uid=f"refuse-locked-{_model.__name__}"
    )
