"""The case report forms: every model rule shows as a field message and saves nothing."""

import json
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from crispy_forms.utils import render_crispy_form
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from registry import forms, rules
from registry.models import (
    AdverseEvent,
    Baseline,
    Cycle,
    FollowUp,
    Patient,
    ResponseAssessment,
    SubsequentTherapy,
    Transplant,
)
from tests import factories as f

pytestmark = pytest.mark.django_db

FORMS = {
    Patient: forms.PatientForm,
    Baseline: forms.BaselineForm,
    Cycle: forms.CycleForm,
    ResponseAssessment: forms.AssessmentForm,
    AdverseEvent: forms.AdverseEventForm,
    Transplant: forms.TransplantForm,
    SubsequentTherapy: forms.SubsequentTherapyForm,
    FollowUp: forms.FollowUpForm,
}


def form_data(record, **changes):
    """What the browser posts for `record` (saved or not) with `changes` typed over it."""
    form = FORMS[type(record)](instance=record)
    data = {}
    for name in form.fields:
        value = changes.get(name, form[name].value())
        value = getattr(value, "pk", value)
        if value is True:
            data[name] = "on"
        elif value is not None and value is not False:
            data[name] = value.isoformat() if isinstance(value, date) else str(value)
    for name, value in changes.items():
        if value is None or value is False:
            data.pop(name, None)
    # The hidden version field is always posted, empty when the form had no saved record.
    data.setdefault("version", "")
    return data


def url(name, *args):
    return reverse(f"registry:{name}", args=args)


@pytest.fixture
def investigator(client):
    user = f.user("inv")
    client.force_login(user)
    return user


@pytest.fixture
def case():
    p = f.patient()
    f.baseline(p)
    return p


def errors(response):
    return response.context["form"].errors


# --- Registration -------------------------------------------------------------------------------

REGISTRATION = {
    "relapsed_refractory": "on",
    "bcp_all": "on",
    "ph_negative": "on",
    "cd19_positive": "on",
    "birth_year": "1972",
    "birth_date": "1972-04-15",
    "blinatumomab_start_date": "2017-03-06",
    "sex": "female",
    "diagnosis_date": "2015-11-02",
}


def test_registering_an_eligible_patient_assigns_the_study_id(client, investigator):
    data = {**REGISTRATION, "institution": f.institution().pk}
    response = client.post(url("register"), data)
    p = Patient.objects.get()
    assert response["Location"] == url("case", p.pk)
    assert p.study_id == "KR01-001"
    assert p.history.get().history_user == investigator


@pytest.mark.parametrize(
    "change, field",
    [
        ({"relapsed_refractory": None}, "relapsed_refractory"),
        ({"bcp_all": None}, "bcp_all"),
        ({"ph_negative": None}, "ph_negative"),
        ({"cd19_positive": None}, "cd19_positive"),
        ({"burkitt": "on"}, "burkitt"),
        ({"birth_year": "1998", "birth_date": "1998-03-07"}, "birth_year"),  # 18 at start
    ],
)
def test_an_ineligible_patient_is_refused_with_the_reason(client, investigator, change, field):
    data = {**REGISTRATION, "institution": f.institution().pk, **change}
    data = {k: v for k, v in data.items() if v is not None}
    response = client.post(url("register"), data)
    assert response.status_code == 200
    assert errors(response)[field][0].startswith("Not eligible: ")
    reasons = [reason for _field, reason in response.context["failures"]]
    assert len(reasons) == 1 and reasons[0] in errors(response)[field][0]
    assert b"Not registered: this patient is not eligible" in response.content
    assert not Patient.objects.exists()


def test_registration_offers_only_the_investigators_sites(client, investigator):
    f.institution("KR02", "Korea University Ansan Hospital")
    form = client.get(url("register")).context["form"]
    assert [i.code for i in form.fields["institution"].queryset] == ["KR01"]


def test_the_registration_data_are_edited_on_the_case(client, investigator, case):
    response = client.post(
        url("single_record", case.pk, "registration"), form_data(case, site_case_number="H-17")
    )
    assert response.status_code == 302
    case.refresh_from_db()
    assert (case.site_case_number, case.version) == ("H-17", 2)
    too_early = form_data(case, diagnosis_date="2017-04-01")
    response = client.post(url("single_record", case.pk, "registration"), too_early)
    assert "before the diagnosis" in errors(response)["blinatumomab_start_date"][0]


# --- Baseline -----------------------------------------------------------------------------------


def test_baseline_saves_and_derives_the_cytogenetic_risk(client, investigator):
    p = f.patient()
    data = form_data(
        Baseline(
            ecog=1,
            salvage_phase=1,
            prior_therapies_n=2,
            relapse_site="marrow",
            marrow_blasts_pct=Decimal("60"),
            cyto_dx_abnormalities_n=5,
            cyto_dx_modal_number=46,
            cyto_start_abnormalities_n=0,
            cyto_start_modal_number=46,
            dexamethasone_mg_before=Decimal("40"),
        ),
        cyto_risk="standard",  # not a field: a derived value cannot be posted
    )
    assert client.post(url("single_record", p.pk, "baseline"), data).status_code == 302
    assert (p.baseline.cyto_dx_risk, p.baseline.cyto_start_risk) == ("high", "standard")


def test_baseline_rules_show_per_field_and_save_nothing(client, investigator):
    p = f.patient()
    data = form_data(
        Baseline(
            ecog=1,
            salvage_phase=1,
            prior_therapies_n=1,
            relapse_site="both",
            marrow_blasts_pct=Decimal("30"),
            prior_allo_sct=True,
            prior_allo_sct_date=p.blinatumomab_start_date,  # patient-dependent rule
            cyto_dx_done=True,
            cyto_start_done=False,
            dexamethasone_mg_before=Decimal("0"),
        )
    )
    response = client.post(url("single_record", p.pk, "baseline"), data)
    e = errors(response)
    assert "A prior SCT must be before blinatumomab start" in e["prior_allo_sct_date"][0]
    assert e["relapse_site"] == ["Tick at least one extramedullary site."]
    assert "Required when cytogenetics were done" in e["cyto_dx_abnormalities_n"][0]
    assert not Baseline.objects.exists()


# --- Cycles -------------------------------------------------------------------------------------


def test_a_new_cycle_is_prefilled_from_the_label(client, investigator, case):
    first = client.get(url("record_new", case.pk, "cycles")).context["form"]
    assert first["number"].value() == 1
    assert first["start_date"].value() == case.blinatumomab_start_date
    assert {k: first[k].value() for k in Cycle.planned_doses(1)} == Cycle.planned_doses(1)
    f.cycle(case, 1)
    second = client.get(url("record_new", case.pk, "cycles")).context["form"]
    assert second["number"].value() == 2
    assert {k: second[k].value() for k in Cycle.planned_doses(2)} == Cycle.planned_doses(2)


def test_cycle_rules_need_the_patient_and_save_nothing(client, investigator, case):
    cycle = Cycle(
        number=1,
        start_date=case.blinatumomab_start_date + timedelta(days=1),
        end_date=case.blinatumomab_start_date + timedelta(days=28),
        outcome=Cycle.COMPLETED,
        **Cycle.planned_doses(1),
    )
    response = client.post(url("record_new", case.pk, "cycles"), form_data(cycle))
    assert "Cycle 1 starts on the blinatumomab start date" in errors(response)["start_date"][0]
    assert not Cycle.objects.exists()
    data = form_data(cycle, start_date=case.blinatumomab_start_date)
    assert client.post(url("record_new", case.pk, "cycles"), data).status_code == 302
    assert case.cycles.get().version == 1


def test_a_cycle_number_is_entered_once(client, investigator, case):
    c1 = f.cycle(case, 1)
    response = client.post(url("record_new", case.pk, "cycles"), form_data(c1, version=None))
    assert errors(response)["number"] == ["Cycle 1 is already entered."]
    assert case.cycles.count() == 1


# --- Response assessments -----------------------------------------------------------------------


def new_assessment(of_cycle, **values):
    values = {
        "cycle": of_cycle.pk,
        "assessment_date": of_cycle.end_date + timedelta(days=2),
        "marrow_blasts_pct": Decimal("2"),
        "anc_10e9_per_l": Decimal("0.8"),
        "platelets_10e9_per_l": Decimal("140"),
        **values,
    }
    return form_data(ResponseAssessment(patient=of_cycle.patient), **values)


def test_the_response_is_derived_by_the_server_never_posted(client, investigator, case):
    c = f.cycle(case)
    data = {**new_assessment(c, cycle=c.pk), "response": rules.CR}
    assert client.post(url("record_new", case.pk, "assessments"), data).status_code == 302
    assert case.assessments.get().response == rules.CRI


def test_a_save_does_not_re_check_the_check_constraints_in_sql(client, investigator, case):
    """Model validation skips the CheckConstraints (clean() and the field validators state the
    same rules with field-level messages; the database enforces them on write). Django would
    otherwise run a SELECT per constraint, in a savepoint, on every save."""
    c = f.cycle(case)
    with CaptureQueriesContext(connection) as queries:
        response = client.post(url("record_new", case.pk, "assessments"), new_assessment(c))
    assert response.status_code == 302
    assert [q["sql"] for q in queries if '"_check"' in q["sql"]] == []
    # the rules themselves still hold: a blast count over 100 is refused ...
    bad = client.post(
        url("record_new", case.pk, "assessments"), new_assessment(c, marrow_blasts_pct="101")
    )
    assert "less than or equal to 100" in errors(bad)["marrow_blasts_pct"][0]
    # ... and the database refuses what bypasses validation
    with pytest.raises(IntegrityError), transaction.atomic():
        ResponseAssessment.objects.filter(pk=case.assessments.get().pk).update(
            marrow_blasts_pct=Decimal("101")
        )


def test_assessment_rules_show_per_field_and_save_nothing(client, investigator, case):
    c = f.cycle(case)
    data = new_assessment(
        c,
        cycle=c.pk,
        assessment_date=c.start_date - timedelta(days=1),
        marrow_blasts_pct="150",
        anc_10e9_per_l="-1",
    )
    response = client.post(url("record_new", case.pk, "assessments"), data)
    e = errors(response)
    assert "before blinatumomab start" in e["assessment_date"][0]
    assert "less than or equal to 100" in e["marrow_blasts_pct"][0]
    assert "greater than or equal to 0" in e["anc_10e9_per_l"][0]
    assert not ResponseAssessment.objects.exists()


def test_an_assessment_cannot_follow_another_cases_cycle(client, investigator, case):
    other = f.patient()
    foreign_cycle = f.cycle(other)
    data = new_assessment(foreign_cycle, cycle=foreign_cycle.pk)
    response = client.post(url("record_new", case.pk, "assessments"), data)
    assert "valid choice" in errors(response)["cycle"][0]
    assert not ResponseAssessment.objects.exists()


@pytest.mark.parametrize(
    "values, expected",
    [
        ({"marrow_blasts_pct": "2", "anc_10e9_per_l": "1.01", "platelets_10e9_per_l": "101"}, "CR"),
        ({"marrow_blasts_pct": "2", "anc_10e9_per_l": "1.0", "platelets_10e9_per_l": "140"}, "CRi"),
        ({"marrow_blasts_pct": "2", "anc_10e9_per_l": "1.8", "platelets_10e9_per_l": "100"}, "CRi"),
        ({"marrow_blasts_pct": "5.0", "anc_10e9_per_l": "2", "platelets_10e9_per_l": "200"}, "NR"),
        ({"marrow_blasts_pct": "", "anc_10e9_per_l": "2", "platelets_10e9_per_l": "200"}, "NE"),
        ({"marrow_blasts_pct": "2", "anc_10e9_per_l": "", "platelets_10e9_per_l": "200"}, "NE"),
        ({"marrow_blasts_pct": "2", "emd_status": "progressive"}, "PD"),
        ({"marrow_blasts_pct": "2", "anc_10e9_per_l": "2", "emd_status": "persistent"}, "NR"),
        ({"marrow_blasts_pct": "90", "anc_10e9_per_l": "2", "platelets_10e9_per_l": "20"}, "NR"),
        ({"marrow_blasts_pct": "100"}, "NR"),  # baseline 81%: 100 is less than a quarter more
    ],
)
def test_the_live_response_endpoint_runs_the_rule(client, investigator, case, values, expected):
    answer = client.get(url("derive_response", case.pk), values).json()
    assert answer["response"] == expected
    assert answer["label"] == dict(rules.RESPONSE_CHOICES)[expected]


def test_the_live_response_endpoint_answers_nothing_for_garbage(client, investigator, case):
    for junk in ("abc", "NaN", "Infinity"):
        answer = client.get(url("derive_response", case.pk), {"marrow_blasts_pct": junk}).json()
        assert answer["response"] == ""


def test_the_assessment_page_shows_the_live_response_box(client, investigator, case):
    f.cycle(case)
    page = client.get(url("record_new", case.pk, "assessments"))
    assert b'id="derived-response"' in page.content
    assert url("derive_response", case.pk).encode() in page.content
    assert b"js/response.js" in page.content


# --- Adverse events -----------------------------------------------------------------------------


def new_event(p, **values):
    values = {
        "ctcae_term": "Cytokine release syndrome",
        "grade": 3,
        "onset_date": p.blinatumomab_start_date + timedelta(days=2),
        "resolution_date": p.blinatumomab_start_date + timedelta(days=6),
        "attribution": "probable",
        "action_taken": "interrupted",
        "outcome": "recovered",
        **values,
    }
    return form_data(AdverseEvent(patient=p), **values)


def test_a_grade_3_cytokine_release_syndrome_is_saved(client, investigator, case):
    c = f.cycle(case)
    data = new_event(case, cycle=c.pk, serious=True)
    assert client.post(url("record_new", case.pk, "adverse-events"), data).status_code == 302
    ae = case.adverse_events.get()
    assert (ae.ctcae_term, ae.grade, ae.cycle, ae.serious) == (
        "Cytokine release syndrome",
        3,
        c,
        True,
    )


def test_a_grade_that_does_not_exist_for_the_term_is_refused(client, investigator, case):
    data = new_event(case, ctcae_term="Febrile neutropenia", grade=2)
    response = client.post(url("record_new", case.pk, "adverse-events"), data)
    assert errors(response)["grade"] == [
        "CTCAE v4.03 defines Febrile neutropenia only at grade(s) 3, 4, 5; grade 2 does not exist."
    ]
    assert not AdverseEvent.objects.exists()


def test_adverse_event_rules_show_per_field_and_save_nothing(client, investigator, case):
    cases = [
        ({"ctcae_term": "Headache of doom"}, "ctcae_term", "is not a CTCAE v4.03 term"),
        ({"grade": 5, "outcome": "fatal"}, "grade", "record the death in follow-up first"),
        ({"grade": 4, "outcome": "fatal"}, "grade", "A fatal event is grade 5."),
        (
            {"ctcae_term": "Infections and infestations - Other, specify"},
            "other_specify",
            "Name the event",
        ),
        (
            {"resolution_date": date(2017, 3, 1)},
            "resolution_date",
            "resolves before its onset",
        ),
    ]
    for change, field, message in cases:
        response = client.post(
            url("record_new", case.pk, "adverse-events"), new_event(case, **change)
        )
        assert message in " ".join(errors(response)[field]), change
    assert not AdverseEvent.objects.exists()


def test_the_ae_page_offers_the_ctcae_pick_list_with_grades(client, investigator, case):
    page = client.get(url("record_new", case.pk, "adverse-events"))
    html = page.content.decode()
    assert 'list="ctcae-terms"' in html and '<option value="Febrile neutropenia">' in html
    embedded = re.search(r'<script id="ctcae-dictionary"[^>]*>(.*?)</script>', html)
    dictionary = json.loads(embedded.group(1))  # what static/js/ctcae.js reads
    assert dictionary["Febrile neutropenia"]["grades"] == [3, 4, 5]
    assert dictionary["Cytokine release syndrome"]["definitions"]["3"].startswith("Prolonged")
    assert 'id="ctcae-dictionary"' in html and "js/ctcae.js" in html


# --- Transplant, subsequent therapy, follow-up --------------------------------------------------


def test_transplant_subsequent_therapy_and_follow_up_rules(client, investigator, case):
    early = case.blinatumomab_start_date - timedelta(days=1)
    sct = form_data(Transplant(patient=case, sct_date=early, donor_type="haploidentical"))
    response = client.post(url("single_record", case.pk, "transplant"), sct)
    assert "before blinatumomab start" in errors(response)["sct_date"][0]
    therapy = SubsequentTherapy(patient=case, category="other", regimen="Ino", start_date=early)
    response = client.post(url("record_new", case.pk, "subsequent-therapies"), form_data(therapy))
    assert "before blinatumomab start" in errors(response)["start_date"][0]
    f.cycle(case)  # ends on day 28
    death = case.blinatumomab_start_date + timedelta(days=10)
    follow = FollowUp(patient=case, last_contact_date=death, vital_status="dead", death_date=death)
    response = client.post(url("single_record", case.pk, "follow-up"), form_data(follow))
    e = errors(response)
    assert e["death_cause"] == ["Give the cause of death."]
    assert "cycle 1" in e["death_date"][0]
    assert not (Transplant.objects.exists() or SubsequentTherapy.objects.exists())
    assert not FollowUp.objects.exists()
    sct = form_data(
        Transplant(sct_date=case.blinatumomab_start_date + timedelta(days=90)),
        donor_type="haploidentical",
    )
    assert client.post(url("single_record", case.pk, "transplant"), sct).status_code == 302
    assert case.transplant.donor_type == "haploidentical"


# --- Removal ------------------------------------------------------------------------------------


def test_removal_asks_for_a_reason_and_records_it(client, investigator, case):
    c = f.cycle(case)
    ae = f.adverse_event(case, c)
    remove = url("record_remove", case.pk, "adverse-events", ae.pk)
    assert b"Reason for removal" in client.get(remove).content
    response = client.post(remove, {"version": ae.version})
    assert response.context["form"].errors["reason"] == ["This field is required."]
    assert AdverseEvent.objects.exists()
    response = client.post(remove, {"version": ae.version, "reason": "Entered in the wrong case"})
    assert response.status_code == 302 and not AdverseEvent.objects.exists()
    gone = AdverseEvent.history.latest()
    assert gone.history_type == "-"
    assert gone.history_change_reason == "Entered in the wrong case"
    assert gone.history_user == investigator


def test_a_cycle_still_referred_to_is_not_removed(client, investigator, case):
    c = f.cycle(case)
    f.assessment(case, c)
    response = client.post(
        url("record_remove", case.pk, "cycles", c.pk), {"version": c.version, "reason": "dup"}
    )
    assert "these records refer to it" in response.context["form"].non_field_errors()[0]
    assert case.cycles.exists()


# --- Rendering ----------------------------------------------------------------------------------


@pytest.mark.parametrize("needs_reason", [False, True])
@pytest.mark.parametrize(
    "form_class",
    [
        forms.BaselineForm,
        forms.AssessmentForm,
        forms.AdverseEventForm,
        forms.TransplantForm,
        forms.SubsequentTherapyForm,
        forms.FollowUpForm,
    ],
)
def test_a_cached_blank_form_renders_as_crispy_does_with_the_cases_own_cycles(
    form_class, needs_reason
):
    """render_crf_form() keeps a blank form's HTML per process and renders only the per-case
    selects (the cycles) per request: byte for byte what crispy renders, for every case."""
    forms._BLANK_FORMS.clear()
    one, other = f.patient(), f.patient(site=f.institution("KR02", "Other site"))
    f.cycle(one)
    f.cycle(other)
    f.cycle(other, number=2)
    model = form_class._meta.model
    pages = []
    for p in (one, other, one):  # miss, hit (other cycles), hit
        form = form_class(instance=model(patient=p), patient=p, needs_reason=needs_reason)
        html = forms.render_crf_form(form, blank=True)
        fresh = form_class(instance=model(patient=p), patient=p, needs_reason=needs_reason)
        assert html == render_crispy_form(fresh)
        pages.append(html)
    assert len(forms._BLANK_FORMS) == 1
    if "cycle" in form_class.base_fields:
        for p, html in zip((one, other, one), pages, strict=True):
            select = re.search(r'<select name="cycle".*?</select>', html, re.S).group(0)
            shown = set(re.findall(r'<option value="(\d+)"', select))
            assert shown == {str(c.pk) for c in p.cycles.all()}
    assert ("change_reason" in pages[0]) == needs_reason
    assert "csrfmiddlewaretoken" not in pages[0]  # the page's own token only, never a cached one


def test_a_form_with_typed_values_or_errors_is_rendered_afresh(client, investigator, case):
    forms._BLANK_FORMS.clear()
    c = f.cycle(case)
    page = client.post(url("record_new", case.pk, "assessments"), {"cycle": c.pk, "version": ""})
    assert page.status_code == 200 and errors(page)
    assert f'<option value="{c.pk}" selected>' in page.content.decode()
    assert not forms._BLANK_FORMS
