"""The analysis dataset derives the paper's variables from the registry and never writes to it."""

from datetime import date, timedelta

import pandas as pd
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analysis import dataset
from analysis.dataset import DAYS_PER_MONTH, VARIABLES, Cuts, load_registry
from registry.models import Baseline, FollowUp, Patient
from tests import factories as f

pytestmark = pytest.mark.django_db
S = f.START


def day(n):
    return S + timedelta(days=n)


@pytest.fixture
def responder_transplanted():
    """CR after cycle 1, allo-SCT on day 100, relapse on day 200, alive at day 300."""
    p = f.patient(birth_date=None, birth_year=1962)  # mid-year convention: 54 at start
    f.baseline(
        p,
        ecog=2,
        marrow_blasts_pct="50",
        dexamethasone_mg_before="80.5",
        cyto_start_abnormalities_n=5,
    )
    c1 = f.cycle(p)
    f.assessment(p, c1)  # CR
    f.transplant(p, sct_date=day(100))
    f.followup(p, last_contact_date=day(300), relapse_or_progression_date=day(200))
    return p


@pytest.fixture
def early_death():
    """Died of pneumonia on day 14 of cycle 1, before any response assessment."""
    p = f.patient(sex="male")
    f.baseline(p, relapse_site="both", emd_cns=True, salvage_phase=3, prior_therapies_n=3)
    c1 = f.cycle(p, end_date=day(14), outcome="discontinued", discontinuation_reason="death")
    f.followup(
        p,
        last_contact_date=day(14),
        vital_status="dead",
        death_date=day(14),
        death_cause="infection",
    )
    p.refresh_from_db()
    f.adverse_event(
        p,
        c1,
        ctcae_term="Lung infection",
        grade=5,
        onset_date=day(9),
        resolution_date=day(14),
        outcome="fatal",
    )
    return p


@pytest.fixture
def refractory_then_progression():
    """CRi after cycle 1 (counts as responder), PD after cycle 2 on day 72, died day 150."""
    p = f.patient()
    f.baseline(p, marrow_blasts_pct="40")
    c1, c2 = f.cycle(p, 1), f.cycle(p, 2)
    f.assessment(p, c1, anc_10e9_per_l="0.5")  # CRi
    f.assessment(p, c2, marrow_blasts_pct="60", assessment_date=day(72))  # PD: 60 >= 1.25 x 40
    f.followup(
        p,
        last_contact_date=day(150),
        vital_status="dead",
        death_date=day(150),
        death_cause="disease",
    )
    return p


def row(snapshot, patient):
    return snapshot.dataset.set_index("study_id").loc[patient.study_id]


def test_responder_with_transplant_and_relapse(responder_transplanted):
    r = row(load_registry(), responder_transplanted)
    assert (r.best_response, r.responder, r.evaluable, r.allo_sct_after) == ("CR", 1, 1, 1)
    assert (r.efs_days, r.efs_event, r.os_days, r.os_event) == (200, 1, 300, 0)
    assert r.efs_months == pytest.approx(200 / 30.4375)
    assert (r.age_years, r.age_ge_55, r.ecog_ge_2) == (54, 0, 1)
    assert (r.blasts_gt_50, r.dexamethasone_gt_80, r.cyto_risk_start) == (0, 1, "high")
    assert r.response_after_cycle1 == "CR"


def test_death_before_any_assessment_is_not_evaluable(early_death):
    r = row(load_registry(), early_death)
    assert (r.evaluable, r.best_response, r.responder) == (0, "NE", 0)
    assert (r.efs_days, r.efs_event, r.os_days, r.os_event) == (14, 1, 14, 1)
    assert (r.emd, r.cns_disease, r.salvage_ge_2, r.cycles_given) == (1, 1, 1, 1)


def test_progression_at_assessment_is_an_efs_event_and_best_response_wins(
    refractory_then_progression,
):
    r = row(load_registry(), refractory_then_progression)
    assert (r.best_response, r.responder) == ("CRi", 1)
    assert (r.efs_days, r.efs_event, r.os_days, r.os_event) == (72, 1, 150, 1)


def test_without_follow_up_the_patient_is_censored_at_the_latest_record():
    p = f.patient()
    f.baseline(p)
    c1 = f.cycle(p)
    f.assessment(p, c1, assessment_date=day(30))
    r = row(load_registry(), p)
    assert (r.os_days, r.os_event, r.efs_days, r.efs_event) == (30, 0, 30, 0)


def test_cut_points_are_parameters(responder_transplanted):
    r = row(load_registry(cuts=Cuts(age_years=50, dexamethasone_mg=90)), responder_transplanted)
    assert (r.age_ge_55, r.dexamethasone_gt_80) == (1, 0)


def test_dataset_has_the_documented_columns_and_factor(responder_transplanted, early_death):
    snapshot = load_registry()
    assert list(snapshot.dataset.columns) == list(VARIABLES)
    assert DAYS_PER_MONTH == 365.25 / 12
    assert snapshot.adverse_events.to_dict("records")[0] == {
        "study_id": early_death.study_id,
        "ctcae_term": "Lung infection",
        "soc": "Infections and infestations",
        "grade": 5,
        "cycle": 1,
        "onset_date": pd.Timestamp(day(9)),
    }


def test_building_the_dataset_never_writes(responder_transplanted, early_death):
    with CaptureQueriesContext(connection) as queries:
        load_registry()
    writes = [q["sql"] for q in queries if not q["sql"].lstrip().upper().startswith("SELECT")]
    assert writes == []


def test_snapshot_hash_changes_with_the_data_and_only_then(responder_transplanted):
    first = load_registry().content_hash()
    assert load_registry().content_hash() == first
    fu = responder_transplanted.followup
    fu.last_contact_date = day(301)
    fu.save()
    assert load_registry().content_hash() != first


def test_event_dates_and_competing_causes(
    responder_transplanted, early_death, refractory_then_progression
):
    d = load_registry().dataset.set_index("study_id")
    r = d.loc[responder_transplanted.study_id]
    assert (r.sct_days, r.response_days, r.efs_cause) == (100, 29, 1)  # day 27 + 2
    e = d.loc[early_death.study_id]
    assert (pd.isna(e.sct_days), pd.isna(e.response_days), e.efs_cause) == (True, True, 2)
    assert d.loc[refractory_then_progression.study_id].efs_cause == 1


def test_adverse_events_follow_the_dataset_order_then_entry_order():
    # Entered at the second site first: primary-key order is not study ID order.
    second_site = f.patient(site=f.institution("KR02", "Second hospital"))
    first_site = f.patient()
    c1 = f.cycle(second_site)
    f.adverse_event(second_site, c1, ctcae_term="Neutrophil count decreased", grade=4)
    f.adverse_event(first_site, ctcae_term="Cytokine release syndrome", grade=2)
    f.adverse_event(second_site, ctcae_term="Fever", grade=1)
    f.adverse_event(first_site, ctcae_term="Headache", grade=1)
    snapshot = load_registry()
    assert snapshot.dataset["study_id"].tolist() == [first_site.study_id, second_site.study_id]
    events = snapshot.adverse_events
    assert list(zip(events["study_id"], events["ctcae_term"], strict=True)) == [
        (first_site.study_id, "Cytokine release syndrome"),
        (first_site.study_id, "Headache"),
        (second_site.study_id, "Neutrophil count decreased"),
        (second_site.study_id, "Fever"),
    ]
    assert events["cycle"].tolist()[2] == 1 and events["cycle"].isna().tolist() == [
        True,
        True,
        False,
        True,
    ]


def test_without_follow_up_an_adverse_event_can_be_the_latest_record():
    p = f.patient()
    f.baseline(p)
    c1 = f.cycle(p)
    f.assessment(p, c1, assessment_date=day(30))
    f.adverse_event(p, ctcae_term="Fever", grade=1, onset_date=day(45), resolution_date=day(47))
    r = row(load_registry(), p)
    assert (r.os_days, r.os_event) == (47, 0)  # resolved on day 47: alive then


def test_a_snapshot_of_some_patients_equals_their_rows_of_the_whole_registry(
    responder_transplanted, early_death, refractory_then_progression
):
    whole = load_registry()
    chosen = [early_death.pk, refractory_then_progression.pk]
    part = load_registry(Patient.objects.filter(pk__in=chosen))
    ids = [early_death.study_id, refractory_then_progression.study_id]
    expected = whole.dataset[whole.dataset["study_id"].isin(ids)].reset_index(drop=True)
    pd.testing.assert_frame_equal(part.dataset, expected)
    events = whole.adverse_events[whole.adverse_events["study_id"].isin(ids)]
    pd.testing.assert_frame_equal(part.adverse_events, events.reset_index(drop=True))
    assert len(part.dataset) == 2 and len(whole.dataset) == 3


def test_age_is_completed_years_at_the_start_with_mid_year_for_a_birth_year_only():
    cases = {
        (date(1970, 3, 6), 1970, S): 47,  # birthday on the start day
        (date(1970, 3, 7), 1970, S): 46,  # the day after
        (date(1972, 2, 29), 1972, date(2017, 2, 28)): 44,
        (date(1972, 2, 29), 1972, date(2017, 3, 1)): 45,
        (None, 1962, date(2017, 6, 30)): 54,  # 1 July 1962 assumed
        (None, 1962, date(2017, 7, 1)): 55,
    }
    patients = {
        f.patient(birth_date=born, birth_year=year, blinatumomab_start_date=start).study_id: age
        for (born, year, start), age in cases.items()
    }
    d = load_registry().dataset
    assert dict(zip(d["study_id"], d["age_years"], strict=True)) == patients


def test_copy_reads_the_same_frame_as_rows(responder_transplanted, early_death):
    """PostgreSQL's COPY path of the reader and the row path (SQLite's) give equal frames:
    NULL and empty text apart, text with commas, quotes and line breaks, flags, dates."""
    if connection.vendor != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    f.patient(site_case_number='A-1, "left"\nhip')
    f.patient(site_case_number="")
    queries = [
        (
            Patient.objects.order_by("study_id"),
            ["id", "study_id", "institution__code", "site_case_number", "birth_date", "bcp_all"],
        ),
        (
            Baseline.objects.order_by("patient_id"),
            ["patient_id", "emd_cns", "prior_allo_sct", "cyto_dx_risk", "marrow_blasts_pct"],
        ),
        (
            FollowUp.objects.order_by("patient_id"),
            ["patient_id", "last_contact_date", "death_date", "death_cause"],
        ),
    ]
    for queryset, columns in queries:
        by_copy = dataset._frame(queryset, columns, copy=True)
        pd.testing.assert_frame_equal(by_copy, dataset._frame(queryset, columns, copy=False))
    texts = dataset._frame(Patient.objects.order_by("study_id"), ["site_case_number"], copy=True)
    assert texts["site_case_number"].tolist()[-2:] == ['A-1, "left"\nhip', ""]
