"""reproduction.csv: the paper's printed values beside a run's, compared at the printed precision.

Plain pandas (analysis/reproduction.py needs no database); the demo registry's full comparison
is in tests/analysis_app/test_paper_twin.py.
"""

import math

import pandas as pd
import pytest

from analysis import reproduction
from analysis.reproduction import compare, load_printed, reproduction_table
from analysis.survival import survival_outputs
from analysis.tables import (
    parse_table3_map,
    table1,
    table2_subgroups,
    table3_adverse_events,
    treatment_flow,
)
from registry.ctcae import TABLE3_MAP_CSV

from .datagen import paper_adverse_events, paper_cohort


@pytest.mark.parametrize(
    "printed, values, shown, agrees",
    [
        ("46.9% (15/32)", [46.875, 15, 32], "46.9% (15/32)", "yes"),  # half up, not to even
        ("35 (81.3)", [35, 100 * 35 / 43], "35 (81.4)", "no"),
        ("1.261 (0.384–4.141)", [1.26050, 0.38372, 4.14064], "1.261 (0.384–4.141)", "yes"),
        ("2 (18.1%)", [2, 100 * 2 / 11], "2 (18.2%)", "no"),
        ("0", [0, 0.0], "0", "yes"),
        ("13.5 (0.9–160.8)", [13.503, 0.887, 160.788], "13.5 (0.9–160.8)", "yes"),
        ("7.5", [math.nan], "NA", "no"),
        ("45 (19–71)", None, "NA (NA–NA)", "no"),
    ],
)
def test_numbers_agree_when_the_registry_value_rounds_to_the_printed_one(
    printed, values, shown, agrees
):
    assert compare(printed, values) == (shown, agrees)


@pytest.mark.parametrize(
    "printed, p, shown, agrees",
    [
        ("< 0.001", 0.0004, "< 0.001", "yes"),
        ("< 0.001", 0.0012, "0.001", "no"),
        ("0.058", 0.05749, "0.057", "no"),
        ("0.058", 0.0575, "0.058", "yes"),
        ("1.000", 0.9999999, "1.000", "yes"),
        ("0.769", 0.0002, "< 0.001", "no"),
    ],
)
def test_p_values_agree_at_three_decimals_or_below_the_printed_bound(printed, p, shown, agrees):
    assert compare(printed, [p], "p_value") == (shown, agrees)


def test_a_figure_computed_another_way_is_shown_but_not_compared():
    assert compare("2.1–4.6", [2.43, 7.49], "not_comparable") == ("2.4–7.5", "n/a")


def test_the_data_file_states_each_printed_value_once_with_its_place_and_a_known_key():
    printed = load_printed()
    assert list(printed.columns) == [
        "source",
        "item",
        "printed",
        "location",
        "kind",
        "key",
        "note",
    ]
    assert not printed.duplicated(["source", "item"]).any()
    assert set(printed["kind"]) <= {"number", "p_value", "not_comparable", "not_recorded"}
    assert (printed["location"] != "").all() and (printed["printed"] != "").all()
    for entry in printed.itertuples():
        if entry.kind == "not_recorded":
            assert entry.key == "" and entry.note, entry.item
            continue
        kind, _, rest = entry.key.partition(":")
        if kind == "text":
            assert rest in reproduction.TEXT, entry.key
        else:
            assert hasattr(reproduction.Run, f"_{kind}"), entry.key


def _paper_run():
    df = paper_cohort()
    ae = paper_adverse_events(df["study_id"])
    surv = survival_outputs(df)
    tables = {
        "table1.csv": table1(df),
        "table2_subgroups.csv": table2_subgroups(df),
        "table3_adverse_events.csv": table3_adverse_events(
            ae, len(df), parse_table3_map(TABLE3_MAP_CSV)
        ),
        "flow.csv": treatment_flow(df),
        "survival_median.csv": surv.medians,
        "survival_logrank.csv": surv.logrank,
    }
    return tables, df, ae


def test_tables_built_from_the_printed_counts_reproduce_tables_2_and_3():
    """The test cohort of tests/analysis/datagen.py has the printed Table 2 counts and Table 3
    bands (as a frame, febrile neutropenia grade 1-2 included): every printed cell agrees."""
    rows = reproduction_table(*_paper_run())
    for source in ("Table 2", "Table 3"):
        part = rows[rows["source"] == source]
        assert len(part) > 40
        assert (part["agrees"] == "yes").all(), part[part["agrees"] != "yes"]
    assert list(rows.columns) == reproduction.COLUMNS


def test_a_run_without_a_table_reads_na_and_does_not_agree():
    tables, df, ae = _paper_run()
    del tables["survival_median.csv"]
    rows = reproduction_table(tables, df, ae).set_index("key")
    assert rows.loc["km_median:efs|overall|all", "recomputed"] == "NA"
    assert rows.loc["km_median:efs|overall|all", "agrees"] == "no"
    assert rows.loc["table1:Sex|Male", "agrees"] == "yes"


def test_notes_explain_the_paper_inconsistencies_they_stand_beside():
    printed = load_printed().set_index("key")
    assert "81.4" in printed.loc["table1:BM blasts|>=50%", "note"]
    assert "grades 3-5" in printed.loc["table3:Febrile neutropenia|grade_1_2", "note"]
    assert "18.2" in printed.loc["text:cr_after_cycle2_among_persistent", "note"]


def test_the_report_marks_each_row_and_counts_them():
    frame = pd.DataFrame(
        [
            ["Table 1", "Sex: Male", "20 (40.0)", "20 (40.0)", "yes", "", "Table 1", "k1"],
            ["Table 1", "BM ≥ 50%", "35 (81.3)", "35 (81.4)", "no", "truncated", "Table 1", "k2"],
            ["Survival", "CI", "2.1–4.6", "2.4–7.5", "n/a", "SPSS", "Results", "k3"],
        ],
        columns=reproduction.COLUMNS,
    )
    html = reproduction.report_html(frame)
    assert "3 printed values: 1 agree, 1 differ (1 of them with a note" in html
    assert html.count("✓ agrees") == 1 and html.count("✗ differs") == 1
    assert "BM ≥ 50%" in html and "truncated" in html


def test_an_empty_registry_gives_na_rows_not_an_error():
    tables, df, ae = _paper_run()
    empty = df.iloc[0:0]
    rows = reproduction_table({}, empty, ae.iloc[0:0])
    assert len(rows) == len(load_printed())
    assert (rows.loc[rows["source"] == "Table 2", "recomputed"].str.contains("NA")).all()
    assert (rows.loc[rows["source"] == "Table 2", "agrees"] == "no").all()
