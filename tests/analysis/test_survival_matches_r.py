"""analysis.survival against R's survival package, figure by figure, to 1e-6.

Each dataset is written to CSV, tests/analysis/r/survival_reference.R recomputes everything
with survfit (conf.type = "log"), survdiff and coxph(ties = "efron"), and every number is
compared. Times are rounded in some datasets so that there are many tied event times.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.survival import (
    DEFAULT_ENDPOINTS,
    km_median,
    km_table,
    numbers_at_risk,
    survival_outputs,
)

from .datagen import make_dataset, require_rscript

pytestmark = pytest.mark.r_reference

R_SCRIPT = Path(__file__).parent / "r" / "survival_reference.R"
TOLERANCE = 1e-6
RISK_TIMES = (0, 1.5, 3, 6, 9, 12)
R_COLUMNS = [
    "efs_months",
    "efs_event",
    "os_months",
    "os_event",
    "responder",
    "allo_sct_after",
    "ecog_ge_2",
    "emd",
]


def _tied(seed: int, n: int, decimals: int | None) -> pd.DataFrame:
    df = make_dataset(n, seed)
    if decimals is not None:
        # Coarse times give many ties, the case where Efron and Breslow differ.
        for column in ("efs_months", "os_months"):
            df[column] = df[column].round(decimals)
    return df


def _halfway() -> pd.DataFrame:
    """Uncensored, untied EFS in 40 patients: S(t) sits on 0.5, so the median is a midpoint."""
    df = make_dataset(40, 5)
    df["efs_months"] = np.random.default_rng(5).permutation(np.arange(1, 41) * 0.5)
    df["efs_event"] = 1
    return df


DATASETS = {
    "n150_ties_0.1m": lambda: _tied(7, 150, 1),
    "n80_ties_1m": lambda: _tied(11, 80, 0),
    "n50_days": lambda: _tied(3, 50, None),
    "halfway_median": _halfway,
}


def run_r(df: pd.DataFrame, tmp_path: Path) -> dict[str, pd.DataFrame]:
    rscript = require_rscript()
    source = tmp_path / "in.csv"
    df[R_COLUMNS].astype(float).to_csv(source, index=False, float_format="%.17g")
    times = ",".join(str(t) for t in RISK_TIMES)
    result = subprocess.run(
        [rscript, str(R_SCRIPT), str(source), str(tmp_path), times],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"R failed:\n{result.stderr}"
    names = ("km", "medians", "logrank", "cox", "atrisk")
    return {name: pd.read_csv(tmp_path / f"{name}.csv", keep_default_na=True) for name in names}


def _subsets(df: pd.DataFrame, grouping: str):
    if grouping == "overall":
        yield "all", df
        return
    for value, label in ((False, "no"), (True, "yes")):
        yield label, df[df[grouping].astype(bool) == value]


def assert_close(python, r, columns, context) -> None:
    """Equal to TOLERANCE, NaN where R has NA."""
    for column in columns:
        ours = np.asarray(python[column], dtype=float)
        theirs = np.asarray(r[column], dtype=float)
        assert ours.shape == theirs.shape, f"{context} {column}: {ours.shape} vs {theirs.shape}"
        np.testing.assert_allclose(
            ours, theirs, rtol=0, atol=TOLERANCE, equal_nan=True, err_msg=f"{context} {column}"
        )


@pytest.fixture(scope="module", params=sorted(DATASETS))
def case(request, tmp_path_factory):
    df = DATASETS[request.param]()
    return df, run_r(df, tmp_path_factory.mktemp(request.param))


def test_datasets_have_tied_event_times():
    df = DATASETS["n150_ties_0.1m"]()
    events = df.loc[df["efs_event"] == 1, "efs_months"]
    assert events.duplicated().sum() > 20


def test_km_table_matches_survfit(case):
    df, r = case
    for endpoint, duration_col, event_col in DEFAULT_ENDPOINTS:
        for grouping in ("overall", "responder", "allo_sct_after"):
            for group, part in _subsets(df, grouping):
                ours = km_table(part[duration_col], part[event_col])
                theirs = r["km"].query(
                    "endpoint == @endpoint and grouping == @grouping and group == @group"
                )
                context = f"{endpoint}/{grouping}/{group}"
                assert_close(ours, theirs, ["time", "n_risk", "n_event", "n_censor"], context)
                assert_close(ours, theirs, ["survival", "std_err", "lower", "upper"], context)


def test_km_median_and_ci_match_survfit(case):
    df, r = case
    for endpoint, duration_col, event_col in DEFAULT_ENDPOINTS:
        for grouping in ("overall", "responder", "allo_sct_after"):
            for group, part in _subsets(df, grouping):
                theirs = r["medians"].query(
                    "endpoint == @endpoint and grouping == @grouping and group == @group"
                )
                ours = dict(
                    zip(
                        ["median_months", "ci_lower", "ci_upper"],
                        km_median(part[duration_col], part[event_col]),
                        strict=True,
                    )
                )
                assert_close(
                    pd.DataFrame([ours]),
                    theirs,
                    ["median_months", "ci_lower", "ci_upper"],
                    f"{endpoint}/{grouping}/{group}",
                )


def test_halfway_median_is_midpoint():
    df = _halfway()
    median, _, _ = km_median(df["efs_months"], df["efs_event"])
    assert median == pytest.approx(10.25, abs=1e-12)


def test_survival_outputs_match_r(case):
    df, r = case
    outputs = survival_outputs(df)
    key = ["endpoint", "grouping", "group"]
    medians = outputs.medians.merge(r["medians"], on=key, suffixes=("", "_r"))
    assert len(medians) == len(r["medians"]) == len(outputs.medians)
    for column in ("n", "events", "median_months", "ci_lower", "ci_upper"):
        np.testing.assert_allclose(
            medians[column].astype(float),
            medians[f"{column}_r"].astype(float),
            atol=TOLERANCE,
            equal_nan=True,
            err_msg=column,
        )

    logrank = outputs.logrank.merge(r["logrank"], on=["endpoint", "grouping"], suffixes=("", "_r"))
    assert len(logrank) == len(r["logrank"]) == 4
    for column in ("chisq", "df", "p_value"):
        np.testing.assert_allclose(
            logrank[column], logrank[f"{column}_r"], rtol=0, atol=TOLERANCE, err_msg=column
        )

    cox = outputs.cox.merge(r["cox"], on=["endpoint", "model", "term"], suffixes=("", "_r"))
    assert len(cox) == len(r["cox"]) == len(outputs.cox) == 2 * (4 + 4)
    for column in ("coef", "se", "hazard_ratio", "ci_lower", "ci_upper", "p_value"):
        np.testing.assert_allclose(
            cox[column], cox[f"{column}_r"], rtol=0, atol=TOLERANCE, err_msg=column
        )


def test_numbers_at_risk_match_r(case):
    df, r = case
    for endpoint, duration_col, event_col in DEFAULT_ENDPOINTS:
        for grouping in ("overall", "responder", "allo_sct_after"):
            for group, part in _subsets(df, grouping):
                ours = numbers_at_risk(part[duration_col], part[event_col], RISK_TIMES)
                theirs = r["atrisk"].query(
                    "endpoint == @endpoint and grouping == @grouping and group == @group"
                )
                assert_close(ours, theirs, ["time", "n_risk"], f"{endpoint}/{grouping}/{group}")


def test_logrank_with_a_group_that_expects_no_death_is_no_test_with_its_df():
    """As R's survdiff (and the reference script): a group whose patients all leave before the
    first death expects none; chisq 0 on k - 1 df, P = 1."""
    from analysis.survival import logrank

    df = pd.DataFrame(
        {
            "months": [1.0, 1.5, 5.0, 6.0, 7.0, 8.0],
            "event": [0, 0, 1, 0, 1, 1],
            "group": [1, 1, 0, 0, 0, 0],
        }
    )
    assert tuple(logrank(df, "months", "event", "group")) == (0.0, 1, 1.0)
