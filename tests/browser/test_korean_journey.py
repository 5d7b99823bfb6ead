"""The registry in Korean: one journey in a browser whose Accept-Language asks for Korean (the
context's locale is ko-KR), on the demo registry (seed_demo).

The investigator's case list, registration and every CRF with an error shown; the monitor's log-in
with the TOTP code, a case and the monitoring pages; the statistician's dashboard, a refused run,
a run's results, the data exchange page and the background exports (one started, then ready).
Each page is saved as a screenshot under test-artifacts/screenshots/ko/, checked with axe-core
like the other journeys, and read for English left on it: every text of the
page (text nodes, placeholders, aria-labels, titles, alt texts, the document's title) is cut into
words of Latin letters, and any word that is not in ALLOWED_LATIN fails the test, listed by page.

Left out of that reading, each for a reason that holds in any language:
- codes: <code>/<pre> elements (variable names, keys, hashes), file names (report.docx,
  table1.csv), identifiers with an underscore;
- text marked lang="en": content that is English by design and says so to screen readers (the
  "English" button of the language switcher, the paper's printed items beside the run's);
- standardised vocabularies and data, as phrases from their source: the CTCAE v4.03 term names,
  system organ classes and grade definitions (registry/data, MedDRA), the sites' names, the
  users' names and the reasons stored with changes (the demo's data, shown as written).
Then, in the navigation, the switch to English brings every page back in English.
"""

import io
import re

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from registry import ctcae
from registry.models import (
    AdverseEvent,
    Baseline,
    Cycle,
    FollowUp,
    Institution,
    Patient,
    ResponseAssessment,
    SubsequentTherapy,
    Transplant,
)

from .conftest import ARTIFACTS, SCREENSHOTS, Journey, fill_baseline, log_in
from .test_journeys import DEMO_PASSWORD, code_for

pytestmark = pytest.mark.browser

# Words of Latin letters that stay as they are on a Korean page: each is a standard abbreviation,
# a unit, a code or a proper name, never an ordinary English word (translate those instead).
ALLOWED_LATIN = frozenset(
    {
        # response categories (IWG) and the study's clinical abbreviations
        "CR",
        "CRi",
        "NR",
        "PD",
        "MRD",
        "CRS",
        "ECOG",
        "HSCT",
        "SCT",
        "ALL",  # acute lymphoblastic leukaemia
        "CD",  # CD19
        "Ph",  # Philadelphia chromosome
        "EFS",
        "OS",
        "CTCAE",
        "v",  # CTCAE v4.03
        "MedDRA",
        "KMT",  # KMT2A
        "MLL",
        "A",  # KMT2A
        "IWG",
        "B",  # B-cell (B세포), as T-cell and CAR-T
        "T",
        "CAR",
        "ID",  # 연구 ID: Korean forms write ID as is
        "YYYY",  # the date boxes' ISO format, written as is in Korean forms too
        "MM",
        "DD",
        # the paper's citation: Jung et al., Ann Hematol 2018
        "Jung",
        "et",
        "al",
        "Ann",
        "Hematol",
        # statistics: the methods' eponyms and the standard abbreviations of clinical papers
        "Fisher",
        "Pearson",
        "Kaplan",
        "Meier",
        "KM",
        "Cox",
        "Wald",
        "Schoenfeld",
        "Clopper",
        "Wilson",
        "Woolf",
        "Haldane",
        "Anscombe",
        "Greenwood",
        "Aalen",
        "Johansen",
        "Efron",
        "HR",  # hazard ratio
        "OR",  # odds ratio
        "RR",  # response rate
        "CI",  # confidence interval
        "SE",
        "P",
        "df",
        "NA",  # not available, in a table cell
        "NE",  # not estimable, in a table cell
        "PH",  # proportional hazards
        "PS",  # performance status
        "BM",  # bone marrow
        "EMD",  # extramedullary disease
        "SOC",  # MedDRA system organ class
        "n",  # number of patients, in a table's head or title
        "t",  # time, in a formula ("g(t)", "t일째")
        "logit",
        "R",  # the R language, and the names of its functions the footnotes cite
        "survfit",
        "survdiff",
        "coxph",
        "tmerge",
        # units
        "mg",
        "kg",
        "m",  # m²
        "g",  # g/dL; also a function of time in a formula, g(t)
        "dL",
        "L",  # ×10⁹/L, /µL
        "µL",
        "mL",
        "KB",  # file sizes (Django's filesizeformat writes them so in Korean)
        "MB",
        "GB",
        # codes and formats
        "KR",  # site codes and study IDs (KR01, KR01-001)
        "CRF",
        "CSV",
        "PDF",
        "PNG",
        "Word",  # Microsoft Word (report.docx)
        "API",
        "zip",
        "xlsx",
        "XML",
        # data standards and software, by their names: CDISC's ODM, REST and OpenAPI, pandas
        "CDISC",
        "ODM",
        "REST",
        "OpenAPI",
        "pandas",
        "SHA",  # SHA-256
        "URI",
        "QR",
        "TOTP",
        "OTP",
        "otpauth",
        "base",  # base32
    }
)

LATIN_WORD = re.compile(r"[A-Za-z]+")
# A code, not a word: a UUID (a run's ID), a dotted identifier or version (R's cox.zph,
# binom.test, survival 3.x), a path (tests/analysis), a number in scientific notation (1e-6), a
# figure's panel label ("(a)", "(b,", "d)").
CODE = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|[A-Za-z0-9]\.[A-Za-z]|\w/\w|\de-?\d|^\([a-d][),]?|^[a-d]\)"
)
FILE_NAME = re.compile(
    r"[\w.-]+\.(csv|xlsx|docx|html|pdf|png|svg|zip|txt|json|xml|sav|dta)\b", re.IGNORECASE
)

# Every text of the page a user reads or hears, without code and text marked as English.
PAGE_TEXTS = """() => {
  const skipTags = new Set(["SCRIPT", "STYLE", "NOSCRIPT", "TEMPLATE", "CODE", "PRE"]);
  const skipped = (el) => {
    for (let e = el; e; e = e.parentElement) {
      if (skipTags.has(e.tagName)) return true;
      if (e.hasAttribute("lang")) return !e.getAttribute("lang").startsWith("ko");
    }
    return false;
  };
  const out = [document.title];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (n.textContent.trim() && !skipped(n.parentElement)) out.push(n.textContent);
  }
  const attributes = ["placeholder", "aria-label", "title", "alt"];
  for (const el of document.body.querySelectorAll("*")) {
    if (skipped(el)) continue;
    for (const a of attributes) if (el.hasAttribute(a)) out.push(el.getAttribute(a));
    if (el.matches("input[type=submit], input[type=button]")) out.push(el.value);
  }
  return out;
}"""


def _phrases_pattern(phrases):
    """One regex matching any of `phrases` whole, longest first."""
    ordered = sorted({p for p in phrases if p}, key=len, reverse=True)
    return re.compile("|".join(re.escape(p) for p in ordered))


# Proper names that are phrases of ordinary words: an organisation, a software package.
PROPER_NAMES = ("Eastern Cooperative Oncology Group", "R survival")


def standard_phrases():
    """The phrases that stay English as their source has them: CTCAE v4.03 (term names, system
    organ classes, grade definitions, and the "Other, specify" of its term names) and the data
    shown as stored (site names, user names, the reasons given for changes)."""
    phrases = [ctcae.OTHER_SPECIFY_SUFFIX.strip(" -"), *PROPER_NAMES]
    for term in ctcae.terms().values():
        phrases += [term.term, term.soc, *term.grade_definitions.values()]
    phrases += Institution.objects.values_list("name", flat=True)
    phrases += User.objects.values_list("username", flat=True)
    records = (Patient, Baseline, Cycle, ResponseAssessment, AdverseEvent, Transplant)
    for model in (*records, SubsequentTherapy, FollowUp):
        # the reasons stored with each change, shown as written (seed_demo's own among them)
        phrases += model.history.values_list("history_change_reason", flat=True).distinct()
    return _phrases_pattern(phrases)


def latin_words(text, phrases) -> list[str]:
    """The words of Latin letters in `text` that are not allowed on a Korean page."""
    found = []
    for chunk in phrases.sub(" ", text).split():
        if FILE_NAME.search(chunk) or CODE.search(chunk) or "_" in chunk:
            continue  # a file name, an identifier, a panel label: a code
        found += [w for w in LATIN_WORD.findall(chunk) if w not in ALLOWED_LATIN]
    return found


class KoreanJourney(Journey):
    """A Journey (screenshots, axe) that also reads each page for English left on it."""

    def __init__(self, page):
        super().__init__(page, "ko")
        self.phrases = standard_phrases()
        self.english = {}  # "screenshot URL" -> {text on the page: its English words}

    def look(self, name):
        violations = super().look(name)
        filename, url, _ = self.results[-1]
        expect(self.page.locator("html")).to_have_attribute("lang", "ko")
        left = {}
        for text in self.page.evaluate(PAGE_TEXTS):
            words = latin_words(text, self.phrases)
            if words:
                left[" ".join(text.split())] = words
        if left:
            self.english[f"{filename} {url}"] = left
        return violations

    def write_english(self):
        """test-artifacts/english-ko.txt: each page's texts with English left, for translators."""
        lines = []
        for page, left in self.english.items():
            lines.append(page)
            lines += [f"    {text}    <- {' '.join(words)}" for text, words in left.items()]
        (ARTIFACTS / "english-ko.txt").write_text("\n".join(lines) + "\n")

    def assert_korean(self):
        assert self.results, "the journey looked at no page"
        lines = []
        for page, left in self.english.items():
            words = sorted({w for found in left.values() for w in found})
            samples = [text[:100] for text in list(left)[:3]]
            lines.append(f"{page}: {' '.join(words)}\n    e.g. {' | '.join(samples)}")
        assert not self.english, (
            "English left on Korean pages (all of it in test-artifacts/english-ko.txt):\n"
            + "\n".join(lines)
        )


@pytest.fixture
def demo(transactional_db):
    call_command("seed_demo", allow_production=True, stdout=io.StringIO())


@pytest.fixture
def korean(new_context):
    """korean() -> a page in a browser that asks for Korean (Accept-Language: ko-KR)."""

    def open_page():
        context = new_context(
            timeout_ms=30_000,
            bypass_csp=True,  # only so that axe can be injected, as in the other journeys
            viewport={"width": 1280, "height": 900},
            locale="ko-KR",
        )
        return context.new_page()

    return open_page


def save(page):
    page.click("#crf-form button[type=submit]")
    expect(page.locator("#error-summary")).to_be_focused()


def crf_errors(page, j):
    """Registration refused, then every CRF of the new case refused with its errors, then saved."""
    page.goto("/cases/register/")
    j.look("register")
    page.fill("#id_birth_year", "1972")
    page.fill("#id_blinatumomab_start_date", "2017-03-06")
    page.select_option("#id_sex", "female")
    page.fill("#id_diagnosis_date", "2015-11-02")
    for criterion in ("relapsed_refractory", "bcp_all", "ph_negative"):
        page.check(f"#id_{criterion}")  # not CD19-positive: refused
    page.click("form:has(#id_birth_year) button.btn-primary")
    expect(page.locator("#error-summary")).to_be_focused()
    j.look("register-refused")
    page.check("#id_cd19_positive")
    page.click("form:has(#id_birth_year) button.btn-primary")
    expect(page.locator("h1")).to_have_text(re.compile(r"KR01-\d{3}"))
    pk = int(page.url.rstrip("/").split("/")[-1])
    j.look("case-registered")

    page.goto(f"/cases/{pk}/baseline/")
    save(page)  # nothing entered
    j.look("baseline-refused")
    fill_baseline(page)
    page.click("#crf-form button[type=submit]")
    expect(page.locator(".alert-success")).to_be_visible()

    page.goto(f"/cases/{pk}/cycles/new/")
    page.fill("#id_end_date", "2017-03-01")  # before its start
    page.select_option("#id_outcome", "completed")
    save(page)
    j.look("cycle-refused")
    page.fill("#id_end_date", "2017-04-02")
    page.click("#crf-form button[type=submit]")
    expect(page.locator(".alert-success")).to_be_visible()

    page.goto(f"/cases/{pk}/assessments/new/")
    page.select_option("#id_cycle", index=1)
    page.fill("#id_assessment_date", "2017-04-04")
    page.fill("#id_anc_10e9_per_l", "1.5")
    page.fill("#id_platelets_10e9_per_l", "140")
    page.fill("#id_marrow_blasts_pct", "150")
    expect(page.locator("#derived-invalid")).to_be_visible()
    save(page)
    j.look("assessment-refused")
    page.fill("#id_marrow_blasts_pct", "2")
    expect(page.locator("#derived-response")).to_have_text("CR")
    j.look("assessment-derived-cr")
    page.click("#crf-form button[type=submit]")
    expect(page.locator(".alert-success")).to_be_visible()

    page.goto(f"/cases/{pk}/adverse-events/new/")
    page.fill("#id_ctcae_term", "사이토카인 방출 증후군")  # not the dictionary's name
    page.locator("#id_ctcae_term").blur()
    expect(page.locator("#id_ctcae_term_error")).to_be_visible()
    j.look("adverse-event-not-a-term")
    page.fill("#id_ctcae_term", "Cytokine release syndrome")
    page.select_option("#id_grade", "3")
    page.select_option("#id_cycle", index=1)
    page.fill("#id_onset_date", "2017-03-08")
    page.select_option("#id_attribution", "probable")
    page.select_option("#id_outcome", "fatal")  # a fatal grade 3: refused
    save(page)
    j.look("adverse-event-refused")

    page.goto(f"/cases/{pk}/transplant/")
    page.fill("#id_sct_date", "2017-06-14")
    save(page)  # no donor type
    j.look("transplant-refused")

    page.goto(f"/cases/{pk}/subsequent-therapies/new/")
    page.select_option("#id_category", "salvage_chemotherapy")
    page.fill("#id_start_date", "2017-09-01")
    save(page)  # no regimen
    j.look("subsequent-therapy-refused")

    page.goto(f"/cases/{pk}/follow-up/")
    page.fill("#id_last_contact_date", "2017-11-01")
    page.select_option("#id_vital_status", "dead")  # dead, without the date of death
    save(page)
    j.look("follow-up-refused")

    page.goto(f"/cases/{pk}/")
    j.look("case")
    return pk


def test_a_korean_browser_gets_every_page_in_korean_and_english_comes_back(
    korean, demo, settings, live_server
):
    settings.REQUIRE_2FA = True  # the monitor's code page is in Korean too
    device = TOTPDevice.objects.create(
        user=User.objects.get(username="monitor"), name="phone", confirmed=True
    )
    page = korean()
    j = KoreanJourney(page)

    # --- the investigator: log-in, case list, registration and every CRF with its errors
    page.goto("/accounts/login/")
    j.look("login")
    log_in(page, "investigator", DEMO_PASSWORD)
    expect(page.locator("#case-list")).to_be_visible()
    j.look("case-list")
    crf_errors(page, j)

    # --- the monitor: the code page, a case, the monitoring pages
    j.page = page = korean()
    log_in(page, "monitor", DEMO_PASSWORD)
    expect(page.locator("#id_token")).to_be_visible()
    j.look("monitor-two-factor")
    page.fill("#id_token", code_for(device))
    page.click("form:has(#id_token) button[type=submit]")
    expect(page.locator("#id_token")).to_have_count(0)
    patient = Patient.objects.filter(institution__code="KR01").order_by("study_id").first()
    page.goto(f"/cases/{patient.pk}/")
    j.look("monitor-case")
    page.goto("/monitoring/")
    j.look("monitoring-progress")
    page.goto("/monitoring/sites/KR01/")
    page.click("#edit-checks button.btn-primary")  # run the edit checks
    expect(page.locator("#findings")).to_be_visible()
    j.look("monitoring-site-checked")

    # --- the statistician: the dashboard, a refused run, a run's results
    j.page = page = korean()
    log_in(page, "statistician", DEMO_PASSWORD)
    page.goto("/analysis/")
    j.look("analyses")
    page.fill("#id_age_years", "5")  # outside 19-100: refused
    page.click("form:has(#id_age_years) button[type=submit]")
    expect(page.locator("#error-summary")).to_be_focused()
    j.look("run-refused")
    page.fill("#id_age_years", "55")
    page.click("form:has(#id_age_years) button[type=submit]")
    expect(page.locator("#run-state")).to_have_attribute("data-finished", "1", timeout=120_000)
    expect(page.locator("#run-status")).to_have_class(re.compile("run-badge-succeeded"))
    j.look("run-results")
    run_url = page.url

    # --- the statistician's data exchange: the exports, one started in the background (a thread
    # of the live server without a broker) and shown, with its download, once ready
    page.goto("/exchange/")
    j.look("exchange")
    page.goto("/exchange/exports/")
    j.look("exports")
    page.locator("form:has(input[name=kind]) button[type=submit]").first.click()
    expect(page.locator(".alert-success")).to_be_visible()
    j.look("export-started")
    expect(page.locator("tr.export-job[data-finished='1']")).to_have_count(1, timeout=120_000)
    expect(page.locator("tr.export-job a[href$='/download/']")).to_be_visible()
    j.look("export-ready")
    page.goto(run_url)

    # --- English again, from the navigation's switcher: the page and the next ones
    page.locator("#language-switcher button[value=en]").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text(re.compile(r"^Run [0-9a-f-]+$"))
    page.screenshot(path=str(SCREENSHOTS / "ko" / f"{len(j.results) + 1:02d}-english-again.png"))
    page.goto("/analysis/")
    expect(page.locator("h1")).to_have_text("Analyses of the paper")
    expect(page.locator("#language-switcher button[value=en]")).to_have_attribute(
        "aria-pressed", "true"
    )

    j.write_report()
    j.write_english()
    print(j.report())
    j.assert_korean()
    j.assert_accessible()
