"""Beyond the paper: analyses that correct the paper's naive comparisons.

The paper compares survival by response and by subsequent allogeneic SCT as if both were known
on day 1 of blinatumomab. A patient must survive long enough to respond or to be transplanted,
so those groups are credited with "immortal" time (immortal-time bias). This module offers the
standard remedies beside the paper's analysis:

- landmark analysis (groups fixed at a landmark day, time counted from it);
- a Cox model with SCT and response as time-varying covariates (counting-process data);
- competing risks: cumulative incidence of relapse/progression and of non-relapse mortality
  (Aalen-Johansen), beside the 1 - Kaplan-Meier overestimate;
- the response rate with exact and Wilson CIs and an exact one-sided binomial test against a
  reference rate.

Pure functions over the analysis dataset (analysis/dataset.py VARIABLES); nothing here knows
about Django. Every figure is meant to equal R's survival package and base R (survfit,
survdiff, coxph with tmerge, multi-state survfit, binom.test, prop.test); tests/analysis
compares them to 1e-6.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
from lifelines import CoxTimeVaryingFitter
from lifelines.exceptions import ConvergenceError
from scipy import stats

from . import survival, tables
from .defaults import DEFAULT_LANDMARK_DAYS, DEFAULT_REFERENCE_RATE
from .tables import gettext_noop  # marks a label for the catalogue; no Django here

DAYS_PER_MONTH = 30.4375  # as analysis.dataset; repeated so this module needs no Django
Z_95 = stats.norm.ppf(0.975)

DEFAULT_AT_RISK_MONTHS = (0, 3, 6, 9, 12, 15, 18)
DEFAULT_CUTS = tables.SubgroupCuts()

# One plain-language paragraph per analysis, shown on the dashboard and in the report.
NOTES = {
    "landmark": gettext_noop(
        "Landmark analysis. The paper compares patients by response and by allogeneic SCT as "
        "if both were known on day 1, but a patient has to stay alive (and in remission) long "
        "enough to respond or to be transplanted, so those groups are credited with time in "
        "which they could not have died: immortal-time bias, which flatters response and "
        "transplant. Here the groups are fixed at a landmark day (default day 90 after "
        "blinatumomab start): only patients still alive (OS) or alive and event-free (EFS) "
        "after that day are analysed, grouped by CR/CRi reached and by allo-SCT done on or "
        "before it, and time is counted from the landmark. Patients left out, and why, are "
        "listed; later responses or transplants stay in the 'no' group."
    ),
    "cox_time_varying": gettext_noop(
        "Time-dependent Cox model. Instead of labelling a patient 'transplanted' or "
        "'responder' from day 1, each patient counts as not transplanted (not in remission) "
        "until the day of the SCT (the first CR/CRi) and as transplanted (in remission) from "
        "then on, so the hazard ratio compares patients at the same time since start. This "
        "removes the immortal-time bias of the naive model, shown in the same table for "
        "comparison. A change on day t applies from day t onwards: an event or censoring on "
        "the day of the SCT or response is counted before it."
    ),
    "cumulative_incidence": gettext_noop(
        "Competing risks. Relapse/progression and death without relapse (non-relapse "
        "mortality) prevent each other: a patient who died in remission can no longer relapse. "
        "One minus Kaplan-Meier, treating the other event as censoring, pretends such patients "
        "could still relapse and so overstates the probability of each event; the "
        "Aalen-Johansen cumulative incidence does not. Both are shown, with the excess of 1 - KM. "
        "Groups by responder and allo_sct_after are the paper's day-1 groups and keep its "
        "immortal-time bias."
    ),
    "response_rate": gettext_noop(
        "Response rate with confidence intervals and a test. The paper reports the CR/CRi "
        "rate without an interval; here it has the exact (Clopper-Pearson) and the Wilson "
        "95% CI, overall and in the Table 2 subgroups, and an exact one-sided binomial test "
        "of whether it exceeds a reference rate (default 25%, the chemotherapy arm rate the "
        "paper cites). Subgroup intervals are wide: they show how little a 50-patient "
        "registry can say about subgroups."
    ),
}

# ---------------------------------------------------------------------------
# Landmark analysis
# ---------------------------------------------------------------------------

LANDMARK_ENDPOINTS = (
    ("efs", "efs_days", "efs_event"),
    ("os", "os_days", "os_event"),
)
# Grouping column of the landmark frame -> the dataset's day column it is fixed from.
LANDMARK_GROUPINGS = {
    "response_by_landmark": "response_days",
    "sct_by_landmark": "sct_days",
}
LANDMARK_GROUP_LABELS = {
    "response_by_landmark": {0: "No CR/CRi by landmark", 1: "CR/CRi by landmark"},
    "sct_by_landmark": {0: "No allo-SCT by landmark", 1: "Allo-SCT by landmark"},
}
EXCLUSION_REASONS = {
    "efs": [
        (
            "relapse_progression",
            gettext_noop("relapse or progression on or before the landmark day"),
        ),
        ("death", gettext_noop("death without relapse on or before the landmark day")),
        ("censored", gettext_noop("follow-up ended (censored) on or before the landmark day")),
        ("missing", gettext_noop("EFS time or event missing")),
    ],
    "os": [
        ("death", gettext_noop("died on or before the landmark day")),
        ("censored", gettext_noop("follow-up ended (censored) on or before the landmark day")),
        ("missing", gettext_noop("OS time or event missing")),
    ],
}
LANDMARK_MEDIAN_COLUMNS = [
    "endpoint",
    "landmark_days",
    "grouping",
    "group",
    "n",
    "events",
    "median_months",
    "ci_lower",
    "ci_upper",
]


def _days(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").astype(float).to_numpy()


def _reached_by(day_values: pd.Series, landmark_days: float) -> np.ndarray:
    """1 where the day is known and on or before the landmark, else 0 (NA = never happened)."""
    days = _days(day_values)
    return np.where(~np.isnan(days) & (days <= landmark_days), 1, 0)


def landmark_frame(
    df: pd.DataFrame, endpoint: str, landmark_days: float = DEFAULT_LANDMARK_DAYS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Patients at risk after the landmark for one endpoint, and the excluded counts.

    Eligible: the endpoint's duration is known and strictly greater than landmark_days, i.e.
    alive (OS) or alive and event-free (EFS) at the end of the landmark day and still under
    follow-up. An event or censoring on the landmark day itself excludes the patient.
    response_by_landmark = first CR/CRi on or before the landmark day; sct_by_landmark =
    allo-SCT on or before it. time_months = (days - landmark_days) / 30.4375.

    Returns (frame with study_id, time_days, time_months, event, the two group flags;
    exclusions with endpoint, landmark_days, status, reason, n).
    """
    _, duration_col, event_col = next(e for e in LANDMARK_ENDPOINTS if e[0] == endpoint)
    days = _days(df[duration_col])
    event = pd.to_numeric(df[event_col], errors="coerce").astype(float).to_numpy()
    missing = np.isnan(days) | np.isnan(event)
    eligible = ~missing & (days > landmark_days)
    early = ~missing & ~eligible
    if endpoint == "efs":
        cause = (
            pd.to_numeric(df["efs_cause"], errors="coerce").fillna(-1).to_numpy()
            if "efs_cause" in df
            else np.where(event == 1, 1, 0)
        )
        masks = {
            "relapse_progression": early & (event == 1) & (cause != 2),
            "death": early & (event == 1) & (cause == 2),
        }
    else:
        masks = {"death": early & (event == 1)}
    masks["censored"] = early & (event == 0)
    masks["missing"] = missing
    rows = [
        {
            "endpoint": endpoint,
            "landmark_days": landmark_days,
            "status": "included",
            "reason": gettext_noop("at risk after the landmark day"),
            "n": int(eligible.sum()),
        }
    ]
    for key, reason in EXCLUSION_REASONS[endpoint]:
        rows.append(
            {
                "endpoint": endpoint,
                "landmark_days": landmark_days,
                "status": "excluded",
                "reason": reason,
                "n": int(masks[key].sum()),
            }
        )
    kept = df[eligible]
    frame = pd.DataFrame(
        {
            "study_id": kept["study_id"].to_numpy() if "study_id" in kept else kept.index,
            "time_days": days[eligible] - landmark_days,
            "time_months": (days[eligible] - landmark_days) / DAYS_PER_MONTH,
            "event": event[eligible].astype(int),
        }
    )
    for grouping, day_col in LANDMARK_GROUPINGS.items():
        frame[grouping] = _reached_by(kept[day_col], landmark_days)
    return frame, pd.DataFrame(rows)


class LandmarkOutputs(NamedTuple):
    medians: pd.DataFrame
    logrank: pd.DataFrame
    excluded: pd.DataFrame
    numbers_at_risk: pd.DataFrame
    km: pd.DataFrame
    frames: dict  # endpoint -> landmark frame (for figures)


def _landmark_parts(frame: pd.DataFrame, grouping: str):
    if grouping == "overall":
        return [("all", frame)]
    return [("yes" if value else "no", part) for value, part in frame.groupby(grouping, sort=True)]


def landmark_analysis(
    df: pd.DataFrame,
    landmark_days: float = DEFAULT_LANDMARK_DAYS,
    at_risk_months: Iterable[float] = DEFAULT_AT_RISK_MONTHS,
) -> LandmarkOutputs:
    """KM medians, log-rank tests, numbers at risk and KM tables from the landmark.

    Months are counted from the landmark day. The log-rank row is NaN when only one group
    has patients (nothing to compare), as is the median when a curve never reaches 0.5.
    """
    at_risk_months = list(at_risk_months)
    medians, tests, excluded, at_risk, km_rows, frames = [], [], [], [], [], {}
    for endpoint, _, _ in LANDMARK_ENDPOINTS:
        frame, dropped = landmark_frame(df, endpoint, landmark_days)
        frames[endpoint] = frame
        excluded.append(dropped)
        for grouping in ("overall", *LANDMARK_GROUPINGS):
            key = {"endpoint": endpoint, "landmark_days": landmark_days, "grouping": grouping}
            for group, part in _landmark_parts(frame, grouping):
                median, lower, upper = survival.km_median(part["time_months"], part["event"])
                medians.append(
                    {
                        **key,
                        "group": group,
                        "n": len(part),
                        "events": int(part["event"].sum()),
                        "median_months": median,
                        "ci_lower": lower,
                        "ci_upper": upper,
                    }
                )
                risk = survival.numbers_at_risk(part["time_months"], part["event"], at_risk_months)
                at_risk.append(risk.assign(**key, group=group))
                km_rows.append(
                    survival.km_table(part["time_months"], part["event"]).assign(**key, group=group)
                )
            if grouping != "overall":
                if frame[grouping].nunique() > 1:
                    test = survival.logrank(frame, "time_months", "event", grouping)
                    result = {"chisq": test.chisq, "df": test.df, "p_value": test.p_value}
                else:
                    result = {"chisq": math.nan, "df": math.nan, "p_value": math.nan}
                tests.append({**key, **result})
    key_columns = ["endpoint", "landmark_days", "grouping", "group"]
    at_risk_frame = pd.concat(at_risk, ignore_index=True)
    km_frame = pd.concat(km_rows, ignore_index=True)
    return LandmarkOutputs(
        medians=pd.DataFrame(medians, columns=LANDMARK_MEDIAN_COLUMNS),
        logrank=pd.DataFrame(
            tests, columns=["endpoint", "landmark_days", "grouping", "chisq", "df", "p_value"]
        ),
        excluded=pd.concat(excluded, ignore_index=True),
        numbers_at_risk=at_risk_frame[[*key_columns, "time", "n_risk"]],
        km=km_frame[[*key_columns, *survival.KM_COLUMNS]],
        frames=frames,
    )


# ---------------------------------------------------------------------------
# Time-dependent Cox model
# ---------------------------------------------------------------------------

# Time-varying covariate -> the dataset's day column when it switches from 0 to 1, and the
# dataset's day-1 flag the paper (naively) uses instead.
TIME_VARYING = {"sct": ("sct_days", "allo_sct_after"), "response": ("response_days", "responder")}
COX_TV_COLUMNS = [
    "endpoint",
    "model",
    "term",
    "coef",
    "se",
    "hazard_ratio",
    "ci_lower",
    "ci_upper",
    "p_value",
    "n_patients",
    "n_intervals",
    "events",
    "note",
]
# A Cox coefficient whose standard error exceeds this (log-HR scale) is diverging: every
# event after some day falls in one group (monotone likelihood, infinite HR). Where the
# fitter stops is then arbitrary, so the model is reported as not estimable (NaN), in R too.
MAX_COX_SE = 100.0


def start_stop(
    df: pd.DataFrame,
    duration_col: str,
    event_col: str,
    covariates: Sequence[str] = ("sct", "response"),
) -> pd.DataFrame:
    """Counting-process (start, stop] frame with 0/1 time-varying covariates, in days.

    A covariate that changes on day t is 0 on intervals ending at or before t and 1 on
    intervals starting at t (as R's tmerge(tdc())): an event or censoring on the day of the
    SCT/response is attributed to the state before it, and a change on or after the last
    follow-up day is not seen. A change on day 0 (or earlier) applies from the start.
    Patients whose duration or event is missing, or whose duration is not positive (no
    follow-up after day 0), are left out. Columns: id, start, stop, event, covariates.
    """
    days = _days(df[duration_col])
    event = pd.to_numeric(df[event_col], errors="coerce").astype(float).to_numpy()
    changes = {name: _days(df[TIME_VARYING[name][0]]) for name in covariates}
    rows = []
    for i in range(len(df)):
        stop, died = days[i], event[i]
        if np.isnan(stop) or np.isnan(died) or stop <= 0:
            continue
        cuts = sorted({c[i] for c in changes.values() if 0 < c[i] < stop})
        bounds = [0.0, *cuts, stop]
        for start, end in zip(bounds[:-1], bounds[1:], strict=True):
            row = {"id": i, "start": start, "stop": end, "event": int(died and end == stop)}
            for name, when in changes.items():
                row[name] = int(not np.isnan(when[i]) and when[i] <= start)
            rows.append(row)
    return pd.DataFrame(rows, columns=["id", "start", "stop", "event", *covariates])


def _cox_rows(coef, se, terms, note="") -> list[dict]:
    rows = []
    for term in terms:
        b, s = coef.get(term, math.nan), se.get(term, math.nan)
        rows.append(
            {
                "term": term,
                "coef": b,
                "se": s,
                "hazard_ratio": math.exp(b),
                "ci_lower": math.exp(b - Z_95 * s),
                "ci_upper": math.exp(b + Z_95 * s),
                "p_value": float(2 * stats.norm.sf(abs(b / s))) if s > 0 else math.nan,
                "note": note,
            }
        )
    return rows


def cox_time_varying(data: pd.DataFrame, terms: Sequence[str]) -> list[dict]:
    """Efron-ties Cox fit on a start_stop() frame (R coxph(Surv(start, stop, event) ~ ...)).

    Unless every term varies and there is an event, the rows are NaN (nothing to estimate);
    so are they when a coefficient diverges (standard error above MAX_COX_SE).
    """
    return cox_time_varying_fit(data, terms).table.to_dict("records")


def cox_time_varying_fit(
    data: pd.DataFrame, terms: Sequence[str], counting: bool = True
) -> survival.CoxFit:
    """cox_time_varying() as a survival.CoxFit: the rows (with every warning the fit raised in
    `note`) and the proportional-hazards test (R cox.zph) of the fit. `counting`: the model is
    on (start, stop] intervals; the naive day-1 model is not (R Surv(stop, event))."""
    terms = list(terms)
    if data["event"].sum() == 0:
        return _not_estimable(terms, "not estimable: no events")
    if any(data[t].nunique() < 2 for t in terms):
        return _not_estimable(terms, "not estimable: a covariate does not vary")
    try:
        with survival.recorded_warnings() as notes:
            fitter = CoxTimeVaryingFitter().fit(
                data[["id", "start", "stop", "event", *terms]].astype(float),
                event_col="event",
                start_col="start",
                stop_col="stop",
                id_col="id",
                fit_options=survival.COX_FIT_OPTIONS,
            )
    except ConvergenceError as error:  # a note on the model, not a failed run
        return _not_estimable(terms, survival.not_converged(error))
    se = fitter.standard_errors_
    diverging = [t for t in terms if not (np.isfinite(se[t]) and se[t] <= MAX_COX_SE)]
    if diverging:
        limits = [f"{t} to {'infinity' if fitter.params_[t] > 0 else 'zero'}" for t in diverging]
        note = f"not estimable: the HR of {', '.join(limits)} diverges (monotone likelihood)"
        return _not_estimable(terms, survival.join_notes(note, *notes))
    rows = _cox_rows(fitter.params_.to_dict(), se.to_dict(), terms, survival.join_notes(*notes))
    ph_test = survival.cox_zph(
        data["stop"].to_numpy(),
        data["event"].to_numpy(),
        data[terms].to_numpy(),
        fitter.params_[terms].to_numpy(),
        terms=terms,
        start=data["start"].to_numpy() if counting else None,
    )
    return survival.CoxFit(pd.DataFrame(rows), ph_test)


def _not_estimable(terms, note) -> survival.CoxFit:
    ph_test = pd.DataFrame({"term": [*terms, survival.GLOBAL_TERM]})
    ph_test = ph_test.reindex(columns=survival.PH_TEST_COLUMNS)
    ph_test["df"] = [1] * len(terms) + [len(terms)]
    return survival.CoxFit(pd.DataFrame(_cox_rows({}, {}, terms, note)), ph_test)


class TimeVaryingCox(NamedTuple):
    table: pd.DataFrame  # COX_TV_COLUMNS
    ph_test: pd.DataFrame  # survival.PH_TEST_TABLE_COLUMNS


def cox_time_varying_outputs(df: pd.DataFrame) -> pd.DataFrame:
    """For EFS and OS: the naive day-1 model (allo_sct_after, responder as fixed flags), the
    time-varying univariate models and the time-varying model with both, in one table.

    Terms are 'sct' and 'response' in every model (naive: the day-1 flags allo_sct_after
    and responder). HRs are per the flag (1 vs 0); p_value is the Wald test.
    """
    return cox_time_varying_models(df).table


def cox_time_varying_models(df: pd.DataFrame) -> TimeVaryingCox:
    """cox_time_varying_outputs() with the proportional-hazards test of each model."""
    rows, ph_tests = [], []
    for endpoint, duration_col, event_col in LANDMARK_ENDPOINTS:
        data = start_stop(df, duration_col, event_col)
        base = {
            "endpoint": endpoint,
            "n_patients": int(data["id"].nunique()),
            "events": int(data["event"].sum()),
        }
        fixed = data.drop_duplicates("id", keep="last").copy()
        fixed["start"] = 0.0
        for name, (_, flag) in TIME_VARYING.items():
            fixed[name] = (
                tables.is_true(df[flag].iloc[fixed["id"].to_numpy()]).astype(int).to_numpy()
            )
        models = [("naive_day1_univariate", fixed, [name]) for name in TIME_VARYING]
        models += [("time_varying_univariate", data, [name]) for name in TIME_VARYING]
        models.append(("time_varying_both", data, list(TIME_VARYING)))
        for model, frame, terms in models:
            fit = cox_time_varying_fit(frame, terms, counting=not model.startswith("naive"))
            for row in fit.table.to_dict("records"):
                rows.append({**base, "model": model, "n_intervals": len(frame), **row})
            ph_tests.append(survival.ph_test_rows(fit, "cox_time_varying", endpoint, model, terms))
    return TimeVaryingCox(
        pd.DataFrame(rows, columns=COX_TV_COLUMNS), pd.concat(ph_tests, ignore_index=True)
    )


# ---------------------------------------------------------------------------
# Competing risks: Aalen-Johansen cumulative incidence
# ---------------------------------------------------------------------------

CAUSES = {1: "relapse_progression", 2: "non_relapse_mortality"}
CIF_GROUPINGS = ("overall", "responder", "allo_sct_after")
CIF_COLUMNS = [
    "grouping",
    "group",
    "cause",
    "time",
    "n_risk",
    "n_event",
    "n_competing",
    "n_censor",
    "cumulative_incidence",
    "std_err",
    "ci_lower",
    "ci_upper",
    "one_minus_km",
    "km_excess",
]


def aalen_johansen(durations, causes) -> pd.DataFrame:
    """Cumulative incidence of causes 1 and 2 (0 = censored) at every distinct observed time.

    Equals R survfit(Surv(time, factor(status, 0:2)) ~ 1): pstate of each cause; std_err is
    R's infinitesimal-jackknife standard error (sum over patients of the squared influence
    of each patient's case weight on the estimate); 95% limits as R's multi-state default,
    conf.type = "log" on the probability: p * exp(+/- z * se / p), upper capped at 1, NaN
    where p = 0. Columns per cause k: cif_k, se_k, lower_k, upper_k, and n_risk, n_event_k,
    n_censor.
    """
    time = np.asarray(durations, dtype=float)
    cause = np.asarray(causes, dtype=float)
    keep = ~(np.isnan(time) | np.isnan(cause))
    time, cause = time[keep], cause[keep].astype(int)
    n = len(time)
    surv_before = 1.0  # all-cause KM just before t
    influence_surv = np.zeros(n)
    cif = {k: 0.0 for k in CAUSES}
    influence_cif = {k: np.zeros(n) for k in CAUSES}
    rows = []
    for t in np.unique(time):
        at_risk = time >= t
        n_risk = at_risk.sum()
        at_t = time == t
        row = {"time": t, "n_risk": int(n_risk), "n_censor": int((at_t & (cause == 0)).sum())}
        hazard_all, influence_hazard_all = 0.0, np.zeros(n)
        for k in CAUSES:
            died = (at_t & (cause == k)).astype(float)
            hazard = died.sum() / n_risk
            # d hazard / d w_i = (dN_i - Y_i * hazard) / Y
            influence_hazard = (died - at_risk * hazard) / n_risk
            influence_cif[k] = (
                influence_cif[k] + influence_surv * hazard + surv_before * influence_hazard
            )
            cif[k] += surv_before * hazard
            hazard_all += hazard
            influence_hazard_all += influence_hazard
            row[f"n_event_{k}"] = int(died.sum())
        influence_surv = influence_surv * (1 - hazard_all) - surv_before * influence_hazard_all
        surv_before *= 1 - hazard_all
        for k in CAUSES:
            p = cif[k]
            se = float(np.sqrt(np.sum(influence_cif[k] ** 2)))
            row[f"cif_{k}"] = p
            row[f"se_{k}"] = se
            if p > 0:
                log_se = se / p
                row[f"lower_{k}"] = p * math.exp(-Z_95 * log_se)
                row[f"upper_{k}"] = min(p * math.exp(Z_95 * log_se), 1.0)
            else:
                row[f"lower_{k}"] = row[f"upper_{k}"] = math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _cif_long(durations, causes) -> pd.DataFrame:
    durations = pd.to_numeric(pd.Series(durations), errors="coerce").to_numpy(dtype=float)
    causes = pd.to_numeric(pd.Series(causes), errors="coerce").to_numpy(dtype=float)
    wide = aalen_johansen(durations, causes)
    parts = []
    for k, label in CAUSES.items():
        other = 3 - k
        km = survival.km_table(durations, np.where(np.isnan(causes), np.nan, causes == k))
        one_minus_km = 1 - km.set_index("time")["survival"].reindex(wide["time"]).to_numpy()
        excess = one_minus_km - wide[f"cif_{k}"].to_numpy()
        excess[np.abs(excess) < 1e-12] = 0.0  # rounding noise where the two agree
        parts.append(
            pd.DataFrame(
                {
                    "cause": label,
                    "time": wide["time"],
                    "n_risk": wide["n_risk"],
                    "n_event": wide[f"n_event_{k}"],
                    "n_competing": wide[f"n_event_{other}"],
                    "n_censor": wide["n_censor"],
                    "cumulative_incidence": wide[f"cif_{k}"],
                    "std_err": wide[f"se_{k}"],
                    "ci_lower": wide[f"lower_{k}"],
                    "ci_upper": wide[f"upper_{k}"],
                    "one_minus_km": one_minus_km,
                    "km_excess": excess,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def cumulative_incidence_outputs(
    df: pd.DataFrame, groupings: Sequence[str] = CIF_GROUPINGS
) -> pd.DataFrame:
    """Relapse/progression and non-relapse mortality cumulative incidence, with 1 - KM.

    Time is EFS in months (efs_months); efs_cause gives the event (1 relapse/progression,
    2 death without relapse, 0 censored). Groups are the dataset's 0/1 flags (yes/no).
    """
    months = _days(df["efs_days"]) / DAYS_PER_MONTH
    data = pd.DataFrame({"months": months, "cause": _days(df["efs_cause"])}, index=df.index)
    out = []
    for grouping in groupings:
        if grouping == "overall":
            parts = [("all", data)]
        else:
            flags = pd.to_numeric(df[grouping], errors="coerce")
            parts = [
                ("yes" if value else "no", data[flags == value])
                for value in sorted(flags.dropna().unique())
            ]
        for group, part in parts:
            if part.empty:
                continue
            out.append(
                _cif_long(part["months"], part["cause"]).assign(grouping=grouping, group=group)
            )
    return pd.concat(out, ignore_index=True)[CIF_COLUMNS]


# ---------------------------------------------------------------------------
# Response rate: exact and Wilson CIs, exact one-sided test against a reference rate
# ---------------------------------------------------------------------------

RESPONSE_RATE_COLUMNS = [
    "variable",
    "level",
    "n",
    "responders",
    "rate",
    "exact_ci_lower",
    "exact_ci_upper",
    "wilson_ci_lower",
    "wilson_ci_upper",
    "reference_rate",
    "p_value_greater",
]


def wilson_interval(k: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score 95% CI, as R prop.test(k, n, correct = FALSE)$conf.int."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    z22n = z**2 / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z22n / (2 * n))
    lower = 0.0 if p <= 0 else (p + z22n - spread) / (1 + 2 * z22n)
    upper = 1.0 if p >= 1 else (p + z22n + spread) / (1 + 2 * z22n)
    return (max(lower, 0.0), min(upper, 1.0))


def binomial_test_greater(k: int, n: int, reference_rate: float) -> float:
    """Exact one-sided P that the rate exceeds reference_rate: P(X >= k | n, p0), as R
    binom.test(k, n, p = p0, alternative = "greater")."""
    if n == 0:
        return math.nan
    return float(stats.binomtest(k, n, reference_rate, alternative="greater").pvalue)


def _rate_row(variable, level, responders: pd.Series, reference_rate) -> dict:
    n, k = int(responders.size), int(responders.sum())
    exact = tables.clopper_pearson(k, n)
    wilson = wilson_interval(k, n)
    return {
        "variable": variable,
        "level": level,
        "n": n,
        "responders": k,
        "rate": k / n if n else math.nan,
        "exact_ci_lower": exact[0],
        "exact_ci_upper": exact[1],
        "wilson_ci_lower": wilson[0],
        "wilson_ci_upper": wilson[1],
        "reference_rate": reference_rate,
        "p_value_greater": binomial_test_greater(k, n, reference_rate),
    }


def response_rates(
    df: pd.DataFrame,
    reference_rate: float = DEFAULT_REFERENCE_RATE,
    cuts: tables.SubgroupCuts = DEFAULT_CUTS,
    subgroups: Iterable[str] = tables.DEFAULT_SUBGROUPS,
) -> pd.DataFrame:
    """CR/CRi rate overall and per Table 2 subgroup level, with CIs and the one-sided test.

    Rows: overall among evaluable patients (the paper's denominator, 49), overall among all
    treated patients (non-evaluable counted as non-responders), then the two levels of each
    Table 2 subgroup among evaluable patients (missing values left out, as Table 2).
    """
    evaluable = df[tables.is_true(df["evaluable"])]
    responders = tables.is_true(evaluable["responder"])
    rows = [
        _rate_row("overall", "evaluable", responders, reference_rate),
        _rate_row("overall", "all treated", tables.is_true(df["responder"]), reference_rate),
    ]
    definitions = tables.subgroup_definitions(cuts)
    for key in subgroups:
        group = definitions[key]
        in_level2 = group.split(evaluable, cuts)
        known = in_level2.notna()
        level1 = responders[known & ~in_level2.fillna(True)]
        level2 = responders[known & in_level2.fillna(False)]
        rows.append(_rate_row(key, group.levels[0], level1, reference_rate))
        rows.append(_rate_row(key, group.levels[1], level2, reference_rate))
    return pd.DataFrame(rows, columns=RESPONSE_RATE_COLUMNS)


# ---------------------------------------------------------------------------
# All of it
# ---------------------------------------------------------------------------


class BeyondOutputs(NamedTuple):
    tables: dict  # file name -> frame
    landmark: LandmarkOutputs
    ph_test: pd.DataFrame  # the time-varying models' rows of cox_ph_test.csv


def beyond_outputs(
    df: pd.DataFrame,
    landmark_days: float = DEFAULT_LANDMARK_DAYS,
    reference_rate: float = DEFAULT_REFERENCE_RATE,
    cuts: tables.SubgroupCuts = DEFAULT_CUTS,
    at_risk_months: Iterable[float] = DEFAULT_AT_RISK_MONTHS,
) -> BeyondOutputs:
    landmark = landmark_analysis(df, landmark_days, at_risk_months)
    time_varying = cox_time_varying_models(df)
    frames = {
        "landmark_median.csv": landmark.medians,
        "landmark_logrank.csv": landmark.logrank,
        "landmark_excluded.csv": landmark.excluded,
        "landmark_numbers_at_risk.csv": landmark.numbers_at_risk,
        "landmark_survival_table.csv": landmark.km,
        "cox_time_varying.csv": time_varying.table,
        "cumulative_incidence.csv": cumulative_incidence_outputs(df),
        "response_rate.csv": response_rates(df, reference_rate, cuts),
    }
    return BeyondOutputs(frames, landmark, time_varying.ph_test)
