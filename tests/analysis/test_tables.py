"""Tables 1-3 and the treatment flow, pinned to the paper's printed figures and to R."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.reproduction import printed_numbers, reproduction_table
from analysis.survival import survival_outputs
from analysis.tables import (
    DEFAULT_SUBGROUPS,
    TABLE2_COLUMNS,
    ae_by_term,
    clopper_pearson,
    cycle2_paths,
    fisher_exact_two_sided,
    odds_ratio_woolf,
    parse_table3_map,
    pearson_chi2,
    table1,
    table2_subgroups,
    table3_adverse_events,
    treatment_flow,
)

from .datagen import (
    PAPER_TABLE3,
    TABLE2_LEVELS,
    as_registry_dtypes,
    make_adverse_events,
    make_dataset,
    paper_adverse_events,
    paper_cohort,
    require_rscript,
)

REPO = Path(__file__).resolve().parents[2]
CTCAE_DATA = REPO / "registry" / "data"
TABLE3_MAP = CTCAE_DATA / "ctcae_table3_map.csv"
R_TABLES = Path(__file__).parent / "r" / "tables_reference.R"


# Paper Table 2 as printed (analysis/data/paper_printed.csv): (subgroup, level-1 responders/n,
# level-2 responders/n, RR (95% CI), P). The diagnosis-time ratio is printed as >=12 vs <12 months.
def _paper_table2() -> list[tuple]:
    rows = []
    for key, (levels, _dead) in TABLE2_LEVELS.items():
        first, second = (printed_numbers(f"table2:{key}|{level}")[1:] for level in levels)
        rows.append(
            (
                key,
                tuple(map(int, first)),
                tuple(map(int, second)),
                tuple(printed_numbers(f"table2_or:{key}")),
                printed_numbers(f"table2_p:{key}")[0],
            )
        )
    return rows


PAPER_TABLE2 = _paper_table2()


def _cells(first, second) -> tuple[int, int, int, int]:
    (a, n1), (c, n2) = first, second
    return a, n1 - a, c, n2 - c


def _printed(x: float, expected: float) -> bool:
    """x shows as `expected` when printed to three decimals."""
    return abs(x - expected) <= 0.0005 + 1e-12


@pytest.mark.parametrize("key, first, second, ratio, p_value", PAPER_TABLE2)
def test_printed_table2_row_from_counts(key, first, second, ratio, p_value):
    a, b, c, d = _cells(first, second)
    if key == "time_from_diagnosis":
        ours = odds_ratio_woolf(c, d, a, b)
    else:
        ours = odds_ratio_woolf(a, b, c, d)
    for value, expected in zip(ours, ratio, strict=True):
        assert _printed(value, expected), (key, ours, ratio)
    assert _printed(fisher_exact_two_sided(a, b, c, d), p_value)


def test_printed_p_values_are_fisher_not_chi_square():
    # The methods name the chi-square test, but the printed P values are Fisher's exact.
    _key, first, second, _ratio, p_value = PAPER_TABLE2[0]
    age = _cells(first, second)
    assert _printed(fisher_exact_two_sided(*age), p_value)
    assert not _printed(pearson_chi2(*age)[1], p_value)


def test_table2_end_to_end_on_paper_cohort():
    table = table2_subgroups(paper_cohort())
    assert list(table.columns) == TABLE2_COLUMNS
    assert list(table["variable"].unique()) == list(DEFAULT_SUBGROUPS)
    for key, first, second, ratio, p_value in PAPER_TABLE2:
        level1, level2 = (row for _, row in table[table["variable"] == key].iterrows())
        assert (level1["responders"], level1["n"]) == first
        assert (level2["responders"], level2["n"]) == second
        assert math.isnan(level1["odds_ratio"]) and pd.isna(level1["orientation"])
        ours = (level2["odds_ratio"], level2["ci_lower"], level2["ci_upper"])
        for value, expected in zip(ours, ratio, strict=True):
            assert _printed(value, expected), key
        assert _printed(level2["p_value"], p_value), key
        assert level2["test"] == "fisher_exact"


def test_table2_orientation_and_reference_levels():
    table = table2_subgroups(paper_cohort()).set_index(["variable", "level"])
    age = table.loc[("age", ">=55")]
    assert age["reference_level"] == ">=55"
    assert age["orientation"] == "odds of response, <55 vs >=55"
    diagnosis = table.loc[("time_from_diagnosis", ">=12 months")]
    assert diagnosis["reference_level"] == "<12 months"
    assert diagnosis["orientation"].startswith("odds of response, >=12 months vs <12 months")
    assert "reversed" in diagnosis["orientation"]


def test_table2_uses_evaluable_patients_only():
    df = paper_cohort()
    assert len(df) == 50
    table = table2_subgroups(df)
    assert table[table["variable"] == "sex"]["n"].sum() == 49


def test_table2_rate_ci_is_clopper_pearson():
    row = table2_subgroups(paper_cohort()).iloc[0]
    k, n = PAPER_TABLE2[0][1]  # the printed first row, age < 55
    assert (row["responders"], row["n"]) == (k, n)
    assert row["rate"] == pytest.approx(k / n)
    assert (row["rate_ci_lower"], row["rate_ci_upper"]) == pytest.approx(clopper_pearson(k, n))


def test_table2_cut_points_are_parameters():
    df = make_dataset(150, 2)
    table = table2_subgroups(df, ["age", "marrow_blasts"], age_cut=50, blasts_cut_pct=80)
    assert list(table["level"]) == ["<50", ">=50", "<=80%", ">80%"]
    evaluable = df[df["evaluable"]]
    older = evaluable["age_years"] >= 50
    assert list(table["n"][:2]) == [(~older).sum(), older.sum()]
    assert table["responders"].iloc[1] == evaluable.loc[older, "responder"].sum()
    blasts = evaluable["marrow_blasts_pct"].dropna()
    assert list(table["n"][2:]) == [(blasts <= 80).sum(), (blasts > 80).sum()]


def test_table2_cut_points_ignore_precomputed_flags():
    df = make_dataset(80, 3)
    df["age_ge_55"] = ~df["age_ge_55"]  # a stale flag must not matter
    table = table2_subgroups(df, ["age"])
    assert table["n"].iloc[1] == (df.loc[df["evaluable"], "age_years"] >= 55).sum()


def test_table2_chi_square_option_matches_scipy():
    table = table2_subgroups(make_dataset(200, 5), test="chi2")
    comparisons = table[table["p_value"].notna()]
    assert set(comparisons["test"]) == {"pearson_chi2_uncorrected"}
    firsts = table.loc[comparisons.index - 1]
    for (_, first), (_, second) in zip(firsts.iterrows(), comparisons.iterrows(), strict=True):
        a, c = first["responders"], second["responders"]
        observed = [[a, first["n"] - a], [c, second["n"] - c]]
        expected = stats.chi2_contingency(observed, correction=False).pvalue
        assert second["p_value"] == pytest.approx(expected, rel=1e-12)


def test_table2_rejects_unknown_test():
    with pytest.raises(ValueError, match="test must be one of"):
        table2_subgroups(paper_cohort(), test="barnard")


def test_woolf_no_correction_without_zero_cells():
    ratio, lower, upper = odds_ratio_woolf(15, 17, 7, 10)
    assert ratio == pytest.approx(150 / 119)
    se = math.sqrt(1 / 15 + 1 / 17 + 1 / 7 + 1 / 10)
    assert lower == pytest.approx(150 / 119 * math.exp(-stats.norm.ppf(0.975) * se))
    assert upper == pytest.approx(150 / 119 * math.exp(stats.norm.ppf(0.975) * se))


def test_woolf_haldane_correction_for_zero_cells():
    ratio, lower, upper = odds_ratio_woolf(0, 5, 3, 4)
    assert ratio == pytest.approx((0.5 * 4.5) / (5.5 * 3.5))
    assert 0 < lower < ratio < upper
    assert all(math.isnan(x) for x in odds_ratio_woolf(0, 0, 3, 4))


def test_clopper_pearson_edges():
    assert clopper_pearson(0, 10)[0] == 0.0
    assert clopper_pearson(10, 10)[1] == 1.0
    assert all(math.isnan(x) for x in clopper_pearson(0, 0))


def _r_tables(tmp_path) -> pd.DataFrame:
    cells = [_cells(first, second) for _, first, second, _, _ in PAPER_TABLE2]
    cells += [(0, 5, 3, 4), (9, 0, 2, 7), (40, 60, 25, 75)]
    source, target = tmp_path / "tables.csv", tmp_path / "reference.csv"
    pd.DataFrame(cells, columns=["a", "b", "c", "d"]).to_csv(source, index=False)
    result = subprocess.run(
        [require_rscript(), str(R_TABLES), str(source), str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return pd.read_csv(target)


@pytest.mark.r_reference
def test_two_by_two_statistics_match_r(tmp_path):
    for row in _r_tables(tmp_path).itertuples():
        cells = (row.a, row.b, row.c, row.d)
        statistic, p_value = pearson_chi2(*cells)
        assert statistic == pytest.approx(row.chisq, abs=1e-9), cells
        assert p_value == pytest.approx(row.chisq_p, abs=1e-9), cells
        assert fisher_exact_two_sided(*cells) == pytest.approx(row.fisher_p, abs=1e-9), cells
        first = clopper_pearson(row.a, row.a + row.b)
        second = clopper_pearson(row.c, row.c + row.d)
        assert first == pytest.approx((row.binom1_lower, row.binom1_upper), abs=1e-9), cells
        assert second == pytest.approx((row.binom2_lower, row.binom2_upper), abs=1e-9), cells


def test_table1_reproduces_paper_on_paper_cohort():
    """Every Table 1 value printed in the paper (analysis/data/paper_printed.csv), recomputed
    from the paper cohort; only the paper's truncated 81.3% (35/43 = 81.4%) differs."""
    df = paper_cohort()
    table = table1(df)
    assert list(table.columns) == ["characteristic", "level", "value", "n", "denominator"]
    rows = reproduction_table({"table1.csv": table}, df, pd.DataFrame())
    rows = rows[rows["source"] == "Table 1"].set_index("item")
    assert len(rows) == 18  # every n (%) and median (range) of the printed Table 1
    differ = rows[rows["agrees"] != "yes"]
    assert list(differ.index) == ["BM blast ≥ 50%, n (%)"]
    assert differ["recomputed"].iloc[0] == "35 (81.4)"
    values = table.set_index(["characteristic", "level"])["value"]
    assert values[("BM blasts", ">=50%")] == "35 (81.4%)"


def test_table1_denominators_are_patients_with_data():
    table = table1(paper_cohort()).set_index(["characteristic", "level"])
    assert table.loc[("BM blasts", "<50%"), "denominator"] == 43
    assert table.loc[("Cytogenetic risk at start", "High risk"), "denominator"] == 42
    assert table.loc[("Sex", "Male"), "denominator"] == 50


def test_parse_table3_map_reads_terms_and_socs():
    row_map = parse_table3_map(TABLE3_MAP).set_index("table3_row")
    assert len(row_map) == 20
    assert row_map.loc["Infection", "soc"] == "Infections and infestations"
    assert row_map.loc["Infection", "terms"] == ()
    assert row_map.loc["Neutropenia", "terms"] == ("Neutrophil count decreased",)
    cardiovascular = row_map.loc["Cardiovascular events", "terms"]
    assert len(cardiovascular) == 7 and "Hypotension" in cardiovascular
    assert row_map.loc["Aphasia", "soc"] is None


def test_table3_map_names_only_terms_and_socs_of_the_shipped_dictionary():
    dictionary = pd.read_csv(CTCAE_DATA / "ctcae_v4.03_subset.csv")
    row_map = parse_table3_map(TABLE3_MAP)
    mapped_terms = {term for terms in row_map["terms"] for term in terms}
    assert mapped_terms <= set(dictionary["term"])
    assert set(row_map["soc"].dropna()) <= set(dictionary["soc"])


def test_parse_table3_map_accepts_rows():
    rows = [
        {"table3_row": "Infection", "ctcae_term_or_soc": "SOC: Infections and infestations"},
        {"table3_row": "CV", "ctcae_term_or_soc": "Hypotension ; Hypertension"},
    ]
    row_map = parse_table3_map(rows)
    assert list(row_map["soc"]) == ["Infections and infestations", None]
    assert row_map["terms"].iloc[1] == ("Hypotension", "Hypertension")


def test_table3_reproduces_paper_counts():
    ids = paper_cohort()["study_id"]
    table = table3_adverse_events(paper_adverse_events(ids), 50, TABLE3_MAP)
    assert list(table.columns) == [
        "table3_row",
        "any_n",
        "any_pct",
        "grade_1_2_n",
        "grade_1_2_pct",
        "grade_3_n",
        "grade_3_pct",
        "grade_4_n",
        "grade_4_pct",
        "grade_5_n",
        "grade_5_pct",
    ]
    assert list(table["table3_row"]) == list(PAPER_TABLE3)
    for row in table.itertuples():
        bands = PAPER_TABLE3[row.table3_row][0]
        ours = (row.grade_1_2_n, row.grade_3_n, row.grade_4_n, row.grade_5_n)
        assert ours == bands, row.table3_row
        assert row.any_n == sum(bands)
    febrile = table.set_index("table3_row").loc["Febrile neutropenia"]
    assert (febrile["any_n"], febrile["any_pct"], febrile["grade_3_pct"]) == (22, 44.0, 30.0)


def test_table3_counts_each_patient_once_at_worst_grade():
    ae = pd.DataFrame(
        {
            "study_id": ["P1", "P1", "P1", "P2"],
            "ctcae_term": ["Lung infection", "Sepsis", "Lung infection", "Hypotension"],
            "soc": ["Infections and infestations"] * 3 + ["Vascular disorders"],
            "grade": [2, 4, 3, 1],
        }
    )
    table = table3_adverse_events(ae, 10, TABLE3_MAP).set_index("table3_row")
    infection = table.loc["Infection"]
    assert (infection["any_n"], infection["grade_4_n"], infection["grade_3_n"]) == (1, 1, 0)
    assert table.loc["Cardiovascular events", "grade_1_2_pct"] == 10.0
    assert table.loc["Rash", "any_n"] == 0


def test_table3_rejects_grades_outside_1_to_5():
    ae = pd.DataFrame(
        {"study_id": ["P9"], "ctcae_term": ["Nausea"], "soc": ["GI"], "grade": [np.nan]}
    )
    with pytest.raises(ValueError, match="P9"):
        table3_adverse_events(ae, 10, TABLE3_MAP)


def test_ae_by_term_worst_grade_per_patient_and_term():
    ae = make_adverse_events(make_dataset(60, 8)["study_id"], seed=8)
    table = ae_by_term(ae, 60)
    assert list(table.columns[:2]) == ["soc", "ctcae_term"]
    assert table["any_n"].is_monotonic_decreasing
    for row in table.itertuples():
        events = ae[ae["ctcae_term"] == row.ctcae_term]
        worst = events.groupby("study_id")["grade"].max()
        assert row.any_n == len(worst)
        assert row.grade_1_2_n == worst.isin([1, 2]).sum()
        assert row.grade_5_n == (worst == 5).sum()
        assert row.any_pct == pytest.approx(100 * len(worst) / 60)


def test_treatment_flow_on_paper_cohort():
    flow = treatment_flow(paper_cohort())
    assert list(flow.columns) == ["step", "n"]
    steps = dict(zip(flow["step"], flow["n"], strict=True))
    assert {step: steps[step] for step in list(steps)[:11]} == {
        "treated": 50,
        "died_before_assessment": 1,
        "alive_not_assessed": 0,
        "assessed_not_determinable": 0,
        "evaluable": 49,
        "assessed_after_cycle1": 46,
        "cr_cri_after_cycle1": 20,
        "second_cycle": 36,
        "responders_overall": 22,
        "allo_sct_after": 16,
        "salvage_chemo_after": 13,
    }


def test_cycle2_paths_follow_the_response_after_each_cycle():
    """The Results text's paths: by the response after cycle 1 (CR/CRi, persistent disease,
    none), who got cycle 2 and how they responded after it."""
    df = pd.DataFrame(
        {
            "evaluable": [1, 1, 1, 1, 1, 1, 1, 0],
            "response_after_cycle1": ["CR", "CRi", "CR", "NR", "PD", "NR", None, None],
            "response_after_cycle2": ["CR", "PD", None, "CR", None, "NR", "PD", None],
            "cycles_given": [2, 2, 1, 2, 1, 2, 2, 1],
        }
    )
    assert cycle2_paths(df) == {
        "persistent_after_cycle1": 3,
        "cr_cri_after_cycle1_second_cycle": 2,
        "cr_cri_after_cycle1_cr_cri_after_cycle2": 1,
        "cr_cri_after_cycle1_pd_after_cycle2": 1,
        "persistent_after_cycle1_second_cycle": 2,
        "persistent_after_cycle1_cr_cri_after_cycle2": 1,
        "persistent_after_cycle1_pd_after_cycle2": 0,
        "not_assessed_after_cycle1_second_cycle": 1,
        "not_assessed_after_cycle1_cr_cri_after_cycle2": 0,
        "not_assessed_after_cycle1_pd_after_cycle2": 1,
    }


def test_registry_dtypes_give_the_same_results():
    # The registry stores flags as 0/1 (Int64 where missing is possible), not as bool.
    df = make_dataset(120, 9)
    recast = as_registry_dtypes(df)
    assert recast["responder"].dtype == "Int64"
    pd.testing.assert_frame_equal(table1(recast), table1(df))
    pd.testing.assert_frame_equal(table2_subgroups(recast), table2_subgroups(df))
    pd.testing.assert_frame_equal(treatment_flow(recast), treatment_flow(df))
    for ours, expected in zip(survival_outputs(recast), survival_outputs(df), strict=True):
        pd.testing.assert_frame_equal(ours, expected)
    assert set(survival_outputs(recast).medians["group"]) == {"all", "no", "yes"}
