"""Tables 1-3 and the Figure 1 treatment flow of the blinatumomab R/R ALL report.

Pure functions over pandas DataFrames: one row per patient (the analysis dataset) and one
row per adverse event. Nothing here knows about Django or the database.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

Z_95 = stats.norm.ppf(0.975)

RESPONSE_CODES = ("CR", "CRi")


def gettext_noop(message: str) -> str:
    """Marks an English label for the translation catalogue (makemessages reads this name) and
    returns it unchanged: the run's files stay English; analysis.display translates labels on
    the page. Django's own gettext_noop, without importing Django here."""
    return message


def is_true(flags: pd.Series) -> pd.Series:
    """Plain bool mask from a bool, 0/1 or nullable flag column; missing counts as False."""
    return flags.astype("boolean").fillna(False).astype(bool)


# ---------------------------------------------------------------------------
# 2x2 statistics
# ---------------------------------------------------------------------------


def odds_ratio_woolf(a: float, b: float, c: float, d: float) -> tuple[float, float, float]:
    """Odds ratio of level 1 vs level 2 with a Woolf (logit) 95% CI.

    The table is [[a, b], [c, d]]: a/b responders/non-responders in level 1, c/d in level 2,
    so OR = (a/b) / (c/d). A zero cell makes the log-OR and its variance infinite; only then
    we add 0.5 to every cell (Haldane-Anscombe), the usual convention for the Woolf interval.
    Returns (odds_ratio, ci_lower, ci_upper); all NaN if a level is empty.
    """
    if a + b == 0 or c + d == 0:
        return (math.nan, math.nan, math.nan)
    if 0 in (a, b, c, d):
        a, b, c, d = (x + 0.5 for x in (a, b, c, d))
    log_or = math.log((a * d) / (b * c))
    se = math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    return (
        math.exp(log_or),
        math.exp(log_or - Z_95 * se),
        math.exp(log_or + Z_95 * se),
    )


def fisher_exact_two_sided(a: int, b: int, c: int, d: int) -> float:
    """Two-sided Fisher exact P for [[a, b], [c, d]] (same as R fisher.test and SPSS)."""
    if a + b == 0 or c + d == 0:
        return math.nan
    return float(stats.fisher_exact([[a, b], [c, d]], alternative="two-sided").pvalue)


def pearson_chi2(a: int, b: int, c: int, d: int) -> tuple[float, float]:
    """Pearson chi-square (1 df) for [[a, b], [c, d]], WITHOUT Yates continuity correction.

    Equals R chisq.test(correct = FALSE). Returns (statistic, p); NaN when a margin is zero
    because the expected counts are then undefined.
    """
    table = np.array([[a, b], [c, d]], dtype=float)
    if (table.sum(axis=0) == 0).any() or (table.sum(axis=1) == 0).any():
        return (math.nan, math.nan)
    statistic, p_value, _, _ = stats.chi2_contingency(table, correction=False)
    return (float(statistic), float(p_value))


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact (Clopper-Pearson) CI for k successes out of n, as R binom.test."""
    if n == 0:
        return (math.nan, math.nan)
    lower = stats.beta.ppf(alpha / 2, k, n - k + 1) if k > 0 else 0.0
    upper = stats.beta.ppf(1 - alpha / 2, k + 1, n - k) if k < n else 1.0
    return (float(lower), float(upper))


# ---------------------------------------------------------------------------
# Table 2: response rate by subgroup
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SubgroupCuts:
    """Cut points used to dichotomise continuous baseline variables (paper's defaults)."""

    age_years: float = 55.0
    months_from_diagnosis: float = 12.0
    marrow_blasts_pct: float = 50.0
    dexamethasone_mg: float = 80.0


@dataclass(frozen=True)
class Subgroup:
    """A two-level subgroup: `split` maps the dataset to True (level 2) / False / NA."""

    key: str
    label: str
    levels: tuple[str, str]
    split: Callable[[pd.DataFrame, SubgroupCuts], pd.Series]
    # The paper prints the diagnosis-time odds ratio as level 2 vs level 1.
    reversed: bool = False


def _flag(condition: pd.Series, missing: pd.Series) -> pd.Series:
    """Nullable boolean: the condition, NA where the source value is missing."""
    return condition.astype("boolean").mask(missing)


def _numeric(df: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(df[column], errors="coerce")


def _at_least(column: str, cut: Callable[[SubgroupCuts], float]):
    def split(df: pd.DataFrame, cuts: SubgroupCuts) -> pd.Series:
        values = _numeric(df, column)
        return _flag(values >= cut(cuts), values.isna())

    return split


def _above(column: str, cut: Callable[[SubgroupCuts], float]):
    def split(df: pd.DataFrame, cuts: SubgroupCuts) -> pd.Series:
        values = _numeric(df, column)
        return _flag(values > cut(cuts), values.isna())

    return split


def _category(column: str, first: str, second: str):
    """True for `second`, False for `first`; any other code (or none) is missing."""

    def split(df: pd.DataFrame, cuts: SubgroupCuts) -> pd.Series:
        values = df[column]
        return _flag(values == second, ~values.isin([first, second]))

    return split


def _boolean(column: str):
    def split(df: pd.DataFrame, cuts: SubgroupCuts) -> pd.Series:
        return df[column].astype("boolean")

    return split


def _fmt(x: float) -> str:
    return f"{x:g}"


def subgroup_definitions(cuts: SubgroupCuts = SubgroupCuts()) -> dict[str, Subgroup]:
    """The eleven Table 2 subgroups, in the paper's order, with level labels from `cuts`."""
    age, dx = _fmt(cuts.age_years), _fmt(cuts.months_from_diagnosis)
    blasts, dexa = _fmt(cuts.marrow_blasts_pct), _fmt(cuts.dexamethasone_mg)
    groups = [
        Subgroup(
            "age",
            gettext_noop("Age at initiation of treatment"),
            (f"<{age}", f">={age}"),
            _at_least("age_years", lambda c: c.age_years),
        ),
        Subgroup(
            "sex", gettext_noop("Sex"), ("male", "female"), _category("sex", "male", "female")
        ),
        Subgroup(
            "salvage_phase",
            gettext_noop("Salvage treatment phase"),
            ("1", ">=2"),
            _at_least("salvage_phase", lambda c: 2),
        ),
        Subgroup(
            "time_from_diagnosis",
            gettext_noop("Time to treatment from diagnosis"),
            (f"<{dx} months", f">={dx} months"),
            _at_least("months_diagnosis_to_start", lambda c: c.months_from_diagnosis),
            reversed=True,
        ),
        Subgroup(
            "ecog",
            gettext_noop("ECOG PS at blinatumomab treatment"),
            ("0-1", ">=2"),
            _at_least("ecog", lambda c: 2),
        ),
        Subgroup(
            "cyto_risk_diagnosis",
            gettext_noop("Cytogenetic risk at diagnosis"),
            ("standard", "high"),
            _category("cyto_risk_diagnosis", "standard", "high"),
        ),
        Subgroup(
            "cyto_risk_start",
            gettext_noop("Cytogenetic risk at blinatumomab treatment"),
            ("standard", "high"),
            _category("cyto_risk_start", "standard", "high"),
        ),
        Subgroup(
            "emd", gettext_noop("EMD at blinatumomab treatment"), ("no", "yes"), _boolean("emd")
        ),
        Subgroup(
            "marrow_blasts",
            gettext_noop("BM blast at blinatumomab treatment"),
            (f"<={blasts}%", f">{blasts}%"),
            _above("marrow_blasts_pct", lambda c: c.marrow_blasts_pct),
        ),
        Subgroup(
            "prior_allo_sct",
            gettext_noop("Previous allogeneic SCT"),
            ("no", "yes"),
            _boolean("prior_allo_sct"),
        ),
        Subgroup(
            "dexamethasone",
            gettext_noop("Dose of dexamethasone prior treatment"),
            (f"<={dexa} mg", f">{dexa} mg"),
            _above("dexamethasone_mg_before", lambda c: c.dexamethasone_mg),
        ),
    ]
    return {g.key: g for g in groups}


DEFAULT_SUBGROUPS = tuple(subgroup_definitions())

TABLE2_COLUMNS = [
    "variable",
    "level",
    "n",
    "responders",
    "rate",
    "rate_ci_lower",
    "rate_ci_upper",
    "odds_ratio",
    "ci_lower",
    "ci_upper",
    "p_value",
    "test",
    "reference_level",
    "orientation",
]

TESTS = {"fisher": "fisher_exact", "chi2": "pearson_chi2_uncorrected"}


def _level_row(variable: str, level: str, responders: pd.Series) -> dict:
    n, k = int(responders.size), int(responders.sum())
    lower, upper = clopper_pearson(k, n)
    return {
        "variable": variable,
        "level": level,
        "n": n,
        "responders": k,
        "rate": k / n if n else math.nan,
        "rate_ci_lower": lower,
        "rate_ci_upper": upper,
    }


def _comparison(group: Subgroup, first: dict, second: dict, test: str) -> dict:
    a, c = first["responders"], second["responders"]
    b, d = first["n"] - a, second["n"] - c
    if group.reversed:
        numerator, denominator = group.levels[1], group.levels[0]
        odds_ratio, lower, upper = odds_ratio_woolf(c, d, a, b)
        note = " (reversed, as printed in the paper)"
    else:
        numerator, denominator = group.levels
        odds_ratio, lower, upper = odds_ratio_woolf(a, b, c, d)
        note = ""
    if test == "fisher":
        p_value = fisher_exact_two_sided(a, b, c, d)
    else:
        p_value = pearson_chi2(a, b, c, d)[1]
    return {
        "odds_ratio": odds_ratio,
        "ci_lower": lower,
        "ci_upper": upper,
        "p_value": p_value,
        "test": TESTS[test],
        "reference_level": denominator,
        "orientation": f"odds of response, {numerator} vs {denominator}{note}",
    }


def table2_subgroups(
    df: pd.DataFrame,
    subgroups: Iterable[str] = DEFAULT_SUBGROUPS,
    test: str = "fisher",
    *,
    age_cut: float = 55.0,
    diagnosis_cut_months: float = 12.0,
    blasts_cut_pct: float = 50.0,
    dexamethasone_cut_mg: float = 80.0,
) -> pd.DataFrame:
    """Response (CR/CRi) rate by subgroup among evaluable patients, as the paper's Table 2.

    Two rows per subgroup, one per level; the odds ratio (Woolf CI), P value, reference level
    and orientation sit on the second (comparison) row, where the paper prints them. The paper
    calls the ratio "RR" but its figures are odds ratios. Patients missing the grouping
    variable are left out of that subgroup only. `test` is 'fisher' (two-sided exact; the
    paper's printed P values are these, although its methods name the chi-square test) or
    'chi2' (Pearson, no continuity correction).
    """
    if test not in TESTS:
        raise ValueError(f"test must be one of {sorted(TESTS)}, got {test!r}")
    cuts = SubgroupCuts(age_cut, diagnosis_cut_months, blasts_cut_pct, dexamethasone_cut_mg)
    definitions = subgroup_definitions(cuts)
    evaluable = df[is_true(df["evaluable"])]
    responders = is_true(evaluable["responder"])
    rows = []
    for key in subgroups:
        group = definitions[key]
        in_level2 = group.split(evaluable, cuts)
        known = in_level2.notna()
        first = _level_row(key, group.levels[0], responders[known & ~in_level2.fillna(True)])
        second = _level_row(key, group.levels[1], responders[known & in_level2.fillna(False)])
        second.update(_comparison(group, first, second, test))
        rows.extend([first, second])
    return pd.DataFrame(rows).reindex(columns=TABLE2_COLUMNS)


# ---------------------------------------------------------------------------
# Table 1: baseline characteristics
# ---------------------------------------------------------------------------

TABLE1_COLUMNS = ["characteristic", "level", "value", "n", "denominator"]


def _median_range(values: pd.Series, digits: int) -> str:
    return f"{values.median():.{digits}f} ({values.min():.{digits}f}-{values.max():.{digits}f})"


def _summary_row(characteristic: str, values: pd.Series, digits: int) -> dict:
    values = pd.to_numeric(values, errors="coerce").dropna()
    text = _median_range(values, digits) if len(values) else "NA"
    # n = denominator = patients with a value, so missing data is visible next to the median.
    return {
        "characteristic": characteristic,
        "level": "",
        "value": text,
        "n": len(values),
        "denominator": len(values),
    }


def _count_rows(characteristic: str, levels: pd.Series, labels: Mapping) -> list[dict]:
    known = levels.dropna()
    rows = []
    for value, label in labels.items():
        count = int((known == value).sum())
        pct = 100 * count / len(known) if len(known) else math.nan
        rows.append(
            {
                "characteristic": characteristic,
                "level": label,
                "value": f"{count} ({pct:.1f}%)",
                "n": count,
                "denominator": len(known),
            }
        )
    return rows


def _banded(values: pd.Series, cut: float, low: str, high: str) -> pd.Series:
    """'low' below the cut, 'high' at or above it; NaN stays missing."""
    # float: a nullable integer column (the ECOG of a case without a baseline yet) holds pd.NA,
    # whose comparison np.where cannot take; NaN compares False and is masked below.
    values = pd.to_numeric(values, errors="coerce").astype("float64")
    return pd.Series(np.where(values >= cut, high, low), index=values.index).where(values.notna())


def table1(df: pd.DataFrame, *, older_age_cut: float = 65.0, blasts_cut_pct: float = 50.0):
    """Baseline characteristics at blinatumomab start, as the paper's Table 1.

    Percentages use the patients with data as denominator (cytogenetics: those with a
    result; BM blasts: those with a value). Age is counted as "> 65" as in the table (the
    text says "65 years or older"); BM blasts are banded "<50%" / ">=50%" as in Table 1,
    unlike Table 2's "<=50%" / ">50%".
    """
    age = pd.to_numeric(df["age_years"], errors="coerce")
    older = (age > older_age_cut).where(age.notna())
    salvage = pd.to_numeric(df["salvage_phase"], errors="coerce").clip(upper=3)
    ecog = pd.to_numeric(df["ecog"], errors="coerce")
    cut = _fmt(blasts_cut_pct)
    rows = [
        _summary_row(gettext_noop("Median age, years (range)"), age, 0),
        *_count_rows(f"Age > {_fmt(older_age_cut)}", older, {True: f">{_fmt(older_age_cut)}"}),
        *_count_rows(
            gettext_noop("Sex"),
            df["sex"],
            {"male": gettext_noop("Male"), "female": gettext_noop("Female")},
        ),
        *_count_rows(
            gettext_noop("ECOG performance status"),
            _banded(ecog, 2, "0-1", ">=2"),
            {"0-1": "0-1", ">=2": ">=2"},
        ),
        *_count_rows(
            gettext_noop("Salvage treatment phase"),
            salvage,
            {
                1: gettext_noop("First"),
                2: gettext_noop("Second"),
                3: gettext_noop("Third or later"),
            },
        ),
        *_count_rows(
            gettext_noop("Previous allogeneic stem cell transplant"),
            df["prior_allo_sct"].astype("boolean"),
            {True: gettext_noop("Yes")},
        ),
        *_count_rows(
            gettext_noop("Relapse site"),
            df["relapse_site"],
            {
                "marrow": gettext_noop("Bone marrow only"),
                "extramedullary": gettext_noop("Extramedullary only"),
                "both": gettext_noop("Bone marrow + extramedullary"),
            },
        ),
        *_count_rows(
            gettext_noop("Extramedullary disease at start"),
            df["emd"].astype("boolean"),
            {True: gettext_noop("Yes")},
        ),
        _summary_row(gettext_noop("Median BM blasts, % (range)"), df["marrow_blasts_pct"], 0),
        *_count_rows(
            gettext_noop("BM blasts"),
            _banded(df["marrow_blasts_pct"], blasts_cut_pct, f"<{cut}%", f">={cut}%"),
            {f"<{cut}%": f"<{cut}%", f">={cut}%": f">={cut}%"},
        ),
        *_count_rows(
            gettext_noop("Cytogenetic risk at start"),
            df["cyto_risk_start"],
            {"standard": gettext_noop("Standard risk"), "high": gettext_noop("High risk")},
        ),
        _summary_row(
            gettext_noop("Median time from diagnosis to blinatumomab, months (range)"),
            df["months_diagnosis_to_start"],
            1,
        ),
        _summary_row(
            gettext_noop("Median dexamethasone before blinatumomab, mg (range)"),
            df["dexamethasone_mg_before"],
            0,
        ),
    ]
    return pd.DataFrame(rows, columns=TABLE1_COLUMNS)


# ---------------------------------------------------------------------------
# Table 3: adverse events
# ---------------------------------------------------------------------------

SOC_PREFIX = "SOC:"
SOC_SUFFIX = "(any term)"
GRADE_BANDS = {"grade_1_2": (1, 2), "grade_3": (3,), "grade_4": (4,), "grade_5": (5,)}
GRADE_COLUMNS = [
    column for band in ("any", *GRADE_BANDS) for column in (f"{band}_n", f"{band}_pct")
]


def _normalise(text) -> str:
    return " ".join(str(text).split()).casefold()


def _parse_map_entry(entry: str) -> tuple[tuple[str, ...], str | None]:
    """'SOC: <name> (any term)' -> ((), name); 'a; b' -> (('a', 'b'), None)."""
    entry = entry.strip()
    if entry.upper().startswith(SOC_PREFIX):
        soc = entry[len(SOC_PREFIX) :].strip()
        if soc.endswith(SOC_SUFFIX):
            soc = soc[: -len(SOC_SUFFIX)].strip()
        return (), soc
    terms = tuple(term.strip() for term in entry.split(";") if term.strip())
    return terms, None


# The paper's Table 3 rows that are not CTCAE v4.03 term names (registry/data/ctcae_table3_map.csv):
# in the catalogue, shown in the page's language; the rows named by a CTCAE term stay English.
TABLE3_ROW_WORDS = (
    gettext_noop("Altered state of consciousness"),
    gettext_noop("Aphasia"),
    gettext_noop("Cardiovascular events"),
    gettext_noop("Infection"),
    gettext_noop("Jaundice"),
    gettext_noop("Neutropenia"),
    gettext_noop("Rash"),
    gettext_noop("Thrombocytopenia"),
)


def parse_table3_map(path_or_rows) -> pd.DataFrame:
    """Parse the Table 3 row map (registry/ctcae/ctcae_table3_map.csv).

    Accepts a path to the CSV or an iterable of mappings with keys table3_row and
    ctcae_term_or_soc (note optional). Returns one row per Table 3 row, in file order, with
    columns table3_row, terms (tuple of CTCAE terms; empty for a SOC row), soc (SOC name or
    None) and note.
    """
    if isinstance(path_or_rows, (str, Path)):
        with open(path_or_rows, newline="", encoding="utf-8") as handle:
            records = list(csv.DictReader(handle))
    elif isinstance(path_or_rows, pd.DataFrame):
        records = path_or_rows.to_dict("records")
    else:
        records = list(path_or_rows)
    rows = []
    for record in records:
        terms, soc = _parse_map_entry(record["ctcae_term_or_soc"])
        rows.append(
            {
                "table3_row": record["table3_row"].strip(),
                "terms": terms,
                "soc": soc,
                "note": record.get("note", ""),
            }
        )
    return pd.DataFrame(rows, columns=["table3_row", "terms", "soc", "note"])


def _check_grades(ae: pd.DataFrame) -> None:
    grades = pd.to_numeric(ae["grade"], errors="coerce")
    bad = ae.loc[~grades.isin([1, 2, 3, 4, 5]), "study_id"]
    if len(bad):
        # A silently dropped grade would make the grade columns not add up to "any".
        raise ValueError(f"adverse events with a grade outside 1-5: {sorted(set(bad))}")


def _patient_codes(ae: pd.DataFrame) -> np.ndarray:
    """Each event's patient as an integer code: grouping ~400,000 events by integers instead of
    study ID strings, row after row of Table 3, is what keeps it fast at registry scale."""
    return pd.factorize(ae["study_id"])[0]


def _worst_grade_counts(worst: pd.Series, n_patients: int) -> dict:
    """Count patients (one worst grade each) into the any / grade band columns."""
    counts = {"any_n": int(worst.size)}
    for band, grades in GRADE_BANDS.items():
        counts[f"{band}_n"] = int(worst.isin(grades).sum())
    for band in ("any", *GRADE_BANDS):
        counts[f"{band}_pct"] = 100 * counts[f"{band}_n"] / n_patients
    return {column: counts[column] for column in GRADE_COLUMNS}


class _Normalised:
    """_normalise() of a column, computed once per distinct value (few terms, many events):
    the column's codes and the normalised distinct values they index."""

    def __init__(self, values: pd.Series):
        self.codes, distinct = pd.factorize(values)
        self.distinct = np.array([_normalise(v) for v in distinct], dtype=object)

    def isin(self, wanted) -> np.ndarray:
        """Per event: is its normalised value one of `wanted`."""
        return np.isin(self.distinct, list(wanted))[self.codes] & (self.codes >= 0)


def _row_mask(ae: pd.DataFrame, terms: tuple[str, ...], soc: str | None, normalised=None):
    normalised = normalised or {c: _Normalised(ae[c]) for c in ("soc", "ctcae_term")}
    if soc is not None:
        return normalised["soc"].isin({_normalise(soc)})
    return normalised["ctcae_term"].isin({_normalise(t) for t in terms})


def table3_adverse_events(ae: pd.DataFrame, n_patients: int, row_map) -> pd.DataFrame:
    """Patients with adverse events per Table 3 row, each counted once at their worst grade.

    `row_map` is the output of parse_table3_map (or anything it accepts). any_n is the number
    of patients with at least one event in the row; the grade columns split those same
    patients by their worst grade in the row, so they add up to any_n. Percentages are of
    n_patients (all treated patients, 50 in the paper).
    """
    if not isinstance(row_map, pd.DataFrame) or "terms" not in row_map:
        row_map = parse_table3_map(row_map)
    _check_grades(ae)
    grades = pd.to_numeric(ae["grade"]).astype(int)
    patients = _patient_codes(ae)
    rows = []
    normalised = {column: _Normalised(ae[column]) for column in ("soc", "ctcae_term")}
    for entry in row_map.itertuples(index=False):
        mask = _row_mask(ae, entry.terms, entry.soc, normalised)
        worst = grades[mask].groupby(patients[mask]).max()
        rows.append({"table3_row": entry.table3_row, **_worst_grade_counts(worst, n_patients)})
    return pd.DataFrame(rows, columns=["table3_row", *GRADE_COLUMNS])


def ae_by_term(ae: pd.DataFrame, n_patients: int) -> pd.DataFrame:
    """Patients per CTCAE term (worst grade per patient and term), most frequent first."""
    _check_grades(ae)
    events = ae[["soc", "ctcae_term"]].assign(
        grade=pd.to_numeric(ae["grade"]).astype(int), patient=_patient_codes(ae)
    )
    worst_per_term = events.groupby(["soc", "ctcae_term", "patient"])["grade"].max()
    rows = []
    for (soc, term), worst in worst_per_term.groupby(level=["soc", "ctcae_term"]):
        rows.append({"soc": soc, "ctcae_term": term, **_worst_grade_counts(worst, n_patients)})
    table = pd.DataFrame(rows, columns=["soc", "ctcae_term", *GRADE_COLUMNS])
    return table.sort_values(
        ["any_n", "soc", "ctcae_term"], ascending=[False, True, True], ignore_index=True
    )


# ---------------------------------------------------------------------------
# Figure 1: treatment flow
# ---------------------------------------------------------------------------


def treatment_flow(df: pd.DataFrame) -> pd.DataFrame:
    """Patient counts for the Figure 1 flow chart as a tidy (step, n) frame.

    Every treated patient is in exactly one of the first four steps after `treated`:
    died_before_assessment (dead without any response assessment: the paper's one infection
    death in cycle 1), alive_not_assessed (no assessment yet, alive), assessed_not_determinable
    (assessed, but no assessment gave a determinable response: every one NE) and evaluable
    (rules.is_evaluable: a determinable response, the paper's 49). assessed_after_cycle1 counts
    evaluable patients with a determinable response at the first assessment after cycle 1.
    responders_overall is best response CR or CRi.
    """
    evaluable = is_true(df["evaluable"])
    assessed = is_true(df["response_assessed"])
    dead = pd.to_numeric(df["os_event"]) == 1
    after_c1 = df["response_after_cycle1"]
    steps = {
        "treated": len(df),
        "died_before_assessment": (~assessed & dead).sum(),
        "alive_not_assessed": (~assessed & ~dead).sum(),
        "assessed_not_determinable": (assessed & ~evaluable).sum(),
        "evaluable": evaluable.sum(),
        "assessed_after_cycle1": (evaluable & after_c1.notna() & (after_c1 != "NE")).sum(),
        "cr_cri_after_cycle1": (evaluable & after_c1.isin(RESPONSE_CODES)).sum(),
        "second_cycle": (pd.to_numeric(df["cycles_given"]) >= 2).sum(),
        "responders_overall": (evaluable & df["best_response"].isin(RESPONSE_CODES)).sum(),
        "allo_sct_after": is_true(df["allo_sct_after"]).sum(),
        "salvage_chemo_after": is_true(df["salvage_chemo_after"]).sum(),
    }
    steps.update(cycle2_paths(df))
    return pd.DataFrame({"step": list(steps), "n": [int(n) for n in steps.values()]})


def cycle2_paths(df: pd.DataFrame) -> dict[str, int]:
    """The paths through cycle 2 that the Results text follows, by the response at the first
    assessment after cycle 1: CR/CRi, persistent disease (NR or PD), or none (no determinable
    response after cycle 1, though evaluable later); of each, who got a second cycle, and of
    those the response at the first assessment after cycle 2."""
    evaluable = is_true(df["evaluable"])
    after_c1 = df["response_after_cycle1"]
    # A dataset written before the column existed has no response after cycle 2.
    after_c2 = df.get("response_after_cycle2", pd.Series(None, index=df.index, dtype=object))
    second = pd.to_numeric(df["cycles_given"]) >= 2
    remission_c2, pd_c2 = after_c2.isin(RESPONSE_CODES), after_c2 == "PD"
    paths = {
        "cr_cri_after_cycle1": evaluable & after_c1.isin(RESPONSE_CODES),
        "persistent_after_cycle1": evaluable & after_c1.isin(("NR", "PD")),
        "not_assessed_after_cycle1": evaluable & ~after_c1.isin((*RESPONSE_CODES, "NR", "PD")),
    }
    steps = {"persistent_after_cycle1": int(paths["persistent_after_cycle1"].sum())}
    for name, group in paths.items():
        steps[f"{name}_second_cycle"] = int((group & second).sum())
        steps[f"{name}_cr_cri_after_cycle2"] = int((group & second & remission_c2).sum())
        steps[f"{name}_pd_after_cycle2"] = int((group & second & pd_c2).sum())
    return steps
