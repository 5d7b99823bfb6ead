"""The Cox candidates side by side: lifelines, scikit-survival, statsmodels and the vectorised
Efron fit (analysis.cox.cox_efron), each timed (best of 3) and compared with R's coxph.

    .venv/bin/python bench/cox_bench.py
    PYTHONPATH=/tmp/extra .venv/bin/python bench/cox_bench.py   # with statsmodels / sksurv

No database: three covariates, exponential times, at 10,000 patients with all-distinct and with
heavily tied times, and at 100,000 with distinct times. scikit-survival and statsmodels are not
project requirements: the script measures them when they can be imported (installed for the
measurement with `pip install --no-deps --target DIR statsmodels patsy scikit-survival
scikit-learn joblib cloudpickle ecos osqp numexpr` and PYTHONPATH=DIR). Each fit is compared
with R's coxph(ties = "efron", eps = 1e-11) on the same data (Rscript): the largest absolute
difference of the coefficients and standard errors ("max diff"); equal means <= 1e-6.
"""

import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from analysis.cox import cox_efron  # noqa: E402

R_CODE = """
suppressMessages(library(survival))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
fit <- coxph(Surv(time, event) ~ x1 + x2 + x3, data = d, ties = "efron",
             control = coxph.control(eps = 1e-11, iter.max = 100))
write.csv(data.frame(coef = unname(coef(fit)), se = unname(sqrt(diag(vcov(fit))))),
          args[2], row.names = FALSE)
"""


def data(n: int, seed: int, *, ties: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.normal(size=n), rng.integers(0, 2, n), rng.normal(2, 3, n)])
    hazard = np.exp(x @ np.array([0.5, -0.7, 0.1]))
    event_time, censor = rng.exponential(1 / hazard) * 10, rng.exponential(15, n)
    if ties:
        event_time, censor = np.ceil(event_time / 3), np.ceil(censor / 3)
    df = pd.DataFrame(x, columns=["x1", "x2", "x3"])
    df["time"] = np.minimum(event_time, censor)
    df["event"] = (event_time <= censor).astype(int)
    return df


def best_of(fit, repeat=3):
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fit()
        times.append(time.perf_counter() - started)
    return min(times), result


def r_fit(df: pd.DataFrame):
    rscript = shutil.which("Rscript")
    if rscript is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        source, script, out = Path(tmp, "in.csv"), Path(tmp, "cox.R"), Path(tmp, "out.csv")
        df.to_csv(source, index=False, float_format="%.17g")
        script.write_text(R_CODE)
        subprocess.run([rscript, str(script), str(source), str(out)], check=True)
        r = pd.read_csv(out)
    return r["coef"].to_numpy(), r["se"].to_numpy()


def candidates():
    """name -> function(df) returning (coef, se) as arrays."""
    from lifelines import CoxPHFitter

    x_cols = ["x1", "x2", "x3"]

    def numpy_efron(df):
        fit = cox_efron(df["time"], df["event"], df[x_cols])
        return fit.coef, fit.se

    def lifelines(df):
        fit = CoxPHFitter().fit(df, "time", "event")
        return fit.params_.to_numpy(), fit.standard_errors_.to_numpy()

    found = {"numpy Efron (analysis.cox)": numpy_efron, "lifelines CoxPHFitter": lifelines}
    try:
        from statsmodels.duration.hazard_regression import PHReg

        def statsmodels(df):
            fit = PHReg(df["time"], df[x_cols], status=df["event"], ties="efron").fit()
            return np.asarray(fit.params), np.asarray(fit.bse)

        found["statsmodels PHReg"] = statsmodels
    except ImportError:
        pass
    try:
        from sksurv.linear_model import CoxPHSurvivalAnalysis
        from sksurv.util import Surv

        def sksurv(df):
            y = Surv.from_arrays(df["event"].astype(bool), df["time"])
            fit = CoxPHSurvivalAnalysis(ties="efron", n_iter=100, tol=1e-12).fit(df[x_cols], y)
            return fit.coef_, np.sqrt(np.diag(np.linalg.inv(_sksurv_information(fit, df))))

        found["scikit-survival CoxPHSurvivalAnalysis"] = sksurv
    except ImportError:
        pass
    return found


def _sksurv_information(fit, df):
    """scikit-survival reports no standard errors: the information at its estimate, from the
    same Efron likelihood (so the SE column compares the coefficients' curvature, not a
    second implementation of it)."""
    from analysis.cox import _efron_terms, _RiskSets

    x = df[["x1", "x2", "x3"]].to_numpy(float)
    x = x - x.mean(axis=0)
    order = np.argsort(df["time"].to_numpy(), kind="stable")
    risk = _RiskSets(df["time"].to_numpy(float)[order], df["event"].to_numpy()[order] != 0)
    return _efron_terms(np.asarray(fit.coef_), x[order], risk)[2]


def main():
    warnings.simplefilter("ignore")
    fits = candidates()
    for n, ties in [(10_000, False), (10_000, True), (100_000, False)]:
        df = data(n, 11, ties=ties)
        distinct = df.loc[df["event"] == 1, "time"].nunique()
        reference = r_fit(df)
        print(f"{n:>7} patients, {distinct:>6} distinct event times:")
        for name, fit in fits.items():
            seconds, (coef, se) = best_of(lambda fit=fit, df=df: fit(df))
            if reference is None:
                diff = float("nan")
            else:
                diff = max(np.abs(coef - reference[0]).max(), np.abs(se - reference[1]).max())
            print(f"    {name:<40} {seconds:8.3f} s   max diff from R {diff:.1e}")


if __name__ == "__main__":
    main()
