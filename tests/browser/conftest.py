"""Playwright (sync API) driving Debian's chromium against pytest-django's live server.

Accessibility: `Journey` walks pages as one role; on each page it saves a full-page screenshot
under test-artifacts/screenshots/<role>/<NN>-<page>.png and runs axe-core (node_modules/, pinned
in package-lock.json, installed by scripts/test.sh: never fetched at run time) for WCAG 2.2 A/AA.
"""

import json
import os
import shutil
import time
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make to count
# rows are still plain synchronous calls.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "pw-for-tests-1"  # tests.factories.user's default

REPO_ROOT = Path(__file__).resolve().parents[2]
AXE_JS = REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = REPO_ROOT / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
# BROWSER_FULL_WALK=1: the journeys also visit every remaining page of the kinds they pass.
FULL_WALK = os.environ.get("BROWSER_FULL_WALK", "0") == "1"


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"),
            args=CHROMIUM_ARGS,
        )
        yield chromium
        chromium.close()


def fill_baseline(page):
    """The baseline CRF of the paper's first patient (marrow relapse, 81% blasts), typed in."""
    page.fill("#id_ecog", "1")
    page.select_option("#id_salvage_phase", "1")
    page.fill("#id_prior_therapies_n", "1")
    page.select_option("#id_relapse_site", "marrow")
    page.fill("#id_marrow_blasts_pct", "81")
    page.fill("#id_cyto_dx_abnormalities_n", "1")
    page.fill("#id_cyto_dx_modal_number", "46")
    page.fill("#id_cyto_start_abnormalities_n", "2")
    page.fill("#id_cyto_start_modal_number", "46")
    page.fill("#id_dexamethasone_mg_before", "80")


def log_in(page, username, password=PASSWORD):
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("form:has(#id_password) button[type=submit]")


@pytest.fixture
def new_context(browser, live_server, transactional_db):
    """new_context(**options) -> a browser context on the live server (closed after the test)."""
    contexts = []

    def open_context(timeout_ms=10_000, **options):
        context = browser.new_context(base_url=live_server.url, **options)
        context.set_default_timeout(timeout_ms)
        contexts.append(context)
        return context

    yield open_context
    for context in contexts:
        context.close()


@pytest.fixture
def new_page(new_context, live_server):
    """new_page(username) -> a logged-in page in its own browser context (own cookies)."""

    def open_page(username):
        page = new_context().new_page()
        log_in(page, username)
        page.wait_for_url(f"{live_server.url}/")
        return page

    return open_page


# --- Accessibility -------------------------------------------------------------------------------


def axe_violations(page, rules=None) -> list[dict]:
    """axe-core's WCAG 2.2 A/AA violations on the page as it is now (or only `rules`' ones)."""
    if not AXE_JS.exists():
        pytest.fail(f"{AXE_JS} is missing: run `npm ci` (scripts/test.sh does) first")
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE_JS))
    run_only = {"type": "rule", "values": rules} if rules else {"type": "tag", "values": AXE_TAGS}
    return page.evaluate(
        """runOnly => axe.run(document, {runOnly: runOnly, resultTypes: ["violations"]})
                         .then(result => result.violations)""",
        run_only,
    )


def describe_violations(violations) -> str:
    lines = []
    for v in violations:
        lines.append(f"  {v['id']} ({v['impact']}): {v['help']}  {v['helpUrl']}")
        for node in v["nodes"][:5]:
            summary = " ".join(node.get("failureSummary", "").split())
            lines.append(f"    at {' '.join(map(str, node['target']))}: {summary}")
            lines.append(f"       {node['html'][:160]}")
        if len(v["nodes"]) > 5:
            lines.append(f"    ... and {len(v['nodes']) - 5} more elements")
    return "\n".join(lines)


class Journey:
    """One role's walk through the app: `look(name)` screenshots the page and runs axe on it.

    Violations are collected so one run reports every page; `assert_accessible()` (called by the
    fixture after the test) fails with all of them, readably. The per-page results are written to
    test-artifacts/axe-<role>.json beside the screenshots."""

    def __init__(self, page, role):
        self.page = page
        self.role = role
        self.folder = SCREENSHOTS / role
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self.results = []  # (file name, url, violations)
        self.looking_s = 0.0  # time spent on screenshots and axe, for the report only

    def look(self, name):
        started = time.monotonic()
        self.page.wait_for_load_state()
        number = len(self.results) + 1
        filename = f"{number:02d}-{name}.png"
        self.page.screenshot(path=str(self.folder / filename), full_page=True)
        violations = axe_violations(self.page)
        self.results.append((filename, self.page.url, violations))
        self.looking_s += time.monotonic() - started
        return violations

    def report(self) -> str:
        lines = [
            f"axe-core ({', '.join(AXE_TAGS)}) on the {self.role}'s {len(self.results)} pages "
            f"(screenshots and axe took {self.looking_s:.1f} s):"
        ]
        for filename, url, violations in self.results:
            lines.append(f"{filename}  {url}  {len(violations)} violation(s)")
            if violations:
                lines.append(describe_violations(violations))
        return "\n".join(lines)

    def write_report(self):
        data = [
            {"screenshot": f"screenshots/{self.role}/{f}", "url": u, "violations": v}
            for f, u, v in self.results
        ]
        (ARTIFACTS / f"axe-{self.role}.json").write_text(json.dumps(data, indent=1))

    def assert_accessible(self):
        assert self.results, "the journey looked at no page"
        failing = [r for r in self.results if r[2]]
        assert not failing, "WCAG 2.2 A/AA violations:\n" + self.report()


@pytest.fixture
def journey(new_context):
    """journey(role) -> a Journey on a fresh page (CSP bypassed only so axe can be injected)."""
    journeys = []

    def start(role):
        # a journey's pages are many and some heavy (an analysis run): a generous timeout, as
        # the machine may be busy; nothing here asserts a duration
        context = new_context(
            timeout_ms=30_000, bypass_csp=True, viewport={"width": 1280, "height": 900}
        )
        page = context.new_page()
        journeys.append(Journey(page, role))
        return journeys[-1]

    yield start
    for j in journeys:
        j.write_report()
        print(j.report())
