"""The baseline of bench/analysis_bench.py: the run's statistics and figures written the way an
analyst would in a notebook, with bare pandas + lifelines (and scipy) on the same frame.

Same inputs (the analysis dataset and the adverse-event frame), same analyses (Tables 1-3 and the
treatment flow, Kaplan-Meier with medians and numbers at risk, log-rank, Cox univariate and
multivariable, the landmark analysis, the time-varying Cox model, Aalen-Johansen cumulative
incidence, response rates) and the same ten figures (PNG at 200 dpi + SVG), using lifelines'
defaults instead of the registry's R-matching code. Nothing here is compared to R; it is the
yardstick for time and memory only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from lifelines import (
    AalenJohansenFitter,
    CoxPHFitter,
    CoxTimeVaryingFitter,
    KaplanMeierFitter,
)
from lifelines.plotting import add_at_risk_counts
from lifelines.statistics import multivariate_logrank_test
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats

LANDMARK_DAYS = 90
AT_RISK = [0, 3, 6, 9, 12, 15, 18]
SUBGROUPS = {  # column -> level-2 test
    "age_years": lambda s: s >= 55,
    "sex": lambda s: s == "female",
    "salvage_phase": lambda s: s >= 2,
    "months_diagnosis_to_start": lambda s: s >= 12,
    "ecog": lambda s: s >= 2,
    "cyto_risk_diagnosis": lambda s: s == "high",
    "cyto_risk_start": lambda s: s == "high",
    "emd": lambda s: s == 1,
    "marrow_blasts_pct": lambda s: s > 50,
    "prior_allo_sct": lambda s: s == 1,
    "dexamethasone_mg_before": lambda s: s > 80,
}
COVARIATES = ["responder", "allo_sct_after", "ecog_ge_2", "emd"]


def table1(df):
    rows = []
    for column in ["age_years", "marrow_blasts_pct", "months_diagnosis_to_start"]:
        values = df[column].dropna()
        rows.append((column, values.median(), values.min(), values.max()))
    rows.append(("dexamethasone", *df["dexamethasone_mg_before"].agg(["median", "min", "max"])))
    counts = [
        df[c].value_counts(normalize=False)
        for c in ["sex", "ecog_ge_2", "salvage_phase", "prior_allo_sct", "relapse_site", "emd"]
    ]
    counts.append(df["cyto_risk_start"].value_counts())
    counts.append((df["age_years"] > 65).value_counts())
    counts.append((df["marrow_blasts_pct"] >= 50).value_counts())
    return rows, counts


def table2(df):
    evaluable = df[df["evaluable"] == 1]
    rows = []
    for column, level2 in SUBGROUPS.items():
        known = evaluable[evaluable[column].notna()]
        split = level2(known[column]).astype(bool)
        table = pd.crosstab(split, known["responder"]).reindex(
            index=[False, True], columns=[1, 0], fill_value=0
        )
        a, b, c, d = table.to_numpy().ravel()
        odds, p = stats.fisher_exact([[a, b], [c, d]])
        rows.append((column, a, b, c, d, odds, p))
        for k, n in ((a, a + b), (c, c + d)):
            stats.binomtest(int(k), int(n)).proportion_ci() if n else None
    return rows


def table3(ae, n):
    worst_term = ae.groupby(["soc", "ctcae_term", "study_id"])["grade"].max()
    by_term = worst_term.groupby(["soc", "ctcae_term"]).value_counts().unstack(fill_value=0)
    worst_soc = ae.groupby(["soc", "study_id"])["grade"].max()
    by_soc = worst_soc.groupby("soc").value_counts().unstack(fill_value=0)
    return by_term / n, by_soc / n


def flow(df):
    return {
        "treated": len(df),
        "evaluable": int(df["evaluable"].sum()),
        "cr_cri_after_cycle1": int(df["response_after_cycle1"].isin(["CR", "CRi"]).sum()),
        "second_cycle": int((df["cycles_given"] >= 2).sum()),
        "responders": int(df["responder"].sum()),
        "allo_sct_after": int(df["allo_sct_after"].sum()),
        "salvage_chemo_after": int(df["salvage_chemo_after"].sum()),
    }


def km_all(data, duration, event, groupings):
    results = []
    for grouping in groupings:
        parts = [("all", data)] if grouping is None else list(data.groupby(grouping))
        for label, part in parts:
            kmf = KaplanMeierFitter().fit(part[duration], part[event], label=str(label))
            results.append(
                (
                    grouping,
                    label,
                    kmf.median_survival_time_,
                    kmf.confidence_interval_,
                    kmf.event_table,
                    [int((part[duration] >= t).sum()) for t in AT_RISK],
                )
            )
        if grouping is not None:
            test = multivariate_logrank_test(data[duration], data[grouping], data[event])
            results.append((grouping, "logrank", test.test_statistic, test.p_value))
    return results


def cox_all(df, duration, event):
    fits = []
    for covariate in COVARIATES:
        data = df[[duration, event, covariate]].dropna().astype(float)
        fits.append(CoxPHFitter().fit(data, duration, event).summary)
    data = df[[duration, event, *COVARIATES]].dropna().astype(float)
    fits.append(CoxPHFitter().fit(data, duration, event).summary)
    return fits


def landmark(df, endpoint):
    days, event = df[f"{endpoint}_days"], df[f"{endpoint}_event"]
    kept = df[days > LANDMARK_DAYS]
    frame = pd.DataFrame(
        {
            "time": (kept[f"{endpoint}_days"] - LANDMARK_DAYS) / 30.4375,
            "event": event[days > LANDMARK_DAYS],
            "response_by_landmark": (
                kept["response_days"].astype(float).fillna(np.inf) <= LANDMARK_DAYS
            )
            .astype(int)
            .to_numpy(),
            "sct_by_landmark": (kept["sct_days"].astype(float).fillna(np.inf) <= LANDMARK_DAYS)
            .astype(int)
            .to_numpy(),
        }
    )
    return frame, km_all(frame, "time", "event", [None, "response_by_landmark", "sct_by_landmark"])


def start_stop(df, endpoint):
    """Counting-process frame with pandas: one row per interval, split at SCT and response."""
    base = pd.DataFrame(
        {
            "id": np.arange(len(df)),
            "stop": df[f"{endpoint}_days"].to_numpy(float),
            "event": df[f"{endpoint}_event"].to_numpy(float),
            "sct": df["sct_days"].astype(float).to_numpy(),
            "response": df["response_days"].astype(float).to_numpy(),
        }
    )
    base = base[base["stop"] > 0]
    cuts = base.melt(id_vars=["id", "stop"], value_vars=["sct", "response"], value_name="cut")
    cuts = cuts[(cuts["cut"] > 0) & (cuts["cut"] < cuts["stop"])][["id", "cut"]]
    bounds = pd.concat(
        [base[["id"]].assign(cut=0.0), cuts, base[["id"]].assign(cut=base["stop"])]
    ).drop_duplicates()
    bounds = bounds.sort_values(["id", "cut"])
    bounds["stop"] = bounds.groupby("id")["cut"].shift(-1)
    rows = bounds.dropna(subset=["stop"]).rename(columns={"cut": "start"})
    rows = rows.merge(base[["id", "event", "sct", "response"]], on="id")
    last = rows.groupby("id")["stop"].transform("max")
    rows["event"] = ((rows["stop"] == last) & (rows["event"] == 1)).astype(int)
    rows["sct"] = (rows["sct"].fillna(np.inf) <= rows["start"]).astype(int)
    rows["response"] = (rows["response"].fillna(np.inf) <= rows["start"]).astype(int)
    return rows


def cox_time_varying(df, endpoint):
    data = start_stop(df, endpoint)
    fits = []
    for terms in (["sct"], ["response"], ["sct", "response"]):
        fitter = CoxTimeVaryingFitter().fit(
            data[["id", "start", "stop", "event", *terms]].astype(float),
            id_col="id",
            event_col="event",
            start_col="start",
            stop_col="stop",
        )
        fits.append(fitter.summary)
    return fits


def cumulative_incidence(df):
    months = df["efs_days"] / 30.4375
    out = []
    for grouping in (None, "responder", "allo_sct_after"):
        parts = [("all", df.index)] if grouping is None else df.groupby(grouping).groups.items()
        for _label, index in parts:
            for cause in (1, 2):
                ajf = AalenJohansenFitter().fit(
                    months[index], df.loc[index, "efs_cause"], event_of_interest=cause
                )
                out.append(ajf.cumulative_density_)
    return out


def response_rates(df):
    evaluable = df[df["evaluable"] == 1]
    k, n = int(evaluable["responder"].sum()), len(evaluable)
    return (
        stats.binomtest(k, n, 0.25, alternative="greater").pvalue,
        stats.binomtest(k, n).proportion_ci(method="exact"),
        stats.binomtest(k, n).proportion_ci(method="wilson"),
    )


def paper_statistics(df: pd.DataFrame, ae: pd.DataFrame) -> dict:
    """The paper's tables the bare way: Tables 1-3, flow, KM, log-rank, Cox."""
    out = {"table1": table1(df), "table2": table2(df), "table3": table3(ae, len(df))}
    out["flow"] = flow(df)
    for endpoint in ("efs", "os"):
        duration, event = f"{endpoint}_months", f"{endpoint}_event"
        data = df[[duration, event, "responder", "allo_sct_after"]].dropna()
        out[f"km_{endpoint}"] = km_all(data, duration, event, [None, "responder", "allo_sct_after"])
        out[f"cox_{endpoint}"] = cox_all(df, duration, event)
    return out


def beyond_statistics(df: pd.DataFrame) -> dict:
    """Landmark KM, time-varying Cox, cumulative incidence and response rates, the bare way."""
    out = {"rates": response_rates(df), "cif": cumulative_incidence(df)}
    for endpoint in ("efs", "os"):
        out[f"landmark_{endpoint}"] = landmark(df, endpoint)
        out[f"cox_tv_{endpoint}"] = cox_time_varying(df, endpoint)
    return out


def _figure(data, duration, event, grouping, path):
    fig = Figure(figsize=(7, 5.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    parts = [("All patients", data)] if grouping is None else list(data.groupby(grouping))
    fitters = []
    for label, part in parts:
        kmf = KaplanMeierFitter().fit(part[duration], part[event], label=str(label))
        kmf.plot_survival_function(ax=ax, show_censors=True, ci_show=False)
        fitters.append(kmf)
    if grouping is not None:
        p = multivariate_logrank_test(data[duration], data[grouping], data[event]).p_value
        ax.set_title(f"Log-rank P = {p:.3f}")
    add_at_risk_counts(*fitters, ax=ax, xticks=AT_RISK)
    fig.savefig(f"{path}.png", dpi=200, bbox_inches="tight")
    fig.savefig(f"{path}.svg", bbox_inches="tight")


def paper_figures(df: pd.DataFrame, out) -> None:
    """The run's six Kaplan-Meier figures drawn with lifelines' own plotting."""
    for endpoint in ("efs", "os"):
        duration, event = f"{endpoint}_months", f"{endpoint}_event"
        data = df[[duration, event, "responder", "allo_sct_after"]].dropna()
        for grouping in (None, "responder", "allo_sct_after"):
            _figure(data, duration, event, grouping, out / f"bare_{endpoint}_{grouping}")


def landmark_figures(df: pd.DataFrame, out) -> None:
    """The four landmark figures, likewise."""
    for endpoint in ("efs", "os"):
        frame, _ = landmark(df, endpoint)
        for grouping in ("response_by_landmark", "sct_by_landmark"):
            _figure(frame, "time", "event", grouping, out / f"bare_lm_{endpoint}_{grouping}")
