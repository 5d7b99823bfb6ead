"""The monitoring workflow: queries, source data verification, locks and signatures.

Views and commands call these functions after checking who may act (registry.access); each one
keeps the CRF statuses (registry.CrfStatus) in step with the facts it changes, in one transaction.
A refusal is a MonitoringError (a ValidationError) whose message the views show.
"""

from django.contrib.auth import authenticate
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from registry.history import field_changes, shown
from registry.models import CrfStatus, Institution, Patient

from . import records
from .models import LockEvent, Query, QueryEvent, Signature

REASON_MAX_LENGTH = 100  # simple_history's history_change_reason column


class MonitoringError(ValidationError):
    pass


def _reason(text) -> str:
    return text[:REASON_MAX_LENGTH]


def unresolved_queries(**filters):
    return Query.objects.filter(status__in=Query.UNRESOLVED, **filters)


# --- CRF status ---------------------------------------------------------------------------------


def sync_status(patient, crf, reason="", status=None, create=False):
    """Recount the CRF's open queries and re-derive its status; saves only what changed.

    `status`: an already loaded (and possibly edited) CrfStatus row. Without one, the row is
    loaded under lock; it is created only when it has something to say (open queries, a lock).
    """
    if status is None:
        status = CrfStatus.objects.select_for_update().filter(patient=patient, crf=crf).first()
    open_queries = unresolved_queries(patient=patient, crf=crf).count()
    if status is None:
        site_locked = Institution.objects.filter(
            pk=patient.institution_id, locked_at__isnull=False
        ).exists()
        if not (create or open_queries or site_locked):
            return None
        status = CrfStatus(patient=patient, crf=crf)
    before = (status.status, status.open_queries)
    status.open_queries = open_queries
    status.refresh_status()
    if status.pk is None or before != (status.status, status.open_queries) or reason:
        status._change_reason = _reason(reason) or None
        status.save()
    return status


def sync_case(patient, reason="", create=False):
    return [
        sync_status(patient, crf, reason, create=create) for crf, _label in CrfStatus.CRF_CHOICES
    ]


def case_statuses(patient) -> list[CrfStatus]:
    return CrfStatus.for_patient(patient)


def case_is_complete(patient) -> bool:
    """Every CRF marked complete and no query unresolved: ready for signature (CaseState)."""
    return CrfStatus.case_state(case_statuses(patient)).is_complete


def case_is_locked(patient) -> bool:
    return CrfStatus.locked_cases(Patient.objects.filter(pk=patient.pk)).exists()


# --- Queries ------------------------------------------------------------------------------------


def open_query(patient, crf, message, user, record=None, field_name="", check_key=""):
    """Open a query on a field of a record (or on a whole record, or on a CRF)."""
    message = (message or "").strip()
    if not message:
        raise MonitoringError(_("Write the question."))
    if crf not in dict(CrfStatus.CRF_CHOICES):
        raise MonitoringError(_("Unknown CRF."))
    if record is not None and records.case_of_record(record).pk != patient.pk:
        raise MonitoringError(_("That record belongs to another case."))
    if field_name:
        if record is None:
            raise MonitoringError(_("A query on a field needs its record."))
        allowed = {name for name, _label in records.queryable_fields(type(record))}
        if field_name not in allowed:
            raise MonitoringError(
                _("%(record)s has no field '%(field)s'.")
                % {"record": type(record).__name__, "field": field_name}
            )
    if case_is_locked(patient):
        raise MonitoringError(
            _("%(case)s is locked: unlock it before opening a query.") % {"case": patient}
        )
    with transaction.atomic():
        query = Query.objects.create(
            patient=patient,
            crf=crf,
            content_type=records.content_type_of(record),
            object_id=record.pk if record is not None else None,
            record_label=records.record_label(record) if record is not None else "",
            field_name=field_name,
            message=message,
            check_key=check_key,
            opened_by=user,
        )
        QueryEvent.objects.create(query=query, action=QueryEvent.OPENED, user=user, message=message)
        sync_status(patient, crf, f"query #{query.pk} opened")
    return query


def answer_query(query, user, message):
    message = (message or "").strip()
    if not message:
        raise MonitoringError(_("Write your answer."))
    if not query.is_unresolved:
        raise MonitoringError(_("This query is closed."))
    with transaction.atomic():
        query.status = Query.ANSWERED
        query.save()
        QueryEvent.objects.create(
            query=query, action=QueryEvent.ANSWERED, user=user, message=message
        )
    return query


def close_query(query, user, message="", auto=False):
    if not query.is_unresolved:
        raise MonitoringError(_("This query is already closed."))
    with transaction.atomic():
        query.status = Query.CLOSED
        query.closed_at = timezone.now()
        query.save()
        action = QueryEvent.AUTO_CLOSED if auto else QueryEvent.CLOSED
        QueryEvent.objects.create(query=query, action=action, user=user, message=message.strip())
        sync_status(query.patient, query.crf, f"query #{query.pk} closed")
    return query


def reopen_query(query, user, message):
    message = (message or "").strip()
    if not message:
        raise MonitoringError(_("Say why the query is re-opened."))
    if query.is_unresolved:
        raise MonitoringError(_("This query is still open."))
    if case_is_locked(query.patient):
        raise MonitoringError(
            _("%(case)s is locked: unlock it before re-opening a query.") % {"case": query.patient}
        )
    with transaction.atomic():
        query.status = Query.OPEN
        query.closed_at = None
        query.save()
        QueryEvent.objects.create(
            query=query, action=QueryEvent.REOPENED, user=user, message=message
        )
        sync_status(query.patient, query.crf, f"query #{query.pk} re-opened")
    return query


# --- Source data verification ---------------------------------------------------------------------


def verify(patient, crf, user):
    with transaction.atomic():
        status = CrfStatus.objects.select_for_update().filter(patient=patient, crf=crf).first()
        label = dict(CrfStatus.CRF_CHOICES)[crf]
        if status is None or status.marked_complete_at is None:
            raise MonitoringError(
                _("%(crf)s: only a CRF marked complete can be verified.") % {"crf": label}
            )
        if status.is_locked:
            raise MonitoringError(_("%(crf)s is locked.") % {"crf": label})
        status.verified_at, status.verified_by = timezone.now(), user
        status.verification_cleared_at, status.verification_cleared_note = None, ""
        return sync_status(patient, crf, "source data verified", status=status)


def unverify(patient, crf, user):
    with transaction.atomic():
        status = CrfStatus.objects.select_for_update().filter(patient=patient, crf=crf).first()
        if status is None or status.verified_at is None:
            raise MonitoringError(_("This CRF is not verified."))
        if status.is_locked:
            raise MonitoringError(_("%(crf)s is locked.") % {"crf": status.get_crf_display()})
        status.verified_at = status.verified_by = None
        status.verification_cleared_at = timezone.now()
        status.verification_cleared_note = f"Verification withdrawn by {user.get_username()}."
        return sync_status(patient, crf, "verification withdrawn", status=status)


# --- Locks ----------------------------------------------------------------------------------------


def lock_case(patient, user, reason=""):
    if case_is_locked(patient):
        raise MonitoringError(_("%(case)s is already locked.") % {"case": patient})
    if unresolved_queries(patient=patient).exists():
        raise MonitoringError(
            _("%(case)s has open queries: close them before locking the case.") % {"case": patient}
        )
    with transaction.atomic():
        now = timezone.now()
        for crf, _label in CrfStatus.CRF_CHOICES:
            status, _created = CrfStatus.objects.select_for_update().get_or_create(
                patient=patient, crf=crf
            )
            status.locked_at, status.locked_by = now, user
            status._history_user = user  # also when called outside a request (admin actions)
            sync_status(patient, crf, "case locked", status=status)
        LockEvent.objects.create(
            institution_id=patient.institution_id,
            patient=patient,
            action=LockEvent.LOCK,
            user=user,
            reason=(reason or "").strip(),
        )


def unlock_case(patient, user, reason):
    reason = (reason or "").strip()
    if not reason:
        raise MonitoringError(_("Unlocking needs a reason."))
    site = Institution.objects.get(pk=patient.institution_id)
    if site.locked_at:
        raise MonitoringError(
            _("Site %(site)s is locked: unlock the site instead.") % {"site": site.code}
        )
    with transaction.atomic():
        statuses = list(
            CrfStatus.objects.select_for_update().filter(patient=patient, locked_at__isnull=False)
        )
        if not statuses:
            raise MonitoringError(_("%(case)s is not locked.") % {"case": patient})
        for status in statuses:
            status.locked_at = status.locked_by = None
            status._history_user = user
            sync_status(patient, status.crf, _reason(f"case unlocked: {reason}"), status=status)
        LockEvent.objects.create(
            institution=site, patient=patient, action=LockEvent.UNLOCK, user=user, reason=reason
        )


def lock_site(site, user, reason=""):
    if site.locked_at:
        raise MonitoringError(_("Site %(site)s is already locked.") % {"site": site.code})
    if unresolved_queries(patient__institution=site).exists():
        raise MonitoringError(
            _("Site %(site)s has open queries: close them before locking.") % {"site": site.code}
        )
    with transaction.atomic():
        site = Institution.objects.select_for_update().get(pk=site.pk)
        site.locked_at, site.locked_by = timezone.now(), user
        site.save(update_fields=["locked_at", "locked_by"])
        for patient in site.patients.all():
            sync_case(patient, "site locked", create=True)
        LockEvent.objects.create(
            institution=site, action=LockEvent.LOCK, user=user, reason=(reason or "").strip()
        )
    return site


def unlock_site(site, user, reason):
    reason = (reason or "").strip()
    if not reason:
        raise MonitoringError(_("Unlocking needs a reason."))
    if not site.locked_at:
        raise MonitoringError(_("Site %(site)s is not locked.") % {"site": site.code})
    with transaction.atomic():
        site = Institution.objects.select_for_update().get(pk=site.pk)
        site.locked_at = site.locked_by = None
        site.save(update_fields=["locked_at", "locked_by"])
        for patient in site.patients.all():
            sync_case(patient, _reason(f"site unlocked: {reason}"))
        LockEvent.objects.create(
            institution=site, action=LockEvent.UNLOCK, user=user, reason=reason
        )
    return site


def lock_info(patient) -> dict | None:
    """{by, at, reason, site} of the lock that holds the case (`site`: the whole site), or None."""
    site = Institution.objects.select_related("locked_by").get(pk=patient.institution_id)
    if site.locked_at:
        event = LockEvent.objects.filter(
            institution=site, patient=None, action=LockEvent.LOCK
        ).first()
        reason = event.reason if event else ""
        return {"by": site.locked_by, "at": site.locked_at, "reason": reason, "site": True}
    status = (
        CrfStatus.objects.filter(patient=patient, locked_at__isnull=False)
        .select_related("locked_by")
        .first()
    )
    if status:
        event = LockEvent.objects.filter(patient=patient, action=LockEvent.LOCK).first()
        reason = event.reason if event else ""
        return {"by": status.locked_by, "at": status.locked_at, "reason": reason, "site": False}
    if case_is_locked(patient):  # a CRF locked without a recorded lock
        return {"by": None, "at": None, "reason": "", "site": False}
    return None


# --- Signatures -----------------------------------------------------------------------------------


def password_confirmed(user, password, request=None) -> bool:
    """The user's password, re-entered to sign. Checked through authenticate(), so django-axes
    counts a wrong one as a failed log-in and locks the username and address out after
    AXES_FAILURE_LIMIT failures, as the log-in page does: check_password() alone let a borrowed
    session guess the password without limit."""
    if not password:
        return False
    return authenticate(request, username=user.get_username(), password=password) == user


def sign_case(patient, user, password, meaning=Signature.MEANING, request=None):
    from registry.access import is_principal_investigator

    if not is_principal_investigator(user, patient.institution):
        raise MonitoringError(
            _("Only the principal investigator of %(site)s signs its cases.")
            % {"site": patient.institution.code}
        )
    if not password_confirmed(user, password, request):
        raise MonitoringError(_("The password is not correct: not signed."))
    if not case_is_complete(patient):
        raise MonitoringError(
            _("Only a complete case is signed: every CRF marked complete, no query open.")
        )
    with transaction.atomic():
        Patient.objects.select_for_update().get(pk=patient.pk)
        if Signature.objects.filter(patient=patient, voided_at__isnull=True).exists():
            raise MonitoringError(_("%(case)s is already signed.") % {"case": patient})
        return Signature.objects.create(patient=patient, signed_by=user, meaning=str(meaning))


def valid_signature(patient):
    return Signature.objects.filter(patient=patient, voided_at__isnull=True).first()


# --- A case record changed ------------------------------------------------------------------------


def record_changed(instance, action):
    """After a case record was created, changed or removed (monitoring.signals): clear the CRF's
    verification, void the case's signature and note the new value on open queries about it.

    The notes are stored, so they are written in English whatever the page's language (as the
    history's change reasons are): the same record reads the same for every user."""
    with translation.override("en"):
        _record_changed(instance, action)


def _record_changed(instance, action):
    model = type(instance)
    patient_id = instance.pk if isinstance(instance, Patient) else instance.patient_id
    crf = CrfStatus.crf_of(model)
    verified = CrfStatus.objects.filter(
        patient_id=patient_id, crf=crf, verified_at__isnull=False
    ).first()
    signature = valid_signature(patient_id)
    queries = []
    if action != "created":
        queries = list(
            unresolved_queries(
                content_type=records.content_type_of(instance), object_id=instance.pk
            )
        )
    if not (verified or signature or queries):
        return
    latest = instance.history.order_by("-history_date", "-history_id").first()
    changes = []
    if action == "changed" and latest is not None:
        previous = latest.prev_record
        changes = field_changes(latest, previous)
        if previous is not None and not changes:
            return  # saved without a change
    user = latest.history_user if latest is not None else None
    who = user.get_username() if user else "system"
    label = records.record_label(instance)
    fields = ", ".join(str(model._meta.get_field(name).verbose_name) for name, _o, _n in changes)
    when = timezone.localtime().strftime("%Y-%m-%d %H:%M")
    note = f"{label} {action}{f' ({fields})' if fields else ''} by {who} on {when}."
    if verified:
        verified.verified_at = verified.verified_by = None
        verified.verification_cleared_at = timezone.now()
        verified.verification_cleared_note = note[:300]
        sync_status(verified.patient, crf, f"verification cleared: {note}", status=verified)
    if signature:
        signature.voided_at = timezone.now()
        signature.void_reason = note[:300]
        signature.save()
    reason = getattr(latest, "history_change_reason", None) if latest is not None else None
    for query in queries:
        if action == "removed":
            text = f"{label} removed."
        else:
            relevant = [c for c in changes if not query.field_name or c[0] == query.field_name]
            if not relevant:
                continue
            text = "; ".join(
                f"{model._meta.get_field(name).verbose_name}: "
                f"{shown(model, name, old) or '—'} → {shown(model, name, new) or '—'}"
                for name, old, new in relevant
            )
        if reason:
            text += f" Reason: {reason}"
        QueryEvent.objects.create(
            query=query, action=QueryEvent.DATA_CHANGED, user=user, message=text
        )
