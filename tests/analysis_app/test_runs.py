"""Analysis runs: Celery task state, reproducibility, the command line and the dashboard."""

import json
from pathlib import Path

import pandas as pd
import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from analysis import outputs
from analysis.models import AnalysisRun
from analysis.outputs import default_parameters
from analysis.tasks import run_analysis_task
from registry.models import Membership

pytestmark = pytest.mark.django_db

REQUIRED_FILES = [
    "analysis_dataset.csv",
    "table1.csv",
    "table2_subgroups.csv",
    "table3_adverse_events.csv",
    "flow.csv",
    "survival_median.csv",
    "survival_logrank.csv",
    "cox.csv",
    "report.html",
    "km_efs_overall.png",
    "km_os_responder.svg",
    "km_os_allo_sct_after.png",
    "analysis_dataset.sav",
    "analysis_dataset.dta",
    "analysis_dataset.xlsx",
]
COLUMNS = {
    "analysis_dataset.csv": [
        "study_id",
        "institution",
        "evaluable",
        "best_response",
        "responder",
        "efs_months",
        "efs_event",
        "os_months",
        "os_event",
        "allo_sct_after",
    ],
    "table2_subgroups.csv": [
        "variable",
        "level",
        "n",
        "responders",
        "rate",
        "odds_ratio",
        "ci_lower",
        "ci_upper",
        "p_value",
        "test",
        "reference_level",
    ],
    "survival_median.csv": [
        "endpoint",
        "grouping",
        "group",
        "n",
        "events",
        "median_months",
        "ci_lower",
        "ci_upper",
    ],
    "survival_logrank.csv": ["endpoint", "grouping", "chisq", "df", "p_value"],
    "cox.csv": [
        "endpoint",
        "model",
        "term",
        "coef",
        "se",
        "hazard_ratio",
        "ci_lower",
        "ci_upper",
        "p_value",
    ],
}


@pytest.fixture
def demo(settings):
    settings.DEBUG = True
    call_command("seed_demo", stdout=open("/dev/null", "w"))
    settings.DEBUG = False


def test_run_analysis_command_writes_every_documented_file_and_column(demo, tmp_path):
    call_command("run_analysis", "--out", str(tmp_path), stdout=open("/dev/null", "w"))
    for name in REQUIRED_FILES:
        assert (tmp_path / name).stat().st_size > 0, name
    for name, columns in COLUMNS.items():
        header = list(pd.read_csv(tmp_path / name, nrows=0).columns)
        assert [c for c in columns if c not in header] == [], name
    data = pd.read_csv(tmp_path / "analysis_dataset.csv")
    assert len(data) == 50 and set(data["responder"]) <= {0, 1}
    assert json.loads((tmp_path / "run.json").read_text())["days_per_month"] == 30.4375
    assert not data["study_id"].str.contains("Hospital|hospital").any()


def test_spss_and_stata_files_carry_variable_and_value_labels(demo, tmp_path):
    import pyreadstat

    call_command("run_analysis", "--out", str(tmp_path), stdout=open("/dev/null", "w"))
    for name, reader in [
        ("analysis_dataset.sav", pyreadstat.read_sav),
        ("analysis_dataset.dta", pyreadstat.read_dta),
    ]:
        df, meta = reader(str(tmp_path / name))
        labels = dict(zip(meta.column_names, meta.column_labels, strict=True))
        assert labels["os_months"] == "Overall survival, months (days / 30.4375)"
        assert meta.variable_value_labels["responder"] == {0: "No", 1: "Yes"}
        assert len(df) == 50


def test_task_records_snapshot_and_gives_the_same_numbers_on_unchanged_data(demo):
    first = AnalysisRun.objects.create(parameters=default_parameters())
    second = AnalysisRun.objects.create(parameters=default_parameters())
    run_analysis_task.delay(str(first.pk))
    run_analysis_task.delay(str(second.pk))
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.progress_pct, first.n_patients) == ("succeeded", 100, 50)
    assert first.snapshot_hash == second.snapshot_hash and len(first.snapshot_hash) == 64
    assert first.code_version and first.started_at <= first.finished_at
    for name in ["table2_subgroups.csv", "survival_median.csv", "cox.csv", "table1.csv"]:
        assert (first.output_dir / name).read_bytes() == (second.output_dir / name).read_bytes()


def test_a_failing_run_ends_failed_with_the_error_never_running(demo, monkeypatch):
    def explode(*args, **kwargs):
        raise ValueError("singular matrix in Cox model")

    monkeypatch.setattr("analysis.runs.write_run", explode)
    run = AnalysisRun.objects.create(parameters=default_parameters())
    with pytest.raises(ValueError):
        run_analysis_task.delay(str(run.pk))
    run.refresh_from_db()
    assert run.status == "failed"
    assert run.error_summary == (
        "The run stopped while reading the registry: singular matrix in Cox model "
        "(ValueError). Nothing in the registry was changed; start the run again, and if it "
        "fails the same way, send this message to the administrator."
    )
    assert run.error_details.startswith("ValueError: singular matrix in Cox model")
    assert run.finished_at is not None


def test_a_run_whose_worker_went_silent_is_marked_failed():
    stale = AnalysisRun.objects.create(
        status="running", heartbeat_at=timezone.now() - timezone.timedelta(hours=1)
    )
    fresh = AnalysisRun.objects.create(status="running", heartbeat_at=timezone.now())
    assert AnalysisRun.fail_stale_runs() == 1
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert (stale.status, fresh.status) == ("failed", "running")
    assert "worker lost" in stale.error


@pytest.fixture
def statistician(client):
    from tests import factories as f

    user = f.user("stat", role=Membership.STATISTICIAN)
    client.force_login(user)
    return user


def test_dashboard_run_equals_command_line_run(demo, client, statistician, tmp_path):
    response = client.post(
        reverse("analysis:start_run"),
        {
            "test": "fisher",
            "age_years": 55,
            "months_from_diagnosis": 12,
            "marrow_blasts_pct": 50,
            "dexamethasone_mg": 80,
        },
    )
    run = AnalysisRun.objects.get(source="dashboard")
    assert response.status_code == 302 and run.status == "succeeded"
    call_command("run_analysis", "--out", str(tmp_path), stdout=open("/dev/null", "w"))
    for name in [
        "analysis_dataset.csv",
        "table2_subgroups.csv",
        "survival_median.csv",
        "survival_logrank.csv",
        "cox.csv",
        "table3_adverse_events.csv",
        "flow.csv",
    ]:
        assert (run.output_dir / name).read_bytes() == (tmp_path / name).read_bytes(), name
    page = client.get(reverse("analysis:dashboard"))
    assert page.status_code == 200
    assert b"Table 2. Response rates after induction therapy" in page.content
    assert f"{run.n_patients} patients".encode() in page.content


def test_downloads_only_serve_the_runs_own_files(demo, client, statistician):
    run = AnalysisRun.objects.create(parameters=default_parameters())
    run_analysis_task.delay(str(run.pk))
    ok = client.get(reverse("analysis:download", args=[run.pk, "table2_subgroups.csv"]))
    assert ok.status_code == 200 and ok["Content-Disposition"].startswith("attachment")
    assert b"odds_ratio" in b"".join(ok.streaming_content)
    assert (
        client.get(reverse("analysis:download", args=[run.pk, "..%2Fsettings.py"])).status_code
        == 404
    )
    assert client.get(reverse("analysis:download", args=[run.pk, "nope.csv"])).status_code == 404


def test_investigators_cannot_reach_the_analyses(client):
    from tests import factories as f

    client.force_login(f.user("inv"))
    assert client.get(reverse("analysis:dashboard")).status_code == 403
    assert client.post(reverse("analysis:start_run"), {}).status_code == 403
    client.logout()
    assert client.get(reverse("analysis:dashboard")).status_code == 302


def test_broker_down_says_the_job_service_is_unavailable(client, statistician, monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379")

    monkeypatch.setattr("analysis.views.run_analysis_task.delay", refuse)
    response = client.post(
        reverse("analysis:start_run"),
        {
            "test": "fisher",
            "age_years": 55,
            "months_from_diagnosis": 12,
            "marrow_blasts_pct": 50,
            "dexamethasone_mg": 80,
        },
        follow=True,
    )
    assert b"The job service is unavailable" in response.content
    assert AnalysisRun.objects.get().status == "failed"


def test_report_is_self_contained(demo, tmp_path):
    call_command("run_analysis", "--out", str(tmp_path), stdout=open("/dev/null", "w"))
    report = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in report
    assert "http://" not in report and "https://" not in report
    assert "Table 2. Response rates after induction therapy" in report


def test_outputs_module_lists_every_table_it_writes():
    assert Path(outputs.__file__).exists()
    assert set(outputs.TABLE_FILES) >= {"table1.csv", "cox.csv", "survival_median.csv"}


def test_the_dashboard_shows_the_start_of_a_long_step_table_and_the_csv_all_of_it(
    demo, client, statistician, tmp_path
):
    call_command("run_analysis", "--out", str(tmp_path), stdout=open("/dev/null", "w"))
    out = tmp_path
    long = pd.read_csv(out / "cumulative_incidence.csv")
    rows = pd.concat([long] * 3, ignore_index=True)  # as a larger registry would give
    rows.to_csv(out / "cumulative_incidence.csv", index=False)
    run = AnalysisRun.objects.create(status=AnalysisRun.SUCCEEDED, output_path=str(out))
    page = client.get(reverse("analysis:run_detail", args=[run.pk])).content.decode()
    table = page.split('id="cumulative_incidence"')[1].split("</figure>")[0]
    assert f"Show the table ({len(rows)} rows; here the first 100, the CSV has every row)" in table
    assert table.split("<tbody>")[1].count("</tr>") == 100
    csv = client.get(reverse("analysis:download", args=[run.pk, "cumulative_incidence.csv"]))
    assert b"".join(csv.streaming_content).decode().count("\n") == 1 + len(rows)
