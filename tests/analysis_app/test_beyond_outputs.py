"""On the demo registry, the "beyond the paper" files that run_analysis writes equal R.

R (tests/analysis/r/beyond_reference.R) reads the analysis_dataset.csv that run_analysis wrote
and recomputes the landmark analysis, the time-dependent Cox model, the cumulative incidence
and the response rates from its day columns; every figure of the four new files (landmark_*,
cox_time_varying.csv, cumulative_incidence.csv, response_rate.csv) must agree to 1e-6.
"""

import html
import json

import pandas as pd
import pytest
from django.core.management import call_command
from django.urls import reverse

from analysis import beyond, outputs
from registry.models import Membership
from tests.analysis.test_beyond_matches_r import compare_with_r, run_r

pytestmark = [pytest.mark.django_db, pytest.mark.r_reference]

BEYOND_FILES = [
    "landmark_median.csv",
    "landmark_logrank.csv",
    "landmark_excluded.csv",
    "landmark_numbers_at_risk.csv",
    "landmark_survival_table.csv",
    "cox_time_varying.csv",
    "cumulative_incidence.csv",
    "response_rate.csv",
]


@pytest.fixture
def demo(settings):
    settings.DEBUG = True
    call_command("seed_demo", stdout=open("/dev/null", "w"))
    settings.DEBUG = False


def read_run(out) -> dict[str, pd.DataFrame]:
    return {name: pd.read_csv(out / name, dtype={"group": str}) for name in BEYOND_FILES}


@pytest.mark.parametrize(
    "flags, landmark, reference_rate",
    [([], 90, 0.25), (["--landmark-days", "60", "--reference-rate", "0.3"], 60, 0.3)],
    ids=["defaults", "day60_rate0.3"],
)
def test_run_analysis_beyond_files_equal_r(demo, tmp_path, flags, landmark, reference_rate):
    out, r_dir = tmp_path / "out", tmp_path / "r"
    r_dir.mkdir()
    call_command("run_analysis", "--out", str(out), *flags, stdout=open("/dev/null", "w"))
    meta = json.loads((out / "run.json").read_text())
    assert meta["parameters"]["landmark_days"] == landmark
    assert meta["parameters"]["reference_rate"] == reference_rate
    assert set(BEYOND_FILES) <= set(meta["files"])
    frames = read_run(out)
    assert (frames["landmark_median.csv"]["landmark_days"] == landmark).all()
    assert (frames["response_rate.csv"]["reference_rate"] == reference_rate).all()
    r = run_r(
        None,
        r_dir,
        landmark,
        reference_rate,
        at_risk=outputs.AT_RISK_MONTHS,
        source=out / "analysis_dataset.csv",
    )
    compare_with_r(frames, r)
    # The demo registry exercises every part: transplants, responders and both causes.
    cif = frames["cumulative_incidence.csv"]
    assert set(cif["cause"]) == set(beyond.CAUSES.values())
    assert (frames["landmark_excluded.csv"].groupby("endpoint")["n"].sum() == 50).all()


def test_report_and_dashboard_show_the_tables_with_their_notes(demo, client, tmp_path):
    from tests import factories as f

    call_command("run_analysis", "--out", str(tmp_path), stdout=open("/dev/null", "w"))
    report = (tmp_path / "report.html").read_text()
    for name in BEYOND_FILES:  # each table shown links the CSV it is built from
        assert f'<a href="{name}">{name}</a>' in report, name
    for note in beyond.NOTES.values():
        assert html.escape(note[:60]) in report
    assert "Overall survival from day 90, by allogeneic SCT by the landmark" in report

    client.force_login(f.user("stat", role=Membership.STATISTICIAN))
    response = client.post(
        reverse("analysis:start_run"),
        {
            "test": "fisher",
            "age_years": 55,
            "months_from_diagnosis": 12,
            "marrow_blasts_pct": 50,
            "dexamethasone_mg": 80,
            "landmark_days": 90,
            "reference_rate": 0.25,
        },
    )
    assert response.status_code == 302
    page = client.get(reverse("analysis:dashboard")).content.decode()
    for name in BEYOND_FILES:
        assert f">{name}</a>" in page, name
    for note in beyond.NOTES.values():
        assert html.escape(note[:60]) in page
    assert "landmark_km_efs_response_by_landmark.svg" in page
    assert "<details>" in page
