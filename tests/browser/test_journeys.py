"""Each role's journey through the app in Debian's chromium, on the demo registry (seed_demo).

Every page passed is saved as a full-page screenshot under test-artifacts/screenshots/<role>/
(for a reviewer to look at after a run) and checked with axe-core for WCAG 2.2 A/AA: each journey
ends asserting that no page had a violation (test-artifacts/axe-<role>.json lists them per page).
BROWSER_FULL_WALK=1 makes the journeys look at more pages (every blank CRF, every edit)."""

import io
import re

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from analysis.models import AnalysisRun
from monitoring.models import Query
from registry.models import CrfStatus, Patient
from tests.monitoring.conftest import complete_all

from .conftest import FULL_WALK, axe_violations, fill_baseline, log_in

pytestmark = pytest.mark.browser

DEMO_PASSWORD = "blina-demo-2026"


@pytest.fixture
def demo(transactional_db):
    call_command("seed_demo", allow_production=True, stdout=io.StringIO())


def save(page):
    page.click("#crf-form button[type=submit]")


def expect_refused(page):
    """A failed save: the page opens on its error summary, focused."""
    expect(page.locator("#error-summary")).to_be_focused()


def expect_saved(page, message):
    expect(page.locator(".alert-success")).to_have_text(message)


# --- Investigator ------------------------------------------------------------------------------


def register(page, j):
    page.get_by_role("link", name="Register a patient").first.click()
    j.look("register")
    page.fill("#id_birth_year", "1972")
    page.fill("#id_birth_date", "1972-04-15")
    page.fill("#id_blinatumomab_start_date", "2017-03-06")
    page.select_option("#id_sex", "female")
    page.fill("#id_diagnosis_date", "2015-11-02")
    for criterion in ("relapsed_refractory", "bcp_all", "ph_negative"):
        page.check(f"#id_{criterion}")  # CD19-positive is not ticked: refused
    page.click("text=Check eligibility and register")  # not CD19-positive: refused
    expect_refused(page)
    expect(page.locator("#error-summary")).to_contain_text("Not registered")
    j.look("register-refused")
    page.check("#id_cd19_positive")
    page.click("text=Check eligibility and register")
    expect(page.locator("h1")).to_have_text(re.compile(r"KR01-\d{3}"))
    j.look("case-registered")


def enter_records(page, j, pk):
    """Each CRF: a save refused with its errors shown, then saved."""
    page.goto(f"/cases/{pk}/baseline/")
    if FULL_WALK:
        j.look("baseline-new")
    save(page)  # nothing entered
    expect_refused(page)
    j.look("baseline-refused")
    fill_baseline(page)
    save(page)
    expect_saved(page, "Baseline saved.")

    page.get_by_role("link", name="Add cycle 1").click()
    if FULL_WALK:
        j.look("cycle-new")
    page.fill("#id_end_date", "2017-03-01")  # before its start
    page.select_option("#id_outcome", "completed")
    save(page)
    expect_refused(page)
    j.look("cycle-refused")
    page.fill("#id_end_date", "2017-04-02")
    save(page)
    expect_saved(page, "Cycle saved.")

    page.get_by_role("link", name="Add assessment").click()
    page.select_option("#id_cycle", label="Cycle 1 (2017-03-06)")
    page.fill("#id_assessment_date", "2017-04-04")
    page.fill("#id_anc_10e9_per_l", "1.5")
    page.fill("#id_platelets_10e9_per_l", "140")
    page.fill("#id_marrow_blasts_pct", "150")
    expect(page.locator("#derived-invalid")).to_contain_text("No response while a value")
    j.look("assessment-invalid-value")
    save(page)
    expect_refused(page)
    j.look("assessment-refused")
    page.fill("#id_marrow_blasts_pct", "2")
    expect(page.locator("#derived-response")).to_have_text("CR")
    j.look("assessment-derived-cr")
    save(page)
    expect_saved(page, "Response assessment saved.")

    page.get_by_role("link", name="Add adverse event").click()
    page.fill("#id_ctcae_term", "Cytokine release syndrom")
    page.locator("#id_ctcae_term").blur()
    expect(page.locator("#id_ctcae_term_error")).to_contain_text("is not a CTCAE v4.03 term")
    j.look("adverse-event-not-a-term")
    page.fill("#id_ctcae_term", "Cytokine release syndrome")
    page.select_option("#id_grade", "3")
    page.select_option("#id_cycle", label="Cycle 1 (2017-03-06)")
    page.fill("#id_onset_date", "2017-03-08")
    page.select_option("#id_attribution", "probable")
    page.select_option("#id_outcome", "fatal")  # a fatal grade 3: refused
    j.look("adverse-event-grades")
    save(page)
    expect_refused(page)
    j.look("adverse-event-refused")
    page.fill("#id_resolution_date", "2017-03-12")
    page.select_option("#id_outcome", "recovered")
    save(page)
    expect_saved(page, "Adverse event saved.")

    page.get_by_role("link", name="Allogeneic SCT").click()
    page.fill("#id_sct_date", "2017-06-14")
    save(page)  # no donor type
    expect_refused(page)
    j.look("transplant-refused")
    page.select_option("#id_donor_type", "matched_sibling")
    save(page)
    expect_saved(page, "Allogeneic SCT saved.")

    page.get_by_role("link", name="Add subsequent therapy").click()
    page.select_option("#id_category", "salvage_chemotherapy")
    page.fill("#id_start_date", "2017-09-01")
    save(page)  # no regimen
    expect_refused(page)
    j.look("subsequent-therapy-refused")
    page.fill("#id_regimen", "FLAG-IDA")
    save(page)
    expect_saved(page, "Subsequent therapy saved.")

    page.locator("#crf-follow_up").get_by_role("link", name="Follow-up").click()
    page.fill("#id_last_contact_date", "2017-11-01")
    page.select_option("#id_vital_status", "dead")  # dead, without the date of death
    save(page)
    expect_refused(page)
    j.look("follow-up-refused")
    page.select_option("#id_vital_status", "alive")
    save(page)
    expect_saved(page, "Follow-up saved.")
    if FULL_WALK:
        j.look("case-entered")


# (record kind slug, field, two new values) for the edits with a reason
EDITS = [
    ("registration", "#id_site_case_number", ("H-1001", "H-1002")),
    ("baseline", "#id_dexamethasone_mg_before", ("90", "100")),
    ("cycles", "#id_interruption_reason", ("none", "none recorded")),
    ("assessments", "#id_platelets_10e9_per_l", ("150", "160")),
    ("adverse-events", "#id_resolution_date", ("2017-03-13", "2017-03-14")),
    ("transplant", "#id_sct_date", ("2017-06-15", "2017-06-16")),
    ("subsequent-therapies", "#id_regimen", ("FLAG-IDA x1", "FLAG-IDA x2")),
    ("follow-up", "#id_last_contact_date", ("2017-11-02", "2017-11-03")),
]


def edit_url(patient, slug):
    records = {
        "cycles": patient.cycles,
        "assessments": patient.assessments,
        "adverse-events": patient.adverse_events,
        "subsequent-therapies": patient.subsequent_therapies,
    }
    if slug in records:
        return f"/cases/{patient.pk}/{slug}/{records[slug].get().pk}/"
    return f"/cases/{patient.pk}/{slug}/"


def edit_twice(page, j, patient):
    """Every CRF is marked complete, then every record is changed twice, each with a reason."""
    for _ in range(len(CrfStatus.CRF_CHOICES)):
        page.locator("button", has_text="Mark complete").first.click()
        expect(page.locator(".alert-success")).to_contain_text("marked complete")
    expect(page.locator("#case-complete")).to_be_visible()
    j.look("case-complete")
    for slug, field, values in EDITS:
        for n, value in enumerate(values, 1):
            page.goto(edit_url(patient, slug))
            page.fill(field, value)
            if n == 1 and (FULL_WALK or slug == "baseline"):  # no reason: refused
                save(page)
                expect_refused(page)
                expect(page.locator("#error-summary")).to_contain_text("Reason for change")
                j.look(f"{slug}-reason-refused")
                page.fill(field, value)
            page.fill("#id_change_reason", f"source document check {n}")
            if n == 2 or FULL_WALK:
                j.look(f"{slug}-edit-{n}")
            save(page)
            expect(page.locator(".alert-success")).to_contain_text("saved.")
    if FULL_WALK:
        j.look("case-edited")


def remove_a_record(page, j, patient):
    therapy = patient.subsequent_therapies.get()
    page.goto(f"/cases/{patient.pk}/subsequent-therapies/{therapy.pk}/remove/")
    j.look("remove")
    page.get_by_role("button", name="Remove").click()  # no reason
    expect_refused(page)
    j.look("remove-refused")
    page.fill("#id_reason", "entered on the wrong case")
    page.get_by_role("button", name="Remove").click()
    expect_saved(page, "Subsequent therapy removed.")
    assert not patient.subsequent_therapies.exists()
    j.look("case-after-removal")


def test_the_investigator_registers_enters_edits_and_removes(journey, demo, live_server):
    j = journey("investigator")
    page = j.page
    page.goto("/accounts/login/")
    j.look("login")
    log_in(page, "investigator", DEMO_PASSWORD)
    expect(page.locator("h1")).to_have_text("Cases at KR01")
    j.look("case-list")
    register(page, j)
    patient = Patient.objects.get(pk=int(page.url.rstrip("/").split("/")[-1]))
    enter_records(page, j, patient.pk)
    edit_twice(page, j, patient)
    remove_a_record(page, j, patient)
    history = patient.baseline.history.exclude(history_change_reason=None)
    assert [h.history_change_reason for h in history.order_by("history_date")] == [
        "source document check 1",
        "source document check 2",
    ]
    j.assert_accessible()


# --- Monitor -----------------------------------------------------------------------------------


def code_for(device):
    device.refresh_from_db()
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


def test_the_monitor_logs_in_with_a_code_queries_verifies_and_locks(
    journey, demo, settings, live_server
):
    settings.REQUIRE_2FA = True
    # an authenticator app's device, enrolled (seed_demo gives the monitor one only with DEBUG on)
    device = TOTPDevice.objects.create(
        user=User.objects.get(username="monitor"), name="phone", confirmed=True
    )
    j = journey("monitor")
    page = j.page
    page.goto("/accounts/login/")
    j.look("login")
    log_in(page, "monitor", DEMO_PASSWORD)
    expect(page.locator("h1")).to_have_text("Two-factor verification")
    j.look("two-factor")
    page.fill("#id_token", code_for(device))
    page.get_by_role("button", name="Verify").click()
    expect(page.locator("#id_token")).to_have_count(0)

    page.goto("/")
    j.look("case-list")
    # the site has marked a case's CRFs complete (the demo leaves them in progress)
    patient = Patient.objects.filter(institution__code="KR01").order_by("study_id").first()
    complete_all(patient, User.objects.get(username="investigator"))
    page.goto(f"/cases/{patient.pk}/")
    j.look("case")

    page.get_by_role("link", name="Open a query").click()
    j.look("query-pick")
    page.locator("#query-records a", has_text="Baseline").first.click()
    j.look("query-new")
    page.get_by_role("button", name="Open query").click()  # no question
    expect_refused(page)
    j.look("query-refused")
    page.select_option("#id_field_name", "ecog")
    page.fill("#id_message", "ECOG 1 here, ECOG 2 in the clinic letter of the same day?")
    page.get_by_role("button", name="Open query").click()
    expect(page.locator(".alert-success")).to_have_text("Query opened.")
    assert Query.objects.filter(patient=patient, status="open").count() >= 1
    j.look("case-query-opened")

    page.locator("#crf-cycles").get_by_role("button", name="Mark verified").click()
    expect(page.locator("#crf-cycles .crf-verified")).to_contain_text("Verified by monitor")
    j.look("case-verified")

    lockable = (
        Patient.objects.filter(institution__code="KR01")
        .exclude(crf_statuses__locked_at__isnull=False)
        .exclude(queries__status__in=["open", "answered"])
        .exclude(pk=patient.pk)
        .first()
    )
    page.goto(f"/cases/{lockable.pk}/")
    page.fill("#monitor-actions input[name=reason]", "monitoring visit done")
    page.get_by_role("button", name="Lock case").click()
    expect(page.locator("#case-locked")).to_be_visible()
    j.look("case-locked")

    page.goto("/monitoring/")
    j.look("monitoring-progress")
    page.goto("/monitoring/sites/KR01/")
    j.look("monitoring-site")
    page.get_by_role("button", name="Run edit checks").click()
    j.look("monitoring-site-checked")

    page.goto("/admin/monitoring/auditentry/")
    j.look("audit-trail")
    page.goto(f"/admin/monitoring/auditentry/?q={lockable.study_id}")
    j.look("audit-trail-case")
    page.goto("/admin/")
    j.look("admin-index")
    if FULL_WALK:
        for path in ("/admin/registry/patient/", "/admin/monitoring/query/"):
            page.goto(path)
            j.look("admin-" + path.strip("/").split("/")[-1])
    j.assert_accessible()


# --- Statistician ------------------------------------------------------------------------------


def test_the_statistician_runs_the_analysis_and_downloads_its_files(journey, demo, live_server):
    j = journey("statistician")
    page = j.page
    page.goto("/accounts/login/")
    j.look("login")
    log_in(page, "statistician", DEMO_PASSWORD)
    page.wait_for_load_state()
    if not page.url.endswith("/analysis/"):  # the landing page, then the analyses
        j.look("landing")
        page.get_by_role("link", name="Analyses").first.click()
    expect(page.locator("h1")).to_have_text("Analyses of the paper")
    j.look("analyses")

    page.fill("#id_age_years", "5")  # outside 19-100: refused
    page.get_by_role("button", name="Run analysis").click()
    expect_refused(page)
    j.look("run-refused")
    page.fill("#id_age_years", "55")
    page.get_by_role("button", name="Run analysis").click()
    expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=120_000)
    run = AnalysisRun.objects.get()
    assert run.status == AnalysisRun.SUCCEEDED
    j.look("run-results")
    # in a narrow window the wide tables scroll sideways: a keyboard reaches and scrolls each
    page.set_viewport_size({"width": 640, "height": 900})
    assert axe_violations(page, rules=["scrollable-region-focusable"]) == []
    wide = [
        region
        for region in page.locator("div.table-responsive").all()
        if region.is_visible() and region.evaluate("e => e.scrollWidth > e.clientWidth")
    ]
    assert wide, "no result table is wider than 640 px"
    wide[0].focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("e => e.scrollLeft > 0", arg=wide[0].element_handle())
    page.set_viewport_size({"width": 1280, "height": 900})

    links = page.locator("a[href*='/files/']")
    hrefs = sorted({a.get_attribute("href") for a in links.all()})
    assert any(h.endswith("/report.html") for h in hrefs)
    assert any(h.endswith("/table1.csv") for h in hrefs)
    for href in hrefs:  # every download answers with its file
        response = page.request.get(href)
        assert response.status == 200, href
        assert len(response.body()) > 0, href
    if FULL_WALK:  # the dashboard then shows the same results as the run's page
        page.goto("/analysis/")
        j.look("analyses-latest-run")
    j.assert_accessible()
