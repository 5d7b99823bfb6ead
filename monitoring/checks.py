"""Edit checks across the registry.

Each check is a small function that takes a queryset of cases and yields Found items (case, CRF,
record, field, message). The rules are not restated: "missing required values" and "dates out of
order" come from each record's own full_clean() (the model's validators and clean()), and the
response check compares the stored response with ResponseAssessment.derive()
(rules.derive_response). Data saved without full_clean() (bulk loads, imports of old systems,
QuerySet.update()) can break rules; this is what the checks find.

run() stores the findings of a site (one Finding per problem) and closes, with a system note, the
queries opened from findings that are gone.
"""

from collections.abc import Iterator
from dataclasses import dataclass

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from registry.models import (
    CASE_MODELS,
    AdverseEvent,
    CrfStatus,
    Cycle,
    FollowUp,
    Patient,
    ResponseAssessment,
    SubsequentTherapy,
    Transplant,
)

from . import records, services
from .models import EditCheckRun, Finding, Query

RULES = {
    "missing_value": gettext_lazy("Missing required value"),
    "record_rule": gettext_lazy("Record rule fails (dates out of order, inconsistent values)"),
    "missing_record": gettext_lazy("CRF without its record"),
    "response_mismatch": gettext_lazy("Stored response does not match the values"),
    "ae_after_death": gettext_lazy("Adverse event after death"),
    "cycle_without_assessment": gettext_lazy("Cycle without a response assessment"),
    "sct_before_start": gettext_lazy("Allogeneic SCT before blinatumomab start"),
    "records_after_last_contact": gettext_lazy("Records dated after the follow-up's last contact"),
}
GENERIC_RULES = {"missing_value", "record_rule"}
MISSING_CODES = {"blank", "null", "required"}


@dataclass(frozen=True)
class Found:
    rule: str
    patient: Patient
    crf: str
    record: object | None
    field: str
    message: str

    @property
    def target(self) -> tuple:
        record = self.record
        model = type(record)._meta.label_lower if record is not None else ""
        return (model, record.pk if record is not None else self.patient.pk, self.field)

    @property
    def key(self) -> str:
        model, pk, field = self.target
        return f"{self.rule}:{model or 'crf-' + self.crf}:{pk}:{field}"[:200]


def _cases(patients):
    """The cases with their one-to-one records loaded, so per-record rules reuse them."""
    return {
        p.pk: p
        for p in patients.select_related("institution", "baseline", "followup", "transplant")
    }


# --- The checks ---------------------------------------------------------------------------------


def model_rules(patients) -> Iterator[Found]:
    """Every record's full_clean(): missing required values and every rule of clean()."""
    cases = _cases(patients)
    for model in CASE_MODELS:
        if model is Patient:
            objects = list(cases.values())
        else:
            objects = model.objects.filter(patient_id__in=cases.keys()).order_by("pk")
        crf = CrfStatus.crf_of(model)
        for obj in objects:
            if model is not Patient:
                obj.patient = cases[obj.patient_id]
            try:
                obj.full_clean(validate_unique=False, validate_constraints=False, check_lock=False)
            except ValidationError as e:
                yield from _from_error(obj, crf, e)


def _from_error(obj, crf, error) -> Iterator[Found]:
    patient = records.case_of_record(obj)
    errors = error.error_dict if hasattr(error, "error_dict") else {NON_FIELD_ERRORS: [error]}
    for field, problems in errors.items():
        name = "" if field == NON_FIELD_ERRORS else field
        for problem in problems:
            rule = "missing_value" if problem.code in MISSING_CODES else "record_rule"
            for message in problem.messages:
                if name:
                    label = type(obj)._meta.get_field(name).verbose_name
                    message = f"{str(label).capitalize()}: {message}"
                yield Found(rule, patient, crf, obj, name, message)


def missing_records(patients) -> Iterator[Found]:
    """Registration and baseline, cycles and follow-up always hold a record."""
    cases = CrfStatus.annotate_started(patients.select_related("institution"))
    labels = dict(CrfStatus.CRF_CHOICES)
    for p in cases:
        for crf in (CrfStatus.BASELINE, CrfStatus.CYCLES, CrfStatus.FOLLOW_UP):
            if not getattr(p, f"started_{crf}"):
                yield Found(
                    "missing_record",
                    p,
                    crf,
                    None,
                    "",
                    _("The %(crf)s CRF has no record.") % {"crf": labels[crf]},
                )


def response_mismatch(patients) -> Iterator[Found]:
    """Stored response != the response the stored values give (rules.derive_response)."""
    assessments = ResponseAssessment.objects.filter(patient__in=patients).select_related(
        "patient__baseline", "patient__institution"
    )
    for a in assessments:
        derived = a.derive()
        if a.response != derived:
            yield Found(
                "response_mismatch",
                a.patient,
                CrfStatus.ASSESSMENTS,
                a,
                "response",
                _(
                    "The stored response is %(response)s, but the stored values (marrow "
                    "blasts %(marrow_blasts_pct)s%%, ANC %(anc_10e9_per_l)s, platelets "
                    "%(platelets_10e9_per_l)s, extramedullary %(emd_status)s) give "
                    "%(derived)s."
                )
                % {
                    "response": a.response or _("empty"),
                    "marrow_blasts_pct": a.marrow_blasts_pct,
                    "anc_10e9_per_l": a.anc_10e9_per_l,
                    "platelets_10e9_per_l": a.platelets_10e9_per_l,
                    "emd_status": a.emd_status,
                    "derived": derived,
                },
            )


def ae_after_death(patients) -> Iterator[Found]:
    death = F("patient__followup__death_date")
    events = (
        AdverseEvent.objects.filter(
            patient__in=patients, patient__followup__death_date__isnull=False
        )
        .filter(Q(onset_date__gt=death) | Q(resolution_date__gt=death))
        .select_related("patient__followup", "patient__institution")
    )
    for ae in events:
        died = ae.patient.followup.death_date
        field = "onset_date" if ae.onset_date > died else "resolution_date"
        yield Found(
            "ae_after_death",
            ae.patient,
            CrfStatus.ADVERSE_EVENTS,
            ae,
            field,
            _(
                "%(term_display)s: %(verbose_name)s %(value)s is after the patient's "
                "death (%(died)s)."
            )
            % {
                "term_display": ae.term_display,
                "verbose_name": AdverseEvent._meta.get_field(field).verbose_name,
                "value": getattr(ae, field),
                "died": died,
            },
        )


def cycle_without_assessment(patients) -> Iterator[Found]:
    """A finished cycle has a response assessment (not an ongoing one, nor one ended by death)."""
    cycles = (
        Cycle.objects.filter(patient__in=patients)
        .exclude(outcome=Cycle.ONGOING)
        .exclude(outcome=Cycle.DISCONTINUED, discontinuation_reason="death")
        .filter(~Exists(ResponseAssessment.objects.filter(cycle=OuterRef("pk"))))
        .select_related("patient__institution")
    )
    for c in cycles:
        yield Found(
            "cycle_without_assessment",
            c.patient,
            CrfStatus.ASSESSMENTS,
            c,
            "",
            _("Cycle %(number)s (%(start_date)s to %(end_date)s) has no response assessment.")
            % {"number": c.number, "start_date": c.start_date, "end_date": c.end_date or "…"},
        )


def sct_before_start(patients) -> Iterator[Found]:
    transplants = Transplant.objects.filter(
        patient__in=patients, sct_date__lt=F("patient__blinatumomab_start_date")
    ).select_related("patient__institution")
    for t in transplants:
        yield Found(
            "sct_before_start",
            t.patient,
            CrfStatus.TRANSPLANT,
            t,
            "sct_date",
            _(
                "The allogeneic SCT (%(sct_date)s) is before blinatumomab start "
                "(%(blinatumomab_start_date)s); a prior SCT belongs in the baseline."
            )
            % {
                "sct_date": t.sct_date,
                "blinatumomab_start_date": t.patient.blinatumomab_start_date,
            },
        )


def records_after_last_contact(patients) -> Iterator[Found]:
    """A living patient's last contact is their latest date: a record dated later means the
    follow-up is out of date (the analysis then censors at that record, not at last contact)."""
    followups = FollowUp.objects.filter(patient__in=patients).exclude(vital_status=FollowUp.DEAD)
    later = Q()
    for model in (Cycle, ResponseAssessment, AdverseEvent, Transplant, SubsequentTherapy):
        related = model._meta.get_field("patient").related_query_name()
        for field, _label in model.dated_fields:
            later |= Q(**{f"patient__{related}__{field}__gt": F("last_contact_date")})
    for fu in followups.filter(later).distinct().select_related("patient__institution"):
        found = fu.patient_records_after(fu.last_contact_date)
        yield Found(
            "records_after_last_contact",
            fu.patient,
            CrfStatus.FOLLOW_UP,
            fu,
            "last_contact_date",
            _("Last contact (%(last_contact_date)s) is before these records: %(value)s.")
            % {"last_contact_date": fu.last_contact_date, "value": "; ".join(found)},
        )


CHECKS = [
    response_mismatch,
    ae_after_death,
    cycle_without_assessment,
    sct_before_start,
    records_after_last_contact,
    missing_records,
    model_rules,
]


def find(patients) -> list[Found]:
    """Every problem in these cases, each once: a specific check's finding on a field hides
    the generic full_clean() finding on the same field (e.g. an SCT before the start date)."""
    found, targets, keys = [], set(), set()
    for check in CHECKS:
        for f in check(patients):
            if f.rule in GENERIC_RULES and f.target in targets:
                continue
            if f.key in keys:
                continue
            targets.add(f.target)
            keys.add(f.key)
            found.append(f)
    return found


# --- Running ------------------------------------------------------------------------------------

AUTO_CLOSE_NOTE = gettext_lazy("Closed by the edit checks: the problem is no longer found.")


def run(site, user=None) -> EditCheckRun:
    """Check a site's cases, store the findings, auto-close queries whose finding is gone."""
    found = find(Patient.objects.filter(institution=site))
    now = timezone.now()
    with transaction.atomic():
        stored = {f.key: f for f in Finding.objects.filter(patient__institution=site)}
        for f in found:
            values = dict(
                rule=f.rule,
                patient=f.patient,
                crf=f.crf,
                content_type=records.content_type_of(f.record),
                object_id=f.record.pk if f.record is not None else None,
                record_label=records.record_label(f.record) if f.record is not None else "",
                field_name=f.field,
                message=f.message,
                last_found_at=now,
            )
            finding = stored.pop(f.key, None)
            if finding is None:
                Finding.objects.create(key=f.key, first_found_at=now, **values)
            else:
                for name, value in values.items():
                    setattr(finding, name, value)
                finding.save()
        Finding.objects.filter(pk__in=[f.pk for f in stored.values()]).delete()
        keys = {f.key for f in found}
        closed = 0
        gone = (
            Query.objects.filter(patient__institution=site, status__in=Query.UNRESOLVED)
            .exclude(check_key="")
            .exclude(check_key__in=keys)
        )
        for query in gone:
            services.close_query(query, None, str(AUTO_CLOSE_NOTE), auto=True)
            closed += 1
        return EditCheckRun.objects.create(
            institution=site,
            ran_at=now,
            ran_by=user,
            findings_n=len(found),
            queries_closed_n=closed,
        )


def open_query_from(finding, user) -> Query:
    """One click: a query on the finding's record and field, asking what the finding says."""
    existing = services.unresolved_queries(check_key=finding.key).first()
    if existing:
        raise services.MonitoringError(_("A query on this finding is already open."))
    return services.open_query(
        finding.patient,
        finding.crf,
        f"Edit check ({finding.rule_label}): {finding.message} Please correct or confirm.",
        user,
        record=finding.record,
        field_name=finding.field_name,
        check_key=finding.key,
    )
