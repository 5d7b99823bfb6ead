"""The run as a working party reads it: the page, report.html, report.docx and tables.xlsx
show the same formatted tables (built from the run's CSVs), the three new figures exist, and a
run without a broker goes on in the background while its page shows the steps."""

import html
import re
import threading

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command
from django.urls import reverse
from docx import Document
from openpyxl import load_workbook

from analysis import background, display, outputs
from analysis import formatting as fmt
from analysis.dataset import DEFINITIONS
from analysis.models import AnalysisRun
from analysis.outputs import default_parameters
from analysis.tasks import run_analysis_task
from registry.models import Cycle, Membership
from tests import factories as f

pytestmark = pytest.mark.django_db

NEW_FIGURES = ["flow_diagram", "forest_table2", "swimmer"]
RUN_FORM = {
    "test": "fisher",
    "age_years": 55,
    "months_from_diagnosis": 12,
    "marrow_blasts_pct": 50,
    "dexamethasone_mg": 80,
}


@pytest.fixture
def demo(settings):
    settings.DEBUG = True
    call_command("seed_demo", stdout=open("/dev/null", "w"))
    settings.DEBUG = False


@pytest.fixture
def statistician(client):
    client.force_login(f.user("stat", role=Membership.STATISTICIAN))
    return client


@pytest.fixture
def demo_run(demo):
    run = AnalysisRun.objects.create(parameters=default_parameters())
    run_analysis_task.delay(str(run.pk))
    run.refresh_from_db()
    assert run.status == AnalysisRun.SUCCEEDED
    return run


def _visible_text(page: str) -> str:
    """The page as read: no tags, no attribute values (file names sit in links' hrefs)."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _part(page: str, element_id: str) -> str:
    return page.split(f'id="{element_id}"')[1].split("</figure>")[0]


def _tables(run) -> dict:
    out = run.output_dir
    files = [p.name for p in out.iterdir()]
    frames = display.load_frames(out, display.SOURCES)
    sections = display.sections(frames, {"n_patients": run.n_patients}, files, str)
    return {t.key: t for t in display.all_tables(sections)}


def test_every_run_folder_has_the_three_new_figures_and_the_report_shows_them(demo_run):
    out = demo_run.output_dir
    for stem in NEW_FIGURES:
        assert (out / f"{stem}.png").read_bytes().startswith(b"\x89PNG"), stem
        assert "<svg" in (out / f"{stem}.svg").read_text(), stem
    assert "Treated with blinatumomab" in (out / "flow_diagram.svg").read_text()
    # The swimmer plot's cycles, in days from day 1 (no calendar dates in the run's files).
    cycles = pd.read_csv(out / "cycles.csv")
    assert len(cycles) == Cycle.objects.count()
    first = Cycle.objects.select_related("patient").order_by("patient__study_id", "number")[0]
    start = first.patient.blinatumomab_start_date
    assert cycles.iloc[0].tolist() == [
        first.patient.study_id,
        first.number,
        (first.start_date - start).days,
        (first.end_date - start).days,
    ]
    report = (out / "report.html").read_text()
    for title in (
        "Figure 1. Treatment flow and outcomes of all patients (n = 50)",
        "Odds ratio of response by subgroup (Table 2), 95% CI, log scale",
        "Course of each patient from day 1 of blinatumomab",
    ):
        figure = report.split(f"<figcaption>{title}")[0].rsplit("<figure", 1)[1]
        assert 'src="data:image/png;base64,' in figure, title
    assert "http://" not in report and "https://" not in report  # self-contained


def test_page_and_report_show_table_2_as_the_paper_with_p_values_never_zero(demo_run, statistician):
    tables = _tables(demo_run)
    raw = pd.read_csv(demo_run.output_dir / "table2_subgroups.csv")
    age = raw[raw["variable"] == "age"].iloc[1]
    shown = tables["table2"].text_rows()
    assert shown[1] == ["Age at initiation of treatment", "", "", ""]
    assert (
        shown[3][2] == f"{age['odds_ratio']:.3f} ({age['ci_lower']:.3f}\u2013{age['ci_upper']:.3f})"
    )
    page = statistician.get(reverse("analysis:run_detail", args=[demo_run.pk])).content.decode()
    report = (demo_run.output_dir / "report.html").read_text()
    for text in (page, report):
        visible = _visible_text(text)
        assert "Cytogenetic risk at diagnosis" in visible
        assert "cyto_risk_diagnosis" not in visible  # codes stay in the CSVs
        assert "Event-free survival by allogeneic SCT after blinatumomab" in visible
        assert "allo sct after" not in visible.lower()
        for row in shown[1:]:  # every cell of Table 2 as formatted, in order
            assert " ".join(cell for cell in row if cell) in visible
        assert "Fisher's exact test (two-sided)" in _visible_text(_part(text, "table2"))
        # The footnotes state the dataset's definitions (evaluable; EFS and OS censoring).
        evaluable = fmt.lower_first(DEFINITIONS["evaluable"].rstrip("."))
        assert evaluable in _visible_text(_part(text, "table2"))
        assert DEFINITIONS["os_days"] in _visible_text(_part(text, "survival_median"))
        p_values = " ".join(_visible_text(_part(text, key)) for key in ("table2", "cox"))
        assert "0.000" not in p_values and "< 0.001" in p_values  # never "0.000"
    # Parameters as a labelled list, not a Python dict.
    assert "<dt>Age cut</dt><dd>55 years</dd>" in page and "{&#x27;cuts" not in page
    # Numbers at risk under their figure, not a 70-row table.
    figure = page.split('id="figure-km_efs_responder"')[1].split('id="figure-')[0]
    assert "Number at risk: Event-free survival by response to blinatumomab" in figure
    assert figure.count("<tr>") == 1 + 2  # the months header, non-responders, responders


def test_the_time_varying_cox_warning_is_shown_beside_the_model(settings, statistician):
    settings.DEBUG = True  # the generated demo registry (seed_demo --generated), as the issue's
    call_command("seed_demo", "--generated", stdout=open("/dev/null", "w"))
    settings.DEBUG = False
    run = AnalysisRun.objects.create(parameters=default_parameters())
    run_analysis_task.delay(str(run.pk))
    cox = pd.read_csv(run.output_dir / "cox_time_varying.csv")
    warned = cox[cox["note"].fillna("").str.contains("separation on response")]
    assert len(warned) >= 1  # the day-1 response model: every censored patient responded
    note = warned["note"].iloc[0]
    page = statistician.get(reverse("analysis:run_detail", args=[run.pk])).content.decode()
    report = (run.output_dir / "report.html").read_text()
    for text in (page, report):
        table = text.split('id="cox_time_varying"')[1].split("</figure>")[0]
        assert note in table
    ph = pd.read_csv(run.output_dir / "cox_ph_test.csv")
    assert set(ph["source"]) == {"cox", "cox_time_varying"}
    assert len(ph[ph["term"] != "GLOBAL"]) == len(pd.read_csv(run.output_dir / "cox.csv")) + len(
        cox
    )


def test_the_word_document_has_real_tables_equal_to_the_csvs_and_the_figures(demo_run):
    document = Document(str(demo_run.output_dir / "report.docx"))
    expected = [t for t in _tables(demo_run).values() if not t.step_table]
    word = document.tables[1:]  # the first holds the run's facts and parameters
    assert len(word) == len(expected)  # every table; long step tables stay in their CSVs
    for grid, table in zip(word, expected, strict=True):
        rows = [[cell.text for cell in row.cells] for row in grid.rows]
        assert len(rows) == len(table.text_rows()), table.key
        for ours, theirs, row in zip(rows, table.text_rows(), [None, *table.rows], strict=True):
            if row is not None and row.section:  # a heading row is one merged cell
                assert set(ours) == {theirs[0]}, table.key
            else:
                assert ours == theirs, table.key
    # The numbers are the CSVs': Table 2's odds ratios and Table 3's counts.
    by_key = dict(zip([t.key for t in expected], word, strict=True))
    table2 = [[c.text for c in r.cells] for r in by_key["table2"].rows]
    raw = pd.read_csv(demo_run.output_dir / "table2_subgroups.csv")
    ratios = [float(r[2].split(" ")[0]) for r in table2[1:] if r[2] and r[2] != r[0]]
    assert ratios == list(raw["odds_ratio"].dropna().round(3))
    table3 = [[c.text for c in r.cells] for r in by_key["table3"].rows]
    counts = pd.read_csv(demo_run.output_dir / "table3_adverse_events.csv")
    assert [int(r[1].split(" ")[0]) for r in table3[1:]] == list(counts["any_n"])
    assert len(document.inline_shapes) == 3 + 6 + 4  # new figures, Figure 2, landmark curves


def test_tables_xlsx_has_the_formatted_tables_with_numbers_as_numbers(demo_run):
    book = load_workbook(demo_run.output_dir / "tables.xlsx")
    assert book.sheetnames[:3] == ["Table 1", "Table 2", "Table 3"]
    sheet = book["Table 2"]
    rows = list(sheet.iter_rows(values_only=True))
    table = _tables(demo_run)["table2"]
    assert rows[1][:4] == tuple(table.columns)
    age = rows[4]  # title, header, heading row, < 55, >= 55
    assert age[0] == "\u2265 55" and age[2] == table.rows[2].cells[2].text
    p_cell = sheet.cell(row=5, column=4)
    raw = pd.read_csv(demo_run.output_dir / "table2_subgroups.csv")
    assert p_cell.value == pytest.approx(raw["p_value"].iloc[1])  # a number, not text
    assert isinstance(p_cell.value, (int, float))
    assert p_cell.number_format == '[<0.001]"< 0.001";0.000'
    data = book["table2_subgroups"]  # the machine-readable sheet, as the CSV
    assert [c.value for c in data[1]] == list(raw.columns)
    assert isinstance(data.cell(row=3, column=8).value, float)


def test_report_html_opens_in_the_browser_with_its_style_allowed(demo_run, statistician):
    response = statistician.get(reverse("analysis:download", args=[demo_run.pk, "report.html"]))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("inline")
    assert response["Content-Type"].startswith("text/html")
    policy = response["Content-Security-Policy"]
    assert re.search(r"style-src 'self' 'sha256-[A-Za-z0-9+/=]+'", policy)
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    download = statistician.get(
        reverse("analysis:download", args=[demo_run.pk, "report.html"]) + "?download=1"
    )
    assert download["Content-Disposition"].startswith("attachment")


def test_each_table_downloads_as_shown(demo_run, statistician):
    response = statistician.get(reverse("analysis:table_csv", args=[demo_run.pk, "table2"]))
    lines = response.content.decode().splitlines()
    assert lines[0].startswith("Variables,Response rates")
    assert lines[3].startswith("\u2265 55,")
    missing = statistician.get(reverse("analysis:table_csv", args=[demo_run.pk, "nope"]))
    assert missing.status_code == 404


# ---------------------------------------------------------------------------------------------
# Without a broker: the run goes on in a thread of the web process
# ---------------------------------------------------------------------------------------------


class Gate:
    """Holds the run at each progress step until the test lets it go on."""

    def __init__(self):
        self.parked, self.go = threading.Semaphore(0), threading.Semaphore(0)

    def pause(self):
        self.parked.release()
        assert self.go.acquire(timeout=120), "the test never let the run go on"

    def wait_parked(self):
        assert self.parked.acquire(timeout=120), "the run never reached its next step"


@pytest.fixture
def in_thread(settings, monkeypatch):
    settings.ANALYSIS_IN_THREAD = True
    closed_in = []
    real_close_all = background.connections.close_all

    def close_all():
        closed_in.append(threading.current_thread().name)
        real_close_all()

    monkeypatch.setattr(background.connections, "close_all", close_all)
    return closed_in


def _join(run):
    thread = background.THREADS.get(str(run.pk))
    if thread is not None:
        thread.join(timeout=300)
        assert not thread.is_alive()


@pytest.mark.django_db(transaction=True)
def test_without_a_broker_the_request_returns_at_once_and_the_page_shows_each_step(
    demo, statistician, in_thread, monkeypatch
):
    gate = Gate()
    monkeypatch.setattr("analysis.runs.test_pause", gate.pause)
    response = statistician.post(reverse("analysis:start_run"), RUN_FORM)
    run = AnalysisRun.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/runs/{run.pk}/")
    assert run.status in (AnalysisRun.QUEUED, AnalysisRun.RUNNING)  # not run in the request
    status_url = reverse("analysis:run_status", args=[run.pk])
    seen = []
    for _ in list(outputs.PROGRESS_STEPS)[1:]:  # the run holds at each step after reading
        gate.wait_parked()
        state = statistician.get(status_url).json()
        seen.append((state["progress_pct"], state["progress_step"], state["status"]))
        current = [s["label"] for s in state["steps"] if s["state"] == "current"]
        assert current == [state["progress_step"]]
        gate.go.release()
        if state["progress_pct"] == outputs.PROGRESS_STEPS["docx"][0]:
            break
    _join(run)
    assert seen == [
        (pct, label, "running")
        for key, (pct, label) in outputs.PROGRESS_STEPS.items()
        if key not in ("read", "done")
    ]
    final = statistician.get(status_url).json()
    assert (final["status"], final["progress_pct"], final["finished"]) == ("succeeded", 100, True)
    assert {s["state"] for s in final["steps"]} == {"done"}
    assert f"analysis-run-{run.pk}" in in_thread  # its database connections closed at the end
    page = statistician.get(reverse("analysis:run_detail", args=[run.pk])).content.decode()
    assert "Table 2. Response rates after induction therapy" in page


@pytest.mark.django_db(transaction=True)
def test_a_run_of_an_empty_registry_fails_in_words(statistician, in_thread):
    statistician.post(reverse("analysis:start_run"), RUN_FORM)
    run = AnalysisRun.objects.get()
    _join(run)
    state = statistician.get(reverse("analysis:run_status", args=[run.pk])).json()
    assert (state["status"], state["finished"]) == ("failed", True)
    assert state["error"] == (
        "The registry has no patients yet, so there is nothing to analyse. Register patients, "
        "then start the run again."
    )
    assert [s["state"] for s in state["steps"]][0] == "failed"
    page = statistician.get(reverse("analysis:run_detail", args=[run.pk])).content.decode()
    assert "The registry has no patients yet" in page and "Traceback" in page  # details folded


@pytest.mark.django_db
def test_a_failure_inside_the_analysis_says_at_which_step_in_words(monkeypatch):
    site = f.institution("KR01")
    for _ in range(3):
        p = f.patient(site=site)
        f.baseline(p)
        f.followup(p)

    def singular(*args, **kwargs):
        raise np.linalg.LinAlgError("Singular matrix")

    monkeypatch.setattr("analysis.outputs.compute_tables", singular)
    run = AnalysisRun.objects.create(parameters=default_parameters())
    with pytest.raises(np.linalg.LinAlgError):
        run_analysis_task.delay(str(run.pk))
    run.refresh_from_db()
    assert run.error_summary == (
        "The run stopped while computing tables and survival models: Singular matrix "
        "(LinAlgError). Nothing in the registry was changed; start the run again, and if it "
        "fails the same way, send this message to the administrator."
    )
    assert run.progress_step == "Computing tables and survival models"
