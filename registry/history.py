"""Reading a case's change history (django-simple-history's tables) as people read it.

One diff for every reader: the case page's field history, the audit trail (monitoring.audit) and
the notes that monitoring writes when a verified or queried record changes. The diff compares
attribute by attribute: simple_history's diff_against() skips non-editable fields, and the
derived ones (the response, the cytogenetic risk) are exactly what a reviewer needs to see.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.utils.translation import gettext as _

from .models import (
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

HISTORY_MODELS = [
    Patient,
    Baseline,
    Cycle,
    ResponseAssessment,
    AdverseEvent,
    Transplant,
    SubsequentTherapy,
    FollowUp,
    CrfStatus,
]
# Bookkeeping, never a change a person made.
NOT_AUDITED_FIELDS = {"id", "version", "created_at", "updated_at"}
# Not shown on the case page either: the record's own identity.
NOT_SHOWN = NOT_AUDITED_FIELDS | {"patient", "sequence", "study_id"}
NOT_SHOWN_STATUS = {
    "marked_complete_at",
    "marked_complete_by",
    "first_completed_at",
    # monitoring facts: the status change and its reason say what happened
    "open_queries",
    "verified_at",
    "verified_by",
    "verification_cleared_at",
    "verification_cleared_note",
    "locked_at",
    "locked_by",
}
# Status rows written by one action on a whole case (a lock, an unlock) are one entry when they
# share who and why and were written this close together.
SAME_ACTION = timedelta(seconds=2)


@dataclass(frozen=True)
class Change:
    when: object
    user: str
    record: str
    field: str  # verbose name; empty for a whole record (created, removed)
    old: str
    new: str
    reason: str
    crf: str = ""  # the CRF whose status this entry changed (status entries only)


def shown(model, name, value) -> str:
    """A stored value as people read it: choice labels, yes/no, the related record ("" if none)."""
    if value is None or value == "":
        return ""
    field = model._meta.get_field(name)
    if field.choices:
        return str(dict(field.flatchoices).get(value, value))
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if field.is_relation:
        obj = field.related_model._default_manager.filter(pk=value).first()
        if isinstance(obj, Cycle):
            return _("cycle %(n)s") % {"n": obj.number}
        return str(obj) if obj else f"#{value}"
    return str(value)


def field_changes(h, previous, skip=NOT_AUDITED_FIELDS) -> list[tuple[str, object, object]]:
    """(field name, old, new) for each field the historical record `h` changed against
    `previous`; nothing for a creation, a removal or a record whose earlier version is missing."""
    if previous is None or h.history_type != "~":
        return []
    changes = []
    for field in h.tracked_fields:
        if field.name in skip:
            continue
        old, new = getattr(previous, field.attname), getattr(h, field.attname)
        if old != new:
            changes.append((field.name, old, new))
    return changes


def record_label(h) -> str:
    model = h.instance_type
    labels = {
        Cycle: lambda: _("Cycle %(n)s") % {"n": h.number},
        ResponseAssessment: lambda: _("Assessment of %(date)s") % {"date": h.assessment_date},
        AdverseEvent: lambda: _("AE %(term)s") % {"term": h.ctcae_term},
        SubsequentTherapy: lambda: _("Therapy %(regimen)s") % {"regimen": h.regimen},
        CrfStatus: lambda: _("CRF %(crf)s") % {"crf": h.get_crf_display().lower()},
        Patient: lambda: _("Registration"),
    }
    return labels.get(model, lambda: str(model._meta.verbose_name).capitalize())()


def _verbose(model, name) -> str:
    return str(model._meta.get_field(name).verbose_name)


def shown_fields(h) -> list[str]:
    skip = NOT_SHOWN | (NOT_SHOWN_STATUS if h.instance_type is CrfStatus else set())
    return [f.name for f in h.tracked_fields if f.name not in skip]


def _skip(h) -> set[str]:
    return {f.name for f in h.tracked_fields} - set(shown_fields(h))


def _user(h) -> str:
    return h.history_user.get_username() if h.history_user else _("system")


def changes(h, previous) -> list[Change]:
    """What one historical record changed against the one before it, as the case page lists it."""
    model = h.instance_type
    row = dict(when=h.history_date, user=_user(h), record=record_label(h))
    row["reason"] = h.history_change_reason or ""
    if model is CrfStatus and h.history_type == "+":
        # A status row is bookkeeping that appears when a CRF first needs one: its creation is
        # a change of status from what the CRF showed without it (status.refresh_status()).
        if h.status in (CrfStatus.NOT_STARTED, CrfStatus.IN_PROGRESS):
            return []
        status = h.get_status_display()
        return [Change(**row, field=_verbose(model, "status"), old="", new=status, crf=h.crf)]
    if h.history_type in "+-":
        return [
            Change(
                **row, field="", old="", new={"+": _("created"), "-": _("removed")}[h.history_type]
            )
        ]
    return [
        Change(
            **row,
            field=_verbose(model, name),
            old=shown(model, name, old) or "—",
            new=shown(model, name, new) or "—",
            crf=h.crf if model is CrfStatus else "",
        )
        for name, old, new in field_changes(h, previous, skip=_skip(h))
    ]


def values_of(h) -> list[Change]:
    """Every value of one record version as a change from nothing (who created it entered all)."""
    model = h.instance_type
    found = []
    for name in shown_fields(h):
        value = shown(model, name, getattr(h, model._meta.get_field(name).attname))
        if value:
            row = (h.history_date, _user(h), record_label(h), _verbose(model, name), "", value, "")
            found.append(Change(*row))
    return found


def _one_entry_per_action(rows: list[Change]) -> list[Change]:
    """Status changes of several CRFs by one action (a case lock writes one row per CRF) as one
    entry naming the CRFs. Rows are in date order."""
    merged, group = [], []

    def flush():
        if len(group) == 1:
            merged.append(group[0])
        elif group:
            first = group[0]
            labels = dict(CrfStatus.CRF_CHOICES)
            crfs = ", ".join(str(labels[c.crf]).lower() for c in group)
            record = _("%(n)s CRFs (%(crfs)s)") % {"n": len(group), "crfs": crfs}
            old, new = (", ".join(sorted({getattr(c, a) for c in group})) for a in ("old", "new"))
            merged.append(
                Change(first.when, first.user, record, first.field, old, new, first.reason)
            )
        group.clear()

    for c in rows:
        if group and (
            not c.crf
            or (c.user, c.field, c.reason) != (group[0].user, group[0].field, group[0].reason)
            or c.when - group[0].when > SAME_ACTION
        ):
            flush()
        (group if c.crf else merged).append(c)
    flush()
    return merged


def case_history(patient, record=None) -> list[Change]:
    """Every change to the case (or to one record), newest first: who, when, old, new, reason."""
    rows = []
    for model in [type(record)] if record is not None else HISTORY_MODELS:
        records = model.history.filter(**{"id" if model is Patient else "patient_id": patient.pk})
        if record is not None:
            records = records.filter(id=record.pk)
        previous = {}
        for h in records.select_related("history_user").order_by("history_date", "history_id"):
            rows.extend(changes(h, previous.get(h.id)))
            previous[h.id] = h
    rows.sort(key=lambda c: c.when)
    return list(reversed(_one_entry_per_action(rows)))
