"""The paper's printed numbers beside the registry's: reproduction.csv.

`analysis/data/paper_printed.csv` holds every number the paper prints that the registry can
recompute (and a few it cannot, marked so), each with where it is printed and a `key` saying which
figure of a run it is compared with. `reproduction_table()` takes a run's tables, its analysis
dataset and its adverse events and gives one row per printed value: the value as printed, the
registry's value written the same way (same decimals), whether they agree at the printed
precision, and the note of the data file (the paper's inconsistencies and how a figure is read).

Plain pandas: no Django, so it is tested on frames alone. A number agrees when the registry's
value rounded half up to the printed number of decimals is the printed number; a printed
"< 0.001" agrees with any P below 0.001.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from . import survival, tables

PRINTED_CSV = Path(__file__).resolve().parent / "data" / "paper_printed.csv"
COLUMNS = ["source", "item", "printed", "recomputed", "agrees", "note", "location", "key"]
YES, NO, NOT_APPLICABLE = "yes", "no", "n/a"

NUMBER = re.compile(r"\d+(?:\.\d+)?")
P_BELOW = "< 0.001"

# "Neurologic adverse events" of the Results text: the Table 3 rows that are neurologic.
NEUROLOGIC_ROWS = (
    "Encephalopathy",
    "Dizziness",
    "Somnolence",
    "Tremor",
    "Altered state of consciousness",
    "Confusion",
    "Ataxia",
    "Aphasia",
)
CRS = "Cytokine release syndrome"
INFECTIONS_SOC = "Infections and infestations"


def load_printed(path=PRINTED_CSV) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def printed_numbers(key: str, printed: pd.DataFrame | None = None) -> list[float]:
    """The numbers printed for `key` in the data file, in their printed order ("46.9% (15/32)"
    gives [46.9, 15, 32]); tests and the twin's builder read the paper's numbers this way."""
    printed = load_printed() if printed is None else printed
    rows = printed[printed["key"] == key]
    if rows.empty:
        raise KeyError(f"no printed value with key {key!r}")
    return [float(x) for x in NUMBER.findall(rows["printed"].iloc[0])]


def _round(value: float, decimals: int) -> Decimal:
    return Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-decimals), ROUND_HALF_UP)


def _decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def compare(printed: str, values, kind: str = "number") -> tuple[str, str]:
    """(recomputed text, agrees) for one printed value and the registry's numbers in the order
    the printed text has them; values may be longer (extra ones unused) or hold None/NaN."""
    values = list(values or [])
    if kind == "p_value":
        p = values[0] if values else None
        if p is None or _missing(p):
            return "NA", NO
        shown = P_BELOW if p < 0.001 else f"{_round(p, 3)}"
        if printed.strip().startswith("<"):
            return shown, YES if p < 0.001 else NO
        return shown, YES if shown == printed.strip() else NO
    numbers = list(NUMBER.finditer(printed))
    agrees, pieces, end = True, [], 0
    for i, match in enumerate(numbers):
        pieces.append(printed[end : match.start()])
        value = values[i] if i < len(values) else None
        if value is None or _missing(value):
            pieces.append("NA")
            agrees = False
        else:
            rounded = _round(value, _decimals(match.group()))
            pieces.append(str(rounded))
            agrees &= rounded == Decimal(match.group())
        end = match.end()
    pieces.append(printed[end:])
    text = "".join(pieces)
    if kind != "number":
        return text, NOT_APPLICABLE
    return text, YES if agrees and numbers else NO


def _missing(value) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


class Run:
    """A run's tables and frames, with the lookups the keys of paper_printed.csv use."""

    def __init__(self, results: dict[str, pd.DataFrame], dataset: pd.DataFrame, events):
        self.results, self.df, self.ae = results, dataset, events
        self.n = len(dataset)
        self._events, self._worst, self._table3_rows = None, {}, None

    def table(self, name) -> pd.DataFrame:
        return self.results.get(name, pd.DataFrame())

    def values(self, key: str) -> list | None:
        """The run's numbers for a key of the data file; None where the run lacks the table or
        column it needs, or has no patient to count (the row then reads NA, not agreeing)."""
        kind, _, rest = key.partition(":")
        try:
            with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 is NaN: NA
                if kind == "text":
                    return TEXT[rest](self)
                return getattr(self, f"_{kind}")(*rest.split("|"))
        except (KeyError, IndexError, ZeroDivisionError):
            return None

    # --- the run's tables ---------------------------------------------------------------------

    def _table1(self, characteristic, level):
        t = self.table("table1.csv")
        row = t[(t["characteristic"] == characteristic) & (t["level"] == level)]
        if row.empty:
            return None
        n, denominator = int(row["n"].iloc[0]), int(row["denominator"].iloc[0])
        return [n, 100 * n / denominator if denominator else math.nan]

    def _median(self, column):
        values = pd.to_numeric(self.df[column], errors="coerce").dropna()
        return [values.median(), values.min(), values.max()] if len(values) else None

    def _table2(self, variable, level):
        row = self._table2_row(variable, level)
        return None if row is None else [100 * row["rate"], row["responders"], row["n"]]

    def _table2_row(self, variable, level=None):
        t = self.table("table2_subgroups.csv")
        rows = t[t["variable"] == variable]
        if level is not None:
            rows = rows[rows["level"].astype(str) == level]
        else:
            rows = rows[rows["odds_ratio"].notna() | rows["p_value"].notna()]
        return None if rows.empty else rows.iloc[-1]

    def _table2_or(self, variable):
        row = self._table2_row(variable)
        return None if row is None else [row["odds_ratio"], row["ci_lower"], row["ci_upper"]]

    def _table2_p(self, variable):
        row = self._table2_row(variable)
        return None if row is None else [row["p_value"]]

    def _table3(self, row, band):
        # A hundred keys ask Table 3: its rows indexed once (the first row of each name, as a
        # filter's iloc[0]) instead of a filter of the frame per key.
        if self._table3_rows is None:
            t = self.table("table3_adverse_events.csv")
            names = t["table3_row"].to_numpy() if "table3_row" in t else []
            self._table3_rows = t, {}
            for position, name in enumerate(names):
                self._table3_rows[1].setdefault(name, position)
        t, positions = self._table3_rows
        if row not in positions:
            return None
        at = positions[row]
        return [t[f"{band}_n"].to_numpy()[at], t[f"{band}_pct"].to_numpy()[at]]

    def _flow(self, step):
        t = self.table("flow.csv")
        found = t[t["step"] == step]
        return None if found.empty else [int(found["n"].iloc[0])]

    def _survival(self, endpoint, grouping, group):
        t = self.table("survival_median.csv")
        found = t[
            (t["endpoint"] == endpoint)
            & (t["grouping"] == grouping)
            & (t["group"].astype(str) == group)
        ]
        return None if found.empty else found.iloc[0]

    def _km_median(self, endpoint, grouping, group):
        row = self._survival(endpoint, grouping, group)
        return None if row is None else [row["median_months"]]

    def _km_ci(self, endpoint, grouping, group):
        row = self._survival(endpoint, grouping, group)
        return None if row is None else [row["ci_lower"], row["ci_upper"]]

    def _logrank(self, endpoint, grouping):
        t = self.table("survival_logrank.csv")
        found = t[(t["endpoint"] == endpoint) & (t["grouping"] == grouping)]
        return None if found.empty else [found["p_value"].iloc[0]]

    # --- facts of the dataset and the adverse events ------------------------------------------

    def flag(self, column) -> pd.Series:
        return tables.is_true(self.df[column]) if column in self.df else self.false()

    def false(self) -> pd.Series:
        return pd.Series(False, index=self.df.index)

    def equals(self, column, *codes) -> pd.Series:
        if column not in self.df:
            return self.false()
        return self.df[column].isin(codes)

    def pct(self, count, denominator=None) -> list:
        denominator = self.n if denominator is None else denominator
        return [count, 100 * count / denominator if denominator else math.nan]

    def _event_columns(self) -> dict:
        """The events' columns as worst_grade() filters them, computed once per run (a dozen
        keys ask; at 100,000 patients each pass over the half-million events took a second)."""
        if self._events is None:
            ae = self.ae
            codes, ids = pd.factorize(ae["study_id"], sort=True)
            self._events = {
                "term": ae["ctcae_term"].str.casefold().to_numpy(),
                "soc": ae["soc"].str.casefold().to_numpy(),
                "soc_exact": ae["soc"].to_numpy(),
                "term_exact": ae["ctcae_term"].to_numpy(),
                "cycle": pd.to_numeric(ae["cycle"], errors="coerce").to_numpy(),
                "grade": pd.to_numeric(ae["grade"]).to_numpy(),
                "codes": codes,
                "ids": ids,
            }
        return self._events

    def worst_grade(self, rows=None, soc=None, term=None, cycle=None) -> pd.Series:
        """Worst grade per study ID among the events of Table 3 `rows`, a SOC or a term."""
        ae = self.ae
        if ae is None or ae.empty:
            return pd.Series(dtype=float)
        key = (None if rows is None else tuple(rows), soc, term, cycle)
        if key in self._worst:
            return self._worst[key].copy()
        events = self._event_columns()
        mask = np.ones(len(ae), dtype=bool)
        if rows is not None:
            table_map = tables.parse_table3_map(_table3_map())
            wanted = table_map[table_map["table3_row"].isin(rows)]
            terms = {t.casefold() for ts in wanted["terms"] for t in ts}
            socs = {s.casefold() for s in wanted["soc"].dropna()}
            mask &= (
                pd.Series(events["term"]).isin(terms).to_numpy()
                | pd.Series(events["soc"]).isin(socs).to_numpy()
            )
        if soc is not None:
            mask &= events["soc_exact"] == soc
        if term is not None:
            mask &= events["term_exact"] == term
        if cycle is not None:
            mask &= events["cycle"] == cycle
        worst = pd.Series(events["grade"][mask]).groupby(events["codes"][mask]).max()
        worst.index = pd.Index(events["ids"][worst.index], name="study_id")
        self._worst[key] = worst
        return worst.copy()

    def patients(self, study_ids) -> pd.Series:
        return self.df["study_id"].isin(list(study_ids))


def _table3_map():
    from registry.ctcae import TABLE3_MAP_CSV  # a data file path; no Django needed

    return TABLE3_MAP_CSV


def _responders(run: Run) -> pd.Series:
    return run.flag("evaluable") & run.flag("responder")


def _after(run: Run, cycle: int, *codes) -> pd.Series:
    return run.equals(f"response_after_cycle{cycle}", *codes)


def _cycle2_paths(run: Run, first: pd.Series):
    """Of the patients `first`: given cycle 2, and of those the response after it."""
    second = first & (pd.to_numeric(run.df["cycles_given"]) >= 2)
    return second


def _followup_median(run: Run):
    months = pd.to_numeric(run.df["os_months"])
    alive = 1 - pd.to_numeric(run.df["os_event"])
    return [survival.km_median(months, alive)[0]]


def _fisher_crs_dexamethasone(run: Run):
    crs = run.patients(run.worst_grade(term=CRS).index)
    high = run.df["dexamethasone_gt_80"]
    known = high.notna()
    high = tables.is_true(high)
    a = int((known & high & crs).sum())
    b = int((known & high & ~crs).sum())
    c = int((known & ~high & crs).sum())
    d = int((known & ~high & ~crs).sum())
    return [tables.fisher_exact_two_sided(a, b, c, d)]


def _neurologic(run: Run, low=1, high=5):
    worst = run.worst_grade(rows=NEUROLOGIC_ROWS)
    return worst[(worst >= low) & (worst <= high)]


def _cns_neurologic_grades(run: Run):
    cns = set(run.df.loc[run.flag("cns_disease"), "study_id"])
    worst = run.worst_grade(rows=NEUROLOGIC_ROWS)
    return sorted(int(g) for sid, g in worst.items() if sid in cns)


def _by_site(run: Run, site):
    group = run.flag("evaluable") & run.equals("relapse_site", site)
    k = int((group & run.flag("responder")).sum())
    n = int(group.sum())
    return [k, 100 * k / n if n else math.nan, n]


TEXT: dict[str, Callable[[Run], list | None]] = {
    "institutions": lambda r: [r.df["institution"].nunique()],
    "age_65_or_older_pct": lambda r: [
        100 * (pd.to_numeric(r.df["age_years"]) >= 65).sum() / r.df["age_years"].notna().sum()
    ],
    "cns_disease": lambda r: [int(r.flag("cns_disease").sum())],
    "cns_with_marrow_relapse": lambda r: [
        int((r.flag("cns_disease") & r.equals("relapse_site", "marrow", "both")).sum())
    ],
    "cyto_start_known": lambda r: [int(r.df["cyto_risk_start"].notna().sum())],
    "responders_of_evaluable": lambda r: r.pct(
        int(_responders(r).sum()), int(r.flag("evaluable").sum())
    ),
    "responders_rate_of_evaluable": lambda r: [
        100 * _responders(r).sum() / r.flag("evaluable").sum(),
        int(_responders(r).sum()),
        int(r.flag("evaluable").sum()),
    ],
    "sct_among_responders": lambda r: [int((_responders(r) & r.flag("allo_sct_after")).sum())],
    "crs_grade3plus_pct": lambda r: [
        100 * (r.worst_grade(term=CRS) >= 3).sum() / r.n if r.n else math.nan
    ],
    "neurologic_grade_3_4_pct": lambda r: [100 * len(_neurologic(r, 3, 4)) / r.n],
    "fatal_infection_cycle1": lambda r: [
        int((r.worst_grade(soc=INFECTIONS_SOC, cycle=1) == 5).sum())
    ],
    "best_cr": lambda r: [int(r.equals("best_response", "CR").sum())],
    "best_cri": lambda r: [int(r.equals("best_response", "CRi").sum())],
    "cr_cri_after_cycle1_of_evaluable": lambda r: r.pct(
        int((r.flag("evaluable") & _after(r, 1, "CR", "CRi")).sum()),
        int(r.flag("evaluable").sum()),
    ),
    "cr_after_cycle1": lambda r: [int(_after(r, 1, "CR").sum())],
    "cri_after_cycle1": lambda r: [int(_after(r, 1, "CRi").sum())],
    "cr_after_cycle2_among_persistent": lambda r: r.pct(
        int((_cycle2_paths(r, _after(r, 1, "NR", "PD")) & _after(r, 2, "CR")).sum()),
        int(_cycle2_paths(r, _after(r, 1, "NR", "PD")).sum()),
    ),
    "salvage_chemo_non_responders": lambda r: [
        int((r.flag("salvage_chemo_after") & ~r.flag("responder")).sum())
    ],
    "responders_marrow_and_emd": lambda r: _by_site(r, "both"),
    "responders_emd_only": lambda r: _by_site(r, "extramedullary"),
    "cns_cr_after_cycle1": lambda r: [int((r.flag("cns_disease") & _after(r, 1, "CR")).sum())],
    "cns_pd_after_cycle1": lambda r: [int((r.flag("cns_disease") & _after(r, 1, "PD")).sum())],
    "followup_median": _followup_median,
    "progressions": lambda r: r.pct(int((pd.to_numeric(r.df["efs_cause"]) == 1).sum())),
    "deaths": lambda r: r.pct(int(pd.to_numeric(r.df["os_event"]).sum())),
    "infection_grade3plus": lambda r: r.pct(int((r.worst_grade(soc=INFECTIONS_SOC) >= 3).sum())),
    "crs_by_dexamethasone_p": _fisher_crs_dexamethasone,
    "severe_crs_high_dexamethasone": lambda r: [
        int(
            (
                r.patients(r.worst_grade(term=CRS).pipe(lambda g: g[g >= 3]).index)
                & r.flag("dexamethasone_gt_80")
            ).sum()
        )
    ],
    "neurologic_any": lambda r: r.pct(len(_neurologic(r))),
    "neurologic_grade_3_4": lambda r: r.pct(len(_neurologic(r, 3, 4))),
    "severe_neurologic_cycle1_no_cycle2": lambda r: [
        int(
            (
                r.patients(
                    r.worst_grade(rows=NEUROLOGIC_ROWS, cycle=1).pipe(lambda g: g[g >= 3]).index
                )
                & (pd.to_numeric(r.df["cycles_given"]) == 1)
            ).sum()
        )
    ],
    "grade4_neurologic_cycle2_then_sct": lambda r: [
        int(
            (
                r.patients(
                    r.worst_grade(rows=NEUROLOGIC_ROWS, cycle=2).pipe(lambda g: g[g == 4]).index
                )
                & r.flag("allo_sct_after")
            ).sum()
        )
    ],
    "cns_neurologic": lambda r: [len(_cns_neurologic_grades(r))],
    "cns_neurologic_worst_grades": _cns_neurologic_grades,
}


def reproduction_table(
    results: dict[str, pd.DataFrame],
    dataset: pd.DataFrame,
    adverse_events: pd.DataFrame,
    printed: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per printed value: printed, recomputed (written the same way), agrees
    (yes / no / n/a where the registry does not hold the figure or computes it another way) and
    the note of the data file."""
    printed = load_printed() if printed is None else printed
    run = Run(results, dataset, adverse_events)
    rows = []
    for entry in printed.itertuples(index=False):
        values = run.values(entry.key) if entry.key else None
        if entry.kind == "not_recorded":
            recomputed, agrees = "", NOT_APPLICABLE
        else:
            recomputed, agrees = compare(entry.printed, values, entry.kind)
        rows.append(
            {
                "source": entry.source,
                "item": entry.item,
                "printed": entry.printed,
                "recomputed": recomputed,
                "agrees": agrees,
                "note": entry.note,
                "location": entry.location,
                "key": entry.key,
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def summary(frame: pd.DataFrame) -> dict:
    """Counts for the heading of the side-by-side table."""
    agrees = frame["agrees"]
    return {
        "rows": len(frame),
        "agree": int((agrees == YES).sum()),
        "differ": int((agrees == NO).sum()),
        "not_applicable": int((agrees == NOT_APPLICABLE).sum()),
        "differ_with_note": int(((agrees == NO) & (frame["note"].fillna("") != "")).sum()),
    }


MARKS = {YES: ("✓", "agrees"), NO: ("✗", "differs"), NOT_APPLICABLE: ("–", "not comparable")}


def report_html(frame: pd.DataFrame) -> str:
    """The side-by-side table for report.html (the dashboard renders the same rows with
    templates/analysis/_reproduction.html)."""
    frame = frame.reindex(columns=COLUMNS).fillna("")
    counts = summary(frame)
    parts = [
        "<p>{rows} printed values: {agree} agree, {differ} differ ({differ_with_note} of them "
        "with a note explaining a paper inconsistency), {not_applicable} not comparable."
        "</p>".format(**counts),
        "<table class='table table-sm reproduction'><thead><tr><th>Source</th><th>Item</th>"
        "<th>Printed</th><th>Recomputed</th><th>Agrees</th><th>Note</th></tr></thead><tbody>",
    ]
    for row in frame.itertuples(index=False):
        mark, label = MARKS.get(row.agrees, ("?", row.agrees))
        parts.append(
            f"<tr class='agrees-{html.escape(str(row.agrees))}'>"
            f"<td>{html.escape(row.source)}</td><td>{html.escape(row.item)}</td>"
            f"<td>{html.escape(row.printed)}</td><td>{html.escape(str(row.recomputed))}</td>"
            f"<td title='{label}'>{mark} {label}</td><td>{html.escape(str(row.note))}</td></tr>"
        )
    parts.append("</tbody></table>")
    return "\n".join(parts)
