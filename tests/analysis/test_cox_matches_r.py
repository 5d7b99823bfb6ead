"""analysis.cox (Efron, vectorised over event times) against R's coxph(ties = "efron") to 1e-6,
on data with heavy ties and with all-distinct times; lifelines' CoxPHFitter as a cross-check."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.cox import cox_efron

from .datagen import require_rscript

pytestmark = pytest.mark.r_reference

TOLERANCE = 1e-6
R_CODE = """
suppressMessages(library(survival))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
fit <- coxph(Surv(time, event) ~ x1 + x2 + x3, data = d, ties = "efron",
             control = coxph.control(eps = 1e-11, iter.max = 100))
out <- data.frame(coef = unname(coef(fit)), se = unname(sqrt(diag(vcov(fit)))),
                  loglik = fit$loglik[2])
write.csv(out, args[2], row.names = FALSE)
"""


def _data(n: int, seed: int, *, ties: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.normal(size=n), rng.integers(0, 2, n), rng.normal(2, 3, n)])
    hazard = np.exp(x @ np.array([0.5, -0.7, 0.1]))
    time = rng.exponential(1 / hazard) * 10
    censor = rng.exponential(15, n)
    if ties:  # a handful of distinct times: many deaths share each, where Efron matters
        time, censor = np.ceil(time / 3), np.ceil(censor / 3)
    df = pd.DataFrame(x, columns=["x1", "x2", "x3"])
    df["time"] = np.minimum(time, censor)
    df["event"] = (time <= censor).astype(int)
    return df


def _r_fit(df: pd.DataFrame, tmp_path: Path, code: str = R_CODE) -> pd.DataFrame:
    rscript = require_rscript()
    source, script, out = tmp_path / "in.csv", tmp_path / "cox.R", tmp_path / "out.csv"
    df.to_csv(source, index=False, float_format="%.17g")
    script.write_text(code)
    result = subprocess.run(
        [rscript, str(script), str(source), str(out)], capture_output=True, text=True
    )
    assert result.returncode == 0, f"R failed:\n{result.stderr}"
    return pd.read_csv(out)


@pytest.mark.parametrize(
    "n, seed, ties", [(300, 1, True), (2000, 2, True), (300, 3, False), (1500, 4, False)]
)
def test_cox_efron_matches_r(n, seed, ties, tmp_path):
    df = _data(n, seed, ties=ties)
    distinct = df.loc[df["event"] == 1, "time"].nunique()
    assert (distinct < df["event"].sum() / 10) if ties else (distinct == df["event"].sum())
    r = _r_fit(df, tmp_path)
    fit = cox_efron(df["time"], df["event"], df[["x1", "x2", "x3"]])
    np.testing.assert_allclose(fit.coef, r["coef"], rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(fit.se, r["se"], rtol=0, atol=TOLERANCE)
    assert fit.loglik == pytest.approx(r["loglik"][0], abs=TOLERANCE)
    assert fit.converged


def test_cox_efron_reports_no_convergence_under_complete_separation():
    """Every death has x = 1 and every survivor x = 0: the likelihood has no maximum (R warns
    that the coefficient may be infinite); the fit says so instead of returning a number."""
    time = np.arange(1.0, 21.0)
    x = (np.arange(20) < 10).astype(float)
    event = x.copy()
    fit = cox_efron(time, event, x, max_iter=30)
    assert not fit.converged
    assert fit.coef[0] > 5


@pytest.mark.parametrize("ties", [True, False])
def test_cox_efron_agrees_with_lifelines(ties):
    from lifelines import CoxPHFitter

    df = _data(800, 7, ties=ties)
    fit = cox_efron(df["time"], df["event"], df[["x1", "x2", "x3"]])
    lifelines = CoxPHFitter().fit(df, "time", "event")
    np.testing.assert_allclose(fit.coef, lifelines.params_.to_numpy(), atol=1e-5)
    np.testing.assert_allclose(fit.se, lifelines.standard_errors_.to_numpy(), atol=1e-5)


R_COUNTING = """
suppressMessages(library(survival))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
fit <- coxph(Surv(start, stop, event) ~ x1 + x2 + z, data = d, ties = "efron",
             control = coxph.control(eps = 1e-11, iter.max = 100))
out <- data.frame(coef = unname(coef(fit)), se = unname(sqrt(diag(vcov(fit)))),
                  loglik = fit$loglik[2])
write.csv(out, args[2], row.names = FALSE)
"""


def _counting_data(n: int, seed: int, *, ties: bool) -> pd.DataFrame:
    """(start, stop] rows: each subject split at a random day where a 0/1 covariate z switches
    on (as a transplant), and at a second day with no change; some intervals start where
    another subject's ends, events at the end of the last interval only."""
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.normal(size=n), rng.integers(0, 2, n)])
    hazard = np.exp(x @ np.array([0.4, -0.6]))
    time = rng.exponential(1 / hazard) * 10
    censor = rng.exponential(15, n)
    switch = rng.exponential(6, n)
    extra = rng.exponential(8, n)
    if ties:
        time, censor, switch, extra = (np.ceil(v / 3) for v in (time, censor, switch, extra))
    stop = np.minimum(time, censor)
    event = (time <= censor).astype(int)
    rows = []
    for i in range(n):
        cuts = sorted({c for c in (switch[i], extra[i]) if 0 < c < stop[i]})
        bounds = [0.0, *cuts, stop[i]]
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            rows.append(
                {
                    "x1": x[i, 0],
                    "x2": x[i, 1],
                    "z": int(switch[i] <= a and switch[i] > 0),
                    "start": a,
                    "stop": b,
                    "event": int(event[i] and b == stop[i]),
                }
            )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("n, seed, ties", [(400, 5, True), (1200, 6, True), (600, 8, False)])
def test_cox_efron_counting_process_matches_r(n, seed, ties, tmp_path):
    """R coxph(Surv(start, stop, event) ~ ...): the risk set at t is start < t <= stop."""
    df = _counting_data(n, seed, ties=ties)
    deaths = df.loc[df["event"] == 1, "stop"]
    assert (deaths.nunique() < len(deaths) / 10) if ties else (deaths.nunique() == len(deaths))
    assert len(df) > 1.5 * n and df["z"].nunique() == 2
    r = _r_fit(df, tmp_path, R_COUNTING)
    fit = cox_efron(df["stop"], df["event"], df[["x1", "x2", "z"]], start=df["start"])
    np.testing.assert_allclose(fit.coef, r["coef"], rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(fit.se, r["se"], rtol=0, atol=TOLERANCE)
    assert fit.loglik == pytest.approx(r["loglik"][0], abs=TOLERANCE)
    assert fit.converged
    # Without the start column the fit is another (wrong) model: the test sees the risk sets.
    assert (
        np.abs(cox_efron(df["stop"], df["event"], df[["x1", "x2", "z"]]).coef - r["coef"]).max()
        > 1e-3
    )


def test_cox_efron_counting_process_agrees_with_lifelines():
    from lifelines import CoxTimeVaryingFitter

    df = _counting_data(500, 9, ties=True)
    df["id"] = np.arange(len(df))
    fit = cox_efron(df["stop"], df["event"], df[["x1", "x2", "z"]], start=df["start"])
    lifelines = CoxTimeVaryingFitter().fit(
        df, id_col="id", event_col="event", start_col="start", stop_col="stop"
    )
    np.testing.assert_allclose(fit.coef, lifelines.params_.to_numpy(), atol=1e-5)
    np.testing.assert_allclose(fit.se, lifelines.standard_errors_.to_numpy(), atol=1e-5)
