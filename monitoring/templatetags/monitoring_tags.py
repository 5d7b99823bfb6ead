"""The monitoring parts of the investigator's case page (registry/case.html):

- {% case_monitoring patient %}: lock, signature and verification notices, monitor actions;
- {% crf_monitoring status %}: in a CRF card, its verification and the verify button;
- {% case_queries patient %}: the case's queries with their threads, answer/close/re-open.
"""

from django import template

from registry.access import (
    investigated_patients_for,
    is_principal_investigator,
    monitored_patients_for,
)
from registry.models import CrfStatus

from .. import records, services
from ..models import Query, Signature

register = template.Library()


def _roles(context, patient) -> dict:
    request = context["request"]
    cache = request.__dict__.setdefault("_monitoring_roles", {})
    if patient.pk not in cache:
        user = request.user
        cache[patient.pk] = {
            "is_monitor": monitored_patients_for(user).filter(pk=patient.pk).exists(),
            "is_investigator": investigated_patients_for(user).filter(pk=patient.pk).exists(),
            "is_pi": is_principal_investigator(user, patient.institution),
        }
    return cache[patient.pk]


def _base(context, patient):
    return {
        "patient": patient,
        "csrf_token": context.get("csrf_token"),
        "request": context["request"],
        **_roles(context, patient),
    }


@register.inclusion_tag("monitoring/_case_monitoring.html", takes_context=True)
def case_monitoring(context, patient):
    lock = services.lock_info(patient)
    signatures = list(Signature.objects.filter(patient=patient).select_related("signed_by"))
    cleared = CrfStatus.objects.filter(
        patient=patient, verification_cleared_at__isnull=False, verified_at__isnull=True
    )
    return {
        **_base(context, patient),
        "lock": lock,
        "signature": next((s for s in signatures if s.voided_at is None), None),
        "voided": [s for s in signatures if s.voided_at is not None][:3],
        "cleared": cleared,
        "is_complete": services.case_is_complete(patient),
        "open_queries": services.unresolved_queries(patient=patient).count(),
    }


@register.inclusion_tag("monitoring/_crf_monitoring.html", takes_context=True)
def crf_monitoring(context, status):
    patient = status.patient
    return {
        **_base(context, patient),
        "s": status,
        "can_verify": status.pk is not None
        and status.marked_complete_at is not None
        and not status.is_locked,
    }


@register.inclusion_tag("monitoring/_case_queries.html", takes_context=True)
def case_queries(context, patient):
    queries = list(
        Query.objects.filter(patient=patient)
        .select_related("opened_by", "content_type")
        .prefetch_related("events__user")
        .order_by("status", "-opened_at")
    )
    for q in queries:
        q.edit_url = records.edit_url(patient, q.model, q.object_id) if q.object_id else None
    return {
        **_base(context, patient),
        "unresolved": [q for q in queries if q.is_unresolved],
        "closed": [q for q in queries if not q.is_unresolved],
    }
