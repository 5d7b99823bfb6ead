"""An investigator enters a whole case in the browser; rules and concurrent edits refuse saves."""

import re

import pytest
from playwright.sync_api import expect

from registry.models import AdverseEvent, Patient, ResponseAssessment
from tests import factories as f

from .conftest import fill_baseline

pytestmark = pytest.mark.browser


def save(page):
    page.click("#crf-form button[type=submit]")


def test_an_investigator_enters_a_whole_case(new_page):
    f.user("inv")
    page = new_page("inv")
    expect(page.locator("h1")).to_have_text("Cases at KR01")

    page.get_by_role("link", name="Register a patient").first.click()
    for criterion in ("relapsed_refractory", "bcp_all", "ph_negative", "cd19_positive"):
        page.check(f"#id_{criterion}")  # nothing comes ticked: the investigator confirms each
    page.fill("#id_birth_year", "1972")
    page.fill("#id_birth_date", "1972-04-15")
    page.fill("#id_blinatumomab_start_date", "2017-03-06")
    page.select_option("#id_sex", "female")
    page.fill("#id_diagnosis_date", "2015-11-02")
    page.click("text=Check eligibility and register")
    expect(page.locator("h1")).to_have_text("KR01-001")
    patient = Patient.objects.get()

    page.locator("#crf-baseline").get_by_role("link", name="Baseline").click()
    fill_baseline(page)
    save(page)
    expect(page.locator(".alert-success")).to_have_text("Baseline saved.")

    page.get_by_role("link", name="Add cycle 1").click()
    expect(page.locator("#id_starting_dose_ug_per_day")).to_have_value("9")  # pre-filled
    expect(page.locator("#id_step_up_dose_ug_per_day")).to_have_value("28")
    expect(page.locator("#id_start_date")).to_have_value("2017-03-06")
    page.fill("#id_end_date", "2017-04-02")
    page.select_option("#id_outcome", "completed")
    save(page)
    expect(page.locator(".alert-success")).to_have_text("Cycle saved.")

    page.get_by_role("link", name="Add assessment").click()
    page.select_option("#id_cycle", label="Cycle 1 (2017-03-06)")
    page.fill("#id_assessment_date", "2017-04-04")
    page.fill("#id_marrow_blasts_pct", "2")
    page.fill("#id_platelets_10e9_per_l", "140")
    page.fill("#id_anc_10e9_per_l", "1.5")
    expect(page.locator("#derived-response")).to_have_text("CR")
    page.fill("#id_anc_10e9_per_l", "0.8")
    expect(page.locator("#derived-response")).to_have_text("CRi")  # shown before saving
    assert not ResponseAssessment.objects.exists()
    save(page)
    expect(page.locator("#timeline")).to_contain_text("Response CRi")

    page.get_by_role("link", name="Add adverse event").click()
    page.fill("#id_ctcae_term", "Cytokine release syndrome")
    expect(page.locator("#ctcae-grades")).to_contain_text("grades 1, 2, 3, 4, 5 exist")
    expect(page.locator("#ctcae-grades")).to_contain_text("Prolonged")  # grade 3 definition
    page.select_option("#id_grade", "3")
    page.select_option("#id_cycle", label="Cycle 1 (2017-03-06)")
    page.fill("#id_onset_date", "2017-03-08")
    page.fill("#id_resolution_date", "2017-03-12")
    page.check("#id_serious")
    page.select_option("#id_attribution", "probable")
    page.select_option("#id_action_taken", "interrupted")
    page.select_option("#id_outcome", "recovered")
    save(page)
    expect(page.locator("#timeline")).to_contain_text("Cytokine release syndrome grade 3")

    page.get_by_role("link", name="Allogeneic SCT").click()
    page.fill("#id_sct_date", "2017-06-14")
    page.select_option("#id_donor_type", "matched_sibling")
    save(page)

    page.locator("#crf-follow_up").get_by_role("link", name="Follow-up").click()
    page.fill("#id_last_contact_date", "2017-11-01")
    page.select_option("#id_vital_status", "alive")
    save(page)
    expect(page.locator("#timeline")).to_contain_text("Last contact: alive")

    expect(page.locator("#case-complete")).to_have_count(0)
    for _ in range(6):
        page.locator("button", has_text="Mark complete").first.click()
        expect(page.locator(".alert-success")).to_contain_text("marked complete")
    expect(page.locator("button", has_text="Mark complete")).to_have_count(0)
    expect(page.locator("#case-complete")).to_be_visible()
    assert patient.crf_statuses.filter(status="complete").count() == 6

    page.get_by_role("link", name="All cases").click()
    expect(page.locator("tr[data-study-id='KR01-001']")).to_contain_text("Case complete")
    expect(page.locator("tr[data-study-id='KR01-001']")).to_contain_text("CRi")


def test_a_rule_violation_shows_its_message_and_saves_nothing(new_page, live_server):
    f.user("inv")
    p = f.patient()
    f.baseline(p)
    c = f.cycle(p)
    page = new_page("inv")
    page.goto(f"/cases/{p.pk}/adverse-events/new/")
    page.fill("#id_ctcae_term", "Febrile neutropenia")
    expect(page.locator("#ctcae-grades")).to_contain_text("grades 3, 4, 5 exist")
    page.select_option("#id_grade", "3")
    page.fill("#id_onset_date", "2017-03-10")
    page.fill("#id_resolution_date", "2017-03-01")  # before the onset
    page.select_option("#id_attribution", "possible")
    page.select_option("#id_outcome", "recovered")
    save(page)
    expect(page.locator("#id_resolution_date_error")).to_contain_text(
        "The event resolves before its onset."
    )
    assert AdverseEvent.objects.count() == 0

    page.goto(f"/cases/{p.pk}/assessments/new/")
    page.select_option("#id_cycle", str(c.pk))
    page.fill("#id_assessment_date", "2017-04-05")
    page.fill("#id_marrow_blasts_pct", "150")
    page.fill("#id_anc_10e9_per_l", "0.5")
    page.fill("#id_platelets_10e9_per_l", "20")
    save(page)
    expect(page.locator("#error_1_id_marrow_blasts_pct")).to_contain_text(
        "less than or equal to 100"
    )
    assert ResponseAssessment.objects.count() == 0


def test_a_concurrent_edit_of_the_same_crf_is_refused(new_page):
    f.user("ana")
    f.user("ben")
    p = f.patient()
    c = f.cycle(p)
    ana, ben = new_page("ana"), new_page("ben")
    edit = f"/cases/{p.pk}/cycles/{c.pk}/"
    ana.goto(edit)
    ben.goto(edit)

    ana.fill("#id_interruption_days", "2")
    ana.fill("#id_interruption_reason", "Cytokine release syndrome")
    ana.select_option("#id_outcome", "interrupted")
    save(ana)
    expect(ana.locator(".alert-success")).to_have_text("Cycle saved.")

    ben.uncheck("#id_dexamethasone_premedication")
    save(ben)
    alert = ben.locator(".alert-error, .alert-danger").first
    expect(alert).to_contain_text(re.compile(r"Not saved: ana changed this record"))
    expect(alert).to_contain_text("days of interruption: 2")
    c.refresh_from_db()
    assert (c.version, c.interruption_days, c.dexamethasone_premedication) == (2, 2, True)
