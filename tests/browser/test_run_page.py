"""A statistician starts a run with no broker, watches its steps, and reads the results as the
paper lays them out, at 1366 px wide. Screenshots go to test-artifacts/screenshots/statistician/.

The registry sizes come from RUN_PAGE_PATIENTS (default "50"); the 10,000-patient screenshot
is taken with RUN_PAGE_PATIENTS=50,10000 (its seeding and run take minutes on a shared CI box).
"""

import os
import re
from pathlib import Path

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from registry.models import Membership
from tests import factories as f

from .conftest import PASSWORD

pytestmark = pytest.mark.browser

SCREENSHOTS = (
    Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots" / "statistician"
)
SIZES = [int(n) for n in os.environ.get("RUN_PAGE_PATIENTS", "50").split(",") if n.strip()]
WIDTH = 1366


def _seed(settings, patients: int) -> None:
    settings.DEBUG = True  # seed_demo refuses to run against a production configuration
    call_command("seed_demo", "--patients", str(patients), stdout=open(os.devnull, "w"))
    settings.DEBUG = False


@pytest.fixture
def statistician_page(browser, live_server, transactional_db):
    """A statistician logged in at 1366 x 900; a statistician lands on the analyses."""
    f.user("stat", role=Membership.STATISTICIAN)
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": WIDTH, "height": 900}
    )
    context.set_default_timeout(30_000)  # a shared CI machine can be slow to answer
    page = context.new_page()
    page.goto("/accounts/login/")
    page.fill("#id_username", "stat")
    page.fill("#id_password", PASSWORD)
    page.click("form:has(#id_password) button[type=submit]")
    page.wait_for_url(re.compile(r"/analysis/$"))
    yield page
    context.close()


@pytest.mark.parametrize("patients", SIZES)
def test_a_statistician_watches_a_run_and_reads_it_like_the_paper(
    statistician_page, settings, patients
):
    settings.ANALYSIS_IN_THREAD = True  # as the demo: no broker, the run in a thread
    _seed(settings, patients)
    page = statistician_page
    page.goto("/analysis/")
    page.get_by_role("button", name="Run analysis").click()
    page.wait_for_url(re.compile(r"/analysis/runs/[0-9a-f-]+/$"))
    # The page answers at once and shows the run's steps while it goes on.
    expect(page.locator("#run-steps li")).to_have_count(8)
    expect(page.locator("#run-steps li.step-done").first).to_be_visible(timeout=120_000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"run_progress_{patients}.png")
    expect(page.locator("#run-downloads")).to_be_visible(timeout=600_000)
    expect(page.locator("#run-status")).to_have_text("Succeeded")

    table2 = page.locator("#table2 table")
    expect(table2.locator("thead th").nth(1)).to_have_text(re.compile(r"^Response rates \d"))
    expect(table2.locator("tbody tr").first).to_have_text("Age at initiation of treatment")
    ratios = table2.locator("tbody td:nth-child(3)").all_inner_texts()
    assert [r for r in ratios if r] and all(
        re.fullmatch(r"\d+\.\d{3} \(\d+\.\d{3}\u2013\d+\.\d{3}\)|NA", r) for r in ratios if r
    )
    p_values = [p for p in table2.locator("tbody td:nth-child(4)").all_inner_texts() if p]
    assert all(re.fullmatch(r"\d\.\d{3}|< 0\.001|NA", p) for p in p_values), p_values
    assert "0.000" not in p_values
    # Nothing of the paper's tables is cut off at 1366 px: no sideways scrolling needed.
    for key in ("table1", "table2", "table3", "survival_median", "cox"):
        box = page.locator(f"#{key} .table-responsive")
        assert box.evaluate("e => e.scrollWidth <= e.clientWidth"), key
        assert box.get_attribute("tabindex") == "0" and box.get_attribute("aria-label")
    expect(page.locator("#table1 tbody tr").first).to_have_text(
        re.compile(r"Median age, years \(range\)\s*\d+ \(\d+\u2013\d+\)")
    )
    expect(page.locator("#table3 thead")).to_have_text(
        re.compile(r"Any grade\s*Grade 1\u20132\s*Grade 3\s*Grade 4\s*Grade 5")
    )
    for stem in ("flow_diagram", "forest_table2", "swimmer", "km_efs_allo_sct_after"):
        image = page.locator(f"#figure-{stem} img")
        expect(image).to_be_visible()
        assert image.evaluate("e => e.complete && e.naturalWidth > 0"), stem
    expect(page.locator("#figure-km_efs_allo_sct_after figcaption").first).to_have_text(
        re.compile(r"^\(c\) Event-free survival by allogeneic SCT after blinatumomab")
    )
    expect(page.locator("#run-parameters dt").first).to_have_text("Table 2 test")
    page.screenshot(path=SCREENSHOTS / f"run_page_{patients}.png", full_page=True)
    page.screenshot(path=SCREENSHOTS / f"run_page_{patients}_top.png")
    page.evaluate(
        "window.scrollTo(0, document.getElementById('section-table2').getBoundingClientRect().top"
        " + window.scrollY)"
    )
    page.wait_for_function("window.scrollY > 0")
    page.screenshot(path=SCREENSHOTS / f"run_page_{patients}_table2.png")
