"""How the run's numbers and codes are written for people: the paper's conventions, in one place.

Plain functions from numbers to text, and the one mapping from the analysis' codes (variable,
endpoint, grouping, model and step names) to the words a paper uses. The dashboard, report.html,
tables.xlsx and report.docx all format through these (via analysis.display), so a rule changed
here changes everywhere. The machine-readable CSVs keep the codes and full-precision numbers.

Words are translated (README "Languages"): the page's language on the dashboard, the run's in
its report; codes, numbers and the CSVs are the same in every language.

Conventions (as the paper): odds and hazard ratios, CIs and P values to 3 decimals, P below
0.001 as "< 0.001"; counts as n (%), percentages to one decimal; continuous variables as
median (range); months to one decimal; ranges and intervals with an en dash.
"""

from __future__ import annotations

import math
import re

from django.utils.text import format_lazy
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .tables import subgroup_definitions

DASH = "\u2013"  # en dash, for ranges and intervals
NA = "NA"  # not estimable / not available
NOT_REACHED = "NR"  # a median or CI limit the Kaplan-Meier curve never reaches


def _missing(x) -> bool:
    if x is None:
        return True
    try:
        return math.isnan(float(x))
    except (TypeError, ValueError):
        return str(x).strip() == ""


def fmt_number(x, digits: int = 3) -> str:
    """A number to `digits` decimals; NA when missing, "∞" when infinite."""
    if _missing(x):
        return NA
    x = float(x)
    if math.isinf(x):
        return "\u221e" if x > 0 else "-\u221e"
    return f"{x:.{digits}f}"


def fmt_int(x) -> str:
    return NA if _missing(x) else str(int(round(float(x))))


def fmt_p(p) -> str:
    """P to 3 decimals, "< 0.001" below 0.001 (never "0.000"); NA when not computable."""
    if _missing(p):
        return NA
    p = float(p)
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def fmt_ci(lower, upper, digits: int = 3, missing: str = NA) -> str:
    return f"{_limit(lower, digits, missing)}{DASH}{_limit(upper, digits, missing)}"


def _limit(x, digits, missing):
    return missing if _missing(x) else fmt_number(x, digits)


def fmt_or_ci(estimate, lower, upper, digits: int = 3) -> str:
    """Odds or hazard ratio with its 95% CI: "1.261 (0.384–4.141)"; NA when not estimable."""
    if _missing(estimate):
        return NA
    return f"{fmt_number(estimate, digits)} ({fmt_ci(lower, upper, digits)})"


def fmt_pct(x, digits: int = 1) -> str:
    """A percentage already in percent: "44.9%"."""
    return NA if _missing(x) else f"{float(x):.{digits}f}%"


def fmt_n_pct(n, denominator, digits: int = 1, zero: str | None = None) -> str:
    """Count with its percentage of the denominator: "20 (40.0%)". `zero` replaces a count
    of 0 (Table 3 prints "0"); with no denominator only the count is written."""
    if _missing(n):
        return NA
    n = int(round(float(n)))
    if n == 0 and zero is not None:
        return zero
    if _missing(denominator) or float(denominator) == 0:
        return str(n)
    return f"{n} ({100 * n / float(denominator):.{digits}f}%)"


def fmt_rate(responders, n) -> str:
    """A response rate as the paper's Table 2 writes it: "46.9% (15/32)"."""
    if _missing(n) or int(n) == 0:
        return f"{NA} (0/0)"
    return f"{100 * int(responders) / int(n):.1f}% ({int(responders)}/{int(n)})"


def fmt_median_range(median, low, high, digits: int = 0) -> str:
    """Median (range): "45 (19–71)"."""
    if _missing(median):
        return NA
    return f"{median:.{digits}f} ({low:.{digits}f}{DASH}{high:.{digits}f})"


_MEDIAN_RANGE = re.compile(r"^\s*(-?[\d.]+) \((-?[\d.]+)-(-?[\d.]+)\)\s*$")


def reformat_median_range(text: str) -> str:
    """table1.csv's "42 (19-69)" as fmt_median_range writes it, with the same decimals."""
    match = _MEDIAN_RANGE.match(str(text))
    if not match:
        return str(text)
    median, low, high = match.groups()
    digits = len(median.split(".")[1]) if "." in median else 0
    return fmt_median_range(float(median), float(low), float(high), digits)


def fmt_median_ci(median, lower, upper, digits: int = 1) -> str:
    """Median survival with its 95% CI: "7.5 (5.3–9.7)"; NR where the curve never reaches
    0.5 (the median or a limit not reached)."""
    head = NOT_REACHED if _missing(median) else fmt_number(median, digits)
    return f"{head} ({fmt_ci(lower, upper, digits, missing=NOT_REACHED)})"


_OPERATORS = [(">=", "\u2265 "), ("<=", "\u2264 "), (">", "> "), ("<", "< ")]


def fmt_level(level) -> str:
    """A level as the paper prints it: ">=2" -> "≥ 2", "<55" -> "< 55", "0-1" -> "0–1",
    "male" -> "Male"."""
    text = "" if _missing(level) else str(level).strip()
    if text in LEVEL_LABELS:
        return str(LEVEL_LABELS[text])
    for ascii_op, typeset in _OPERATORS:
        if text.startswith(ascii_op):
            return typeset + _with_unit(text[len(ascii_op) :].strip())
    if re.fullmatch(r"\d+-\d+", text):
        return text.replace("-", DASH)
    # a label the run's CSV holds in English (analysis.tables marks them): the page's language
    return _translated(text[:1].upper() + text[1:])


def _translated(english: str) -> str:
    """`english` in the page's language when the catalogue has it (never gettext(""): that is
    the catalogue's header)."""
    return gettext(english) if english else english


def _with_unit(value: str) -> str:
    """A cut with its unit in words ("12 months") in the page's language."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?) months", value)
    return gettext("%(n)s months") % {"n": match.group(1)} if match else value


LEVEL_LABELS = {
    "male": _("Male"),
    "female": _("Female"),
    "standard": _("Standard"),
    "high": _("High"),
    "no": _("No"),
    "yes": _("Yes"),
    "all": _("All patients"),
}

# ---------------------------------------------------------------------------------------------
# The one mapping from codes to words. Table 2's subgroup labels are the paper's, defined with
# the subgroups themselves (analysis.tables.subgroup_definitions).
# ---------------------------------------------------------------------------------------------
LABELS: dict[str, str] = {
    **{key: group.label for key, group in subgroup_definitions().items()},
    # endpoints
    "efs": _("Event-free survival"),
    "os": _("Overall survival"),
    # groupings of the Kaplan-Meier curves and the Cox terms
    "overall": _("All patients"),
    "responder": _("Response to blinatumomab (CR/CRi)"),
    "allo_sct_after": _("Allogeneic SCT after blinatumomab"),
    "ecog_ge_2": _("ECOG PS ≥ 2"),
    "sct": _("Allogeneic SCT"),
    "response": _("CR/CRi"),
    "response_by_landmark": _("CR/CRi by the landmark"),
    "sct_by_landmark": _("Allogeneic SCT by the landmark"),
    # Cox models
    "univariate": _("Univariate"),
    "multivariable": _("Multivariable"),
    "naive_day1_univariate": _("Naive (groups fixed on day 1)"),
    "time_varying_univariate": _("Time-varying, one covariate"),
    "time_varying_both": _("Time-varying, both covariates"),
    "GLOBAL": _("Global (all terms)"),
    # the landmark analysis's patients (landmark_excluded.csv)
    "included": _("Included"),
    "excluded": _("Excluded"),
    # competing risks
    "relapse_progression": _("Relapse or progression"),
    "non_relapse_mortality": _("Non-relapse mortality"),
    # tests
    "fisher_exact": _("Fisher's exact test (two-sided)"),
    "pearson_chi2_uncorrected": _("Pearson chi-square test (no continuity correction)"),
    # Figure 1 steps (flow.csv)
    "treated": _("Treated with blinatumomab"),
    "died_before_assessment": _("Died before any response assessment"),
    "alive_not_assessed": _("Alive, not yet assessed"),
    "assessed_not_determinable": _("Assessed without a determinable response"),
    "evaluable": _("Evaluable for response"),
    "assessed_after_cycle1": _("Response assessed after cycle 1"),
    "not_assessed_after_cycle1": _("No response assessment after cycle 1"),
    "cr_cri_after_cycle1": _("CR/CRi after cycle 1"),
    "persistent_after_cycle1": _("Persistent disease after cycle 1 (NR or PD)"),
    "second_cycle": _("Second cycle of blinatumomab"),
    "responders_overall": _("CR/CRi at any assessment"),
    "salvage_chemo_after": _("Salvage chemotherapy after blinatumomab"),
}
# Figure 1's paths through cycle 2 (analysis.tables.cycle2_paths): branch, then what followed.
_BRANCHES = {
    "cr_cri_after_cycle1": _("CR/CRi after cycle 1"),
    "persistent_after_cycle1": _("Persistent disease after cycle 1"),
    "not_assessed_after_cycle1": _("No response assessment after cycle 1"),
}
_THEN = {
    "second_cycle": _("a second cycle"),
    "cr_cri_after_cycle2": _("CR/CRi after a second cycle"),
    "pd_after_cycle2": _("progression after a second cycle"),
}
LABELS.update(
    {
        f"{branch}_{then}": format_lazy(_("{words}, then {what}"), words=words, what=what)
        for branch, words in _BRANCHES.items()
        for then, what in _THEN.items()
    }
)
# The Kaplan-Meier groups (survival_median.csv's group within a grouping), in words.
GROUP_LABELS = {
    ("overall", "all"): _("All patients"),
    ("responder", "no"): _("Non-responders"),
    ("responder", "yes"): _("Responders (CR/CRi)"),
    ("allo_sct_after", "no"): _("No allogeneic SCT after blinatumomab"),
    ("allo_sct_after", "yes"): _("Allogeneic SCT after blinatumomab"),
    ("response_by_landmark", "no"): _("No CR/CRi by the landmark"),
    ("response_by_landmark", "yes"): _("CR/CRi by the landmark"),
    ("sct_by_landmark", "no"): _("No allogeneic SCT by the landmark"),
    ("sct_by_landmark", "yes"): _("Allogeneic SCT by the landmark"),
}
# Figure titles: "<endpoint> by <this>".
BY = {
    "overall": _("all patients"),
    "responder": _("response to blinatumomab (CR/CRi)"),
    "allo_sct_after": _("allogeneic SCT after blinatumomab"),
}


def lower_first(text: str) -> str:
    """ "Allogeneic SCT by the landmark" -> "allogeneic SCT by the landmark"; an acronym
    ("CR/CRi", "ECOG") keeps its capitals."""
    if len(text) > 1 and text[1].isupper():
        return text
    return text[:1].lower() + text[1:]


def label(code) -> str:
    """The words for a code; a code without an entry is made readable rather than shown raw."""
    text = "" if _missing(code) else str(code)
    if text in LABELS:
        # Table 2's subgroup labels are English strings (analysis.tables): translated here
        value = LABELS[text]
        return _translated(value) if isinstance(value, str) else str(value)
    words = text.replace("_", " ").strip()
    return _translated(words[:1].upper() + words[1:])


def group_label(grouping, group) -> str:
    return str(GROUP_LABELS.get((str(grouping), str(group)), fmt_level(group)))


def figure_title(endpoint: str, grouping: str) -> str:
    """A Kaplan-Meier title in words: "Event-free survival by allogeneic SCT after
    blinatumomab"."""
    if grouping == "overall":
        return gettext("%(endpoint)s, all patients") % {"endpoint": label(endpoint)}
    by = BY.get(grouping, lower_first(label(grouping)))
    return gettext("%(endpoint)s by %(by)s") % {"endpoint": label(endpoint), "by": by}


# Run parameters (run.json "parameters"), as a labelled list.
TEST_NAMES = {
    "fisher": _("Fisher's exact (two-sided), as printed in the paper"),
    "chi2": _("Pearson chi-square without continuity correction"),
}
PARAMETER_LABELS = [
    ("test", _("Table 2 test"), lambda v: str(TEST_NAMES.get(v, v))),
    ("cuts.age_years", _("Age cut"), lambda v: gettext("%(n)s years") % {"n": f"{float(v):g}"}),
    (
        "cuts.months_from_diagnosis",
        _("Diagnosis-to-start cut"),
        lambda v: gettext("%(n)s months") % {"n": f"{float(v):g}"},
    ),
    ("cuts.marrow_blasts_pct", _("Marrow blasts cut"), lambda v: f"{float(v):g}%"),
    ("cuts.dexamethasone_mg", _("Dexamethasone cut"), lambda v: f"{float(v):g} mg"),
    (
        "landmark_days",
        _("Landmark"),
        lambda v: gettext("day %(n)s after blinatumomab start") % {"n": f"{float(v):g}"},
    ),
    ("reference_rate", _("Reference response rate"), lambda v: f"{100 * float(v):g}%"),
]


def parameter_items(parameters: dict) -> list[tuple[str, str]]:
    """The run's parameters as (label, value in words), in a fixed order; any parameter
    without a label follows under its own name."""
    items, seen = [], set()
    for path, name, render in PARAMETER_LABELS:
        value = parameters
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            items.append((str(name), render(value)))
            seen.add(path)
    for key, value in parameters.items():
        if isinstance(value, dict):
            for sub, sub_value in value.items():
                if f"{key}.{sub}" not in seen:
                    items.append((label(sub), str(sub_value)))
        elif key not in seen:
            items.append((label(key), str(value)))
    return items
