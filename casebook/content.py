"""What a case book holds, as plain data: read once, then rendered (casebook.pdf) and hashed.

Everything comes from the registry's own readers, so the book says what the case page says:
the CRF fields and their labels from the forms (registry.views.KINDS; units are in the labels),
values as registry.history.shown() prints them, CRF statuses from CrfStatus.for_patient(), the
queries with their threads, verification, locks and signatures from the monitoring models, and
the audit trail from registry.history.case_history(), the case page's own diff.

The content's SHA-256 (`CaseBook.sha256`) is taken over a canonical JSON of this data, without
the print time: printing the same data again gives the same hash, and any change to a value, a
status, a query or the audit trail gives another.
"""

import functools
import hashlib
import json
from dataclasses import asdict, dataclass, field

from django.utils import timezone
from django.utils.text import capfirst

from monitoring import records as monitoring_records
from monitoring.models import LockEvent, Query, Signature
from registry.history import NOT_SHOWN, case_history, shown
from registry.models import CrfStatus, Patient

EMPTY = "—"


def when(value) -> str:
    """A timestamp as the case page prints it (Y-m-d H:i:s, the registry's time zone)."""
    if value is None:
        return ""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")


def _user(user) -> str:
    return user.get_username() if user else "system"


@dataclass
class Row:
    label: str
    value: str
    derived: bool = False


@dataclass
class Record:
    title: str
    groups: list  # [(fieldset legend or "", [Row])]


@dataclass
class Crf:
    crf: str
    label: str
    status: str
    facts: list  # [(label, text)]: marked complete, verified, verification cleared, locked
    records: list  # [Record]


@dataclass
class QueryThread:
    number: int
    crf: str
    target: str
    status: str
    opened_by: str
    opened_at: str
    events: list  # [(when, who, action, message)]


@dataclass
class CaseBook:
    study_id: str
    site_code: str
    site_name: str
    summary: list  # [(label, value)]
    crfs: list = field(default_factory=list)
    queries: list = field(default_factory=list)
    signatures: list = field(default_factory=list)  # [(signed by, at, meaning, voided at, why)]
    locks: list = field(default_factory=list)  # [(when, who, action, scope, reason)]
    audit: list = field(default_factory=list)  # [(when, who, record, field, old, new, reason)]
    time_zone: str = ""
    case_complete: bool = False  # every CRF complete, verified or locked

    def canonical(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, ensure_ascii=False).encode()

    @functools.cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()


# --- CRF values ---------------------------------------------------------------------------------


def _forms():
    """{model: form class} of the investigator's forms (the case's own registration form for
    Patient: its site is fixed once registered)."""
    from registry.views import KINDS

    return {kind.form._meta.model: kind.form for kind in KINDS.values()}


def _layout_groups(form_class) -> list[tuple[str, list[str]]]:
    """The form's fields grouped as the form shows them (crispy Fieldsets), in form order."""
    fields = list(form_class._meta.fields)
    layout = getattr(form_class, "layout", None)
    if not layout:
        return [("", fields)]
    groups, placed = [], set()
    for fieldset in layout:
        names = [n for n in fieldset.fields if isinstance(n, str) and n in fields]
        groups.append((str(fieldset.legend), names))
        placed.update(names)
    rest = [n for n in fields if n not in placed]
    if rest:
        groups.append(("", rest))
    return groups


def _label(form_class, model, name) -> str:
    field = form_class.base_fields.get(name)
    if field is not None and field.label:
        return str(field.label)
    return capfirst(str(model._meta.get_field(name).verbose_name))


def _value(model, record, name) -> str:
    field = model._meta.get_field(name)
    return shown(model, name, getattr(record, field.attname)) or EMPTY


def derived_fields(model) -> list[str]:
    """Fields the registry derives (never typed): shown beside the form's, marked derived."""
    return [
        f.name
        for f in model._meta.concrete_fields
        if not f.editable and f.name not in NOT_SHOWN and not f.primary_key
    ]


def record_values(record, forms=None) -> Record:
    model = type(record)
    form_class = (forms or _forms())[model]
    groups = []
    for legend, names in _layout_groups(form_class):
        rows = [Row(_label(form_class, model, n), _value(model, record, n)) for n in names]
        groups.append((legend, rows))
    derived = [
        Row(capfirst(str(model._meta.get_field(n).verbose_name)), _value(model, record, n), True)
        for n in derived_fields(model)
    ]
    if isinstance(record, Patient):
        age = record.age_at_start
        derived.insert(
            0, Row("Age at blinatumomab start (years)", EMPTY if age is None else str(age), True)
        )
    if derived:
        groups.append(("Derived by the registry", derived))
    return Record(monitoring_records.record_label(record), groups)


def _crf_facts(status) -> list[tuple[str, str]]:
    facts = []
    if status.marked_complete_at:
        facts.append(
            (
                "Marked complete",
                f"{when(status.marked_complete_at)} by {_user(status.marked_complete_by)}",
            )
        )
    if status.verified_at:
        facts.append(
            ("Source data verified", f"{when(status.verified_at)} by {_user(status.verified_by)}")
        )
    elif status.verification_cleared_at:
        facts.append(
            (
                "Verification cleared",
                f"{when(status.verification_cleared_at)}: {status.verification_cleared_note}",
            )
        )
    if status.locked_at:
        facts.append(("Locked", f"{when(status.locked_at)} by {_user(status.locked_by)}"))
    if status.open_queries:
        facts.append(("Unresolved queries", str(status.open_queries)))
    return facts


def crfs_of(patient, statuses=None) -> list[Crf]:
    forms = _forms()
    statuses = {s.crf: s for s in (statuses or CrfStatus.for_patient(patient))}
    result = []
    for crf, records in monitoring_records.records_of(patient):
        status = statuses[crf]
        result.append(
            Crf(
                crf=crf,
                label=status.get_crf_display(),
                status=status.get_status_display(),
                facts=_crf_facts(status),
                records=[record_values(r, forms) for r in records],
            )
        )
    return result


# --- Monitoring ---------------------------------------------------------------------------------


def queries_of(patient) -> list[QueryThread]:
    queries = (
        Query.objects.filter(patient=patient)
        .select_related("opened_by", "content_type")
        .prefetch_related("events__user")
        .order_by("opened_at", "pk")
    )
    return [
        QueryThread(
            number=q.pk,
            crf=q.get_crf_display(),
            target=q.target_label,
            status=q.get_status_display(),
            opened_by=_user(q.opened_by),
            opened_at=when(q.opened_at),
            events=[
                (when(e.at), _user(e.user), e.get_action_display(), e.message)
                for e in q.events.all()
            ],
        )
        for q in queries
    ]


def signatures_of(patient) -> list:
    rows = Signature.objects.filter(patient=patient).select_related("signed_by")
    return [
        (_user(s.signed_by), when(s.signed_at), s.meaning, when(s.voided_at), s.void_reason)
        for s in rows.order_by("signed_at", "pk")
    ]


def locks_of(patient) -> list:
    events = LockEvent.objects.filter(patient=patient) | LockEvent.objects.filter(
        institution_id=patient.institution_id, patient__isnull=True
    )
    return [
        (
            when(e.at),
            _user(e.user),
            e.get_action_display(),
            "case" if e.patient_id else f"site {patient.institution.code}",
            e.reason,
        )
        for e in events.select_related("user").order_by("at", "pk")
    ]


def audit_of(patient) -> list:
    """The case page's change history (registry.history.case_history), oldest first."""
    return [
        (when(c.when), c.user, c.record, c.field, c.old, c.new, c.reason)
        for c in reversed(case_history(patient))
    ]


# --- The book -------------------------------------------------------------------------------------


def build(patient) -> CaseBook:
    patient = Patient.objects.select_related("institution").get(pk=patient.pk)
    site = patient.institution
    statuses = CrfStatus.for_patient(patient)
    done = all(s.status in CrfStatus.DONE_STATUSES for s in statuses)
    signatures = signatures_of(patient)
    valid = [s for s in signatures if not s[3]]
    summary = [
        ("Study ID", patient.study_id),
        ("Site", f"{site.code} {site.name}"),
        ("Case", "complete" if done else "not complete"),
        ("Signature", f"signed by {valid[-1][0]} on {valid[-1][1]}" if valid else "not signed"),
    ]
    return CaseBook(
        study_id=patient.study_id,
        site_code=site.code,
        site_name=site.name,
        summary=summary,
        crfs=crfs_of(patient, statuses),
        queries=queries_of(patient),
        signatures=signatures,
        locks=locks_of(patient),
        audit=audit_of(patient),
        time_zone=timezone.get_current_timezone_name(),
        case_complete=done,
    )
