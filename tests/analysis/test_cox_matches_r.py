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


def _r_fit(df: pd.DataFrame, tmp_path: Path) -> pd.DataFrame:
    rscript = require_rscript()
    source, script, out = tmp_path / "in.csv", tmp_path / "cox.R", tmp_path / "out.csv"
    df.to_csv(source, index=False, float_format="%.17g")
    script.write_text(R_CODE)
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
