"""Figure 1 (treatment flow), the forest plot of Table 2 and the swimmer plot: what is drawn."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.patches import FancyBboxPatch
from matplotlib.text import Text

from analysis import charts
from analysis.figures import save_figure
from analysis.tables import table2_subgroups, treatment_flow

from .datagen import make_dataset, paper_cohort


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def _boxes(fig) -> dict[str, FancyBboxPatch]:
    return {
        p.get_gid().split("|", 1)[1]: p
        for p in fig.findobj(FancyBboxPatch)
        if (p.get_gid() or "").startswith(charts.FLOW_GID)
    }


def test_flow_diagram_draws_each_step_of_flow_csv_with_its_count():
    cohort = paper_cohort()
    # The paper: of 17 in CR/CRi after cycle 1 who had a second cycle, 14 stayed in remission
    # and 3 progressed; of 11 with persistent disease given a second cycle, 2 reached CR.
    after_c2 = pd.Series(None, index=cohort.index, dtype=object)
    second = pd.to_numeric(cohort["cycles_given"]) >= 2
    first = cohort["response_after_cycle1"]
    after_c2[second & first.isin(["CR", "CRi"])] = "CR"
    after_c2[cohort.index[second & first.isin(["NR", "PD"])][:2]] = "CR"
    flow = treatment_flow(cohort.assign(response_after_cycle2=after_c2))
    counts = dict(zip(flow["step"], flow["n"], strict=True))
    fig = charts.flow_diagram(flow)
    texts = _texts(fig)
    assert counts["treated"] == 50 and counts["evaluable"] == 49
    assert "Treated with blinatumomab" in texts and "n = 50" in texts
    assert "n = 49 (98.0% of 50 treated)" in texts
    assert "Died before any response assessment: 1" in texts
    assert "Alive, not yet assessed: 0" in texts  # a step of flow.csv, even at 0
    assert "n = 46 (93.9% of 49 evaluable)" in texts  # assessed after cycle 1
    assert "n = 20 (43.5% of 46 assessed)" in texts  # CR/CRi after cycle 1
    assert "n = 26 (56.5% of 46 assessed)" in texts  # persistent disease
    assert f"Second cycle of blinatumomab: {counts['cr_cri_after_cycle1_second_cycle']}" in texts
    assert (
        f"of whom CR/CRi after cycle 2: {counts['cr_cri_after_cycle1_cr_cri_after_cycle2']}"
        in texts
    )
    assert "of whom CR/CRi after cycle 2: 2" in texts  # the persistent branch
    assert {"n = 16", "n = 13", "n = 22"} <= set(texts)  # SCT, salvage, responders
    assert set(_boxes(fig)) >= {
        "treated",
        "excluded",
        "evaluable",
        "assessed_after_cycle1",
        "not_assessed_after_cycle1",
        "cr_cri_after_cycle1",
        "persistent_after_cycle1",
        "cr_cri_after_cycle1_then",
        "persistent_after_cycle1_then",
        "second_cycle",
        "allo_sct_after",
        "salvage_chemo_after",
    }
    assert "other" not in _boxes(fig)  # every step of flow.csv has its place
    assert not any("_" in text for text in texts)  # words, never step names


def test_flow_diagram_reads_steps_by_name_and_keeps_new_ones():
    flow = pd.DataFrame(
        {
            "step": [
                "treated",
                "died_before_assessment",
                "alive_not_assessed",
                "assessed_not_determinable",
                "evaluable",
                "cr_cri_after_cycle1",
                "a_step_added_later",
            ],
            "n": [60, 2, 1, 3, 54, 25, 7],
        }
    )
    fig = charts.flow_diagram(flow.sample(frac=1, random_state=3))  # order does not matter
    texts = _texts(fig)
    assert "n = 6" in texts  # not evaluable: 2 + 1 + 3
    for line in (
        "Died before any response assessment: 2",
        "Alive, not yet assessed: 1",
        "Assessed without a determinable response: 3",
        "A step added later: 7",
    ):
        assert line in texts
    boxes = _boxes(fig)
    # No "assessed after cycle 1" step: its box is left out, CR/CRi hangs from "evaluable".
    assert "assessed_after_cycle1" not in boxes and "cr_cri_after_cycle1" in boxes
    assert "n = 25 (46.3% of 54 evaluable)" not in texts
    assert "other" in boxes


def test_forest_plot_has_a_row_per_subgroup_with_its_ratio_n_and_p():
    table = table2_subgroups(paper_cohort())
    fig = charts.forest_plot(table)
    texts = _texts(fig)
    drawn = {
        line.get_gid().split("|")[1]: line
        for line in fig.findobj(lambda a: str(a.get_gid()).startswith(charts.FOREST_GID))
    }
    assert list(drawn) == list(table["variable"].unique())
    age = table[table["variable"] == "age"].iloc[1]
    assert list(drawn["age"].get_xdata()) == [age["ci_lower"], age["ci_upper"]]
    assert "1.261 (0.384\u20134.141)" in texts and "0.769" in texts
    assert "\u2265 12 months vs < 12 months" in texts  # the reversed ratio says so
    assert "32 / 17" in texts
    assert fig.axes[1].get_xscale() == "log"


def test_forest_plot_writes_a_ratio_that_cannot_be_estimated():
    table = table2_subgroups(paper_cohort())
    row = table.index[(table["variable"] == "sex")][1]
    table.loc[row, ["odds_ratio", "ci_lower", "ci_upper", "p_value"]] = np.nan
    fig = charts.forest_plot(table)
    assert "not estimable" in _texts(fig)
    assert "NA" in _texts(fig)


def _swimmers(n: int, seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    df = make_dataset(n, seed)
    rng = np.random.default_rng(seed)
    df["os_days"] = (df["os_months"] * 30.4375).round()
    df["efs_days"] = (df["efs_months"] * 30.4375).round()
    df["efs_cause"] = np.where(df["efs_event"] == 1, 1, 0)
    df["response_days"] = np.where(df["responder"], 28.0, np.nan)
    df["sct_days"] = np.where(df["allo_sct_after"], rng.integers(60, 120, n), np.nan)
    cycles = pd.DataFrame(
        {
            "study_id": df["study_id"],
            "cycle": 1,
            "start_day": 0,
            "end_day": np.minimum(27, df["os_days"]),
        }
    )
    return df, cycles


def test_swimmer_plot_draws_every_patient_at_registry_paper_size(tmp_path):
    df, cycles = _swimmers(50)
    fig = charts.swimmer_plot(df, cycles)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert sorted(labels) == sorted(df["study_id"])
    longest = df.loc[df["os_days"].idxmax(), "study_id"]
    assert labels[0] == longest  # the longest follow-up at the top
    assert ax.get_title() == "Course of each patient from day 1 of blinatumomab"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"First CR/CRi", "Allogeneic SCT", "Relapse or progression", "Death"} <= set(legend)
    assert "Alive at last contact" in legend
    png, svg = save_figure(fig, tmp_path / "swimmer")
    assert png.read_bytes().startswith(b"\x89PNG") and "<svg" in svg.read_text()


def test_swimmer_plot_of_a_large_registry_shows_a_stated_sample():
    df, cycles = _swimmers(5000, 2)
    fig = charts.swimmer_plot(df, cycles)
    ax = fig.axes[0]
    assert len(ax.get_yticklabels()) == charts.MAX_SWIMMERS == 60
    assert "A random sample of 60 of 5,000 patients" in ax.get_title()
    again = charts.swimmer_plot(df, cycles)  # the same sample each time
    assert [t.get_text() for t in again.axes[0].get_yticklabels()] == [
        t.get_text() for t in ax.get_yticklabels()
    ]
