"""What the registry should show after the journeys' steps: the test's own account of them.

- `snapshot()` / `diff()`: every case record's entered and derived values, before and after a
  step, so a step's saved changes are known exactly (and a refused step changed nothing).
- `ExpectedHistory`: one history entry per saved field change (who, old, new, reason), per record
  and per case, kept from the changes the steps saved.
- `Monitoring`: the monitoring facts the users' actions should have produced (CRFs marked
  complete, verified, locked; queries; signatures), and from them each CRF's status badge.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date

from registry import rules
from registry.models import (
    AdverseEvent,
    Baseline,
    CrfStatus,
    Cycle,
    FollowUp,
    Institution,
    Patient,
    ResponseAssessment,
    SubsequentTherapy,
    Transplant,
)


@dataclass(frozen=True)
class Kind:
    """A kind of case record as its pages name it (/cases/<id>/<slug>/...)."""

    slug: str
    model: type
    crf: str
    many: bool


KINDS = {
    k.slug: k
    for k in [
        Kind("registration", Patient, CrfStatus.BASELINE, False),
        Kind("baseline", Baseline, CrfStatus.BASELINE, False),
        Kind("cycles", Cycle, CrfStatus.CYCLES, True),
        Kind("assessments", ResponseAssessment, CrfStatus.ASSESSMENTS, True),
        Kind("adverse-events", AdverseEvent, CrfStatus.ADVERSE_EVENTS, True),
        Kind("transplant", Transplant, CrfStatus.TRANSPLANT, False),
        Kind("subsequent-therapies", SubsequentTherapy, CrfStatus.TRANSPLANT, True),
        Kind("follow-up", FollowUp, CrfStatus.FOLLOW_UP, False),
    ]
}
KIND_OF_MODEL = {k.model: k for k in KINDS.values()}
SINGLE_KINDS = [k.slug for k in KINDS.values() if not k.many]
REPEATING_KINDS = [k.slug for k in KINDS.values() if k.many]
CRFS = [crf for crf, _label in CrfStatus.CRF_CHOICES]
# The records that make a CRF "started" (the registration belongs to the baseline CRF but a case
# always has one, so it does not count).
STARTS_CRF = {
    CrfStatus.BASELINE: [Baseline],
    CrfStatus.CYCLES: [Cycle],
    CrfStatus.ASSESSMENTS: [ResponseAssessment],
    CrfStatus.ADVERSE_EVENTS: [AdverseEvent],
    CrfStatus.TRANSPLANT: [Transplant, SubsequentTherapy],
    CrfStatus.FOLLOW_UP: [FollowUp],
}
NEEDS_RECORD = {CrfStatus.BASELINE, CrfStatus.CYCLES, CrfStatus.FOLLOW_UP}

# Bookkeeping columns: not data a person enters or sees change.
BOOKKEEPING = {"id", "version", "created_at", "updated_at", "patient", "sequence", "study_id"}


@dataclass(frozen=True)
class RecordRef:
    """A record of a case, as a person reaches it: /cases/<case>/<kind>/<pk>/."""

    case: int
    kind: str
    pk: int

    @property
    def url(self) -> str:
        return f"/cases/{self.case}/{self.kind}/{self.pk}/"


# --- Snapshots of the case data -------------------------------------------------------------------


def _columns(model) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields if f.name not in BOOKKEEPING]


def snapshot() -> dict:
    """{(model, pk): (case pk, {column: value})} for every case record in the registry."""
    rows = {}
    for model in KIND_OF_MODEL:
        case_column = "id" if model is Patient else "patient_id"
        for row in model.objects.values("id", case_column, *_columns(model)):
            pk = row.pop("id")
            case = pk if model is Patient else row.pop(case_column)
            rows[(model, pk)] = (case, row)
    return rows


@dataclass
class Change:
    model: type
    pk: int
    case: int
    action: str  # "created", "changed", "removed"
    fields: dict = field(default_factory=dict)  # column -> (old, new) for "changed"

    @property
    def crf(self) -> str:
        return KIND_OF_MODEL[self.model].crf


def diff(before: dict, after: dict) -> list[Change]:
    changes = []
    for key in sorted(set(before) | set(after), key=lambda k: (k[0].__name__, k[1])):
        model, pk = key
        if key not in before:
            changes.append(Change(model, pk, after[key][0], "created"))
        elif key not in after:
            changes.append(Change(model, pk, before[key][0], "removed"))
        else:
            old, new = before[key][1], after[key][1]
            changed = {c: (old[c], new[c]) for c in old if old[c] != new[c]}
            if changed:
                changes.append(Change(model, pk, after[key][0], "changed", changed))
    return changes


def has_records(snap: dict, case: int, crf: str) -> bool:
    models = STARTS_CRF[crf]
    return any(model in models and c == case for (model, _pk), (c, _row) in snap.items())


# --- The change history --------------------------------------------------------------------------


def shown(model, column, value) -> str:
    """A stored value as the history shows it: choices by their label, yes/no, a cycle by its
    number, nothing as a dash."""
    if value is None or value == "":
        return "—"
    f = next(f for f in model._meta.concrete_fields if f.attname == column)
    if f.choices:
        return str(dict(f.flatchoices).get(value, value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if f.is_relation:
        cycle = Cycle.objects.filter(pk=value).first()
        return f"cycle {cycle.number}" if cycle else f"#{value}"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def verbose(model, column) -> str:
    f = next(f for f in model._meta.concrete_fields if f.attname == column)
    return str(f.verbose_name)


@dataclass
class ExpectedHistory:
    """Every change the journeys saved: one history entry each, with who, old, new and reason."""

    # (case, model, pk) -> [(user, column, old, new, reason)]
    fields: dict = field(default_factory=dict)
    # case -> Counter of (user, "created"/"removed", reason)
    records: dict = field(default_factory=dict)

    def saved(self, changes: list[Change], user: str, reason: str):
        for c in changes:
            if c.action == "changed":
                rows = self.fields.setdefault((c.case, c.model, c.pk), [])
                for column, (old, new) in c.fields.items():
                    rows.append((user, column, old, new, reason))
            else:
                self.records.setdefault(c.case, Counter())[(user, c.action, reason)] += 1

    def field_rows(self, case, model=None, pk=None) -> Counter:
        """(who, field, old, new, reason) as the history table shows them (formatted now: a
        cycle is shown by its current number)."""
        found = Counter()
        for (c, m, p), rows in self.fields.items():
            if c != case or (model is not None and (m, p) != (model, pk)):
                continue
            for user, column, old, new, reason in rows:
                found[(user, verbose(m, column), shown(m, column, old), shown(m, column, new),
                       reason)] += 1  # fmt: skip
        return found

    def record_rows(self, case) -> Counter:
        return Counter(self.records.get(case, Counter()))


def history_table(rows, with_record: bool) -> tuple[Counter, Counter, Counter]:
    """The rows of a rendered history table: (field changes, records created/removed, CRF
    status entries).

    Field changes are (who, field, old, new, reason); created/removed rows (who, action,
    reason); entries about CRF statuses (record "CRF ..." or "6 CRFs (...)": not case data, kept
    apart) (who, reason)."""
    fields, records, statuses = Counter(), Counter(), Counter()
    for cells in rows:
        if len(cells) < 4:  # "No changes recorded."
            continue
        who = cells[1]
        rest = cells[2:]
        if with_record:
            record, rest = rest[0], rest[1:]
            if re.match(r"(CRF |\d+ CRFs \()", record):
                statuses[(who, rest[-1])] += 1
                continue
        if len(rest) == 4:
            fields[(who, rest[0], rest[1], rest[2], rest[3])] += 1
        elif len(rest) == 2 and rest[0].startswith("record "):
            records[(who, rest[0].removeprefix("record "), rest[1])] += 1
    return fields, records, statuses


# --- Monitoring ----------------------------------------------------------------------------------


@dataclass
class QueryState:
    case: int
    crf: str
    status: str  # open, answered, closed


@dataclass
class Monitoring:
    """The monitoring facts the users' actions produced, kept by the test."""

    site_of: dict = field(default_factory=dict)  # case pk -> site code
    complete: set = field(default_factory=set)  # (case, crf) marked complete
    ever_complete: set = field(default_factory=set)  # (case, crf) ever marked complete
    verified: set = field(default_factory=set)  # (case, crf)
    locked_cases: set = field(default_factory=set)
    locked_sites: set = field(default_factory=set)
    signed: set = field(default_factory=set)
    queries: dict = field(default_factory=dict)  # query pk -> QueryState

    @classmethod
    def from_database(cls) -> Monitoring:
        """The demo registry's facts (none are set by seed_demo: read rather than assumed)."""
        from monitoring.models import Query, Signature

        m = cls()
        m.site_of = dict(Patient.objects.values_list("pk", "institution__code"))
        for s in CrfStatus.objects.all():
            key = (s.patient_id, s.crf)
            if s.marked_complete_at:
                m.complete.add(key)
            if s.first_completed_at:
                m.ever_complete.add(key)
            if s.verified_at:
                m.verified.add(key)
            if s.locked_at:
                m.locked_cases.add(s.patient_id)
        m.locked_sites = set(
            Institution.objects.filter(locked_at__isnull=False).values_list("code", flat=True)
        )
        m.signed = set(
            Signature.objects.filter(voided_at__isnull=True).values_list("patient_id", flat=True)
        )
        for q in Query.objects.all():
            m.queries[q.pk] = QueryState(q.patient_id, q.crf, q.status)
        return m

    def unresolved(self, case, crf=None) -> list[int]:
        return [
            pk
            for pk, q in self.queries.items()
            if q.case == case and (crf is None or q.crf == crf) and q.status != "closed"
        ]

    def is_locked(self, case) -> bool:
        return case in self.locked_cases or self.site_of[case] in self.locked_sites

    def needs_reason(self, case, crf) -> bool:
        """Once a CRF was complete, or while a query on it is unresolved, changes need a reason."""
        return (case, crf) in self.ever_complete or bool(self.unresolved(case, crf))

    def case_complete(self, case) -> bool:
        return all((case, crf) in self.complete for crf in CRFS) and not self.unresolved(case)

    def status(self, case, crf, started: bool) -> str:
        """The CRF's status: locked > query open > verified > complete > in progress."""
        if self.is_locked(case):
            return CrfStatus.LOCKED
        if self.unresolved(case, crf):
            return CrfStatus.QUERY_OPEN
        if (case, crf) in self.verified:
            return CrfStatus.VERIFIED
        if (case, crf) in self.complete:
            return CrfStatus.COMPLETE
        return CrfStatus.IN_PROGRESS if started else CrfStatus.NOT_STARTED

    def case_state(self, case) -> dict:
        """The case-state badges the case should show: {class: text}."""
        complete = sum((case, crf) in self.complete for crf in CRFS)
        queries = len(self.unresolved(case))
        state = {}
        if self.is_locked(case):
            state["case-locked"] = "Locked"
        if complete == len(CRFS) and not queries:
            state["case-complete"] = "Case complete"
        else:
            text = f"{complete} of {len(CRFS)} CRFs complete"
            if queries:
                text += f", {queries} open quer{'y' if queries == 1 else 'ies'}"
            state["case-incomplete"] = text
        if all((case, crf) in self.verified for crf in CRFS):
            state["case-verified"] = "Verified"
        return state

    def site_progress(self, site) -> list[str]:
        """The counts of the site's row on /monitoring/, from cases registered to cases signed
        (findings and the last edit-check run are left out)."""
        cases = [c for c, s in self.site_of.items() if s == site]
        queries = [q for q in self.queries.values() if self.site_of.get(q.case) == site]
        unresolved = [q for q in queries if q.status != "closed"]
        return [
            str(len(cases)),
            f"{sum((c, crf) in self.complete for c in cases for crf in CRFS)} / "
            f"{len(CRFS) * len(cases)}",
            str(sum(self.case_complete(c) for c in cases)),
            str(len(unresolved)),
            str(sum(q.status == "answered" for q in unresolved)),
            str(sum((c, crf) in self.verified for c in cases for crf in CRFS)),
            str(sum(self.is_locked(c) for c in cases)),
            str(sum(c in self.signed for c in cases)),
        ]

    def data_changed(self, case, crf):
        """A record of the CRF was created, changed or removed: its verification and the case's
        signature no longer hold."""
        self.verified.discard((case, crf))
        self.signed.discard(case)


def status_from_stored_facts(case: int, crf: str, started: bool) -> str:
    """The CRF's status computed from what is stored beside it (CrfStatus, the queries, the
    site's lock), independently of the stored `status` column."""
    from monitoring.models import Query

    stored = CrfStatus.objects.filter(patient_id=case, crf=crf).first()
    site_locked = Institution.objects.filter(patients=case, locked_at__isnull=False).exists()
    unresolved = Query.objects.filter(patient_id=case, crf=crf, status__in=Query.UNRESOLVED)
    if site_locked or (stored and stored.locked_at):
        return CrfStatus.LOCKED
    if unresolved.exists():
        return CrfStatus.QUERY_OPEN
    if stored and stored.verified_at:
        return CrfStatus.VERIFIED
    if stored and stored.marked_complete_at:
        return CrfStatus.COMPLETE
    return CrfStatus.IN_PROGRESS if started else CrfStatus.NOT_STARTED


def stored_response_mismatches() -> list[str]:
    """Assessments whose stored response is not registry.rules.derive_response of their values."""
    wrong = []
    baselines = dict(Baseline.objects.values_list("patient_id", "marrow_blasts_pct"))
    for a in ResponseAssessment.objects.all():
        base = baselines.get(a.patient_id)

        def f(v):
            return None if v is None else float(v)

        expected = rules.derive_response(
            f(a.marrow_blasts_pct),
            f(a.anc_10e9_per_l),
            f(a.platelets_10e9_per_l),
            a.emd_status,
            f(base),
        )
        if a.response != expected:
            wrong.append(
                f"assessment {a.pk} of case {a.patient_id}: stored {a.response}, rules say "
                f"{expected} (blasts {a.marrow_blasts_pct}, ANC {a.anc_10e9_per_l}, platelets "
                f"{a.platelets_10e9_per_l}, EMD {a.emd_status}, baseline blasts {base})"
            )
    return wrong
