"""analysis.beyond against R (survival and base R), figure by figure, to 1e-6.

Each generated dataset (tied days, responses and transplants on the landmark day and on the
day of the event or censoring) is written to CSV; tests/analysis/r/beyond_reference.R
recomputes the landmark analysis (survfit, survdiff), the time-dependent Cox model (tmerge +
coxph(ties = "efron")), the cumulative incidence (multi-state survfit) and the response rates
(binom.test, prop.test) independently from the day columns, and every number is compared.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import beyond

from .datagen import DAYS_PER_MONTH, make_dataset, require_rscript

pytestmark = pytest.mark.r_reference

R_SCRIPT = Path(__file__).parent / "r" / "beyond_reference.R"
TOLERANCE = 1e-6
AT_RISK = (0, 1, 3, 6, 12)
R_COLUMNS = [
    "efs_days",
    "efs_event",
    "efs_cause",
    "os_days",
    "os_event",
    "sct_days",
    "response_days",
    "responder",
    "allo_sct_after",
    "evaluable",
    "sex",
    "age_ge_55",
    "diagnosis_ge_12m",
    "salvage_ge_2",
    "ecog_ge_2",
    "cyto_risk_diagnosis",
    "cyto_risk_start",
    "emd",
    "blasts_gt_50",
    "prior_allo_sct",
    "dexamethasone_gt_80",
]
FLAGS = [
    "responder",
    "allo_sct_after",
    "evaluable",
    "age_ge_55",
    "diagnosis_ge_12m",
    "salvage_ge_2",
    "ecog_ge_2",
    "emd",
    "blasts_gt_50",
    "prior_allo_sct",
    "dexamethasone_gt_80",
]


def make_beyond_dataset(n: int, seed: int, step: int = 1, landmark: int = 90) -> pd.DataFrame:
    """datagen.make_dataset plus the day columns of the time-dependent analyses.

    Days are rounded up to multiples of `step` (ties); about 30% of EFS events are deaths
    without relapse; responses and SCTs fall on fixed weekdays, some on the landmark day
    and some on the day of the EFS event, death or censoring (the tie rules under test).
    """
    df = make_dataset(n, seed)
    rng = np.random.default_rng(seed + 1000)
    efs = np.ceil(np.round(df["efs_months"] * DAYS_PER_MONTH) / step) * step
    os_ = np.ceil(np.round(df["os_months"] * DAYS_PER_MONTH) / step) * step
    os_ = np.maximum(os_, efs)
    efs_event, os_event = df["efs_event"].to_numpy(), df["os_event"].to_numpy()
    # Death without relapse: EFS event that is a death on the same day.
    nrm = (efs_event == 1) & ((rng.random(n) < 0.3) | ~df["evaluable"].to_numpy())
    os_ = np.where(nrm, efs, os_)
    os_event = np.where(nrm, 1, os_event)
    cause = np.where(efs_event == 1, np.where(nrm, 2, 1), 0)
    # A few patients end EFS (event or censoring) or OS exactly on the landmark day.
    on_landmark = rng.random(n) < 0.06
    efs = np.where(on_landmark, landmark, efs)
    os_ = np.maximum(os_, efs)
    responder = df["responder"].to_numpy(dtype=bool)
    response = rng.choice([21, 28, 35, 42, 56, 84, 90, 90, 91, 120], size=n).astype(float)
    response = np.where(rng.random(n) < 0.15, efs, np.minimum(response, efs))
    response = np.where(responder, response, np.nan)
    allo = df["allo_sct_after"].to_numpy(dtype=bool)
    sct = response + rng.choice([14, 30, 45, 62, 69, 90], size=n)
    sct = np.where(rng.random(n) < 0.1, landmark, sct)
    sct = np.where(rng.random(n) < 0.15, os_, np.minimum(sct, os_))
    sct = np.where(allo & responder, sct, np.nan)
    return df.assign(
        efs_days=efs.astype(int),
        efs_event=efs_event,
        efs_cause=cause,
        os_days=os_.astype(int),
        os_event=os_event,
        response_days=pd.array(response, dtype="Float64").astype("Int64"),
        sct_days=pd.array(sct, dtype="Float64").astype("Int64"),
        efs_months=efs / DAYS_PER_MONTH,
        os_months=os_ / DAYS_PER_MONTH,
    )


# name -> (dataset, landmark_days, reference_rate)
DATASETS = {
    "n150_weekly_lm90": (lambda: make_beyond_dataset(150, 7, step=7), 90, 0.25),
    "n80_monthly_lm90": (lambda: make_beyond_dataset(80, 11, step=30), 90, 0.25),
    "n50_days_lm60": (lambda: make_beyond_dataset(50, 3, landmark=60), 60, 0.3),
    # No transplant by day 30: the SCT landmark comparison has one group only.
    "n60_weekly_lm30": (lambda: make_beyond_dataset(60, 5, step=7, landmark=30), 30, 0.25),
}


def to_r_csv(df: pd.DataFrame, path: Path) -> None:
    out = df[R_COLUMNS].copy()
    for column in FLAGS:
        out[column] = out[column].astype("boolean").astype("Int64")
    out.to_csv(path, index=False, float_format="%.17g")


def run_r(df, tmp_path: Path, landmark, reference_rate, at_risk=AT_RISK, source=None):
    if source is None:
        source = tmp_path / "in.csv"
        to_r_csv(df, source)
    result = subprocess.run(
        [
            require_rscript(),
            str(R_SCRIPT),
            str(source),
            str(tmp_path),
            str(landmark),
            str(reference_rate),
            ",".join(str(t) for t in at_risk),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"R failed:\n{result.stderr}"
    names = (
        "landmark_median",
        "landmark_logrank",
        "landmark_excluded",
        "landmark_numbers_at_risk",
        "landmark_km",
        "cox_time_varying",
        "cumulative_incidence",
        "response_rate",
    )
    return {name: pd.read_csv(tmp_path / f"{name}.csv", dtype={"group": str}) for name in names}


def assert_same(ours: pd.DataFrame, theirs: pd.DataFrame, keys, columns, context="") -> None:
    """Same rows (by keys, in order) and every column equal to TOLERANCE, NaN where R has NA."""
    assert len(ours) == len(theirs) > 0, f"{context}: {len(ours)} vs {len(theirs)} rows"
    ours = ours.sort_values(keys, kind="stable").reset_index(drop=True)
    theirs = theirs.sort_values(keys, kind="stable").reset_index(drop=True)
    for key in keys:
        if key == "time":
            continue
        assert ours[key].astype(str).tolist() == theirs[key].astype(str).tolist(), key
    for column in columns:
        np.testing.assert_allclose(
            ours[column].astype(float).to_numpy(),
            theirs[column].astype(float).to_numpy(),
            rtol=0,
            atol=TOLERANCE,
            equal_nan=True,
            err_msg=f"{context} {column}",
        )


def compare_with_r(frames: dict, r: dict) -> None:
    """Every file of beyond.beyond_outputs (or of a run directory) against R's output."""
    key = ["endpoint", "grouping", "group"]
    assert_same(
        frames["landmark_median.csv"],
        r["landmark_median"],
        key,
        ["n", "events", "median_months", "ci_lower", "ci_upper"],
        "landmark median",
    )
    assert_same(
        frames["landmark_logrank.csv"],
        r["landmark_logrank"],
        ["endpoint", "grouping"],
        ["chisq", "df", "p_value"],
        "landmark log-rank",
    )
    excluded = frames["landmark_excluded.csv"]
    assert excluded["status"].tolist() == r["landmark_excluded"]["status"].tolist()
    assert excluded["n"].tolist() == r["landmark_excluded"]["n"].tolist()
    assert_same(
        frames["landmark_numbers_at_risk.csv"],
        r["landmark_numbers_at_risk"],
        [*key, "time"],
        ["time", "n_risk"],
        "landmark at risk",
    )
    if "landmark_survival_table.csv" in frames:
        assert_same(
            frames["landmark_survival_table.csv"],
            r["landmark_km"],
            [*key, "time"],
            ["time", "n_risk", "n_event", "n_censor", "survival", "std_err", "lower", "upper"],
            "landmark KM",
        )
    assert_same(
        frames["cox_time_varying.csv"],
        r["cox_time_varying"],
        ["endpoint", "model", "term"],
        [
            "coef",
            "se",
            "hazard_ratio",
            "ci_lower",
            "ci_upper",
            "p_value",
            "n_patients",
            "n_intervals",
            "events",
        ],
        "time-varying Cox",
    )
    assert_same(
        frames["cumulative_incidence.csv"],
        r["cumulative_incidence"],
        ["grouping", "group", "cause", "time"],
        [
            "time",
            "n_risk",
            "cumulative_incidence",
            "std_err",
            "ci_lower",
            "ci_upper",
            "one_minus_km",
        ],
        "cumulative incidence",
    )
    ours, theirs = frames["response_rate.csv"], r["response_rate"]
    assert ours["variable"].tolist() == theirs["variable"].tolist()
    assert ours["level"].tolist() == theirs["level"].tolist()
    for column in (
        "n",
        "responders",
        "rate",
        "exact_ci_lower",
        "exact_ci_upper",
        "wilson_ci_lower",
        "wilson_ci_upper",
        "p_value_greater",
    ):
        np.testing.assert_allclose(
            ours[column].astype(float),
            theirs[column].astype(float),
            rtol=0,
            atol=TOLERANCE,
            equal_nan=True,
            err_msg=f"response rate {column}",
        )


@pytest.fixture(scope="module", params=sorted(DATASETS))
def case(request, tmp_path_factory):
    build, landmark, reference_rate = DATASETS[request.param]
    df = build()
    r = run_r(df, tmp_path_factory.mktemp(request.param), landmark, reference_rate)
    ours = beyond.beyond_outputs(
        df, landmark_days=landmark, reference_rate=reference_rate, at_risk_months=AT_RISK
    )
    return df, ours, r, landmark


def test_generated_data_has_the_ties_under_test():
    df = DATASETS["n150_weekly_lm90"][0]()
    events = df.loc[df["efs_event"] == 1, "efs_days"]
    assert events.duplicated().sum() > 30
    assert (df["efs_cause"] == 2).sum() >= 10 and (df["efs_cause"] == 1).sum() >= 10
    assert (df["sct_days"] == df["os_days"]).sum() >= 1
    assert (df["response_days"] == df["efs_days"]).sum() >= 1
    assert (df["efs_days"] == 90).sum() >= 3
    assert ((df["response_days"] == 90) | (df["sct_days"] == 90)).sum() >= 2


def test_all_outputs_match_r(case):
    _, ours, r, _ = case
    compare_with_r(ours.tables, r)


def test_landmark_keeps_only_patients_past_the_landmark(case):
    df, ours, _, landmark = case
    for endpoint, frame in ours.landmark.frames.items():
        assert (frame["time_days"] > 0).all()
        excluded = ours.tables["landmark_excluded.csv"].query("endpoint == @endpoint")
        assert excluded["n"].sum() == len(df)
        assert excluded.query("status == 'included'")["n"].item() == len(frame)
        assert (df[f"{endpoint}_days"] > landmark).sum() == len(frame)


def test_one_group_at_the_landmark_gives_no_log_rank():
    build, landmark, _ = DATASETS["n60_weekly_lm30"]
    logrank = beyond.landmark_analysis(build(), landmark).logrank
    row = logrank.query("grouping == 'sct_by_landmark'")
    assert row["p_value"].isna().all() and len(row) == 2


def test_covariate_change_applies_from_its_day_as_r_tmerge():
    df = pd.DataFrame(
        {
            "stop": [10, 20, 30, 40, 50, 0],
            "event": [1, 0, 1, 1, 0, 1],
            "sct_days": [np.nan, 20, 5, 0, 60, np.nan],
            "response_days": [3, np.nan, 30, 10, -1, np.nan],
        }
    )
    frame = beyond.start_stop(df, "stop", "event")
    expected = pd.DataFrame(
        [
            [0, 0, 3, 0, 0, 0],
            [0, 3, 10, 1, 0, 1],  # response on day 3 applies to (3, 10]
            [1, 0, 20, 0, 0, 0],  # SCT on the censoring day is not seen
            [2, 0, 5, 0, 0, 0],
            [2, 5, 30, 1, 1, 0],  # response on the event day: event counted before it
            [3, 0, 10, 0, 1, 0],  # SCT on day 0 applies from the start
            [3, 10, 40, 1, 1, 1],
            [4, 0, 50, 0, 0, 1],
        ],
        columns=["id", "start", "stop", "event", "sct", "response"],
    )
    pd.testing.assert_frame_equal(frame.astype(float), expected.astype(float))


def test_cumulative_incidence_is_below_one_minus_km(case):
    _, ours, _, _ = case
    cif = ours.tables["cumulative_incidence.csv"]
    assert (cif["km_excess"] >= -1e-12).all()
    overall = cif.query("grouping == 'overall'")
    last = overall.groupby("cause")["cumulative_incidence"].last()
    survival_all = overall.groupby("cause")["n_risk"].size()  # both causes on the same grid
    assert survival_all.nunique() == 1 and last.sum() <= 1 + 1e-12


def test_binomial_intervals_and_test_at_the_edges_match_r(tmp_path):
    grid = [(0, 1), (1, 1), (0, 12), (12, 12), (1, 12), (22, 49), (3, 7), (49, 50)]
    code = (
        "g <- read.csv(commandArgs(TRUE)[1]); rows <- lapply(seq_len(nrow(g)), function(i) {"
        "k <- g$k[i]; n <- g$n[i]; e <- binom.test(k, n)$conf.int;"
        "w <- suppressWarnings(prop.test(k, n, correct = FALSE))$conf.int;"
        "data.frame(e1 = e[1], e2 = e[2], w1 = w[1], w2 = w[2],"
        "p = binom.test(k, n, p = 0.25, alternative = 'greater')$p.value)});"
        "write.csv(do.call(rbind, rows), commandArgs(TRUE)[2], row.names = FALSE)"
    )
    source = tmp_path / "grid.csv"
    pd.DataFrame(grid, columns=["k", "n"]).to_csv(source, index=False)
    result = subprocess.run(
        [require_rscript(), "-e", code, str(source), str(tmp_path / "r.csv")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    r = pd.read_csv(tmp_path / "r.csv")
    from analysis.tables import clopper_pearson

    for (k, n), theirs in zip(grid, r.itertuples(), strict=True):
        ours = [
            *clopper_pearson(k, n),
            *beyond.wilson_interval(k, n),
            beyond.binomial_test_greater(k, n, 0.25),
        ]
        np.testing.assert_allclose(
            ours, [theirs.e1, theirs.e2, theirs.w1, theirs.w2, theirs.p], rtol=0, atol=TOLERANCE
        )
