"""The proportional-hazards test of every Cox model equals R survival's cox.zph to 1e-6, and
the warnings a fit raises are kept with the model instead of only reaching the log.

R (survival >= 3.0) computes cox.zph as a score test with the full information matrix; the
installed R is asked (tests/analysis/r/zph_reference.R), so the test follows its version.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import beyond, survival

from .datagen import make_dataset, require_rscript

R_SCRIPT = Path(__file__).parent / "r" / "zph_reference.R"
TOLERANCE = 1e-6
COVARIATES = ["responder", "allo_sct_after", "ecog_ge_2", "emd"]


def _right_censored(seed: int, n: int, decimals: int | None) -> pd.DataFrame:
    df = make_dataset(n, seed)
    if decimals is not None:  # coarse times: many tied events, where Efron matters
        df["os_months"] = df["os_months"].round(decimals)
    return df


def _models() -> list[tuple[str, pd.DataFrame, list[str], bool]]:
    """(name, data with start/stop/event and the covariates, terms, counting process)."""
    models = []
    for name, df in {
        "n150_ties": _right_censored(7, 150, 0),
        "n80_days": _right_censored(3, 80, None),
    }.items():
        data = pd.DataFrame(
            {"start": np.nan, "stop": df["os_months"], "event": df["os_event"]}
        ).join(df[COVARIATES].astype(float))
        models.append((f"{name}_multivariable", data, COVARIATES, False))
        models.append((f"{name}_emd", data, ["emd"], False))
    # Time-varying covariates on (start, stop] intervals (tmerge-style, analysis.beyond).
    df = make_dataset(200, 11)
    df["os_days"] = (df["os_months"] * 30.4375).round()
    df["efs_cause"] = np.where(df["efs_event"] == 1, 1, 0)
    rng = np.random.default_rng(11)
    df["sct_days"] = np.where(df["allo_sct_after"], rng.integers(40, 200, len(df)), np.nan)
    df["response_days"] = np.where(df["responder"], rng.integers(20, 80, len(df)), np.nan)
    intervals = beyond.start_stop(df, "os_days", "os_event")
    models.append(("time_varying_both", intervals, ["sct", "response"], True))
    models.append(("time_varying_sct", intervals, ["sct"], True))
    return models


def _r_tables(models, tmp_path: Path) -> pd.DataFrame:
    rows = []
    for name, data, terms, counting in models:
        part = pd.DataFrame(
            {
                "model": name,
                "start": data["start"] if counting else np.nan,
                "stop": data["stop"],
                "event": data["event"],
            }
        )
        for i, term in enumerate(terms):
            part[f"x{i}_{term}"] = data[term].astype(float)
        rows.append(part)
    source, target = tmp_path / "in.csv", tmp_path / "out.csv"
    pd.concat(rows, ignore_index=True).to_csv(source, index=False, float_format="%.17g")
    result = subprocess.run(
        [require_rscript(), str(R_SCRIPT), str(source), str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"R failed:\n{result.stderr}"
    return pd.read_csv(target)


def _ours(data: pd.DataFrame, terms, counting: bool) -> pd.DataFrame:
    if counting:
        return beyond.cox_time_varying_fit(data, terms).ph_test
    renamed = data.rename(columns={"stop": "time"})
    return survival.cox_fit(renamed, "time", "event", terms).ph_test


def test_proportional_hazards_tests_equal_r_cox_zph(tmp_path):
    models = _models()
    r = _r_tables(models, tmp_path)
    for name, data, terms, counting in models:
        ours = _ours(data, terms, counting)
        theirs = r[r["model"] == name]
        # R names the terms x<i>_<term>; GLOBAL stays GLOBAL.
        names = [t.split("_", 1)[1] if t != "GLOBAL" else t for t in theirs["term"]]
        assert list(ours["term"]) == names == [*terms, "GLOBAL"], name
        for column, r_column in (("chisq", "chisq"), ("df", "df"), ("p_value", "p")):
            np.testing.assert_allclose(
                ours[column].astype(float),
                theirs[r_column].astype(float),
                rtol=0,
                atol=TOLERANCE,
                err_msg=f"{name} {column}",
            )
        assert (ours["chisq"] > 0).all(), name  # a real test, not an empty one


def test_a_fit_warning_is_kept_in_the_models_note():
    # Responders never have the event: complete separation, the HR runs off to zero.
    df = make_dataset(60, 2)
    df["os_event"] = np.where(df["responder"], 0, 1)
    note = survival.cox_fit(df, "os_months", "os_event", ["responder"]).table["note"].iloc[0]
    assert note.startswith("near or complete separation on responder: ")
    assert note.endswith("; the fit did not converge: the estimates are unreliable")
    # As in the demo registry: every censored patient responded (the day-1 model of
    # cox_time_varying.csv); the model is estimated and the warning goes with it.
    df = make_dataset(60, 2)
    df["os_event"] = np.where(df["responder"], df["os_event"], 1)
    intervals = pd.DataFrame(
        {
            "id": range(len(df)),
            "start": 0.0,
            "stop": df["os_months"],
            "event": df["os_event"],
            "response": df["responder"].astype(int),
        }
    )
    fit = beyond.cox_time_varying_fit(intervals, ["response"], counting=False)
    assert fit.table["hazard_ratio"].notna().all()
    assert fit.table["note"].iloc[0].startswith("near or complete separation on response: ")


def test_an_empty_group_makes_the_model_not_estimable_and_says_so():
    df = make_dataset(40, 5).assign(emd=False)
    fit = survival.cox_fit(df, "os_months", "os_event", ["responder", "emd"])
    assert fit.table["hazard_ratio"].isna().all()
    assert set(fit.table["note"]) == {"not estimable: an empty group (emd is always 0)"}
    assert list(fit.ph_test["term"]) == ["responder", "emd", "GLOBAL"]
    assert fit.ph_test["chisq"].isna().all()


def test_survival_outputs_test_every_cox_model():
    outputs = survival.survival_outputs(make_dataset(120, 4))
    models = outputs.cox.groupby(["endpoint", "model"]).size()
    tested = outputs.ph_test[outputs.ph_test["term"] != "GLOBAL"]
    assert len(tested) == len(outputs.cox) == 2 * (4 + 4)
    assert set(zip(tested["endpoint"], tested["model"], strict=True)) == set(models.index)
    assert (outputs.ph_test["term"] == "GLOBAL").sum() == 2 * (4 + 1)
    assert outputs.ph_test["source"].eq("cox").all()


def test_collinear_covariates_make_the_model_not_estimable_instead_of_failing_the_run():
    df = make_dataset(80, 3)
    df["same_as_responder"] = df["responder"]
    fit = survival.cox_fit(df, "os_months", "os_event", ["responder", "same_as_responder"])
    assert fit.table["hazard_ratio"].isna().all()
    assert set(fit.table["note"]) == {
        "not estimable: the fit failed (a singular information matrix (collinear covariates?))"
    }
