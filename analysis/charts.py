"""Figure 1 (treatment flow), the forest plot of Table 2 and the swimmer plot.

Like analysis.figures: matplotlib Figure objects on an Agg canvas (no pyplot), drawn from the
run's own tables, so each figure can be redrawn from the files of the run folder (flow.csv,
table2_subgroups.csv, analysis_dataset.csv with cycles.csv). Words come from
analysis.formatting, never column names.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyBboxPatch, Patch

from . import formatting as fmt
from .beyond import DAYS_PER_MONTH  # as analysis.dataset, without Django

# ---------------------------------------------------------------------------------------------
# Figure 1: treatment flow
# ---------------------------------------------------------------------------------------------

# Steps that leave a treated patient outside the evaluable set: one box beside the main column
# lists those flow.csv has (a step added later to this group is listed too).
NOT_EVALUABLE = ["died_before_assessment", "alive_not_assessed", "assessed_not_determinable"]
# The paths through cycle 2 (analysis.tables.cycle2_paths), by the response after cycle 1.
BRANCHES = ["cr_cri_after_cycle1", "persistent_after_cycle1", "not_assessed_after_cycle1"]
THEN = ["second_cycle", "cr_cri_after_cycle2", "pd_after_cycle2"]
AFTER = {branch: [f"{branch}_{then}" for then in THEN] for branch in BRANCHES}
OUTCOMES = ["responders_overall", "second_cycle", "allo_sct_after", "salvage_chemo_after"]
# Inside a branch's "what followed" box the branch goes without saying; the cycle-2 results
# are of those given a second cycle.
FOLLOWED = {
    "second_cycle": "Second cycle of blinatumomab",
    "cr_cri_after_cycle2": "of whom CR/CRi after cycle 2",
    "pd_after_cycle2": "of whom progression after cycle 2",
}
PLACED = {
    "treated",
    "evaluable",
    "assessed_after_cycle1",
    *BRANCHES,
    *NOT_EVALUABLE,
    *(step for steps in AFTER.values() for step in steps),
    *OUTCOMES,
}
FLOW_GID = "flow-box"
BOX = {"boxstyle": "round,pad=0.02,rounding_size=0.08", "linewidth": 1.2}
MAIN_COLOUR, SIDE_COLOUR, OUTCOME_COLOUR = "#e8f0fa", "#f5f5f5", "#eef7ee"


def _of(n: int, total: int | None, what: str) -> str:
    if not total:
        return f"n = {n}"
    return f"n = {n} ({100 * n / total:.1f}% of {total} {what})"


class _Flow:
    def __init__(self, flow: pd.DataFrame):
        self.n = {str(s): int(n) for s, n in zip(flow["step"], flow["n"], strict=True)}
        self.order = [str(s) for s in flow["step"]]

    def has(self, step):
        return step in self.n

    def get(self, step, default=None):
        return self.n.get(step, default)


def flow_diagram(flow: pd.DataFrame) -> Figure:
    """Figure 1 as boxes and arrows from flow.csv (columns step, n), read by step name.

    Treated -> (not evaluable, beside) -> evaluable -> (no assessment after cycle 1, beside)
    -> assessed after cycle 1 -> CR/CRi or persistent disease, and what followed each (a
    second cycle, and the response after it) -> the outcomes of all treated patients
    (responders, second cycle, allogeneic SCT, salvage chemotherapy). A step
    flow.csv lacks is left out with its arrows; a step this layout does not know is listed in
    a box of its own at the bottom, so no count is ever dropped.
    """
    f = _Flow(flow)
    fig = Figure(figsize=(10, 10.6))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 10)
    ax.set_ylim(-1.0, 10.1)
    ax.axis("off")
    boxes: dict[str, tuple[float, float, float, float]] = {}

    def box(key, x, y, lines, width=3.6, colour=MAIN_COLOUR, bold=1, height=None):
        height = height or 0.32 + 0.3 * len(lines)
        patch = FancyBboxPatch(
            (x - width / 2, y - height / 2),
            width,
            height,
            facecolor=colour,
            edgecolor="#34495e",
            gid=f"{FLOW_GID}|{key}",
            **BOX,
        )
        ax.add_patch(patch)
        top = y + height / 2 - 0.16 - 0.15
        for i, line in enumerate(lines):
            ax.text(
                x,
                top - 0.3 * i,
                line,
                ha="center",
                va="center",
                fontsize=10 if i < bold else 9.5,
                fontweight="bold" if i < bold else "normal",
            )
        boxes[key] = (x, y, width, height)

    def arrow(start, end, side=False):
        (x0, y0, _, h0), (x1, y1, w1, h1) = boxes[start], boxes[end]
        if side:  # from the main column's line to a box beside it
            source = (x0, y1)
            target = (x1 - w1 / 2, y1)
        else:
            source = (x0, y0 - h0 / 2)
            target = (x1, y1 + h1 / 2)
        ax.annotate(
            "",
            xy=target,
            xytext=source,
            arrowprops={"arrowstyle": "-|>", "color": "#34495e", "lw": 1.3, "shrinkA": 0},
        )

    treated = f.get("treated")
    evaluable = f.get("evaluable")
    assessed = f.get("assessed_after_cycle1")
    main_x = 3.4
    if f.has("treated"):
        box("treated", main_x, 9.5, [fmt.label("treated"), f"n = {treated}"])
    excluded = [s for s in NOT_EVALUABLE if f.has(s)]
    if excluded:
        total = sum(f.get(s) for s in excluded)
        lines = ["Not evaluable for response", f"n = {total}"] + [
            f"{fmt.label(s)}: {f.get(s)}" for s in excluded
        ]
        box("excluded", 7.7, 8.45, lines, width=4.0, colour=SIDE_COLOUR)
    if f.has("evaluable"):
        box("evaluable", main_x, 7.4, [fmt.label("evaluable"), _of(evaluable, treated, "treated")])
        if f.has("treated"):
            arrow("treated", "evaluable")
            if excluded:
                boxes["_excluded_row"] = (main_x, 8.45, 0, 0)
                arrow("_excluded_row", "excluded", side=True)
    not_assessed = f.get("not_assessed_after_cycle1")
    if not_assessed is None and evaluable is not None and assessed is not None:
        not_assessed = evaluable - assessed
    if f.has("assessed_after_cycle1"):
        box(
            "assessed_after_cycle1",
            main_x,
            5.3,
            [fmt.label("assessed_after_cycle1"), _of(assessed, evaluable, "evaluable")],
        )
        _connect(boxes, arrow, ["evaluable", "treated"], "assessed_after_cycle1")
        if not_assessed is not None and f.has("evaluable"):
            lines = [fmt.label("not_assessed_after_cycle1"), f"n = {not_assessed}"]
            lines += _followed(f, "not_assessed_after_cycle1")
            box("not_assessed_after_cycle1", 7.7, 6.35, lines, width=4.0, colour=SIDE_COLOUR)
            boxes["_not_assessed_row"] = (main_x, 6.35, 0, 0)
            arrow("_not_assessed_row", "not_assessed_after_cycle1", side=True)
    for step, x in (("cr_cri_after_cycle1", 2.05), ("persistent_after_cycle1", 6.35)):
        if not f.has(step):
            continue
        box(step, x, 3.85, [fmt.label(step), _of(f.get(step), assessed, "assessed")], width=3.9)
        _connect(boxes, arrow, ["assessed_after_cycle1", "evaluable", "treated"], step)
        followed = _followed(f, step)
        if followed:
            lines = ["What followed", *followed]
            box(f"{step}_then", x, 2.3, lines, width=3.9, colour=SIDE_COLOUR)
            arrow(step, f"{step}_then")
    outcomes = [s for s in OUTCOMES if f.has(s)]
    if outcomes:
        ax.text(
            5,
            1.2,
            "Outcomes of all treated patients",
            ha="center",
            fontsize=10.5,
            fontweight="bold",
        )
        width = 9.6 / len(outcomes)
        labels = {s: _wrap(fmt.label(s), int(width * 10)) for s in outcomes}
        label_lines = max(len(lines) for lines in labels.values())
        for i, step in enumerate(outcomes):
            total, what = (
                (evaluable, "evaluable") if step == "responders_overall" else (treated, "treated")
            )
            lines = labels[step] + [""] * (label_lines - len(labels[step]))
            lines.append(f"n = {f.get(step)}")
            if total:
                lines.append(f"({100 * f.get(step) / total:.1f}% of {total} {what})")
            box(
                step,
                0.2 + width * (i + 0.5),
                0.1,
                lines,
                width=width - 0.2,
                colour=OUTCOME_COLOUR,
                bold=label_lines,
            )
    unknown = [s for s in f.order if s not in PLACED]
    if unknown:
        lines = ["Other steps"] + [f"{fmt.label(s)}: {f.get(s)}" for s in unknown]
        box("other", 5, -1.5 - 0.15 * len(unknown), lines, width=6, colour=SIDE_COLOUR)
        ax.set_ylim(-2.1 - 0.3 * len(unknown), 10.1)
    return fig


def _followed(f: _Flow, branch: str) -> list[str]:
    """The lines of a branch's "what followed" box: the steps flow.csv has."""
    steps = [(then, f"{branch}_{then}") for then in THEN]
    return [f"{FOLLOWED[then]}: {f.get(step)}" for then, step in steps if f.has(step)]


def _connect(boxes, arrow, parents, child):
    for parent in parents:
        if parent in boxes:
            arrow(parent, child)
            return


def _wrap(text: str, width: int) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines


# ---------------------------------------------------------------------------------------------
# Forest plot of Table 2
# ---------------------------------------------------------------------------------------------

FOREST_GID = "forest-row"


def _comparison(first: pd.Series, second: pd.Series) -> tuple[str, str, str]:
    """(numerator level, reference level, n text) as the odds ratio of the row is oriented."""
    reversed_ = "reversed" in str(second.get("orientation", ""))
    top, bottom = (second, first) if reversed_ else (first, second)
    return (
        fmt.fmt_level(top["level"]),
        fmt.fmt_level(bottom["level"]),
        f"{int(top['n'])} / {int(bottom['n'])}",
    )


def forest_plot(table2: pd.DataFrame) -> Figure:
    """The odds ratios of Table 2 (table2_subgroups.csv) with their 95% CIs on a log scale,
    one row per subgroup, with the comparison, n and P beside each. A ratio that cannot be
    estimated (an empty level) is written, not drawn; a CI beyond the axis ends in an arrow."""
    pairs = []
    for variable, levels in table2.groupby("variable", sort=False):
        first, second = levels.iloc[0], levels.iloc[-1]
        pairs.append((variable, first, second))
    n_rows = len(pairs)
    fig = Figure(figsize=(12, 1.2 + 0.42 * n_rows))
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(1, 3, width_ratios=[5.4, 3.6, 2.6], wspace=0.02)
    left, ax, right = (fig.add_subplot(grid[i]) for i in range(3))
    y = np.arange(n_rows)[::-1]
    estimates = pd.to_numeric(pd.Series([s["odds_ratio"] for _, _, s in pairs]), errors="coerce")
    lowers = pd.to_numeric(pd.Series([s["ci_lower"] for _, _, s in pairs]), errors="coerce")
    uppers = pd.to_numeric(pd.Series([s["ci_upper"] for _, _, s in pairs]), errors="coerce")
    finite = pd.concat([lowers, uppers, estimates]).replace([np.inf, -np.inf], np.nan).dropna()
    finite = finite[finite > 0]
    low = max(min(finite.min() if len(finite) else 0.1, 0.5) / 1.3, 0.01)
    high = min(max(finite.max() if len(finite) else 10, 2) * 1.3, 100)
    for row, (variable, first, second) in zip(y, pairs, strict=True):
        numerator, reference, counts = _comparison(first, second)
        left.text(0, row + 0.14, fmt.label(variable), va="center", fontsize=9.5, fontweight="bold")
        left.text(0.02, row - 0.2, f"{numerator} vs {reference}", va="center", fontsize=8.5)
        left.text(0.97, row, counts, va="center", ha="right", fontsize=9)
        estimate, lower, upper = (
            float(pd.to_numeric(second[c], errors="coerce"))
            for c in ("odds_ratio", "ci_lower", "ci_upper")
        )
        if math.isnan(estimate):
            right.text(0.02, row, "not estimable", va="center", fontsize=9, style="italic")
        else:
            shown_low, shown_high = max(lower, low), min(upper, high)
            ax.plot(
                [shown_low, shown_high],
                [row, row],
                color="#2c3e50",
                lw=1.6,
                gid=f"{FOREST_GID}|{variable}",
            )
            for clipped, at, marker in ((lower < low, low, "<"), (upper > high, high, ">")):
                if clipped:
                    ax.plot([at], [row], marker=marker, color="#2c3e50", markersize=6)
            ax.plot([estimate], [row], marker="s", color="#1f5fa8", markersize=7)
            right.text(
                0.02,
                row,
                fmt.fmt_or_ci(estimate, lower, upper),
                va="center",
                fontsize=9,
            )
        right.text(0.98, row, fmt.fmt_p(second["p_value"]), va="center", ha="right", fontsize=9)
    header = n_rows - 0.25
    left.text(0, header, "Subgroup (first vs second level)", fontsize=9.5, fontweight="bold")
    left.text(0.97, header, "n (first / second)", ha="right", fontsize=9.5, fontweight="bold")
    right.text(0.02, header, "OR (95% CI)", fontsize=9.5, fontweight="bold")
    right.text(0.98, header, "P", ha="right", fontsize=9.5, fontweight="bold")
    for text_ax in (left, right):
        text_ax.set_xlim(0, 1)
        text_ax.set_ylim(-0.7, n_rows + 0.2)
        text_ax.axis("off")
    ax.set_xscale("log")
    ax.set_xlim(low, high)
    ax.set_ylim(-0.7, n_rows + 0.2)
    ax.axvline(1, color="#7f8c8d", lw=1, linestyle="--")
    ax.set_yticks([])
    ax.spines[["left", "right", "top"]].set_visible(False)
    ticks = [
        t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100) if low <= t <= high
    ]
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel(
        "Odds ratio of response (log scale)\n\u2190 second level responds more    "
        "first level responds more \u2192",
        fontsize=8.5,
    )
    fig.suptitle("Odds ratio of response by subgroup (Table 2), with 95% CI", fontsize=11.5)
    return fig


# ---------------------------------------------------------------------------------------------
# Swimmer plot
# ---------------------------------------------------------------------------------------------

MAX_SWIMMERS = 60
SWIMMER_SEED = 20180926  # the paper's publication date: a fixed, stated sample
SWIMMER_GID = "swimmer-bar"
RESPONSE_COLOURS = {  # Okabe-Ito, distinguishable with colour-vision deficiency
    "CR": "#009E73",
    "CRi": "#56B4E9",
    "NR": "#E69F00",
    "PD": "#D55E00",
    "NE": "#999999",
}
RESPONSE_NAMES = {
    "CR": "CR",
    "CRi": "CRi",
    "NR": "No response",
    "PD": "Progression",
    "NE": "Not evaluable",
}


def swimmer_sample(dataset: pd.DataFrame, limit: int = MAX_SWIMMERS) -> pd.DataFrame:
    """The patients drawn: all of them up to `limit`, else a random sample of `limit` (fixed
    seed, so a run redrawn gives the same figure)."""
    if len(dataset) <= limit:
        return dataset
    return dataset.sample(n=limit, random_state=SWIMMER_SEED)


def _days(series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)


def swimmer_plot(dataset: pd.DataFrame, cycles: pd.DataFrame) -> Figure:
    """One bar per patient from day 1 to death or last contact (months), coloured by best
    response, with the blinatumomab cycles as thick segments and markers for the first CR/CRi,
    the allogeneic SCT, relapse or progression, and death (or an arrow: alive at last
    contact). Above MAX_SWIMMERS patients a stated random sample is drawn."""
    total = len(dataset)
    shown = swimmer_sample(dataset)
    os_days = _days(shown["os_days"])
    order = np.argsort(-np.nan_to_num(os_days, nan=-1), kind="stable")
    shown = shown.iloc[order].reset_index(drop=True)
    n = len(shown)
    fig = Figure(figsize=(10, 2.2 + 0.2 * max(n, 5)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    y = np.arange(n)[::-1].astype(float)
    m = DAYS_PER_MONTH
    best = shown["best_response"].where(shown["best_response"].notna(), "NE").astype(str)
    colours = best.map(RESPONSE_COLOURS).fillna(RESPONSE_COLOURS["NE"]).to_numpy()
    end = _days(shown["os_days"]) / m
    known = ~np.isnan(end)
    # One collection per layer (not an artist per patient): at 60 patients the figure is drawn
    # in a fraction of the time, and the SVG stays small.
    ax.add_collection(
        LineCollection(
            [[(0, row), (stop, row)] for row, stop in zip(y[known], end[known], strict=True)],
            colors=colours[known],
            linewidths=2.2,
            capstyle="butt",
            gid=SWIMMER_GID,
        )
    )
    row_of = dict(zip(shown["study_id"], y, strict=True))
    colour_of = dict(zip(shown["study_id"], colours, strict=True))
    end_of = dict(zip(shown["study_id"], end, strict=True))
    drawn = cycles[cycles["study_id"].isin(row_of)] if len(cycles) else cycles
    if len(drawn):
        starts = _days(drawn["start_day"]) / m
        stops = _days(drawn["end_day"]) / m
        ids = drawn["study_id"].to_numpy()
        stops = np.where(np.isnan(stops), [end_of[i] for i in ids], stops)
        rows = np.array([row_of[i] for i in ids])
        ax.add_collection(
            LineCollection(
                [[(a, r), (b, r)] for a, b, r in zip(starts, stops, rows, strict=True)],
                colors=[colour_of[i] for i in ids],
                linewidths=7.5,
                capstyle="butt",
                gid=f"{SWIMMER_GID}-cycles",
            )
        )
        ax.plot(starts, rows, ls="none", marker="|", color="white", markersize=8, mew=1.2)
    markers = [
        (
            _days(shown["response_days"]) / m,
            {"marker": "^", "color": "white", "mec": "black", "ms": 6.5},
        ),
        (
            _days(shown["sct_days"]) / m,
            {"marker": "D", "color": "#CC79A7", "mec": "black", "ms": 6},
        ),
        (
            np.where(_days(shown["efs_cause"]) == 1, _days(shown["efs_days"]) / m, np.nan),
            {"marker": "x", "color": "black", "ms": 6.5, "mew": 1.6},
        ),
    ]
    died = _days(shown["os_event"]) == 1
    markers += [
        (np.where(died, end, np.nan), {"marker": "o", "color": "black", "ms": 5.5}),
        (np.where(~died, end, np.nan), {"marker": ">", "color": "black", "mfc": "white", "ms": 6}),
    ]
    for x, style in markers:
        shown_at = ~np.isnan(x)
        ax.plot(x[shown_at], y[shown_at], ls="none", **style)
    ax.set_xlim(0, max(float(np.nanmax(end)) if known.any() else 1, 1) * 1.02)
    ax.set_yticks(y)
    ax.set_yticklabels(shown["study_id"].astype(str), fontsize=7 if n > 30 else 8)
    ax.set_ylim(-0.8, n - 0.2)
    ax.set_xlabel("Months from day 1 of blinatumomab")
    ax.spines[["right", "top"]].set_visible(False)
    ax.grid(axis="x", color="#dddddd", lw=0.6)
    title = "Course of each patient from day 1 of blinatumomab"
    if n < total:
        title += (
            f"\nA random sample of {n} of {total:,} patients (fixed seed); "
            "every patient is in the run's CSVs"
        )
    ax.set_title(title, fontsize=11)
    responses = [r for r in RESPONSE_COLOURS if r in set(shown["best_response"].fillna("NE"))]
    handles = [
        Patch(color=RESPONSE_COLOURS[r], label=f"Best response: {RESPONSE_NAMES[r]}")
        for r in responses
    ]
    handles += [
        Line2D([], [], color="#555555", lw=7.5, label="Blinatumomab cycle (thick)"),
        Line2D([], [], ls="none", marker="^", color="white", mec="black", label="First CR/CRi"),
        Line2D([], [], ls="none", marker="D", color="#CC79A7", mec="black", label="Allogeneic SCT"),
        Line2D(
            [], [], ls="none", marker="x", color="black", mew=1.6, label="Relapse or progression"
        ),
        Line2D([], [], ls="none", marker="o", color="black", label="Death"),
        Line2D(
            [], [], ls="none", marker=">", color="black", mfc="white", label="Alive at last contact"
        ),
    ]
    axes_height = fig.get_figheight() * (fig.subplotpars.top - fig.subplotpars.bottom)
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.55 / axes_height),
        ncol=3,
        frameon=False,
        fontsize=8.5,
    )
    return fig


def _value(record, column) -> float:
    value = record.get(column) if hasattr(record, "get") else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
