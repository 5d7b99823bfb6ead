"""lifelines' CoxPHFitter against analysis.cox.cox_efron (the vectorised Efron fit), best of 3.

    .venv/bin/python bench/cox_bench.py

No database: three covariates, exponential times, at 10,000 patients with all-distinct and with
heavily tied times, and at 100,000 with distinct times (figures in docs/benchmarks.md).
"""

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from analysis.cox import cox_efron  # noqa: E402


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


def best_of(fit, repeat=3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fit()
        times.append(time.perf_counter() - started)
    return min(times)


def main():
    for n, ties in [(10_000, False), (10_000, True), (100_000, False)]:
        df = data(n, 11, ties=ties)
        distinct = df.loc[df["event"] == 1, "time"].nunique()
        lifelines = best_of(lambda df=df: CoxPHFitter().fit(df, "time", "event"))
        covariates = df[["x1", "x2", "x3"]]
        numpy_fit = best_of(lambda df=df, x=covariates: cox_efron(df["time"], df["event"], x))
        print(
            f"{n:>7} patients, {distinct:>6} distinct event times: "
            f"lifelines {lifelines:.3f} s, numpy Efron {numpy_fit:.3f} s"
        )


if __name__ == "__main__":
    main()
