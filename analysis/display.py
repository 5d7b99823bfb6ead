"""The run's tables as a reader sees them: the paper's layout, built from the run's CSVs.

Every view of a run (the dashboard page, report.html, the formatted sheets of tables.xlsx and
report.docx) is built here from the same files with analysis.formatting, so they cannot
disagree: a DisplayTable holds the text of every cell (and, for spreadsheets, the number behind
a numeric cell). The CSVs themselves stay machine-readable and unchanged.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from django.utils.translation import gettext, gettext_lazy

from . import beyond
from . import formatting as fmt

logger = logging.getLogger(__name__)

# Excel number formats that show a number as formatting writes it (the cell stays a number).
P_FORMAT = '[<0.001]"< 0.001";0.000'
THREE_DECIMALS = "0.000"
INTEGER = "0"
# A table longer than this folds (a <details> on the page and in the report).
FOLD_ROWS = 30
# A folded step-function table shows this many rows on the page and in the report (the CSV has
# all of them: at national scale they run to thousands).
SHOWN_ROWS = 100


@dataclass
class Cell:
    text: str
    value: float | int | None = None  # the number behind a numeric cell (spreadsheets)
    number_format: str | None = None  # Excel format showing `value` as `text`

    @property
    def numeric(self) -> bool:
        """Right-aligned: a number, a ratio with its CI, a rate, a P value."""
        return self.value is not None or bool(_NUMERIC_TEXT.match(self.text))


_NUMERIC_TEXT = re.compile(r"^([<>\u2264\u2265]?\s?[-\u2212]?\d|NA$|NR\b|\u221e)")


@dataclass
class Row:
    cells: list[Cell]
    section: bool = False  # a heading row (the paper's "Sex, n (%)") spanning the table
    indent: bool = False  # a level under a heading


@dataclass
class DisplayTable:
    key: str  # stable id: the page anchor, the xlsx sheet, the formatted-CSV URL
    title: str
    columns: list[str]
    rows: list[Row]
    footnote: str = ""
    sources: list[str] = field(default_factory=list)  # the run's CSVs it is built from
    note: str = ""  # a plain-language paragraph before the table
    step_table: bool = False  # a long step function: first SHOWN_ROWS rows, CSV for all
    total_rows: int | None = None  # rows in the source when only the first are shown
    paper: bool = False  # one of the paper's tables: never folded

    @property
    def fold(self) -> bool:
        return self.step_table or (not self.paper and len(self.rows) > FOLD_ROWS)

    @property
    def shown(self) -> list[Row]:
        return self.rows[:SHOWN_ROWS] if self.step_table else self.rows

    @property
    def width(self) -> int:
        return len(self.columns)

    def text_rows(self) -> list[list[str]]:
        """Header and rows as text, a heading row in its first cell (the formatted CSV and
        the Word table)."""
        out = [list(self.columns)]
        for row in self.rows:
            cells = [c.text for c in row.cells]
            out.append(cells + [""] * (self.width - len(cells)))
        return out

    def to_csv(self, cell=lambda text: text) -> str:
        """The table as shown, as CSV; `cell` prepares each text (e.g. exchange.safe.safe_cell
        for spreadsheets)."""
        buffer = io.StringIO()
        rows = [[cell(text) for text in row] for row in self.text_rows()]
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        return buffer.getvalue()


def text(value) -> Cell:
    return Cell("" if value is None else str(value))


def count(value) -> Cell:
    if fmt._missing(value):
        return Cell(fmt.NA)
    return Cell(fmt.fmt_int(value), int(round(float(value))), INTEGER)


def p_cell(value) -> Cell:
    if fmt._missing(value):
        return Cell(fmt.NA)
    return Cell(fmt.fmt_p(value), float(value), P_FORMAT)


def number(value, digits: int = 3) -> Cell:
    if fmt._missing(value) or math.isinf(float(value)):
        return Cell(fmt.fmt_number(value, digits))
    return Cell(fmt.fmt_number(value, digits), float(value), "0." + "0" * digits)


def section(title: str) -> Row:
    return Row([Cell(title)], section=True)


# ---------------------------------------------------------------------------------------------
# Reading a run
# ---------------------------------------------------------------------------------------------

TEXT_COLUMNS = ["level", "group", "reference_level", "term", "value", "characteristic", "note"]


def read_csv(path: Path) -> pd.DataFrame:
    """A run's CSV with its text columns as text (a level "1" stays "1"), missing as NaN."""
    header = pd.read_csv(path, nrows=0).columns
    return pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS if c in header})


def load_frames(out: Path, names) -> dict[str, pd.DataFrame]:
    out = Path(out)
    return {name: read_csv(out / name) for name in names if (out / name).exists()}


# ---------------------------------------------------------------------------------------------
# The paper's tables
# ---------------------------------------------------------------------------------------------


def table1(frame: pd.DataFrame, n_patients: int) -> DisplayTable:
    rows: list[Row] = []
    current = None
    for record in frame.itertuples(index=False):
        characteristic, level = record.characteristic, record.level
        if fmt._missing(level):  # a summary row: median (range)
            rows.append(
                Row([text(_words(characteristic)), text(fmt.reformat_median_range(record.value))])
            )
            current = None
            continue
        if characteristic != current:
            current = characteristic
            with_data = int(record.denominator)
            heading = f"{_typeset(_words(characteristic))}, n (%)"
            if with_data < n_patients:
                heading += " " + gettext("(%(n)s with data)") % {"n": with_data}
            rows.append(section(heading))
        rows.append(
            Row(
                [text(fmt.fmt_level(level)), text(fmt.fmt_n_pct(record.n, record.denominator))],
                indent=True,  # a level under its heading; medians (range) stand at the margin
            )
        )
    return DisplayTable(
        key="table1",
        paper=True,
        title=(
            gettext(
                "Table 1. Clinical characteristics of all patients at the time of "
                "blinatumomab initiation (n = %(n_patients)s)"
            )
            % {"n_patients": f"{n_patients:,}"}
        ),
        columns=[gettext("Characteristics"), gettext("Patients")],
        rows=rows,
        footnote=(
            gettext(
                "n number; percentages are of the patients with data (cytogenetic risk: "
                "those with a result). Continuous variables: median (range). Age is "
                "counted as > 65 as in the paper's table. ECOG Eastern Cooperative "
                "Oncology Group, BM bone marrow, SCT stem cell transplantation."
            )
        ),
        sources=["table1.csv"],
    )


def _words(english: str) -> str:
    """A label the run's CSV holds in English (analysis.tables marks them for the catalogue), in
    the page's language; Table 1's "Age > 65" carries its cut."""
    match = re.fullmatch(r"Age > (\S+)", english)
    if match:
        return gettext("Age > %(cut)s") % {"cut": match.group(1)}
    return gettext(english) if english else english


def _typeset(characteristic: str) -> str:
    return characteristic.replace(">=", "\u2265").replace("<=", "\u2264")


def table2(
    frame: pd.DataFrame, flow: pd.DataFrame | None, evaluable_rule: str = ""
) -> DisplayTable:
    """Table 2 as printed: per subgroup a heading row, then its two levels with the response
    rate, the odds ratio (95% CI) and P on the second level's row."""
    evaluable, responders = _flow_count(flow, "evaluable"), _flow_count(flow, "responders_overall")
    overall = fmt.fmt_rate(responders, evaluable) if evaluable else ""
    rows: list[Row] = []
    tests = set()
    for variable, levels in frame.groupby("variable", sort=False):
        rows.append(section(fmt.label(variable)))
        first, second = levels.iloc[0], levels.iloc[-1]
        for record, compared in ((first, False), (second, True)):
            cells = [
                text(fmt.fmt_level(record["level"])),
                text(fmt.fmt_rate(record["responders"], record["n"])),
            ]
            if compared:
                cells += [
                    text(
                        fmt.fmt_or_ci(record["odds_ratio"], record["ci_lower"], record["ci_upper"])
                    ),
                    p_cell(record["p_value"]),
                ]
                if not fmt._missing(record.get("test")):
                    tests.add(record["test"])
            else:
                cells += [text(""), text("")]
            rows.append(Row(cells, indent=True))
    test = " or ".join(sorted(fmt.label(t) for t in tests)) or fmt.label("fisher_exact")
    return DisplayTable(
        key="table2",
        paper=True,
        title=(
            gettext(
                "Table 2. Response rates after induction therapy with blinatumomab among "
                "patient subgroups (n = %(value)s)"
            )
            % {"value": f"{evaluable if evaluable is not None else len(frame):,}"}
        ),
        columns=[
            gettext("Variables"),
            (gettext("Response rates") + f" {overall}").strip(),
            gettext("OR (95% CI)"),
            gettext("P value"),
        ],
        rows=rows,
        footnote=gettext("Response: CR or CRi at any assessment, among evaluable patients")
        + (f" ({fmt.lower_first(evaluable_rule.rstrip('.'))})" if evaluable_rule else "")
        + gettext(
            "; patients missing a variable are left out of that subgroup only. OR: odds ratio "
            "of response, first level vs second (the paper's 'RR'; time to treatment from "
            "diagnosis is reversed, as printed in the paper), with a Woolf (logit) 95%% CI; "
            "with a zero cell, 0.5 is added to every cell (Haldane-Anscombe). P: %(test)s. NA: "
            "not estimable (an empty level). ECOG Eastern Cooperative Oncology Group, PS "
            "performance status, EMD extramedullary disease, BM bone marrow, SCT stem cell "
            "transplantation."
        )
        % {"test": test},
        sources=["table2_subgroups.csv"],
    )


def _flow_count(flow, step):
    if flow is None or step not in set(flow["step"]):
        return None
    return int(flow.loc[flow["step"] == step, "n"].iloc[0])


GRADE_BANDS = [
    ("any", gettext_lazy("Any grade")),
    ("grade_1_2", gettext_lazy("Grade 1–2")),
    ("grade_3", gettext_lazy("Grade 3")),
    ("grade_4", gettext_lazy("Grade 4")),
    ("grade_5", gettext_lazy("Grade 5")),
]


def _grade_cells(record, n_patients) -> list[Cell]:
    return [
        text(fmt.fmt_n_pct(record[f"{band}_n"], n_patients, zero="0")) for band, _ in GRADE_BANDS
    ]


def table3(frame: pd.DataFrame, n_patients: int) -> DisplayTable:
    rows = [
        Row([text(_words(record["table3_row"])), *_grade_cells(record, n_patients)])
        for _, record in frame.iterrows()
    ]
    return DisplayTable(
        key="table3",
        paper=True,
        title=(
            gettext(
                "Table 3. Adverse events during induction therapy with blinatumomab (n = "
                "%(n_patients)s)"
            )
            % {"n_patients": f"{n_patients:,}"}
        ),
        columns=["", *(str(name) for _, name in GRADE_BANDS)],
        rows=rows,
        footnote=_AE_FOOTNOTE.format(n=n_patients)
        + " "
        + gettext("Rows group CTCAE terms as registry/data/ctcae_table3_map.csv."),
        sources=["table3_adverse_events.csv"],
    )


_AE_FOOTNOTE = gettext_lazy(
    "Patients with the event, each counted once at their worst grade (CTCAE v4.03); "
    "percentages of all {n:,} treated patients. Grade 5: fatal."
)


def ae_by_term(frame: pd.DataFrame, n_patients: int) -> DisplayTable:
    rows = [
        Row([text(record["ctcae_term"]), text(record["soc"]), *_grade_cells(record, n_patients)])
        for _, record in frame.iterrows()
    ]
    return DisplayTable(
        key="adverse_events_by_term",
        title=gettext("Adverse events by CTCAE term and worst grade"),
        columns=[
            gettext("CTCAE term"),
            gettext("System organ class"),
            *(str(name) for _, name in GRADE_BANDS),
        ],
        rows=rows,
        footnote=_AE_FOOTNOTE.format(n=n_patients) + " " + gettext("Most frequent first."),
        sources=["adverse_events_by_term.csv", "adverse_events.csv"],
    )


# ---------------------------------------------------------------------------------------------
# Survival
# ---------------------------------------------------------------------------------------------

MONTHS = gettext_lazy("Months = days / 30.4375.")


def survival_medians(
    medians: pd.DataFrame, logrank: pd.DataFrame | None, definitions: dict | None = None
) -> DisplayTable:
    definitions = definitions or {}
    if "efs_days" in definitions and "os_days" in definitions:
        endpoints = f"EFS: {definitions['efs_days']} OS: {definitions['os_days']}"
    else:
        endpoints = (
            "EFS: from day 1 to relapse, progression or death; OS: to death from any cause; "
            "otherwise censored at the last contact."
        )
    rows = _median_rows(medians, logrank, fmt.figure_title)
    return DisplayTable(
        key="survival_median",
        title=gettext("Median event-free and overall survival (Kaplan-Meier)"),
        columns=[
            "",
            "n",
            gettext("Events"),
            gettext("Median, months (95% CI)"),
            gettext("Log-rank P"),
        ],
        rows=rows,
        footnote=(
            gettext(
                "Kaplan-Meier medians with 95%% CIs from the log-transformed survival "
                "function (R survfit's default); NR not reached. P: log-rank test (R "
                "survdiff). %(endpoints)s %(MONTHS)s Groups by response and by "
                "allogeneic SCT are fixed on day 1, as in the paper: they carry "
                "immortal-time bias (see the landmark analysis)."
            )
            % {"endpoints": endpoints, "MONTHS": MONTHS}
        ),
        sources=["survival_median.csv", "survival_logrank.csv", "survival_table.csv"],
    )


def _median_rows(medians: pd.DataFrame, logrank: pd.DataFrame, heading) -> list:
    """A section per (endpoint, grouping) headed `heading(endpoint, grouping)`, a row per group
    (n, events, median with its CI) and the log-rank P on the last row of a comparison."""
    rows = []
    for (endpoint, grouping), part in medians.groupby(["endpoint", "grouping"], sort=False):
        rows.append(section(heading(endpoint, grouping)))
        p_value = _logrank_p(logrank, endpoint=endpoint, grouping=grouping)
        for i, (_, record) in enumerate(part.iterrows()):
            median = fmt.fmt_median_ci(
                record["median_months"], record["ci_lower"], record["ci_upper"]
            )
            last_of_comparison = i == len(part) - 1 and grouping != "overall"
            cells = [
                text(fmt.group_label(grouping, record["group"])),
                count(record["n"]),
                count(record["events"]),
                text(median),
                p_cell(p_value) if last_of_comparison else text(""),
            ]
            rows.append(Row(cells, indent=True))
    return rows


def _logrank_p(logrank, **key):
    if logrank is None or logrank.empty:
        return math.nan
    mask = pd.Series(True, index=logrank.index)
    for column, value in key.items():
        mask &= logrank[column].astype(str) == str(value)
    return logrank.loc[mask, "p_value"].iloc[0] if mask.any() else math.nan


def _ph_lookup(ph_test: pd.DataFrame | None, source: str):
    """(endpoint, model, terms, term) -> the PH test row of that model's term."""
    if ph_test is None or ph_test.empty:
        return {}
    part = ph_test[ph_test["source"] == source]
    return {(r.endpoint, r.model, r.terms, r.term): r.p_value for r in part.itertuples(index=False)}


def _model_terms(part: pd.DataFrame, model: str, term: str) -> str:
    return term if "univariate" in model else " + ".join(part["term"])


def _cox_columns() -> list[str]:
    """The columns of both Cox tables (the paper's and the time-varying), in the active language."""
    return [
        gettext("Covariate"),
        gettext("HR (95% CI)"),
        "P",
        gettext("PH test P"),
        gettext("Note"),
    ]


def _cox_term_rows(part: pd.DataFrame, endpoint: str, model: str, ph: dict) -> list:
    """One row per term of a fitted Cox model: HR (95% CI), P, the term's PH test P, the note."""
    rows = []
    for _, record in part.iterrows():
        terms = _model_terms(part, model, record["term"])
        hr = fmt.fmt_or_ci(record["hazard_ratio"], record["ci_lower"], record["ci_upper"])
        cells = [
            text(fmt.label(record["term"])),
            text(hr),
            p_cell(record["p_value"]),
            p_cell(ph.get((endpoint, model, terms, record["term"]))),
            text(_note(record)),
        ]
        rows.append(Row(cells, indent=True))
    return rows


def cox_models(cox: pd.DataFrame, ph_test: pd.DataFrame | None) -> DisplayTable:
    ph = _ph_lookup(ph_test, "cox")
    rows = []
    for (endpoint, model), part in cox.groupby(["endpoint", "model"], sort=False):
        rows.append(
            section(
                gettext("%(value)s: %(value2)s models")
                % {"value": fmt.label(endpoint), "value2": fmt.lower_first(fmt.label(model))}
            )
        )
        rows += _cox_term_rows(part, endpoint, model, ph)
    return DisplayTable(
        key="cox",
        title=gettext("Cox proportional hazards models"),
        columns=_cox_columns(),
        rows=rows,
        footnote=(
            gettext(
                "HR hazard ratio (1 vs 0), Wald 95% CI and P; Efron ties, as R coxph. "
                "Univariate: one model per covariate; multivariable: all four together. "
                "PH test P: the proportional-hazards test of the term (scaled Schoenfeld "
                "residuals against the Kaplan-Meier transform of time, R survival 3.x "
                "cox.zph; below 0.05 the hazard ratio changes over time); every model's "
                "global test is in the next table. Note: every warning the fit raised "
                "(separation, non-convergence) and why a model is not estimable. ECOG PS "
                "Eastern Cooperative Oncology Group performance status, SCT stem cell "
                "transplantation."
            )
        ),
        sources=["cox.csv", "cox_ph_test.csv"],
    )


def _note(record) -> str:
    value = record.get("note") if hasattr(record, "get") else None
    return "" if fmt._missing(value) else str(value)


def ph_tests(ph_test: pd.DataFrame) -> DisplayTable:
    rows = []
    for (source, endpoint), part in ph_test.groupby(["source", "endpoint"], sort=False):
        kind = gettext("Cox models") if source == "cox" else gettext("Time-dependent Cox models")
        rows.append(
            section(gettext("%(value)s: %(kind)s") % {"value": fmt.label(endpoint), "kind": kind})
        )
        for _, record in part.iterrows():
            model = fmt.label(record["model"])
            terms = " + ".join(fmt.label(t) for t in str(record["terms"]).split(" + "))
            rows.append(
                Row(
                    [
                        text(f"{model}: {terms}"),
                        text(fmt.label(record["term"])),
                        number(record["chisq"]),
                        count(record["df"]),
                        p_cell(record["p_value"]),
                        text(_note(record)),
                    ],
                    indent=True,
                )
            )
    return DisplayTable(
        key="cox_ph_test",
        title=(
            gettext("Proportional-hazards tests of every Cox model (scaled Schoenfeld residuals)")
        ),
        columns=[
            gettext("Model"),
            gettext("Term"),
            "\u03c7\u00b2",
            "df",
            "P",
            gettext("Note"),
        ],
        rows=rows,
        footnote=(
            gettext(
                "Score test of adding g(t) × covariate to the model, g the centred "
                "Kaplan-Meier transform of time, with the full information matrix: R "
                "survival 3.x cox.zph(fit) (equal to 1e-6, tests/analysis). Per term 1 "
                "df; Global: all terms. A small P says the hazard ratio is not constant "
                "over time. Note: the fit's warnings."
            )
        ),
        sources=["cox_ph_test.csv"],
    )


def numbers_at_risk(
    frame: pd.DataFrame, endpoint: str, grouping: str, source: str = "numbers_at_risk.csv"
) -> DisplayTable:
    part = frame[(frame["endpoint"] == endpoint) & (frame["grouping"] == grouping)]
    times = sorted(part["time"].unique())
    rows = []
    for group, counts in part.groupby("group", sort=False):
        by_time = dict(zip(counts["time"], counts["n_risk"], strict=True))
        rows.append(
            Row([text(fmt.group_label(grouping, group)), *(count(by_time.get(t)) for t in times)])
        )
    return DisplayTable(
        key=f"at_risk_{endpoint}_{grouping}",
        title=(
            gettext("Number at risk: %(value)s") % {"value": fmt.figure_title(endpoint, grouping)}
        ),
        columns=[gettext("Months"), *(f"{t:g}" for t in times)],
        rows=rows,
        sources=[source],
    )


# ---------------------------------------------------------------------------------------------
# Beyond the paper
# ---------------------------------------------------------------------------------------------


def landmark_medians(medians: pd.DataFrame, logrank: pd.DataFrame | None) -> DisplayTable:
    rows = []
    landmark = medians["landmark_days"].iloc[0] if len(medians) else beyond.DEFAULT_LANDMARK_DAYS
    rows += _median_rows(
        medians,
        logrank,
        lambda endpoint, grouping: (
            gettext("%(value)s: %(value2)s")
            % {"value": fmt.label(endpoint), "value2": fmt.lower_first(fmt.label(grouping))}
        ),
    )
    return DisplayTable(
        key="landmark_median",
        title=(
            gettext("Landmark analysis from day %(value)s: median EFS and OS")
            % {"value": f"{float(landmark):g}"}
        ),
        columns=[
            "",
            "n",
            gettext("Events"),
            gettext("Median, months from the landmark (95% CI)"),
            gettext("Log-rank P"),
        ],
        rows=rows,
        footnote=(
            gettext(
                "Patients alive (OS) or alive and event-free (EFS) after the landmark "
                "day, grouped by what happened on or before it; time from the landmark. "
                "Kaplan-Meier medians with log-transformed 95%% CIs; NR not reached; "
                "log-rank P. %(MONTHS)s"
            )
            % {"MONTHS": MONTHS}
        ),
        sources=["landmark_median.csv", "landmark_logrank.csv", "landmark_survival_table.csv"],
    )


def landmark_excluded(frame: pd.DataFrame) -> DisplayTable:
    rows = []
    for endpoint, part in frame.groupby("endpoint", sort=False):
        rows.append(section(fmt.label(endpoint)))
        for _, record in part.iterrows():
            rows.append(
                Row(
                    [
                        text(fmt.label(record["status"])),
                        text(_words(record["reason"])),
                        count(record["n"]),
                    ],
                    indent=True,
                )
            )
    return DisplayTable(
        key="landmark_excluded",
        title=gettext("Landmark analysis: patients included and excluded"),
        columns=["", gettext("Reason"), gettext("Patients")],
        rows=rows,
        sources=["landmark_excluded.csv"],
    )


def cox_time_varying(frame: pd.DataFrame, ph_test: pd.DataFrame | None) -> DisplayTable:
    ph = _ph_lookup(ph_test, "cox_time_varying")
    rows = []
    for (endpoint, model), part in frame.groupby(["endpoint", "model"], sort=False):
        first = part.iloc[0]
        rows.append(
            section(
                gettext(
                    "%(value)s: %(value2)s (%(value3)s patients, %(value4)s intervals, "
                    "%(value5)s events)"
                )
                % {
                    "value": fmt.label(endpoint),
                    "value2": fmt.lower_first(fmt.label(model)),
                    "value3": int(first["n_patients"]),
                    "value4": int(first["n_intervals"]),
                    "value5": int(first["events"]),
                }
            )
        )
        rows += _cox_term_rows(part, endpoint, model, ph)
    return DisplayTable(
        key="cox_time_varying",
        title=gettext("Cox models with allogeneic SCT and response as time-varying covariates"),
        columns=_cox_columns(),
        rows=rows,
        footnote=(
            gettext(
                "HR, Wald 95% CI and P (Efron ties), as R coxph on tmerge intervals. "
                "Naive: the paper's day-1 groups; time-varying: not transplanted (not in "
                "remission) until the day of the SCT (first CR/CRi). PH test P: R "
                "cox.zph, as in the Cox table. Note: every warning the fit raised and "
                "why a model is not estimable."
            )
        ),
        sources=["cox_time_varying.csv", "cox_ph_test.csv"],
        note=gettext(beyond.NOTES["cox_time_varying"]),
    )


def response_rates(frame: pd.DataFrame) -> DisplayTable:
    rows = []
    reference = frame["reference_rate"].iloc[0] if len(frame) else beyond.DEFAULT_REFERENCE_RATE
    for variable, part in frame.groupby("variable", sort=False):
        rows.append(section(gettext("Overall") if variable == "overall" else fmt.label(variable)))
        for _, record in part.iterrows():
            rows.append(
                Row(
                    [
                        text(
                            gettext("Evaluable patients")
                            if record["level"] == "evaluable"
                            else gettext("All treated patients")
                            if record["level"] == "all treated"
                            else fmt.fmt_level(record["level"])
                        ),
                        text(fmt.fmt_rate(record["responders"], record["n"])),
                        text(
                            fmt.fmt_ci(
                                100 * record["exact_ci_lower"], 100 * record["exact_ci_upper"], 1
                            )
                        ),
                        text(
                            fmt.fmt_ci(
                                100 * record["wilson_ci_lower"], 100 * record["wilson_ci_upper"], 1
                            )
                        ),
                        p_cell(record["p_value_greater"]),
                    ],
                    indent=True,
                )
            )
    return DisplayTable(
        key="response_rate",
        title=(
            gettext(
                "Response rate with exact and Wilson 95% CIs, and a test against a reference rate"
            )
        ),
        columns=[
            "",
            gettext("Response rate"),
            gettext("Exact 95% CI, %"),
            gettext("Wilson 95% CI, %"),
            gettext("P (rate > reference)"),
        ],
        rows=rows,
        footnote=(
            gettext(
                "Exact: Clopper-Pearson (R binom.test); Wilson: score interval (R "
                "prop.test without correction). P: exact one-sided binomial test that "
                "the rate exceeds the reference rate of %(value)s%%."
            )
            % {"value": f"{100 * float(reference):g}"}
        ),
        sources=["response_rate.csv"],
        note=gettext(beyond.NOTES["response_rate"]),
    )


# Long step-function tables: every column labelled, numbers to 3 decimals.
COLUMN_LABELS = {
    "endpoint": gettext_lazy("Endpoint"),
    "landmark_days": gettext_lazy("Landmark, day"),
    "grouping": gettext_lazy("Grouping"),
    "group": gettext_lazy("Group"),
    "cause": gettext_lazy("Event"),
    "time": gettext_lazy("Months"),
    "n_risk": gettext_lazy("At risk"),
    "n_event": gettext_lazy("Events"),
    "n_competing": gettext_lazy("Competing events"),
    "n_censor": gettext_lazy("Censored"),
    "survival": gettext_lazy("Survival"),
    "std_err": gettext_lazy("SE"),
    "lower": gettext_lazy("95% CI lower"),
    "upper": gettext_lazy("95% CI upper"),
    "cumulative_incidence": gettext_lazy("Cumulative incidence"),
    "ci_lower": gettext_lazy("95% CI lower"),
    "ci_upper": gettext_lazy("95% CI upper"),
    "one_minus_km": gettext_lazy("1 − Kaplan-Meier"),
    "km_excess": gettext_lazy("Excess of 1 − KM"),
}
CODED = {"endpoint", "grouping", "cause"}
COUNTS = {"n_risk", "n_event", "n_competing", "n_censor", "landmark_days"}


def step_table(frame: pd.DataFrame, key, title, footnote, note="") -> DisplayTable:
    columns = list(frame.columns)
    head = frame.head(SHOWN_ROWS)
    rows = []
    for _, record in head.iterrows():
        cells = []
        for column in columns:
            value = record[column]
            if column in CODED:
                cells.append(text(fmt.label(value)))
            elif column == "group":
                cells.append(text(fmt.group_label(record.get("grouping", ""), value)))
            elif column in COUNTS:
                cells.append(count(value))
            else:
                cells.append(number(value))
        rows.append(Row(cells))
    return DisplayTable(
        key=key,
        title=title,
        columns=[str(COLUMN_LABELS.get(c, fmt.label(c))) for c in columns],
        rows=rows,
        footnote=footnote,
        sources=[f"{key}.csv"],
        note=note,
        step_table=True,
        total_rows=len(frame),
    )


def cumulative_incidence(frame: pd.DataFrame) -> DisplayTable:
    return step_table(
        frame,
        "cumulative_incidence",
        gettext("Cumulative incidence of relapse or progression and of non-relapse mortality"),
        (
            gettext(
                "Aalen-Johansen estimates with log-transformed 95%% CIs (R multi-state "
                "survfit), beside 1 − Kaplan-Meier treating the competing event as "
                "censoring. %(MONTHS)s"
            )
            % {"MONTHS": MONTHS}
        ),
        note=gettext(beyond.NOTES["cumulative_incidence"]),
    )


def landmark_survival_table(frame: pd.DataFrame) -> DisplayTable:
    return step_table(
        frame,
        "landmark_survival_table",
        gettext("Landmark analysis: Kaplan-Meier tables"),
        (
            gettext("Months from the landmark; Greenwood SE, log-transformed 95%% CI. %(MONTHS)s")
            % {"MONTHS": MONTHS}
        ),
    )


def raw_table(frame: pd.DataFrame, name: str) -> DisplayTable:
    """A CSV that cannot be laid out as the paper's (a run written by an older version, or a
    file that is not what it should be), shown as stored: labelled columns, numbers to 3
    decimals, P values as P values."""
    rows = []
    for _, record in frame.head(SHOWN_ROWS).iterrows():
        cells = []
        for column in frame.columns:
            value = record[column]
            if "p_value" in str(column):
                cells.append(p_cell(value) if _is_number(value) else text(value))
            elif _is_number(value):
                cells.append(number(value))
            else:
                cells.append(text("" if fmt._missing(value) else value))
        rows.append(Row(cells))
    return DisplayTable(
        key=name.removesuffix(".csv"),
        title=(
            gettext("%(name)s (as stored: this file could not be laid out as the paper's table)")
            % {"name": name}
        ),
        columns=[COLUMN_LABELS.get(str(c), fmt.label(c)) for c in frame.columns],
        rows=rows,
        sources=[name],
        step_table=len(frame) > SHOWN_ROWS,
        total_rows=len(frame),
    )


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _safe(builder, frames: dict, name: str, *args) -> DisplayTable | None:
    """builder(frames[name], *args), or the file shown as stored when it is not laid out as
    the builder expects: an old or damaged run folder never breaks the page or the report."""
    if name not in frames:
        return None
    try:
        return builder(frames[name], *args)
    except (KeyError, ValueError, TypeError, AttributeError, IndexError) as error:
        logger.warning("%s shown as stored: %r", name, error)
        return raw_table(frames[name], name)


# ---------------------------------------------------------------------------------------------
# The whole run, in the order of the paper
# ---------------------------------------------------------------------------------------------

FIGURE_2 = [  # the paper's panels a-d, then the overall curves
    ("efs", "responder", "a"),
    ("os", "responder", "b"),
    ("efs", "allo_sct_after", "c"),
    ("os", "allo_sct_after", "d"),
    ("efs", "overall", ""),
    ("os", "overall", ""),
]


@dataclass
class Figure:
    stem: str  # file stem in the run folder (stem.svg, stem.png)
    title: str
    alt: str
    src: str = ""  # how the page or the report refers to the image
    at_risk: DisplayTable | None = None


@dataclass
class Section:
    key: str
    heading: str
    note: str = ""
    figures: list[Figure] = field(default_factory=list)
    tables: list[DisplayTable] = field(default_factory=list)
    figures_first: bool = False
    beyond_paper: bool = False
    caption: str = ""  # what the figures of the section are, as the paper's legend


SOURCES = [
    "table1.csv",
    "table2_subgroups.csv",
    "table3_adverse_events.csv",
    "adverse_events_by_term.csv",
    "flow.csv",
    "survival_median.csv",
    "survival_logrank.csv",
    "numbers_at_risk.csv",
    "cox.csv",
    "cox_ph_test.csv",
    "landmark_median.csv",
    "landmark_logrank.csv",
    "landmark_excluded.csv",
    "landmark_numbers_at_risk.csv",
    "landmark_survival_table.csv",
    "cox_time_varying.csv",
    "cumulative_incidence.csv",
    "response_rate.csv",
]


def flow_alt(flow: pd.DataFrame | None) -> str:
    if flow is None:
        return gettext("Treatment flow diagram")
    steps = "; ".join(f"{fmt.label(s)}: {n}" for s, n in zip(flow["step"], flow["n"], strict=True))
    return gettext("Treatment flow diagram. %(steps)s.") % {"steps": steps}


def sections(
    frames: dict, meta: dict, files, src: Callable[[str], str], definitions: dict | None = None
) -> list[Section]:
    """The run as the paper lays it out: Table 1, Figure 1, Table 2 and its forest plot,
    Figure 2 with numbers at risk, survival models, Table 3, the swimmer plot, then the
    analyses beyond the paper. `src(file name)` is how the caller shows an image (a URL on the
    page, embedded data in the report); figures missing from `files` are left out.
    `definitions` (column -> rule, analysis.dataset.DEFINITIONS) go into the footnotes."""
    definitions = definitions or {}
    files = set(files)
    n_patients = int(meta.get("n_patients") or 0)
    flow = frames.get("flow.csv")
    ph = frames.get("cox_ph_test.csv")

    def figure(stem, title, alt, at_risk=None):
        if f"{stem}.svg" not in files and f"{stem}.png" not in files:
            return None
        image = f"{stem}.svg" if f"{stem}.svg" in files else f"{stem}.png"
        return Figure(stem, title, alt, src(image), at_risk)

    def present(*items):
        return [item for item in items if item is not None]

    flow_ok = flow is not None and {"step", "n"} <= set(flow.columns)
    out = [
        Section(
            "table1",
            gettext("Patient characteristics"),
            tables=present(_safe(table1, frames, "table1.csv", n_patients)),
        ),
        Section(
            "figure1",
            gettext("Treatment flow"),
            figures=present(
                figure(
                    "flow_diagram",
                    (
                        gettext(
                            "Figure 1. Treatment flow and outcomes of all patients (n = "
                            "%(n_patients)s)"
                        )
                        % {"n_patients": f"{n_patients:,}"}
                    ),
                    flow_alt(flow if flow_ok else None),
                )
            ),
        ),
        Section(
            "table2",
            gettext("Response by subgroup"),
            tables=present(
                _safe(
                    table2,
                    frames,
                    "table2_subgroups.csv",
                    flow if flow_ok else None,
                    definitions.get("evaluable", ""),
                )
            ),
            figures=present(
                figure(
                    "forest_table2",
                    gettext("Odds ratio of response by subgroup (Table 2), 95% CI, log scale"),
                    (
                        gettext(
                            # xgettext:no-python-format
                            "Forest plot of the odds ratios of Table 2 with their 95% confidence "
                            "intervals, n and P for each subgroup."
                        )
                    ),
                )
            ),
        ),
    ]
    figure2 = []
    for endpoint, grouping, panel in FIGURE_2:
        title = fmt.figure_title(endpoint, grouping)
        item = figure(
            f"km_{endpoint}_{grouping}",
            f"({panel}) {title}" if panel else title,
            (
                gettext("Kaplan-Meier curves: %(title)s, with censoring marks and the log-rank P.")
                % {"title": title}
            ),
            _safe(numbers_at_risk, frames, "numbers_at_risk.csv", endpoint, grouping),
        )
        figure2.append(item)
    out.append(
        Section(
            "figure2",
            gettext("Survival"),
            caption=(
                gettext(
                    "Figure 2. Kaplan-Meier survival curves for event-free survival and "
                    "overall survival according to response (a, b) and performance of "
                    "allogeneic stem cell transplantation (c, d); the curves of all patients "
                    "follow. Numbers at risk under each figure."
                )
            ),
            figures=present(*figure2),
            tables=present(
                _safe(
                    survival_medians,
                    frames,
                    "survival_median.csv",
                    frames.get("survival_logrank.csv"),
                    definitions,
                ),
                _safe(cox_models, frames, "cox.csv", ph),
                _safe(ph_tests, frames, "cox_ph_test.csv"),
            ),
            figures_first=True,
        )
    )
    out.append(
        Section(
            "table3",
            gettext("Adverse events"),
            tables=present(
                _safe(table3, frames, "table3_adverse_events.csv", n_patients),
                _safe(ae_by_term, frames, "adverse_events_by_term.csv", n_patients),
            ),
        )
    )
    out.append(
        Section(
            "swimmer",
            gettext("Patients over time"),
            figures=present(
                figure(
                    "swimmer",
                    gettext("Course of each patient from day 1 of blinatumomab"),
                    (
                        gettext(
                            "Swimmer plot: one bar per patient from day 1 with cycles, best "
                            "response, allogeneic SCT, relapse or progression, and death or last "
                            "contact."
                        )
                    ),
                )
            ),
        )
    )
    out.extend(_beyond_sections(frames, figure, ph))
    return [s for s in out if s.tables or s.figures]


def _beyond_sections(frames, figure, ph) -> list[Section]:
    medians = frames.get("landmark_median.csv")
    try:
        landmark = float(medians["landmark_days"].iloc[0])
    except (TypeError, KeyError, IndexError, ValueError):
        landmark = beyond.DEFAULT_LANDMARK_DAYS
    figures = []
    for endpoint in ("efs", "os"):
        for grouping in beyond.LANDMARK_GROUP_LABELS:
            name = "landmark_numbers_at_risk.csv"
            at_risk = _safe(numbers_at_risk, frames, name, endpoint, grouping, name)
            by = fmt.lower_first(fmt.label(grouping))
            description = gettext("%(endpoint)s from day %(day)s, by %(by)s") % {
                "endpoint": fmt.label(endpoint),
                "day": f"{landmark:g}",
                "by": by,
            }
            if at_risk is not None:
                at_risk.title = gettext(
                    "Number at risk (months from the landmark): %(description)s"
                ) % {"description": description}
            figures.append(
                figure(
                    f"landmark_km_{endpoint}_{grouping}",
                    description,
                    (
                        gettext("Kaplan-Meier curves from the landmark: %(description)s.")
                        % {"description": description}
                    ),
                    at_risk,
                )
            )
    return [
        Section(
            "landmark",
            gettext("Beyond the paper: landmark analysis"),
            note=gettext(beyond.NOTES["landmark"]),
            figures=[f for f in figures if f is not None],
            tables=[
                t
                for t in (
                    _safe(
                        landmark_medians,
                        frames,
                        "landmark_median.csv",
                        frames.get("landmark_logrank.csv"),
                    ),
                    _safe(landmark_excluded, frames, "landmark_excluded.csv"),
                    _safe(landmark_survival_table, frames, "landmark_survival_table.csv"),
                )
                if t is not None
            ],
            figures_first=True,
            beyond_paper=True,
        ),
        Section(
            "cox_time_varying",
            gettext("Beyond the paper: time-dependent Cox model"),
            tables=[t for t in [_safe(cox_time_varying, frames, "cox_time_varying.csv", ph)] if t],
            beyond_paper=True,
        ),
        Section(
            "cumulative_incidence",
            gettext("Beyond the paper: competing risks"),
            tables=[
                t for t in [_safe(cumulative_incidence, frames, "cumulative_incidence.csv")] if t
            ],
            beyond_paper=True,
        ),
        Section(
            "response_rate",
            gettext("Beyond the paper: response rate"),
            tables=[t for t in [_safe(response_rates, frames, "response_rate.csv")] if t],
            beyond_paper=True,
        ),
    ]


def all_tables(section_list: list[Section]) -> list[DisplayTable]:
    """Every table of the sections (at-risk tables under their figure included), in order."""
    out = []
    for item in section_list:
        for figure in item.figures:
            if figure.at_risk is not None:
                out.append(figure.at_risk)
        out.extend(item.tables)
    return out
