"""The run's statistics (the paper's and beyond) in the app's code and in R, on one frame.

    bash scripts/with_services.sh .venv/bin/python bench/vs_r.py --patients 10000 [--repeat 3]

The frame is the analysis dataset of seed_demo's registry of N patients (`bench_<N>` on the
PostgreSQL of with_services.sh, seeded on first use; seed_demo's generator gives day-resolution
survival times, hundreds of distinct days): `load_registry()`, then written to CSV for R.

app: `outputs.paper_tables()` + `outputs.beyond_tables()` in this process, after the imports
     (Tables 1-3 and the flow, Kaplan-Meier tables, medians, numbers at risk, log-rank, Cox
     univariate and multivariable with cox.zph; landmark KM and log-rank, the time-varying and
     naive Cox models with cox.zph, the cumulative incidence, the response rates).
R:   bench/r/vs_r.R: the scripts the tests compare the app with (tests/analysis/r/
     survival_reference.R and beyond_reference.R: survfit, survdiff, coxph Efron, tmerge,
     multi-state survfit, binom.test, prop.test), cox.zph of every model, fisher.test and
     binom.test per Table 2 subgroup; timed with proc.time() inside R after reading the CSV.

Best of --repeat for each, wall and CPU (user + system; R's proc.time, the app's
process_time) apart: a loaded machine changes CPU time least. max_rel_diff: the largest
|app - R| / max(|app|, |R|) over the estimates compared (KM survival, log-rank chi-square,
Cox and time-varying Cox coefficients and standard errors, cumulative incidence and its
standard error, cox.zph chi-square, Fisher P, the response rates' exact and Wilson limits and
binomial P); differences under 1e-12 count as 0. The last line printed is one JSON object:
{"patients", "app_s", "r_s", "ratio", "max_rel_diff"}.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

R_SCRIPT = common.ROOT / "bench" / "r" / "vs_r.R"
REFERENCE_DIR = common.ROOT / "tests" / "analysis" / "r"


def r_frame(df):
    """The dataset as R reads it: flags 0/1, missing values empty."""
    out = df.copy()
    for column in out.columns:
        if str(out[column].dtype) in ("bool", "boolean"):
            out[column] = out[column].astype("boolean").astype("Int64")
    return out


def rel_diff(a, b):
    import numpy as np

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    both = ~(np.isnan(a) | np.isnan(b))
    if (np.isnan(a) != np.isnan(b)).any():
        return float("inf")  # one side has a number, the other none
    a, b = a[both], b[both]
    diff = np.abs(a - b)
    scale = np.maximum(np.abs(a), np.abs(b))
    rel = np.where(diff < 1e-12, 0.0, diff / np.where(scale > 0, scale, 1.0))
    return float(rel.max()) if len(rel) else 0.0


def compare(app: dict, r_dir: Path) -> dict:
    """Largest relative difference per family of estimates."""
    import pandas as pd

    def r(name):
        return pd.read_csv(r_dir / name)

    out = {}
    keys = ["endpoint", "grouping", "group"]
    ours = app["survival_table.csv"].assign(t=lambda f: f["time"].round(9))
    theirs = r("km.csv").assign(t=lambda f: f["time"].round(9))
    merged = ours.merge(theirs, on=[*keys, "t"], suffixes=("", "_r"))
    assert len(merged) == len(ours) == len(theirs), "KM tables differ in rows"
    out["km_survival"] = rel_diff(merged["survival"], merged["survival_r"])
    merged = app["survival_logrank.csv"].merge(r("logrank.csv"), on=["endpoint", "grouping"])
    out["logrank_chisq"] = rel_diff(merged["chisq_x"], merged["chisq_y"])
    merged = app["cox.csv"].merge(r("cox.csv"), on=["endpoint", "model", "term"])
    assert len(merged) == len(app["cox.csv"]), "Cox terms differ"
    out["cox_coef_se"] = max(
        rel_diff(merged["coef_x"], merged["coef_y"]), rel_diff(merged["se_x"], merged["se_y"])
    )
    key = ["endpoint", "model", "term"]
    merged = app["cox_time_varying.csv"].merge(r("cox_time_varying.csv"), on=key)
    assert len(merged) == len(app["cox_time_varying.csv"]), "time-varying Cox terms differ"
    out["cox_time_varying_coef_se"] = max(
        rel_diff(merged["coef_x"], merged["coef_y"]), rel_diff(merged["se_x"], merged["se_y"])
    )
    key = ["grouping", "group", "cause"]
    ours = app["cumulative_incidence.csv"].assign(t=lambda f: f["time"].round(9))
    theirs = r("cumulative_incidence.csv").assign(t=lambda f: f["time"].round(9))
    merged = ours.merge(theirs, on=[*key, "t"])
    assert len(merged) == len(ours), "cumulative incidence rows differ"
    out["cumulative_incidence"] = max(
        rel_diff(merged["cumulative_incidence_x"], merged["cumulative_incidence_y"]),
        rel_diff(merged["std_err_x"], merged["std_err_y"]),
    )
    # cox.zph: the app's tests in the order R fitted the models (paper, then beyond).
    zph = app["cox_ph_test.csv"]
    theirs = r("zph.csv")
    if len(zph) == len(theirs):
        out["cox_zph_chisq"] = rel_diff(zph["chisq"], theirs["chisq"])
    table2 = app["table2_subgroups.csv"].dropna(subset=["p_value"])
    merged = table2.merge(r("fisher.csv"), on="variable")
    assert len(merged) == len(table2), "Table 2 subgroups differ"
    out["fisher_p"] = rel_diff(merged["p_value_x"], merged["p_value_y"])
    merged = app["response_rate.csv"].merge(r("response_rate.csv"), on=["variable", "level"])
    assert len(merged) == len(app["response_rate.csv"]), "response rate rows differ"
    out["response_rate_ci_p"] = max(
        rel_diff(merged[f"{c}_x"], merged[f"{c}_y"])
        for c in ("exact_ci_lower", "exact_ci_upper", "wilson_ci_lower", "p_value_greater")
    )
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, required=True)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--keep", help="keep the frame and both sides' results in this directory")
    args = parser.parse_args()
    n = args.patients
    common.header(f"The run's statistics, app vs R, {n:,} patients")
    rscript = shutil.which("Rscript")
    if rscript is None:
        sys.exit("Rscript not found (apt-get install r-base-core r-cran-survival)")
    common.use_database(n)
    warnings.simplefilter("ignore")
    import pandas as pd

    from analysis import outputs
    from analysis.dataset import load_registry

    snapshot = load_registry()
    parameters = outputs.default_parameters()
    work = Path(args.keep or tempfile.mkdtemp(prefix="vs_r_"))
    work.mkdir(parents=True, exist_ok=True)
    source = work / "frame.csv"
    r_frame(snapshot.dataset).to_csv(source, index=False, float_format="%.17g")

    app_times, app_cpu, app = [], [], None
    for _ in range(args.repeat):
        started, cpu = time.perf_counter(), time.process_time()
        tables = outputs.paper_tables(snapshot, parameters)
        extra = outputs.beyond_tables(snapshot, parameters)
        app_times.append(time.perf_counter() - started)
        app_cpu.append(time.process_time() - cpu)
        app = {**tables, **extra}
        app["cox_ph_test.csv"] = pd.concat(
            [tables["cox_ph_test.csv"], extra["cox_ph_test.csv"]], ignore_index=True
        )
    r_times, r_cpu, r_dir = [], [], work / "r"
    r_dir.mkdir(exist_ok=True)
    at_risk = ",".join(str(m) for m in outputs.AT_RISK_MONTHS)
    for _ in range(args.repeat):
        common.run(
            [
                rscript,
                str(R_SCRIPT),
                str(source),
                str(r_dir),
                str(REFERENCE_DIR),
                str(parameters["landmark_days"]),
                str(parameters["reference_rate"]),
                at_risk,
            ]
        )
        timing = pd.read_csv(r_dir / "timing.csv")
        r_times.append(float(timing["r_s"].iloc[0]))
        r_cpu.append(float(timing["r_cpu_s"].iloc[0]))
    diffs = compare(app, r_dir)
    if args.keep:
        for name, frame in app.items():
            frame.to_csv(work / f"app_{name}", index=False)
    else:
        shutil.rmtree(work)
    app_s, r_s = min(app_times), min(r_times)
    result = {
        "patients": n,
        "app_s": round(app_s, 3),
        "r_s": round(r_s, 3),
        "ratio": round(app_s / r_s, 2),
        "max_rel_diff": max(diffs.values()),
    }
    for family, value in diffs.items():
        print(f"  {family:<28} max relative difference {value:.2e}")
    print(f"  app runs {[round(t, 3) for t in app_times]}, R runs {r_times}")
    # CPU seconds (user + system): what a loaded machine changes least.
    cpu = {"app_cpu_s": round(min(app_cpu), 3), "r_cpu_s": round(min(r_cpu), 3)}
    cpu["cpu_ratio"] = round(cpu["app_cpu_s"] / cpu["r_cpu_s"], 2)
    print(f"  CPU: app {cpu['app_cpu_s']} s, R {cpu['r_cpu_s']} s, ratio {cpu['cpu_ratio']}")
    common.record(f"vs_r_{n}", {**result, **cpu, "app_runs": app_times, "r_runs": r_times, **diffs})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
