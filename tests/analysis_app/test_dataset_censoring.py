"""Every patient's EFS, OS, evaluable and best response follow the documented rules, whichever
case records are present: an alive patient is censored at the latest date on any record of the
case (analysis.dataset.CENSORING_DEFINITION), and evaluable means a determinable response."""

import functools
from datetime import timedelta

import pandas as pd
import pytest
from django.apps import apps
from django.db import IntegrityError, models, transaction

from analysis import dataset
from analysis.dataset import load_registry
from analysis.tables import treatment_flow
from registry.models import FollowUp, Patient, ResponseAssessment, SubsequentTherapy
from tests import factories as f

pytestmark = pytest.mark.django_db
S = f.START


def day(n):
    return S + timedelta(days=n)


def therapy(p, start_date, category=SubsequentTherapy.SALVAGE_CHEMO):
    return f.saved(
        SubsequentTherapy(patient=p, category=category, regimen="FLAG-Ida", start_date=start_date)
    )


def outcome(p):
    r = load_registry().dataset.set_index("study_id").loc[p.study_id]
    return (int(r.efs_days), int(r.efs_event), int(r.os_days), int(r.os_event))


# --- One record type and date field at a time, on data the rules accept ----------------------


def only_the_patient():
    return f.patient(), 0


def prior_transplant_before_start():
    # A date before day 1 never moves the censoring date past day 1.
    p = f.patient()
    f.baseline(p, prior_allo_sct=True, prior_allo_sct_date=day(-200))
    return p, 0


def cycle_end():
    p = f.patient()
    f.cycle(p, end_date=day(27))
    return p, 27


def ongoing_cycle_start():
    p = f.patient()
    f.cycle(p, 1)
    f.cycle(p, 2, start_date=day(42), end_date=None, outcome="ongoing")
    return p, 42


def assessment_date():
    p = f.patient()
    c1 = f.cycle(p)
    f.assessment(p, c1, assessment_date=day(33), marrow_blasts_pct=None)  # NE: no event
    return p, 33


def adverse_event_onset():
    p = f.patient()
    f.cycle(p)
    f.adverse_event(p, onset_date=day(38), resolution_date=None, outcome="not_recovered")
    return p, 38


def adverse_event_resolution():
    p = f.patient()
    f.cycle(p)
    f.adverse_event(p, onset_date=day(20), resolution_date=day(61))
    return p, 61


def transplant_date():
    p = f.patient()
    c1 = f.cycle(p)
    f.assessment(p, c1)
    f.transplant(p, sct_date=day(95))
    return p, 95


def subsequent_therapy_start():
    p = f.patient()
    f.cycle(p)
    therapy(p, day(77))
    return p, 77


def last_contact():
    p = f.patient()
    f.cycle(p)
    f.transplant(p, sct_date=day(95))
    f.followup(p, last_contact_date=day(240))
    return p, 240


@pytest.mark.parametrize(
    "build",
    [
        only_the_patient,
        prior_transplant_before_start,
        cycle_end,
        ongoing_cycle_start,
        assessment_date,
        adverse_event_onset,
        adverse_event_resolution,
        transplant_date,
        subsequent_therapy_start,
        last_contact,
    ],
)
def test_an_alive_patient_is_censored_at_the_latest_record_date(build):
    p, days = build()
    assert outcome(p) == (days, 0, days, 0)


@pytest.mark.parametrize(
    ("record", "days"),
    [("transplant", 130), ("therapy", 150), ("ae_resolution", 110), ("assessment", 101)],
)
def test_a_record_after_the_follow_ups_last_contact_is_the_censoring_date(record, days):
    """The follow-up CRF says last contact on day 90, another record shows the patient alive
    later: that record's date is the later contact and the censoring date."""
    p = f.patient()
    c1 = f.cycle(p)
    f.followup(p, last_contact_date=day(90))
    if record == "transplant":
        f.transplant(p, sct_date=day(days))
    elif record == "therapy":
        therapy(p, day(days))
    elif record == "ae_resolution":
        f.adverse_event(p, onset_date=day(60), resolution_date=day(days))
    else:
        f.assessment(p, c1, assessment_date=day(days), marrow_blasts_pct=None)
    assert outcome(p) == (days, 0, days, 0)


def test_relapse_on_follow_up_ends_efs_and_os_runs_to_the_latest_record():
    p = f.patient()
    f.cycle(p)
    f.followup(p, last_contact_date=day(180), relapse_or_progression_date=day(70))
    therapy(p, day(190))  # salvage after the relapse, after the last contact
    assert outcome(p) == (70, 1, 190, 0)


def test_death_ends_efs_and_os_whatever_the_other_dates():
    p = f.patient()
    f.cycle(p)
    f.transplant(p, sct_date=day(100))
    f.followup(
        p,
        last_contact_date=day(160),
        vital_status=FollowUp.DEAD,
        death_date=day(160),
        death_cause="transplant_related",
    )
    assert outcome(p) == (160, 1, 160, 1)


def test_a_progression_at_an_assessment_ends_efs_without_a_follow_up():
    p = f.patient()
    f.baseline(p, marrow_blasts_pct="40")
    c1 = f.cycle(p)
    f.assessment(p, c1, marrow_blasts_pct="60", assessment_date=day(30))  # PD
    f.transplant(p, sct_date=day(90))
    assert outcome(p) == (30, 1, 90, 0)


# --- Every date field of every case model counts ----------------------------------------------


def case_date_fields():
    """(model, field) for every calendar date of the case's records, found independently of the
    dataset code: Patient and every registry model linked to one patient (not the history
    tables), DateFields that are not DateTimeFields (entry timestamps)."""
    found = []
    for model in apps.get_app_config("registry").get_models():
        names = {fld.name for fld in model._meta.concrete_fields}
        if "history_id" in names:
            continue
        link = next((x for x in model._meta.concrete_fields if x.name == "patient"), None)
        if model is not Patient and (link is None or link.related_model is not Patient):
            continue
        for fld in model._meta.concrete_fields:
            if isinstance(fld, models.DateField) and not isinstance(fld, models.DateTimeField):
                found.append((model, fld.name))
    return found


def a_case_with_every_record(dead=False):
    """Every record type, every date at most day 50; alive (last contact day 50) or dead."""
    p = f.patient()
    f.baseline(p, prior_allo_sct=True, prior_allo_sct_date=day(-300))
    c1 = f.cycle(p, end_date=day(27))
    f.assessment(p, c1, assessment_date=day(29), marrow_blasts_pct=None)  # NE
    f.adverse_event(p, c1, onset_date=day(3), resolution_date=day(9))
    f.transplant(p, sct_date=day(45))
    therapy(p, day(47), category="other")
    if dead:
        f.followup(
            p,
            last_contact_date=day(50),
            vital_status=FollowUp.DEAD,
            death_date=day(50),
            death_cause="other",
        )
    else:
        f.followup(p, last_contact_date=day(50))
    return p


def test_every_date_field_of_every_case_record_moves_the_censoring_date():
    """Each date of each case record, set alone to day 400 (past the rules, as a QuerySet.update
    would), makes day 400 the patient's last date: none is left out of the censoring date. The
    origin is day 1 itself, and the diagnosis date cannot follow it (a database constraint)."""
    fields = case_date_fields()
    expected_at_least = {
        ("Patient", "birth_date"),
        ("Patient", "diagnosis_date"),
        ("Patient", "blinatumomab_start_date"),
        ("Baseline", "prior_allo_sct_date"),
        ("Cycle", "start_date"),
        ("Cycle", "end_date"),
        ("ResponseAssessment", "assessment_date"),
        ("AdverseEvent", "onset_date"),
        ("AdverseEvent", "resolution_date"),
        ("Transplant", "sct_date"),
        ("SubsequentTherapy", "start_date"),
        ("FollowUp", "last_contact_date"),
        ("FollowUp", "relapse_or_progression_date"),
        ("FollowUp", "death_date"),
    }
    assert expected_at_least <= {(m.__name__, name) for m, name in fields}
    refused = set()
    for model, name in fields:
        if name == "blinatumomab_start_date":
            continue  # the origin: checked by only_the_patient above
        p = a_case_with_every_record(dead=name == "death_date")
        assert outcome(p) == ((50, 1, 50, 1) if name == "death_date" else (50, 0, 50, 0))
        rows = (
            model.objects.filter(pk=p.pk) if model is Patient else model.objects.filter(patient=p)
        )
        # The record's other nullable dates go, so the row's own order constraints hold.
        others = {
            fld.name: None
            for fld in model._meta.concrete_fields
            if isinstance(fld, models.DateField)
            and fld.null
            and fld.name not in (name, "death_date")
        }
        try:
            with transaction.atomic():
                rows.update(**{name: day(400)}, **others)
        except IntegrityError:
            refused.add((model.__name__, name))
            continue
        efs_days, efs_event, os_days, os_event = outcome(p)
        assert (efs_days, os_days) == (400, 400), (model.__name__, name)
        # Relapse and death are events; every other date only shows the patient alive.
        assert efs_event == int(name in ("relapse_or_progression_date", "death_date")), name
        assert os_event == int(name == "death_date"), name
    assert refused == {("Patient", "diagnosis_date")}


def test_the_dataset_reads_the_date_fields_the_models_have():
    found = {(m, name) for m in dataset.case_record_models() for name in dataset.date_fields(m)}
    assert found == set(case_date_fields())


# --- Evaluable: a determinable response -------------------------------------------------------


def test_assessed_without_a_determinable_response_is_not_evaluable():
    p = f.patient()
    f.baseline(p)
    c1, c2 = f.cycle(p, 1), f.cycle(p, 2)
    f.assessment(p, c1, marrow_blasts_pct=None)  # marrow not assessed: NE
    f.assessment(p, c2, anc_10e9_per_l=None)  # blasts < 5% without ANC: NE
    r = load_registry().dataset.set_index("study_id").loc[p.study_id]
    assert (r.response_assessed, r.evaluable, r.best_response, r.responder) == (1, 0, "NE", 0)


def test_one_determinable_response_among_ne_makes_the_patient_evaluable():
    p = f.patient()
    f.baseline(p)
    c1, c2 = f.cycle(p, 1), f.cycle(p, 2)
    f.assessment(p, c1, marrow_blasts_pct=None)  # NE
    f.assessment(p, c2, marrow_blasts_pct="30")  # NR
    r = load_registry().dataset.set_index("study_id").loc[p.study_id]
    assert (r.response_assessed, r.evaluable, r.best_response) == (1, 1, "NR")


def test_flow_tells_death_before_assessment_from_an_assessment_without_a_response():
    died_first = f.patient()
    f.cycle(died_first, end_date=day(10), outcome="discontinued", discontinuation_reason="death")
    f.followup(
        died_first,
        last_contact_date=day(10),
        vital_status=FollowUp.DEAD,
        death_date=day(10),
        death_cause="infection",
    )
    assessed_then_died = f.patient()
    c1 = f.cycle(assessed_then_died)
    f.assessment(assessed_then_died, c1, marrow_blasts_pct=None)  # NE on day 29
    f.followup(
        assessed_then_died,
        last_contact_date=day(40),
        vital_status=FollowUp.DEAD,
        death_date=day(40),
        death_cause="disease",
    )
    not_yet = f.patient()
    f.cycle(not_yet, start_date=S, end_date=None, outcome="ongoing")
    evaluable = f.patient()
    f.assessment(evaluable, f.cycle(evaluable))  # CR
    flow = treatment_flow(load_registry().dataset).set_index("step")["n"].to_dict()
    assert {
        k: flow[k]
        for k in [
            "treated",
            "died_before_assessment",
            "alive_not_assessed",
            "assessed_not_determinable",
            "evaluable",
        ]
    } == {
        "treated": 4,
        "died_before_assessment": 1,
        "alive_not_assessed": 1,
        "assessed_not_determinable": 1,
        "evaluable": 1,
    }


# --- A cohort with every combination of record types present or absent ------------------------

LABS = {
    "CR": {"marrow_blasts_pct": "2"},
    "CRi": {"marrow_blasts_pct": "2", "anc_10e9_per_l": "0.5"},
    "NR": {"marrow_blasts_pct": "30"},
    "PD": {"marrow_blasts_pct": "30", "emd_status": "progressive"},
    "NE": {"marrow_blasts_pct": None},
}
RESPONSE_PATTERNS = [["NE"], ["CR"], ["NR", "PD"], ["NE", "CRi"], ["PD", "CR"], ["NE", "NE"]]
RECORD_TYPES = ["baseline", "cycles", "assessments", "adverse_events", "sct", "therapy", "fu"]


def build_case(i, present):
    """One patient with the record types of `present` (variants chosen by i); returns the
    patient and every date and response entered, for the expectations."""
    p = f.patient()
    dates = [p.birth_date, p.diagnosis_date, S]
    responses, relapse, death = [], None, None
    if "baseline" in present:
        prior = i % 2 == 0
        f.baseline(
            p,
            marrow_blasts_pct="81",
            prior_allo_sct=prior,
            prior_allo_sct_date=day(-400) if prior else None,
        )
        dates += [day(-400)] if prior else []
    cycles = []
    if "cycles" in present:
        ongoing = i % 3 == 0
        cycles.append(f.cycle(p, 1, end_date=day(20 + i % 9)))
        if i % 3 != 2:
            cycles.append(
                f.cycle(
                    p,
                    2,
                    start_date=day(42),
                    end_date=None if ongoing else day(69),
                    outcome="ongoing" if ongoing else "completed",
                )
            )
        dates += [c.start_date for c in cycles] + [c.end_date for c in cycles if c.end_date]
    if "assessments" in present:
        for k, response in enumerate(RESPONSE_PATTERNS[i % len(RESPONSE_PATTERNS)]):
            cycle = cycles[min(k, len(cycles) - 1)]
            when = day(30 + 40 * k + i % 5)
            labs = {"anc_10e9_per_l": "1.8", "platelets_10e9_per_l": "140", **LABS[response]}
            # Built here: the factory dates an assessment from its cycle's end (none if ongoing).
            f.saved(ResponseAssessment(patient=p, cycle=cycle, assessment_date=when, **labs))
            dates.append(when)
            responses.append((when, response))
    if "adverse_events" in present:
        onset = day(2 + i % 30)
        resolution = None if i % 2 else onset + timedelta(days=3 + i % 70)
        f.adverse_event(
            p,
            onset_date=onset,
            resolution_date=resolution,
            outcome="not_recovered" if resolution is None else "recovered",
        )
        dates += [onset] + ([resolution] if resolution else [])
    if "sct" in present:
        dates.append(f.transplant(p, sct_date=day(85 + i % 23)).sct_date)
    if "therapy" in present:
        dates.append(therapy(p, day(95 + i % 37)).start_date)
    if "fu" in present:
        kind = i % 4
        if kind == 0:  # alive, last contact possibly before other records
            fu = f.followup(p, last_contact_date=day(60 + i % 11))
        elif kind == 1:  # relapsed, alive
            relapse = day(50 + i % 7)
            fu = f.followup(p, last_contact_date=day(200), relapse_or_progression_date=relapse)
        elif kind == 2:  # dead after everything else
            death = max(dates) + timedelta(days=3)
            fu = f.followup(
                p,
                last_contact_date=death,
                vital_status=FollowUp.DEAD,
                death_date=death,
                death_cause="disease",
            )
        else:  # lost to follow-up
            fu = f.followup(p, last_contact_date=day(150), vital_status=FollowUp.LOST)
        dates += [d for d in (fu.last_contact_date, relapse, death) if d]
    return p, dates, responses, relapse, death


def expected_row(dates, responses, relapse, death):
    """The documented rules, restated independently of analysis.dataset."""
    last = max(dates)
    order = ["CR", "CRi", "NR", "PD"]
    reached = [r for _, r in responses if r in order]
    best = min(reached, key=order.index) if reached else "NE"
    pds = [when for when, r in sorted(responses) if r == "PD"]
    efs_candidates = [d for d in (relapse, pds[0] if pds else None, death) if d]
    efs_end = min(efs_candidates) if efs_candidates else last
    return {
        "response_assessed": int(bool(responses)),
        "evaluable": int(bool(reached)),
        "best_response": best,
        "responder": int(best in ("CR", "CRi")),
        "efs_days": (efs_end - S).days,
        "efs_event": int(bool(efs_candidates)),
        "os_days": ((death or last) - S).days,
        "os_event": int(death is not None),
    }


def test_every_patient_of_a_cohort_with_records_present_or_absent_follows_the_rules(monkeypatch):
    expected = {}
    for i in range(2 ** len(RECORD_TYPES)):
        present = {t for bit, t in enumerate(RECORD_TYPES) if i >> bit & 1}
        if "assessments" in present and "cycles" not in present:
            continue  # an assessment follows a cycle
        p, *facts = build_case(i, present)
        expected[p.study_id] = expected_row(*facts)
    assert len(expected) == 96
    got = load_registry().dataset.set_index("study_id")[list(next(iter(expected.values())))]
    wanted = pd.DataFrame.from_dict(expected, orient="index")
    pd.testing.assert_frame_equal(
        got.astype(object), wanted.loc[got.index].astype(object), check_names=False
    )
    # The same dataset from both readers: rows (SQLite's) and the default (COPY on PostgreSQL).
    default = load_registry().dataset
    monkeypatch.setattr(dataset, "_frame", functools.partial(dataset._frame, copy=False))
    pd.testing.assert_frame_equal(load_registry().dataset, default)


def test_a_case_without_a_baseline_crf_keeps_its_follow_up():
    """The follow-up is joined on the patient, not through the baseline row."""
    p = f.patient()
    f.cycle(p)
    f.followup(
        p,
        last_contact_date=day(120),
        vital_status=FollowUp.DEAD,
        death_date=day(120),
        death_cause="disease",
        relapse_or_progression_date=day(64),
    )
    r = load_registry().dataset.set_index("study_id").loc[p.study_id]
    assert (r.efs_days, r.efs_event, r.efs_cause, r.os_days, r.os_event) == (64, 1, 1, 120, 1)
