"""Kaplan-Meier, log-rank and Cox analyses (EFS and OS, Figure 2 of the report).

Every figure is meant to equal R's survival package (survfit with its default
conf.type = "log", survdiff, coxph with ties = "efron"); tests/analysis compares them.
Durations are in months; the conversion from days happens where the dataset is built.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter
from lifelines.statistics import multivariate_logrank_test
from scipy import stats

Z_95 = stats.norm.ppf(0.975)

# R's survmean() tolerance for "the curve is exactly 0.5".
_MEDIAN_TOLERANCE = np.finfo(float).eps ** 0.5

KM_COLUMNS = [
    "time",
    "n_risk",
    "n_event",
    "n_censor",
    "survival",
    "std_err",
    "lower",
    "upper",
]

DEFAULT_ENDPOINTS = (("efs", "efs_months", "efs_event"), ("os", "os_months", "os_event"))
DEFAULT_GROUPINGS = ("overall", "responder", "allo_sct_after")
DEFAULT_COX_COVARIATES = ("responder", "allo_sct_after", "ecog_ge_2", "emd")


def _clean(durations, events) -> tuple[np.ndarray, np.ndarray]:
    durations = np.asarray(durations, dtype=float)
    events = np.asarray(events, dtype=float)
    keep = ~(np.isnan(durations) | np.isnan(events))
    return durations[keep], events[keep].astype(bool)


def km_table(durations, events) -> pd.DataFrame:
    """Kaplan-Meier table at every distinct observed time (events and censorings).

    std_err is Greenwood's standard error of S(t), as R's summary(survfit)$std.err; lower and
    upper are R's default conf.type = "log" 95% limits, exp(log S +/- z * se(log S)) with the
    upper limit capped at 1. Once S(t) reaches 0 the standard error and limits are NaN, as R.
    """
    durations, events = _clean(durations, events)
    # The product-limit estimate computed as lifelines' KaplanMeierFitter does (the same
    # exp(cumsum(log(n - d) - log(n))), so the same floating-point result), without building its
    # event table through pandas groupbys: ~100x faster, which matters at 100,000 patients.
    times, inverse = np.unique(durations, return_inverse=True)
    removed = np.bincount(inverse, minlength=len(times))
    n_event = np.bincount(inverse, weights=events.astype(float), minlength=len(times))
    n_risk = (len(durations) - (np.cumsum(removed) - removed)).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        survival = np.exp(np.cumsum(np.log(n_risk - n_event) - np.log(n_risk)))
    with np.errstate(divide="ignore", invalid="ignore"):
        se_log = np.sqrt(np.cumsum(n_event / (n_risk * (n_risk - n_event))))
        std_err = np.where(survival > 0, survival * se_log, np.nan)
        lower = np.where(survival > 0, survival * np.exp(-Z_95 * se_log), np.nan)
        upper = np.where(survival > 0, np.minimum(survival * np.exp(Z_95 * se_log), 1.0), np.nan)
    return pd.DataFrame(
        {
            "time": times.astype(float),
            "n_risk": n_risk.astype(int),
            "n_event": n_event.astype(int),
            "n_censor": (removed - n_event).astype(int),
            "survival": survival,
            "std_err": std_err,
            "lower": lower,
            "upper": upper,
        },
        columns=KM_COLUMNS,
    )


def _first_below_half(curve: np.ndarray, times: np.ndarray) -> float:
    """Port of minmin() inside R's survmean(): where a curve first reaches 0.5.

    If the curve sits exactly on 0.5 the answer is the midpoint between that time and the
    time it next drops, as R (and most textbooks) do for the median.
    """
    keep = ~np.isnan(curve) & (curve < 0.5 + _MEDIAN_TOLERANCE)
    if not keep.any():
        return float("nan")
    curve, times = curve[keep], times[keep]
    if abs(curve[0] - 0.5) < _MEDIAN_TOLERANCE and (curve < curve[0]).any():
        return float((times[0] + times[np.argmax(curve < curve[0])]) / 2)
    return float(times[0])


def km_median(durations, events) -> tuple[float, float, float]:
    """Median survival with its 95% CI as printed by R's survfit (conf.type = "log").

    The CI bounds are where the lower and upper pointwise limits first reach 0.5; NaN where
    a curve never does (R prints NA). Returns (median, ci_lower, ci_upper).
    """
    table = km_table(durations, events)
    times = table["time"].to_numpy()
    return (
        _first_below_half(table["survival"].to_numpy(), times),
        _first_below_half(table["lower"].to_numpy(), times),
        _first_below_half(table["upper"].to_numpy(), times),
    )


def numbers_at_risk(durations, events, times: Iterable[float]) -> pd.DataFrame:
    """Patients still at risk (duration >= t) at each requested time, as R summary(times=)."""
    durations, _ = _clean(durations, events)
    times = np.asarray(list(times), dtype=float)
    n_risk = (durations[None, :] >= times[:, None]).sum(axis=1)
    return pd.DataFrame({"time": times, "n_risk": n_risk.astype(int)})


class LogRank(NamedTuple):
    chisq: float
    df: int
    p_value: float


def logrank(df: pd.DataFrame, duration_col: str, event_col: str, group_col: str) -> LogRank:
    """Log-rank test across the levels of group_col (R survdiff, rho = 0)."""
    data = df[[duration_col, event_col, group_col]].dropna()
    result = multivariate_logrank_test(
        data[duration_col].astype(float),
        data[group_col],
        data[event_col].astype(float),
    )
    return LogRank(
        float(result.test_statistic), int(result.degrees_of_freedom), float(result.p_value)
    )


# lifelines stops by default once the log-likelihood changes by < 1e-9 relative, which can
# leave coefficients ~1e-6 from the maximum (and from R); iterate until the change is nil.
COX_FIT_OPTIONS = {"precision": 1e-14, "r_precision": 1e-16, "max_steps": 500}

COX_COLUMNS = ["term", "coef", "se", "hazard_ratio", "ci_lower", "ci_upper", "p_value"]


def cox(
    df: pd.DataFrame, duration_col: str, event_col: str, covariates: Sequence[str]
) -> pd.DataFrame:
    """Cox proportional hazards fit with Efron ties (R coxph(ties = "efron")).

    Covariates must be numeric or boolean (booleans enter as 0/1). Rows with a missing
    value in any column used are dropped, as R's default na.omit. p_value is the Wald test.
    """
    columns = [duration_col, event_col, *covariates]
    data = df[columns].dropna().astype(float)
    fitter = CoxPHFitter().fit(
        data,
        duration_col=duration_col,
        event_col=event_col,
        fit_options=COX_FIT_OPTIONS,
    )
    coef = fitter.params_.reindex(covariates)
    se = fitter.standard_errors_.reindex(covariates)
    z = coef / se
    return pd.DataFrame(
        {
            "term": list(covariates),
            "coef": coef.to_numpy(),
            "se": se.to_numpy(),
            "hazard_ratio": np.exp(coef.to_numpy()),
            "ci_lower": np.exp((coef - Z_95 * se).to_numpy()),
            "ci_upper": np.exp((coef + Z_95 * se).to_numpy()),
            "p_value": 2 * stats.norm.sf(np.abs(z.to_numpy())),
        },
        columns=COX_COLUMNS,
    )


class SurvivalOutputs(NamedTuple):
    medians: pd.DataFrame
    logrank: pd.DataFrame
    cox: pd.DataFrame


def group_labels(values: pd.Series) -> dict:
    """Label of each value of a grouping column: yes/no for flags (bool or 0/1), else str."""
    present = values.dropna().unique()
    if set(present) <= {0, 1}:  # True == 1 and False == 0, so bool columns land here too
        return {value: "yes" if value else "no" for value in present}
    return {value: str(value) for value in present}


def _median_rows(df, endpoint, duration_col, event_col, grouping) -> list[dict]:
    if grouping == "overall":
        groups = [("all", df[[duration_col, event_col]])]
    else:
        data = df[[duration_col, event_col, grouping]].dropna(subset=[grouping])
        labels = group_labels(data[grouping])
        groups = [(labels[k], g) for k, g in data.groupby(grouping)]
    rows = []
    for label, group in groups:
        data = group[[duration_col, event_col]].dropna()
        median, lower, upper = km_median(data[duration_col], data[event_col])
        rows.append(
            {
                "endpoint": endpoint,
                "grouping": grouping,
                "group": label,
                "n": len(data),
                "events": int(data[event_col].sum()),
                "median_months": median,
                "ci_lower": lower,
                "ci_upper": upper,
            }
        )
    return rows


def survival_outputs(
    df: pd.DataFrame,
    endpoints=DEFAULT_ENDPOINTS,
    groupings=DEFAULT_GROUPINGS,
    cox_covariates: Sequence[str] = DEFAULT_COX_COVARIATES,
    multivariable: Sequence[str] = DEFAULT_COX_COVARIATES,
) -> SurvivalOutputs:
    """Medians, log-rank tests and Cox models for each endpoint (Figure 2 and its text).

    Cox: one 'univariate' model per covariate in cox_covariates and one 'multivariable'
    model with all of `multivariable`. All treated patients are analysed (the patient who
    was not evaluable for response counts as a non-responder).
    """
    medians, tests, models = [], [], []
    for endpoint, duration_col, event_col in endpoints:
        for grouping in groupings:
            medians.extend(_median_rows(df, endpoint, duration_col, event_col, grouping))
            if grouping != "overall":
                result = logrank(df, duration_col, event_col, grouping)
                tests.append({"endpoint": endpoint, "grouping": grouping, **result._asdict()})
        for covariate in cox_covariates:
            fit = cox(df, duration_col, event_col, [covariate])
            models.append(fit.assign(endpoint=endpoint, model="univariate"))
        if multivariable:
            fit = cox(df, duration_col, event_col, list(multivariable))
            models.append(fit.assign(endpoint=endpoint, model="multivariable"))
    cox_columns = ["endpoint", "model", *COX_COLUMNS]
    return SurvivalOutputs(
        medians=pd.DataFrame(medians),
        logrank=pd.DataFrame(tests, columns=["endpoint", "grouping", "chisq", "df", "p_value"]),
        cox=pd.concat(models, ignore_index=True)[cox_columns]
        if models
        else pd.DataFrame(columns=cox_columns),
    )
