"""The CRF pages' live helpers in the browser (with the Content-Security-Policy enforced): the
derived-response box, the CTCAE grade select and panel, and the error summary's focus."""

import pytest
from playwright.sync_api import expect

from tests import factories as f

pytestmark = pytest.mark.browser


@pytest.fixture
def case(transactional_db):
    f.user("inv")
    p = f.patient()
    f.baseline(p)
    f.cycle(p)
    return p


def test_the_response_box_shows_no_category_while_a_value_is_invalid(new_page, case):
    page = new_page("inv")
    page.goto(f"/cases/{case.pk}/assessments/new/")
    box = page.locator("#derived-box")
    expect(box).to_have_attribute("aria-live", "polite")
    # the box sits right under the values it is derived from
    assert page.evaluate("document.getElementById('div_id_emd_status').nextElementSibling.id") == (
        "derived-field"
    )
    page.fill("#id_marrow_blasts_pct", "2")
    page.fill("#id_anc_10e9_per_l", "1.5")
    page.fill("#id_platelets_10e9_per_l", "140")
    expect(page.locator("#derived-response")).to_have_text("CR")
    expect(page.locator("#derived-invalid")).to_be_hidden()

    page.fill("#id_marrow_blasts_pct", "150")  # was shown as "PD"
    blasts = (
        "No response while a value is invalid. "
        "Bone marrow blasts (%): Ensure this value is less than or equal to 100."
    )
    expect(page.locator("#derived-invalid")).to_have_text(blasts)
    expect(page.locator("#derived-result")).to_be_hidden()
    assert box.inner_text().strip() == blasts  # nothing else shows: no category
    expect(page.locator("#derived-response")).to_have_attribute("data-response", "")

    page.fill("#id_marrow_blasts_pct", "2")
    page.fill("#id_anc_10e9_per_l", "-1")  # was shown as "CRi"
    anc = (
        "No response while a value is invalid. "
        "Absolute neutrophil count (×10^9/L): Ensure this value is greater than or equal to 0."
    )
    expect(page.locator("#derived-invalid")).to_have_text(anc)
    assert box.inner_text().strip() == anc

    page.fill("#id_anc_10e9_per_l", "0.8")
    expect(page.locator("#derived-response")).to_have_text("CRi")
    expect(page.locator("#derived-invalid")).to_be_hidden()
    expect(page.locator("#derived-result")).to_be_visible()


def grade_options(page):
    return page.locator("#id_grade option")


def test_the_grade_select_offers_only_the_grades_of_the_chosen_term(new_page, case):
    page = new_page("inv")
    page.goto(f"/cases/{case.pk}/adverse-events/new/")
    panel = page.locator("#ctcae-grades")
    expect(panel).to_have_attribute("aria-live", "polite")
    assert page.evaluate("document.getElementById('div_id_grade').nextElementSibling.id") == (
        "ctcae-panel"
    )
    expect(grade_options(page)).to_have_text(["---------", "1", "2", "3", "4", "5"])

    page.fill("#id_ctcae_term", "Febrile neutropenia")
    expect(grade_options(page)).to_have_text(["---------", "3", "4", "5"])
    page.select_option("#id_grade", "4")
    # the chosen grade and the grades that do not exist are said in words, not only in colour
    expect(panel).to_contain_text("Chosen: grade 4, which exists for this term.")
    expect(panel.locator("dt[data-grade='4']")).to_have_text("Grade 4 (chosen)")
    expect(panel.locator("dt[data-grade='2']")).to_have_text("Grade 2 (does not exist)")

    page.fill("#id_ctcae_term", "Cytokine release syndrome")
    expect(grade_options(page)).to_have_text(["---------", "1", "2", "3", "4", "5"])
    expect(page.locator("#id_grade")).to_have_value("4")  # a grade the new term has is kept

    page.fill("#id_ctcae_term", "Headache")  # grades 1-3: grade 4 goes, and the panel says so
    expect(grade_options(page)).to_have_text(["---------", "1", "2", "3"])
    expect(page.locator("#id_grade")).to_have_value("")
    expect(panel).to_contain_text(
        "Grade 4 does not exist for Headache: choose one of grades 1, 2, 3."
    )


def test_a_term_not_in_the_dictionary_gets_one_message_once_the_field_is_left(new_page, case):
    page = new_page("inv")
    page.goto(f"/cases/{case.pk}/adverse-events/new/")
    term = page.locator("#id_ctcae_term")
    messages = page.locator("#div_id_ctcae_term .invalid-feedback")
    term.click()
    page.keyboard.type("Febrile neutro")  # half-typed: no message while typing
    expect(page.locator("#ctcae-grades")).to_have_text("Pick a CTCAE v4.03 term to see its grades.")
    expect(messages).to_have_count(0)
    expect(term).not_to_have_attribute("aria-invalid", "true")

    page.keyboard.press("Tab")  # the field is left
    expect(messages).to_have_count(1)
    expect(messages).to_have_text(
        "“Febrile neutro” is not a CTCAE v4.03 term: pick one from the list."
    )
    expect(term).to_have_attribute("aria-invalid", "true")
    expect(term).to_have_attribute("aria-describedby", "id_ctcae_term_helptext id_ctcae_term_error")
    expect(page.get_by_text("is not a CTCAE v4.03 term")).to_have_count(1)  # the panel says nothing

    term.click()
    page.keyboard.type("penia")  # a real term now: the message goes at once
    expect(messages).to_have_count(0)
    expect(term).not_to_have_attribute("aria-invalid", "true")
    expect(page.locator("#ctcae-grades")).to_contain_text("grades 3, 4, 5 exist")

    # saved with an invalid term: the server's message is the field's only one
    page.fill("#id_ctcae_term", "Headache of doom")
    page.click("#crf-form button[type=submit]")
    expect(page.locator("#error-summary")).to_be_focused()
    expect(messages).to_have_count(1)
    expect(messages).to_have_text("'Headache of doom' is not a CTCAE v4.03 term in the dictionary.")
    term.click()
    page.keyboard.press("End")
    page.keyboard.type("s")
    page.keyboard.press("Tab")  # still not a term: the page's message replaces the server's
    expect(messages).to_have_count(1)
    expect(messages).to_have_text(
        "“Headache of dooms” is not a CTCAE v4.03 term: pick one from the list."
    )


def test_a_failed_save_moves_the_focus_to_the_summary_whose_links_focus_the_fields(new_page, case):
    page = new_page("inv")
    page.goto(f"/cases/{case.pk}/subsequent-therapies/new/")
    page.click("#crf-form button[type=submit]")  # nothing filled in
    summary = page.locator("#error-summary")
    expect(summary).to_be_focused()
    expect(summary).to_have_attribute("role", "alert")
    expect(summary.get_by_role("link")).to_have_text(
        [
            "Category: This field is required.",
            "Regimen: This field is required.",
            "Start date: This field is required.",
        ]
    )
    page.keyboard.press("Tab")  # from the summary, the first problem
    expect(summary.get_by_role("link").first).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#id_category")).to_be_focused()
    summary.get_by_role("link", name="Start date: This field is required.").click()
    expect(page.locator("#id_start_date")).to_be_focused()
