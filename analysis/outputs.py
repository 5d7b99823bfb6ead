"""Write every output of an analysis run into a directory.

Used by the Celery task and by `manage.py run_analysis --out DIR`, so both give the same files.
Pure with respect to the database: it takes a RegistrySnapshot and writes files.
"""

import base64
import html
import json
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import pyreadstat
from openpyxl import Workbook
from threadpoolctl import threadpool_limits

from exchange.safe import safe_frame
from registry.ctcae import TABLE3_MAP_CSV

from . import beyond, figures, reproduction, survival, tables
from .dataset import DAYS_PER_MONTH, DEFINITIONS, VARIABLES, Cuts, RegistrySnapshot

logger = logging.getLogger(__name__)

TABLE_FILES = {
    "table1.csv": "Table 1. Characteristics at blinatumomab start",
    "table2_subgroups.csv": "Table 2. Response rate by subgroup (odds ratios)",
    "table3_adverse_events.csv": "Table 3. Adverse events by worst grade (paper's rows)",
    "adverse_events_by_term.csv": "Adverse events by CTCAE term and worst grade",
    "flow.csv": "Figure 1. Treatment flow",
    "survival_median.csv": "Median EFS and OS (Kaplan-Meier)",
    "survival_logrank.csv": "Log-rank tests",
    "survival_table.csv": "Kaplan-Meier survival tables",
    "numbers_at_risk.csv": "Numbers at risk",
    "cox.csv": "Cox proportional hazards models (Efron ties)",
    # Beyond the paper (analysis/beyond.py; README "Beyond the paper").
    "landmark_median.csv": "Landmark analysis: median EFS and OS from the landmark",
    "landmark_logrank.csv": "Landmark analysis: log-rank tests",
    "landmark_excluded.csv": "Landmark analysis: patients included and excluded",
    "landmark_numbers_at_risk.csv": "Landmark analysis: numbers at risk (months from landmark)",
    "landmark_survival_table.csv": "Landmark analysis: Kaplan-Meier tables",
    "cox_time_varying.csv": "Cox model with SCT and response as time-varying covariates",
    "cumulative_incidence.csv": "Cumulative incidence of relapse and non-relapse mortality",
    "response_rate.csv": "Response rate: exact and Wilson 95% CIs, test against a reference rate",
    # analysis/reproduction.py; shown as its own side-by-side table (REPRODUCTION).
    "reproduction.csv": "The paper's printed numbers beside the registry's",
}
REPRODUCTION = "reproduction.csv"
# The plain-language note of each "beyond the paper" analysis goes before its first table.
NOTE_BEFORE = {
    "landmark_median.csv": "landmark",
    "cox_time_varying.csv": "cox_time_varying",
    "cumulative_incidence.csv": "cumulative_incidence",
    "response_rate.csv": "response_rate",
}
# Long step-function tables: collapsed on the dashboard and in the report (full in the CSV).
COLLAPSED_TABLES = ["landmark_survival_table.csv", "cumulative_incidence.csv"]
ENDPOINTS = {"efs": "Event-free survival", "os": "Overall survival"}
GROUPINGS = {
    "overall": (None, None),
    "responder": ("responder", {0: "Non-responders", 1: "Responders (CR/CRi)"}),
    "allo_sct_after": ("allo_sct_after", {0: "No subsequent allo-SCT", 1: "Subsequent allo-SCT"}),
}
AT_RISK_MONTHS = [0, 3, 6, 9, 12, 15, 18]


def default_parameters() -> dict:
    return {
        "cuts": asdict(Cuts()),
        "test": "fisher",
        "landmark_days": beyond.DEFAULT_LANDMARK_DAYS,
        "reference_rate": beyond.DEFAULT_REFERENCE_RATE,
    }


def _landmark_days(parameters) -> float:
    return parameters.get("landmark_days", beyond.DEFAULT_LANDMARK_DAYS)


def notes() -> dict[str, str]:
    """Table file -> the note shown before it (dashboard and report)."""
    return {name: beyond.NOTES[key] for name, key in NOTE_BEFORE.items()}


def _cuts(parameters) -> Cuts:
    return Cuts(**parameters.get("cuts", {}))


def compute_tables(snapshot: RegistrySnapshot, parameters: dict) -> dict[str, pd.DataFrame]:
    """Every table of the run, by file name."""
    out = paper_tables(snapshot, parameters)
    out.update(beyond_tables(snapshot, parameters))
    out[REPRODUCTION] = reproduction.reproduction_table(
        out, snapshot.dataset, snapshot.adverse_events
    )
    return out


def paper_tables(snapshot: RegistrySnapshot, parameters: dict) -> dict[str, pd.DataFrame]:
    """The paper's tables: Tables 1-3, the flow, Kaplan-Meier, log-rank and Cox."""
    df, ae = snapshot.dataset, snapshot.adverse_events
    cuts = _cuts(parameters)
    n = len(df)
    out = {
        "table1.csv": tables.table1(df, blasts_cut_pct=cuts.marrow_blasts_pct),
        "table2_subgroups.csv": tables.table2_subgroups(
            df,
            test=parameters.get("test", "fisher"),
            age_cut=cuts.age_years,
            diagnosis_cut_months=cuts.months_from_diagnosis,
            blasts_cut_pct=cuts.marrow_blasts_pct,
            dexamethasone_cut_mg=cuts.dexamethasone_mg,
        ),
        "table3_adverse_events.csv": tables.table3_adverse_events(
            ae, n, tables.parse_table3_map(TABLE3_MAP_CSV)
        ),
        "adverse_events_by_term.csv": tables.ae_by_term(ae, n),
        "flow.csv": tables.treatment_flow(df),
    }
    surv = survival.survival_outputs(df)
    out["survival_median.csv"] = surv.medians
    out["survival_logrank.csv"] = surv.logrank
    out["cox.csv"] = surv.cox
    km_rows, risk_rows = [], []
    for endpoint, _label in ENDPOINTS.items():
        duration, event = f"{endpoint}_months", f"{endpoint}_event"
        for grouping, (column, _labels) in GROUPINGS.items():
            # Only the columns used: splitting the whole dataset copied ~40 columns per group.
            data = df[[duration, event] + ([column] if column else [])]
            if column is None:
                parts = [("all", data)]
            else:
                labels = survival.group_labels(data[column])
                parts = [(labels[v], g) for v, g in data.groupby(column)]
            for group, part in parts:
                if part.empty:
                    continue
                km = survival.km_table(part[duration], part[event])
                km.insert(0, "group", group)
                km.insert(0, "grouping", grouping)
                km.insert(0, "endpoint", endpoint)
                km_rows.append(km)
                risk = survival.numbers_at_risk(part[duration], part[event], AT_RISK_MONTHS)
                risk.insert(0, "group", group)
                risk.insert(0, "grouping", grouping)
                risk.insert(0, "endpoint", endpoint)
                risk_rows.append(risk)
    out["survival_table.csv"] = pd.concat(km_rows, ignore_index=True) if km_rows else pd.DataFrame()
    out["numbers_at_risk.csv"] = (
        pd.concat(risk_rows, ignore_index=True) if risk_rows else pd.DataFrame()
    )
    return out


def beyond_tables(snapshot: RegistrySnapshot, parameters: dict) -> dict[str, pd.DataFrame]:
    """The analyses beyond the paper (analysis/beyond.py)."""
    cuts = _cuts(parameters)
    extra = beyond.beyond_outputs(
        snapshot.dataset,
        landmark_days=_landmark_days(parameters),
        reference_rate=parameters.get("reference_rate", beyond.DEFAULT_REFERENCE_RATE),
        cuts=tables.SubgroupCuts(**asdict(cuts)),
        at_risk_months=AT_RISK_MONTHS,
    )
    return dict(extra.tables)


DATASET_FORMATS = ["csv", "xlsx", "sav", "dta"]


def write_dataset(df: pd.DataFrame, out: Path) -> list[str]:
    """The analysis dataset as CSV, Excel, SPSS and Stata, with variable and value labels; text
    cells that a spreadsheet would run as a formula are quoted in the CSV and the XLSX."""
    return [write_dataset_as(df, out, fmt) for fmt in DATASET_FORMATS]


def write_dataset_as(df: pd.DataFrame, out: Path, fmt: str) -> str:
    """One format of the analysis dataset (csv, xlsx, sav or dta); returns the file name."""
    name = f"analysis_dataset.{fmt}"
    if fmt == "csv":
        safe_frame(df).to_csv(out / name, index=False)
    elif fmt == "xlsx":
        _write_xlsx(df, out / name, "analysis_dataset")
    elif fmt == "sav":
        labelled, column_labels, value_labels = _labelled(df)
        pyreadstat.write_sav(
            labelled,
            out / name,
            column_labels=column_labels,
            variable_value_labels={
                c: {float(k): v for k, v in vl.items()} for c, vl in value_labels.items()
            },
        )
    elif fmt == "dta":
        labelled, column_labels, value_labels = _labelled(df)
        pyreadstat.write_dta(
            labelled,
            out / name,
            column_labels={c: label[:80] for c, label in column_labels.items()},
            variable_value_labels={
                c: {int(k): v for k, v in vl.items()} for c, vl in value_labels.items()
            },
            version=15,
        )
    else:
        raise ValueError(f"unknown dataset format {fmt!r}")
    return name


def write_tables(results: dict[str, pd.DataFrame], out: Path) -> list[str]:
    """Each table as its CSV and as a sheet of tables.xlsx; text cells that a spreadsheet would
    run as a formula are quoted, numbers stay numbers."""
    with pd.ExcelWriter(out / "tables.xlsx") as book:
        for name, frame in results.items():
            frame = safe_frame(frame)
            frame.to_csv(out / name, index=False)
            frame.to_excel(book, sheet_name=name.removesuffix(".csv")[:31], index=False)
    return [*results, "tables.xlsx"]


def _write_xlsx(df: pd.DataFrame, path: Path, sheet_name: str) -> None:
    """The frame as one sheet (header row, empty cells for missing values), streamed with
    openpyxl's write-only workbook: DataFrame.to_excel builds and styles every cell first,
    minutes for the 100,000-row dataset."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet(sheet_name)
    sheet.append([str(c) for c in df.columns])
    values = safe_frame(df).astype(object).where(df.notna(), None)
    for row in values.itertuples(index=False, name=None):
        sheet.append(row)
    book.save(path)


def _labelled(df: pd.DataFrame):
    """The frame as SPSS/Stata take it, with its variable labels and value labels."""
    labelled = df.copy()
    for column in labelled.columns:
        if str(labelled[column].dtype) in ("Int64", "boolean"):
            labelled[column] = labelled[column].astype("float64")  # SPSS/Stata: missing = NaN
        elif labelled[column].dtype == object:
            labelled[column] = labelled[column].fillna("").astype(str)
    column_labels = {c: VARIABLES[c][0] for c in labelled.columns}
    value_labels = {c: labels for c, (_, labels) in VARIABLES.items() if labels}
    return labelled, column_labels, value_labels


def draw_figures(df: pd.DataFrame, out: Path) -> list[str]:
    """The paper's six Kaplan-Meier figures (EFS and OS: all, by response, by SCT)."""
    return Drawing(paper_figure_specs(df), out).wait()


def draw_landmark_figures(df: pd.DataFrame, out: Path, landmark_days: float) -> list[str]:
    """Kaplan-Meier curves from the landmark, by response and by SCT on or before it."""
    return Drawing(landmark_figure_specs(df, landmark_days), out).wait()


def paper_figure_specs(df: pd.DataFrame) -> list["FigureSpec"]:
    specs = []
    for endpoint, label in ENDPOINTS.items():
        for grouping, (column, labels) in GROUPINGS.items():
            title = label if column is None else f"{label} by {grouping.replace('_', ' ')}"
            specs.append(
                FigureSpec(
                    f"km_{endpoint}_{grouping}",
                    df,
                    dict(
                        duration_col=f"{endpoint}_months",
                        event_col=f"{endpoint}_event",
                        group_col=column,
                        title=title,
                        at_risk_times=AT_RISK_MONTHS,
                        ylabel=label,
                        group_labels=labels,
                    ),
                )
            )
    return specs


def landmark_figure_specs(df: pd.DataFrame, landmark_days: float) -> list["FigureSpec"]:
    specs = []
    for endpoint, label in ENDPOINTS.items():
        frame, _ = beyond.landmark_frame(df, endpoint, landmark_days)
        if frame.empty:
            continue
        for grouping, labels in beyond.LANDMARK_GROUP_LABELS.items():
            by = "CR/CRi" if grouping.startswith("response") else "allo-SCT"
            specs.append(
                FigureSpec(
                    f"landmark_km_{endpoint}_{grouping}",
                    frame,
                    dict(
                        duration_col="time_months",
                        event_col="event",
                        group_col=grouping,
                        title=f"{label} from day {landmark_days:g}, by {by} on or before it",
                        at_risk_times=[
                            t for t in AT_RISK_MONTHS if t <= frame["time_months"].max()
                        ],
                        xlabel=f"Months from the landmark (day {landmark_days:g})",
                        ylabel=label,
                        group_labels=labels,
                    ),
                )
            )
    return specs


@dataclass(frozen=True)
class FigureSpec:
    """One Kaplan-Meier figure: file stem, its data and figures.km_figure's arguments."""

    stem: str
    frame: pd.DataFrame
    options: dict

    def columns(self) -> "FigureSpec":
        """The spec with only the columns the figure uses (less to copy to a worker)."""
        used = [self.options["duration_col"], self.options["event_col"]]
        used += [self.options["group_col"]] if self.options.get("group_col") else []
        return FigureSpec(self.stem, self.frame[used], self.options)


def _draw(specs: list[FigureSpec], out: Path) -> None:
    for spec in specs:
        figures.save_figure(figures.km_figure(spec.frame, **spec.options), out / spec.stem)


@contextmanager
def _children_allowed():
    """Celery's prefork pool marks its worker processes daemonic, and multiprocessing refuses
    children to a daemonic process (they could outlive it). The figure workers are waited for
    before the run goes on, and exit when their parent's end of the pipe closes, so the flag is
    lifted while they start (a forked child's own process object may change it)."""
    me = multiprocessing.current_process()
    daemonic = me.daemon
    if daemonic:
        me.daemon = False
    try:
        yield
    finally:
        if daemonic:
            me.daemon = True


class Drawing:
    """Figures being drawn while the caller goes on (computing the tables); `wait()` returns
    their file names (PNG, SVG per figure, in order) once all are written.

    Figures are independent and matplotlib holds the GIL, so with more than one CPU they are
    drawn in forked worker processes, one fewer than the CPUs: the caller is the last drawer.
    Each figure is a job; `wait()` takes back, last first, those no worker has started and draws
    them itself. A worker per CPU instead made the tables compete with the figures for the CPUs
    (at 100,000 patients the tables took 5.4 s instead of 4.3 s on two CPUs), while the
    50-patient run, mostly figure drawing, still has both CPUs drawing once its tables are done.
    Where a process may not fork (a daemonic worker) or has one CPU, `wait()` draws them all."""

    REFUSED = (AssertionError, BrokenProcessPool, OSError)  # e.g. "daemonic processes are not
    # allowed to have children"; a figure's own error is raised by wait() as it is.

    def __init__(self, specs: list[FigureSpec], out: Path):
        self.specs, self.out = specs, Path(out)
        self.pool, self.jobs, self.blas = None, [], None
        cpus = len(os.sched_getaffinity(0))
        workers = min(len(specs), cpus - 1)
        if workers < 1 or "fork" not in multiprocessing.get_all_start_methods():
            return
        jobs = [[spec.columns()] for spec in specs]  # a missing column fails here, no pool yet
        try:
            context = multiprocessing.get_context("fork")
            with _children_allowed():
                self.pool = ProcessPoolExecutor(workers, mp_context=context)
                self.jobs = [self.pool.submit(_draw, job, self.out) for job in jobs]
            # numpy's BLAS would start a thread per CPU for the Cox fits of this process,
            # competing with the drawing workers for the CPUs: at 100,000 patients the tables
            # took 4.0 s instead of 3.2 s. It keeps the CPUs they leave until wait().
            self.blas = threadpool_limits(max(1, cpus - workers), user_api="blas")
            logger.info(
                "Drawing %d figures in %d worker process%s and this one",
                len(specs),
                workers,
                "es" if workers > 1 else "",
            )
        except self.REFUSED as refused:
            logger.info("Figures drawn in this process: %r", refused)
            self.close()

    def close(self):
        """Stop the workers and give this process its BLAS threads back (wait() does it too)."""
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
        if self.blas is not None:
            self.blas.restore_original_limits()
        self.pool, self.jobs, self.blas = None, [], None

    def wait(self) -> list[str]:
        drawn = False
        if self.pool is not None:
            try:
                # Workers take the jobs first to last: once one cannot be cancelled, a worker
                # has it and every job before it.
                for spec, job in reversed(list(zip(self.specs, self.jobs, strict=True))):
                    if not job.cancel():
                        break
                    _draw([spec], self.out)
                for job in self.jobs:
                    if not job.cancelled():
                        job.result()
                drawn = True
            except self.REFUSED:
                drawn = False
            finally:
                self.close()
        if not drawn:
            _draw(self.specs, self.out)
        return [f"{spec.stem}.{ext}" for spec in self.specs for ext in ("png", "svg")]


def write_run(snapshot, out_dir, parameters, metadata=None, progress=lambda pct, step: None):
    """Write the whole run into out_dir; returns the metadata written to run.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # The figures are drawn in worker processes while this one writes the data and the tables.
    drawing = Drawing(
        paper_figure_specs(snapshot.dataset)
        + landmark_figure_specs(snapshot.dataset, _landmark_days(parameters)),
        out,
    )
    try:
        progress(10, "Writing the analysis dataset")
        files = write_dataset(snapshot.dataset, out)
        safe_frame(snapshot.adverse_events).to_csv(out / "adverse_events.csv", index=False)
        files.append("adverse_events.csv")
        progress(30, "Computing tables and survival models")
        results = compute_tables(snapshot, parameters)
        files += write_tables(results, out)
        progress(60, "Drawing Kaplan-Meier figures")
        figure_files = drawing.wait()
    finally:
        drawing.close()  # after a failure too: a Celery worker process goes on to other runs
    files += figure_files
    meta = {
        **(metadata or {}),
        "parameters": parameters,
        "notes": notes(),
        "collapsed_tables": COLLAPSED_TABLES,
        "snapshot_hash": snapshot.content_hash(),
        "n_patients": len(snapshot.dataset),
        "days_per_month": DAYS_PER_MONTH,
        "months": f"days / {DAYS_PER_MONTH}",
    }
    progress(85, "Writing the report")
    (out / "report.html").write_text(render_report(results, out, figure_files, meta))
    files.append("report.html")
    meta["files"] = sorted([*files, "run.json"])
    (out / "run.json").write_text(json.dumps(meta, indent=2, default=str))
    return meta


def _table_html(frame: pd.DataFrame) -> str:
    return frame.to_html(
        index=False,
        na_rep="",
        float_format=lambda x: f"{x:.3f}",
        classes="table table-sm",
        border=0,
    )


def render_report(results, out: Path, figure_files, meta) -> str:
    """One self-contained HTML file: tables inline, figures embedded as base64 PNG."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<title>Blinatumomab registry analysis</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}"
        "table{border-collapse:collapse;font-size:0.85em;margin-bottom:1.5em}"
        "td,th{border-bottom:1px solid #ccc;padding:2px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}img{max-width:100%}</style></head><body>",
        "<h1>Blinatumomab in R/R Ph-negative B-ALL: registry analysis</h1>",
        (
            f"<p class='synthetic'><strong>{html.escape(meta['synthetic'])}</strong></p>"
            if meta.get("synthetic")
            else ""
        ),
        "<p>Snapshot SHA-256 <code>{}</code>; {} patients; code version <code>{}</code>; "
        "generated {}. Months = days / {}. Parameters: <code>{}</code>.</p>".format(
            html.escape(meta["snapshot_hash"]),
            meta["n_patients"],
            html.escape(str(meta.get("code_version", ""))),
            html.escape(str(meta.get("generated_at", ""))),
            DAYS_PER_MONTH,
            html.escape(json.dumps(meta["parameters"])),
        ),
    ]
    # The dataset's rules (evaluable, best response, EFS, OS and their censoring), as the
    # codebook and the README state them.
    parts.append("<h2>Definitions</h2><dl>")
    for column in ("evaluable", "best_response", "efs_days", "os_days"):
        parts.append(
            f"<dt><code>{column}</code>: {html.escape(VARIABLES[column][0])}</dt>"
            f"<dd>{html.escape(DEFINITIONS[column])}</dd>"
        )
    parts.append("</dl>")
    for name, title in TABLE_FILES.items():
        if name in ("survival_table.csv",):
            continue  # long; in the CSV
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if name in NOTE_BEFORE:
            parts.append(f"<p class='note'>{html.escape(beyond.NOTES[NOTE_BEFORE[name]])}</p>")
        if name == REPRODUCTION:
            parts.append(reproduction.report_html(results[name]))
        elif name in COLLAPSED_TABLES:
            parts.append(
                f"<details><summary>{len(results[name])} rows ({html.escape(name)})</summary>"
                f"{_table_html(results[name])}</details>"
            )
        else:
            parts.append(_table_html(results[name]))
    for heading, landmark in (
        ("Figure 2. Kaplan-Meier curves", False),
        ("Landmark analysis: Kaplan-Meier curves from the landmark", True),
    ):
        parts.append(f"<h2>{heading}</h2>")
        _figures_html(
            parts, out, [f for f in figure_files if f.startswith("landmark_") == landmark]
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def _figures_html(parts: list, out: Path, figure_files) -> None:
    for name in figure_files:
        if name.endswith(".png"):
            encoded = base64.b64encode((out / name).read_bytes()).decode()
            parts.append(
                f"<figure><img alt='{name}' src='data:image/png;base64,{encoded}'>"
                f"<figcaption>{html.escape(name)}</figcaption></figure>"
            )
