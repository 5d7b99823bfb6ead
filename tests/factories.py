"""Builders for realistic cases, saved through full_clean() so every fixture obeys the rules."""

from datetime import date, timedelta

from django.contrib.auth import get_user_model

from registry.models import (
    AdverseEvent,
    Baseline,
    Cycle,
    FollowUp,
    Institution,
    Membership,
    Patient,
    ResponseAssessment,
    Transplant,
)

START = date(2017, 3, 6)


def saved(obj):
    obj.full_clean()
    obj.save()
    return obj


def institution(code="KR01", name="Chonnam National University Hwasun Hospital"):
    return Institution.objects.get_or_create(code=code, defaults={"name": name})[0]


def user(username, role=Membership.INVESTIGATOR, sites=("KR01",), password="pw-for-tests-1"):
    u = get_user_model().objects.create_user(username=username, password=password)
    for code in sites:
        Membership.objects.create(user=u, institution=institution(code), role=role)
    return u


def patient(site=None, **overrides):
    values = dict(
        institution=site or institution(),
        sex=Patient.FEMALE,
        birth_year=1972,
        birth_date=date(1972, 4, 15),
        diagnosis_date=date(2015, 11, 2),
        blinatumomab_start_date=START,
    )
    values.update(overrides)
    return saved(Patient(**values))


def baseline(p, **overrides):
    values = dict(
        patient=p,
        ecog=1,
        salvage_phase=1,
        prior_therapies_n=1,
        relapse_site=Baseline.MARROW_ONLY,
        marrow_blasts_pct="81",
        pb_blasts_per_ul=2400,
        cyto_dx_done=True,
        cyto_dx_abnormalities_n=1,
        cyto_dx_modal_number=46,
        cyto_start_done=True,
        cyto_start_abnormalities_n=2,
        cyto_start_modal_number=46,
        prephase_regimen="dex",
        dexamethasone_mg_before=80,
    )
    values.update(overrides)
    return saved(Baseline(**values))


def cycle(p, number=1, **overrides):
    start = p.blinatumomab_start_date + timedelta(days=42 * (number - 1))
    values = dict(
        patient=p,
        number=number,
        start_date=start,
        end_date=start + timedelta(days=27),
        outcome=Cycle.COMPLETED,
        **Cycle.planned_doses(number),
    )
    values.update(overrides)
    return saved(Cycle(**values))


def assessment(p, c, **overrides):
    values = dict(
        patient=p,
        cycle=c,
        assessment_date=c.end_date + timedelta(days=2),
        marrow_blasts_pct="2",
        anc_10e9_per_l="1.8",
        platelets_10e9_per_l="140",
    )
    values.update(overrides)
    return saved(ResponseAssessment(**values))


def adverse_event(p, c=None, **overrides):
    values = dict(
        patient=p,
        cycle=c,
        ctcae_term="Cytokine release syndrome",
        grade=3,
        onset_date=p.blinatumomab_start_date + timedelta(days=2),
        resolution_date=p.blinatumomab_start_date + timedelta(days=6),
        serious=True,
        attribution="probable",
        action_taken="interrupted",
        outcome="recovered",
    )
    values.update(overrides)
    return saved(AdverseEvent(**values))


def followup(p, **overrides):
    values = dict(
        patient=p,
        last_contact_date=p.blinatumomab_start_date + timedelta(days=240),
        vital_status=FollowUp.ALIVE,
    )
    values.update(overrides)
    return saved(FollowUp(**values))


def transplant(p, **overrides):
    values = dict(
        patient=p,
        sct_date=p.blinatumomab_start_date + timedelta(days=100),
        donor_type="matched_sibling",
    )
    values.update(overrides)
    return saved(Transplant(**values))
