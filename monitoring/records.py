"""Naming case records and finding their pages: shared by queries, findings and the case page."""

from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django.utils.translation import gettext as _

from registry.models import (
    CASE_MODELS,
    AdverseEvent,
    Baseline,
    CrfStatus,
    Cycle,
    FollowUp,
    Patient,
    ResponseAssessment,
    SubsequentTherapy,
    Transplant,
)

NOT_QUERYABLE = {"id", "patient", "created_at", "updated_at", "version", "sequence"}


def record_label(obj) -> str:
    labels = {
        Patient: lambda: _("Registration"),
        Baseline: lambda: _("Baseline"),
        Cycle: lambda: _("Cycle %(n)s") % {"n": obj.number},
        ResponseAssessment: lambda: _("Assessment of %(date)s") % {"date": obj.assessment_date},
        AdverseEvent: lambda: (
            _("AE %(term)s (%(date)s)") % {"term": obj.term_display, "date": obj.onset_date}
        ),
        Transplant: lambda: _("Allogeneic SCT"),
        SubsequentTherapy: lambda: (
            _("Therapy %(regimen)s (%(date)s)") % {"regimen": obj.regimen, "date": obj.start_date}
        ),
        FollowUp: lambda: _("Follow-up"),
    }
    return labels.get(type(obj), lambda: str(obj))()


def case_of_record(obj) -> Patient:
    return obj if isinstance(obj, Patient) else obj.patient


def queryable_fields(model) -> list[tuple[str, str]]:
    """(name, label) of the fields a query can be about: entered and derived, not bookkeeping."""
    return [
        (f.name, str(f.verbose_name))
        for f in model._meta.concrete_fields
        if f.name not in NOT_QUERYABLE
    ]


def records_of(patient) -> list[tuple[str, list]]:
    """[(crf, [records])] of a case, in CRF order."""
    by_crf = {crf: [] for crf, _label in CrfStatus.CRF_CHOICES}
    by_crf[CrfStatus.BASELINE].append(patient)
    for crf, related in CrfStatus.RECORDS.items():
        for name in related:
            value = getattr(patient, name, None)
            if value is None:
                continue
            if hasattr(value, "all"):
                by_crf[crf].extend(value.all())
            else:
                by_crf[crf].append(value)
    return list(by_crf.items())


def record_token(obj) -> str:
    return f"{obj._meta.model_name}:{obj.pk}"


def record_from_token(patient, token):
    """The case's record named by record_token(), or None."""
    name, _, pk = (token or "").partition(":")
    models = {m._meta.model_name: m for m in CASE_MODELS}
    model = models.get(name)
    if model is None or not pk.isdigit():
        return None
    if model is Patient:
        return patient if int(pk) == patient.pk else None
    return model.objects.filter(patient=patient, pk=int(pk)).first()


def edit_url(patient, model, pk) -> str | None:
    """The investigator's form for a record (registry.views.KINDS), or None if it is gone."""
    from registry.views import KINDS

    if model is None:
        return None
    for kind in KINDS.values():
        if kind.form._meta.model is model:
            if kind.many:
                if not model.objects.filter(pk=pk, patient=patient).exists():
                    return None
                return reverse("registry:record_edit", args=[patient.pk, kind.slug, pk])
            return reverse("registry:single_record", args=[patient.pk, kind.slug])
    return None


def content_type_of(obj):
    return ContentType.objects.get_for_model(type(obj)) if obj is not None else None
