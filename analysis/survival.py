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
from scipy import special

from .cox import cox_efron

Z_95 = float(special.ndtri(0.975))

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
    """Log-rank test across the levels of group_col (R survdiff, rho = 0): observed minus
    expected deaths per group and their hypergeometric covariance, summed over the distinct
    death times with numpy. Groups without expected deaths are left out, as R does; df is the
    number of groups minus one."""
    data = df[[duration_col, event_col, group_col]].dropna()
    time = data[duration_col].to_numpy(dtype=float)
    died = data[event_col].to_numpy(dtype=float)
    _, group = np.unique(data[group_col].to_numpy(), return_inverse=True)
    k = int(group.max()) + 1 if len(group) else 0
    times, at = np.unique(time, return_inverse=True)
    leaving = np.zeros((len(times), k))
    np.add.at(leaving, (at, group), 1.0)
    deaths = np.zeros((len(times), k))
    np.add.at(deaths, (at, group), died)
    # At risk at each time: those whose time is on or after it (suffix sums).
    n_risk = np.cumsum(leaving[::-1], axis=0)[::-1]
    n, d = n_risk.sum(axis=1), deaths.sum(axis=1)
    keep = d > 0
    n_risk, n, d = n_risk[keep], n[keep], d[keep]
    observed = deaths[keep].sum(axis=0)
    share = n_risk / n[:, None]
    expected = (d[:, None] * share).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(n > 1, d * (n - d) / (n - 1), 0.0)
    var = np.diag((scale[:, None] * share).sum(axis=0)) - (
        scale[:, None, None] * share[:, :, None] * share[:, None, :]
    ).sum(axis=0)
    used = expected > 0
    df_ = k - 1  # as R's print.survdiff and the tests' reference: the groups compared, less one
    if used.sum() < 2:  # R: no test when fewer than two groups expect a death
        return LogRank(0.0, df_, float(special.chdtrc(df_, 0.0)) if df_ > 0 else float("nan"))
    diff = (observed - expected)[used][1:]
    vv = var[np.ix_(used, used)][1:, 1:]
    chisq = float(diff @ np.linalg.solve(vv, diff))
    return LogRank(chisq, df_, float(special.chdtrc(df_, chisq)))


COX_COLUMNS = ["term", "coef", "se", "hazard_ratio", "ci_lower", "ci_upper", "p_value", "note"]
PH_TEST_COLUMNS = ["term", "chisq", "df", "p_value"]
# cox_ph_test.csv: the test of every Cox model of the run (cox.csv and cox_time_varying.csv).
PH_TEST_TABLE_COLUMNS = [
    "source",
    "endpoint",
    "model",
    "terms",
    *PH_TEST_COLUMNS,
    "note",
]
GLOBAL_TERM = "GLOBAL"


def not_converged(error: Exception) -> str:
    """Why a fit that failed is not estimable, in a sentence."""
    text = " ".join(str(error).split())
    reason = (
        "a singular information matrix (collinear covariates?)"
        if "singular" in text.lower()
        else "no convergence"
    )
    return f"not estimable: the fit failed ({reason})"


def join_notes(*notes) -> str:
    return "; ".join(n for n in notes if n)


def separated(covariates: pd.DataFrame, events) -> list[str]:
    """Covariates that (almost) do not vary among the rows with the event or among those
    without, although they vary overall: near or complete separation (lifelines' check, a
    sample variance under 1e-4 on either side), where the hazard ratio runs off to 0 or
    infinity."""
    events = np.asarray(events, dtype=float) != 0
    values = covariates.to_numpy(dtype=float)

    def low(rows):
        if rows.sum() < 2:
            return np.zeros(values.shape[1], dtype=bool)
        return values[rows].var(axis=0, ddof=1) < 1e-4

    return [
        str(c)
        for c, side, total in zip(
            covariates.columns, low(events) | low(~events), low(np.ones_like(events)), strict=True
        )
        if side and not total
    ]


SEPARATION = (
    "near or complete separation on {}: it (almost) does not vary among the patients with the "
    "event or among those without, so its hazard ratio and CI are unreliable"
)
NOT_CONVERGED = "the fit did not converge: the estimates are unreliable"


def efron_fit(stop, event, covariates: pd.DataFrame, start=None):
    """analysis.cox.cox_efron on the model's rows, or why it is not estimable (a sentence)."""
    x = covariates.to_numpy(dtype=float)
    centred = x - x.mean(axis=0)
    if np.linalg.matrix_rank(centred) < x.shape[1]:
        return not_converged(np.linalg.LinAlgError("singular matrix"))
    try:
        return cox_efron(stop, event, x, start=start)
    except np.linalg.LinAlgError as error:
        return not_converged(error)


def fit_notes(fit, data: pd.DataFrame, event_col: str, covariates=None) -> list[str]:
    """The warnings of a fit, in words: separation (each covariate), then non-convergence."""
    covariates = [c for c in data.columns if c != event_col] if covariates is None else covariates
    notes = [SEPARATION.format(c) for c in separated(data[list(covariates)], data[event_col])]
    if not fit.converged:
        notes.append(NOT_CONVERGED)
    return notes


class CoxFit(NamedTuple):
    table: pd.DataFrame  # COX_COLUMNS, one row per covariate
    ph_test: pd.DataFrame  # PH_TEST_COLUMNS, one row per covariate and GLOBAL


def _not_estimable(covariates, note) -> CoxFit:
    table = pd.DataFrame({"term": list(covariates)}).reindex(columns=COX_COLUMNS)
    table["note"] = note
    ph_test = pd.DataFrame({"term": [*covariates, GLOBAL_TERM]}).reindex(columns=PH_TEST_COLUMNS)
    ph_test["df"] = [1] * len(covariates) + [len(covariates)]
    return CoxFit(table, ph_test)


def cox_fit(
    df: pd.DataFrame, duration_col: str, event_col: str, covariates: Sequence[str]
) -> CoxFit:
    """Cox proportional hazards fit with Efron ties (R coxph(ties = "efron")), with the
    proportional-hazards test of the fit (R cox.zph) and every warning the fit raised.

    Covariates must be numeric or boolean (booleans enter as 0/1). Rows with a missing
    value in any column used are dropped, as R's default na.omit. p_value is the Wald test.
    A model without events, or with a covariate that does not vary (an empty group), is not
    estimable: its rows are NaN and `note` says why.
    """
    columns = [duration_col, event_col, *covariates]
    data = df[columns].dropna().astype(float)
    if data[event_col].sum() == 0:
        return _not_estimable(covariates, "not estimable: no events")
    constant = [c for c in covariates if data[c].nunique() < 2]
    if constant:
        values = ", ".join(f"{c} is always {data[c].iloc[0]:g}" for c in constant)
        return _not_estimable(covariates, f"not estimable: an empty group ({values})")
    fit = efron_fit(
        data[duration_col].to_numpy(), data[event_col].to_numpy(), data[list(covariates)]
    )
    if isinstance(fit, str):  # e.g. collinear covariates: a note, not a failed run
        return _not_estimable(covariates, fit)
    coef = pd.Series(fit.coef, index=list(covariates))
    se = pd.Series(fit.se, index=list(covariates))
    z = coef / se
    with np.errstate(over="ignore"):  # a diverging fit: its CI limit is infinite, as in R
        table = _coefficients(
            covariates, coef, se, z, join_notes(*fit_notes(fit, data, event_col, covariates))
        )
    ph_test = cox_zph(
        data[duration_col].to_numpy(),
        data[event_col].to_numpy(),
        data[list(covariates)].to_numpy(),
        coef.to_numpy(),
        terms=covariates,
    )
    return CoxFit(table, ph_test)


def _coefficients(covariates, coef, se, z, note) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "term": list(covariates),
            "coef": coef.to_numpy(),
            "se": se.to_numpy(),
            "hazard_ratio": np.exp(coef.to_numpy()),
            "ci_lower": np.exp((coef - Z_95 * se).to_numpy()),
            "ci_upper": np.exp((coef + Z_95 * se).to_numpy()),
            "p_value": 2 * special.ndtr(-np.abs(z.to_numpy())),
            "note": note,
        },
        columns=COX_COLUMNS,
    )


def cox(
    df: pd.DataFrame, duration_col: str, event_col: str, covariates: Sequence[str]
) -> pd.DataFrame:
    """The coefficient table of cox_fit()."""
    return cox_fit(df, duration_col, event_col, covariates).table


def _km_left_limit(stop, event, start=None) -> np.ndarray:
    """1 - S(t-) at each row's stop time: the Kaplan-Meier estimate just before t, over
    (start, stop] risk sets when `start` is given (R cox.zph's transform = "km")."""
    times = np.unique(stop[event])
    at_risk = len(stop) - np.searchsorted(np.sort(stop), times, side="left")
    if start is not None:
        at_risk = at_risk - (len(start) - np.searchsorted(np.sort(start), times, side="left"))
    deaths = np.bincount(np.searchsorted(times, stop[event]), minlength=len(times))
    survival = np.cumprod(1 - deaths / at_risk)
    before = np.searchsorted(times, stop, side="left")  # event times strictly before t
    return 1 - np.concatenate([[1.0], survival])[before]


def _suffix_sums(sort_key, values, cut, side="left"):
    """Sum of `values` rows whose key is >= each cut (axis 0), by cumulative sums."""
    order = np.argsort(sort_key, kind="stable")
    suffix = np.cumsum(values[order][::-1], axis=0)[::-1]
    totals = np.concatenate([suffix, np.zeros_like(values[:1])])
    return totals[np.searchsorted(sort_key[order], cut, side=side)]


def cox_zph(stop, event, X, beta, terms: Sequence[str], start=None) -> pd.DataFrame:
    """Test of proportional hazards from scaled Schoenfeld residuals, as R survival 3.x
    cox.zph(fit) with its defaults (transform = "km", terms = TRUE, global = TRUE).

    The score test of adding g(t) * x to a Cox model (Efron ties) at the fitted beta, g the
    centred Kaplan-Meier transform of time; survival 3.x uses the full 2p x 2p information
    matrix (older versions approximated it, with other results). One row per term (1 df) and
    a GLOBAL row (p df). `start` gives (start, stop] counting-process data (time-varying
    covariates). Rows are NaN when the information matrix is singular.
    """
    stop = np.asarray(stop, dtype=float)
    event = np.asarray(event, dtype=float) == 1
    X = np.asarray(X, dtype=float).reshape(len(stop), -1)
    start = None if start is None else np.asarray(start, dtype=float)
    p = X.shape[1]
    X = X - X.mean(axis=0)  # centred, as R, for the stability of the sums of squares
    eta = X @ np.asarray(beta, dtype=float)
    risk = np.exp(eta - eta.max())
    g_all = _km_left_limit(stop, event, start)
    g_all = g_all - g_all[event].mean()

    times, first = np.unique(stop[event], return_index=True)
    g = g_all[event][first]
    rx = risk[:, None] * X
    rxx = (rx[:, :, None] * X[:, None, :]).reshape(len(stop), p * p)
    stacked = np.column_stack([risk, rx, rxx])
    at_risk = _suffix_sums(stop, stacked, times)
    if start is not None:
        at_risk = at_risk - _suffix_sums(start, stacked, times)
    death_index = np.searchsorted(times, stop[event])
    dead = np.zeros((len(times), stacked.shape[1]))
    np.add.at(dead, death_index, stacked[event])
    n_dead = np.bincount(death_index, minlength=len(times))
    x_dead = np.zeros((len(times), p))
    np.add.at(x_dead, death_index, X[event])

    # Efron, one row per death: the k-th of d tied deaths sees the others' risk weighted by
    # 1 - (k - 1) / d (the same d fractions as k / d); each time sums its deaths' rows.
    tied = np.repeat(np.arange(len(times)), n_dead)
    k = np.arange(len(tied)) - np.repeat(np.cumsum(n_dead) - n_dead, n_dead) + 1
    share = (k / n_dead[tied])[:, None]
    sums = at_risk[tied] - dead[tied] + share * dead[tied]
    denominator = sums[:, :1]
    mean = sums[:, 1 : 1 + p] / denominator
    second = sums[:, 1 + p :].reshape(-1, p, p) / denominator[:, :, None]
    starts = np.cumsum(n_dead) - n_dead
    score = x_dead - np.add.reduceat(mean, starts, axis=0)
    info = np.add.reduceat(second - mean[:, :, None] * mean[:, None, :], starts, axis=0)
    u = np.concatenate([np.zeros(p), (g[:, None] * score).sum(axis=0)])
    imat = np.block(
        [
            [info.sum(axis=0), (g[:, None, None] * info).sum(axis=0)],
            [(g[:, None, None] * info).sum(axis=0), (g[:, None, None] ** 2 * info).sum(axis=0)],
        ]
    )
    rows = []
    for j, term in enumerate([*terms, GLOBAL_TERM]):
        keep = list(range(p)) + ([p + j] if term != GLOBAL_TERM else list(range(p, 2 * p)))
        df = 1 if term != GLOBAL_TERM else p
        try:
            chisq = float(u[keep] @ np.linalg.solve(imat[np.ix_(keep, keep)], u[keep]))
        except np.linalg.LinAlgError:
            chisq = np.nan
        rows.append(
            {"term": term, "chisq": chisq, "df": df, "p_value": float(special.chdtrc(df, chisq))}
        )
    return pd.DataFrame(rows, columns=PH_TEST_COLUMNS)


class SurvivalOutputs(NamedTuple):
    medians: pd.DataFrame
    logrank: pd.DataFrame
    cox: pd.DataFrame
    ph_test: pd.DataFrame  # PH_TEST_TABLE_COLUMNS


def ph_test_rows(fit: CoxFit, source: str, endpoint: str, model: str, terms) -> pd.DataFrame:
    """A fit's proportional-hazards test as rows of cox_ph_test.csv."""
    notes = fit.table["note"].dropna()
    return fit.ph_test.assign(
        source=source,
        endpoint=endpoint,
        model=model,
        terms=" + ".join(terms),
        note=notes.iloc[0] if len(notes) else "",
    )[PH_TEST_TABLE_COLUMNS]


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
    medians, tests, models, ph_tests = [], [], [], []
    for endpoint, duration_col, event_col in endpoints:
        for grouping in groupings:
            medians.extend(_median_rows(df, endpoint, duration_col, event_col, grouping))
            if grouping != "overall":
                result = logrank(df, duration_col, event_col, grouping)
                tests.append({"endpoint": endpoint, "grouping": grouping, **result._asdict()})
        specs = [("univariate", [covariate]) for covariate in cox_covariates]
        specs += [("multivariable", list(multivariable))] if multivariable else []
        for model, terms in specs:
            fit = cox_fit(df, duration_col, event_col, terms)
            models.append(fit.table.assign(endpoint=endpoint, model=model))
            ph_tests.append(ph_test_rows(fit, "cox", endpoint, model, terms))
    cox_columns = ["endpoint", "model", *COX_COLUMNS]
    return SurvivalOutputs(
        medians=pd.DataFrame(medians),
        logrank=pd.DataFrame(tests, columns=["endpoint", "grouping", "chisq", "df", "p_value"]),
        cox=pd.concat(models, ignore_index=True)[cox_columns]
        if models
        else pd.DataFrame(columns=cox_columns),
        ph_test=pd.concat(ph_tests, ignore_index=True)
        if ph_tests
        else pd.DataFrame(columns=PH_TEST_TABLE_COLUMNS),
    )
