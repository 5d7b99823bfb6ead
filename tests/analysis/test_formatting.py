"""The formatting rules every view of a run shares (analysis.formatting, analysis.display):
3 decimals, "< 0.001", n (%), median (range), the paper's labels and Table 2 as printed."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis import display
from analysis import formatting as fmt
from analysis.tables import table1, table2_subgroups, treatment_flow

from .datagen import paper_cohort


@pytest.mark.parametrize(
    "p, shown",
    [
        (0.7689, "0.769"),
        (1.0, "1.000"),
        (0.0494, "0.049"),
        (0.001, "0.001"),
        (0.00099999, "< 0.001"),
        (0.0004, "< 0.001"),
        (2.3e-9, "< 0.001"),
        (0.0, "< 0.001"),
        (math.nan, "NA"),
        (None, "NA"),
    ],
)
def test_p_values_have_three_decimals_and_never_show_as_zero(p, shown):
    assert fmt.fmt_p(p) == shown


def test_odds_ratios_and_cis_have_three_decimals_and_an_en_dash():
    assert fmt.fmt_or_ci(1.2607, 0.38383, 4.14094) == "1.261 (0.384\u20134.141)"
    assert fmt.fmt_or_ci(3.1169, 0.9571, 10.1508) == "3.117 (0.957\u201310.151)"
    assert fmt.fmt_or_ci(math.nan, math.nan, math.nan) == "NA"


def test_counts_with_percentages_and_medians_with_ranges():
    assert fmt.fmt_n_pct(20, 50) == "20 (40.0%)"
    assert fmt.fmt_n_pct(16, 42) == "16 (38.1%)"
    assert fmt.fmt_n_pct(0, 50) == "0 (0.0%)"
    assert fmt.fmt_n_pct(0, 50, zero="0") == "0"  # Table 3 prints a bare 0
    assert fmt.fmt_median_range(45, 19, 71) == "45 (19\u201371)"
    assert fmt.fmt_median_range(13.46, 0.94, 160.8, 1) == "13.5 (0.9\u2013160.8)"
    assert fmt.reformat_median_range("16.8 (1.6-120.0)") == "16.8 (1.6\u2013120.0)"
    assert fmt.fmt_rate(15, 32) == "46.9% (15/32)"
    assert fmt.fmt_median_ci(7.46, 5.3, math.nan) == "7.5 (5.3\u2013NR)"


def test_levels_and_codes_read_as_words():
    assert [fmt.fmt_level(x) for x in (">=2", "<55", "<=50%", ">80 mg", "0-1", "male")] == [
        "\u2265 2",
        "< 55",
        "\u2264 50%",
        "> 80 mg",
        "0\u20131",
        "Male",
    ]
    assert fmt.label("cyto_risk_diagnosis") == "Cytogenetic risk at diagnosis"
    assert fmt.label("died_before_assessment") == "Died before any response assessment"
    assert fmt.label("a_step_added_later") == "A step added later"  # never a raw code
    assert fmt.group_label("allo_sct_after", "yes") == "Allogeneic SCT after blinatumomab"


def test_figure_titles_are_words_not_column_names():
    assert (
        fmt.figure_title("efs", "allo_sct_after")
        == "Event-free survival by allogeneic SCT after blinatumomab"
    )
    assert fmt.figure_title("os", "responder") == (
        "Overall survival by response to blinatumomab (CR/CRi)"
    )
    assert fmt.figure_title("os", "overall") == "Overall survival, all patients"


def test_parameters_are_a_labelled_list():
    parameters = {
        "test": "fisher",
        "cuts": {
            "age_years": 55.0,
            "months_from_diagnosis": 12.0,
            "marrow_blasts_pct": 50.0,
            "dexamethasone_mg": 80.0,
        },
        "landmark_days": 90,
        "reference_rate": 0.25,
    }
    assert fmt.parameter_items(parameters) == [
        ("Table 2 test", "Fisher's exact (two-sided), as printed in the paper"),
        ("Age cut", "55 years"),
        ("Diagnosis-to-start cut", "12 months"),
        ("Marrow blasts cut", "50%"),
        ("Dexamethasone cut", "80 mg"),
        ("Landmark", "day 90 after blinatumomab start"),
        ("Reference response rate", "25%"),
    ]


# The paper's Table 2 as printed (its "allogenic" spelled as the rest of the paper spells it,
# and "50%" with its decimal like every other rate).
PAPER_TABLE2_TEXT = [
    ["Variables", "Response rates 44.9% (22/49)", "OR (95% CI)", "P value"],
    ["Age at initiation of treatment", "", "", ""],
    ["< 55", "46.9% (15/32)", "", ""],
    ["\u2265 55", "41.2% (7/17)", "1.261 (0.384\u20134.141)", "0.769"],
    ["Sex", "", "", ""],
    ["Male", "30.0% (6/20)", "", ""],
    ["Female", "55.2% (16/29)", "0.348 (0.104\u20131.161)", "0.143"],
    ["Salvage treatment phase", "", "", ""],
    ["1", "51.7% (15/29)", "", ""],
    ["\u2265 2", "35.0% (7/20)", "1.990 (0.616\u20136.427)", "0.381"],
    ["Time to treatment from diagnosis", "", "", ""],
    ["< 12 months", "30.4% (7/23)", "", ""],
    ["\u2265 12 months", "57.7% (15/26)", "3.117 (0.957\u201310.151)", "0.085"],
    ["ECOG PS at blinatumomab treatment", "", "", ""],
    ["0\u20131", "52.9% (18/34)", "", ""],
    ["\u2265 2", "26.7% (4/15)", "3.094 (0.820\u201311.672)", "0.123"],
    ["Cytogenetic risk at diagnosis", "", "", ""],
    ["Standard", "50.0% (19/38)", "", ""],
    ["High", "37.5% (3/8)", "1.667 (0.348\u20137.981)", "0.702"],
    ["Cytogenetic risk at blinatumomab treatment", "", "", ""],
    ["Standard", "46.2% (12/26)", "", ""],
    ["High", "50.0% (8/16)", "0.857 (0.246\u20132.983)", "1.000"],
    ["EMD at blinatumomab treatment", "", "", ""],
    ["No", "48.7% (19/39)", "", ""],
    ["Yes", "30.0% (3/10)", "2.217 (0.499\u20139.847)", "0.478"],
    ["BM blast at blinatumomab treatment", "", "", ""],
    ["\u2264 50%", "66.7% (6/9)", "", ""],
    ["> 50%", "41.2% (14/34)", "2.857 (0.609\u201313.395)", "0.263"],
    ["Previous allogeneic SCT", "", "", ""],
    ["No", "47.8% (11/23)", "", ""],
    ["Yes", "42.3% (11/26)", "1.250 (0.404\u20133.866)", "0.778"],
    ["Dose of dexamethasone prior treatment", "", "", ""],
    ["\u2264 80 mg", "45.9% (17/37)", "", ""],
    ["> 80 mg", "41.7% (5/12)", "1.190 (0.319\u20134.442)", "1.000"],
]


def _through_csv(frame: pd.DataFrame, tmp_path, name: str) -> pd.DataFrame:
    """As the page reads it: written to the run folder, read back."""
    frame.to_csv(tmp_path / name, index=False)
    return display.read_csv(tmp_path / name)


def test_table2_reads_as_the_paper_prints_it(tmp_path):
    cohort = paper_cohort()
    table = display.table2(
        _through_csv(table2_subgroups(cohort), tmp_path, "table2_subgroups.csv"),
        _through_csv(treatment_flow(cohort), tmp_path, "flow.csv"),
    )
    assert table.text_rows() == PAPER_TABLE2_TEXT
    assert table.title.endswith("among patient subgroups (n = 49)")
    assert "Fisher's exact test (two-sided)" in table.footnote
    assert "Woolf" in table.footnote and "odds ratio" in table.footnote
    # Section rows are headings; the P cell keeps its number (for the spreadsheet).
    assert [r.section for r in table.rows[:2]] == [True, False]
    p_cell = table.rows[2].cells[3]
    assert (p_cell.text, round(p_cell.value, 6), p_cell.number_format) == (
        "0.769",
        round(table2_subgroups(cohort)["p_value"].iloc[1], 6),
        '[<0.001]"< 0.001";0.000',
    )


def test_table1_has_the_papers_row_labels_n_pct_and_median_range(tmp_path):
    cohort = paper_cohort()
    table = display.table1(_through_csv(table1(cohort), tmp_path, "table1.csv"), len(cohort))
    rows = table.text_rows()
    assert rows[0] == ["Characteristics", "Patients"]
    assert rows[1] == ["Median age, years (range)", "45 (19\u201371)"]
    assert ["Sex, n (%)", ""] in rows
    assert ["Male", "20 (40.0%)"] in rows and ["Female", "30 (60.0%)"] in rows
    assert ["\u2265 2", "15 (30.0%)"] in rows  # ECOG
    assert ["Cytogenetic risk at start, n (%) (42 with data)", ""] in rows
    assert ["High risk", "16 (38.1%)"] in rows
    assert [
        "Median time from diagnosis to blinatumomab, months (range)",
        "13.5 (0.9\u2013160.8)",
    ] in rows
    assert table.paper and not table.fold


def test_a_table_that_cannot_be_laid_out_is_shown_as_stored_not_an_error():
    frames = {"table2_subgroups.csv": pd.DataFrame({"a": ["x"], "p_value": [0.0001]})}
    table = display._safe(display.table2, frames, "table2_subgroups.csv", None)
    assert table.text_rows() == [["A", "P value"], ["x", "< 0.001"]]
    assert "as stored" in table.title
