"""On the demo registry, every survival figure that run_analysis writes equals R's survival.

R reads the analysis_dataset.csv that run_analysis wrote, so this checks the whole path from the
registry to the files a statistician downloads.
"""

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command

from tests.analysis.test_survival_matches_r import R_SCRIPT, require_rscript

pytestmark = [pytest.mark.django_db, pytest.mark.r_reference]
TOLERANCE = 1e-6
RISK_TIMES = "0,3,6,9,12,15,18"
KEYS = ["endpoint", "grouping", "group"]


@pytest.fixture
def outputs_and_r(settings, tmp_path):
    settings.DEBUG = True
    call_command("seed_demo", stdout=open("/dev/null", "w"))
    settings.DEBUG = False
    out, r_dir = tmp_path / "out", tmp_path / "r"
    r_dir.mkdir()
    call_command("run_analysis", "--out", str(out), stdout=open("/dev/null", "w"))
    result = subprocess.run(
        [
            require_rscript(),
            str(R_SCRIPT),
            str(out / "analysis_dataset.csv"),
            str(r_dir),
            RISK_TIMES,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return out, r_dir


def read(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype={"group": str})
    if "group" in frame:
        frame["group"] = frame["group"].replace({"no": "0", "yes": "1"})
    return frame


def assert_same(ours: pd.DataFrame, theirs: pd.DataFrame, keys, columns):
    assert len(ours) == len(theirs) > 0
    ours = ours.sort_values(keys).reset_index(drop=True)
    theirs = theirs.sort_values(keys).reset_index(drop=True)
    text_keys = [k for k in keys if k != "time"]
    assert ours[text_keys].astype(str).equals(theirs[text_keys].astype(str))
    if "time" in keys:
        columns = ["time", *columns]
    for column in columns:
        np.testing.assert_allclose(
            ours[column].astype(float),
            theirs[column].astype(float),
            rtol=0,
            atol=TOLERANCE,
            equal_nan=True,
            err_msg=column,
        )


def test_medians_logrank_cox_and_km_tables_equal_r(outputs_and_r):
    out, r = outputs_and_r
    assert_same(
        read(out / "survival_median.csv"),
        read(r / "medians.csv"),
        KEYS,
        ["n", "events", "median_months", "ci_lower", "ci_upper"],
    )
    assert_same(
        read(out / "survival_logrank.csv"),
        read(r / "logrank.csv"),
        ["endpoint", "grouping"],
        ["chisq", "df", "p_value"],
    )
    assert_same(
        read(out / "cox.csv"),
        read(r / "cox.csv"),
        ["endpoint", "model", "term"],
        ["coef", "se", "hazard_ratio", "ci_lower", "ci_upper", "p_value"],
    )
    assert_same(
        read(out / "survival_table.csv"),
        read(r / "km.csv"),
        [*KEYS, "time"],
        ["n_risk", "n_event", "n_censor", "survival", "std_err", "lower", "upper"],
    )
    assert_same(
        read(out / "numbers_at_risk.csv"), read(r / "atrisk.csv"), [*KEYS, "time"], ["n_risk"]
    )
