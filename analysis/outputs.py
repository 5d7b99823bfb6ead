"""Write every output of an analysis run into a directory.

Used by the Celery task and by `manage.py run_analysis --out DIR`, so both give the same files.
Pure with respect to the database: it takes a RegistrySnapshot and writes files.
"""

import base64
import json
import logging
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import pyreadstat
from django.template.loader import render_to_string
from django.utils import translation
from threadpoolctl import threadpool_limits

from exchange.safe import safe_cell, safe_frame
from registry.ctcae import TABLE3_MAP_CSV

from . import beyond, charts, display, docx_report, figures, reproduction, survival, tables, xlsx
from . import formatting as fmt
from .dataset import DAYS_PER_MONTH, DEFINITIONS, VARIABLES, Cuts, RegistrySnapshot, definition
from .progress import PROGRESS_STEPS

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
    "cox_ph_test.csv": "Proportional-hazards tests of the Cox models (Schoenfeld residuals)",
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
    # shown as a heading in the page's (the report's) language; the key stays the file's name
    "reproduction.csv": translation.gettext_noop(
        "The paper's printed numbers beside the registry's"
    ),
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
# Kaplan-Meier groupings: the dataset's flag and its groups in words (analysis.formatting).
GROUPINGS = {
    "overall": (None, None),
    **{
        flag: (flag, {0: fmt.group_label(flag, "no"), 1: fmt.group_label(flag, "yes")})
        for flag in ("responder", "allo_sct_after")
    },
}
AT_RISK_MONTHS = [0, 3, 6, 9, 12, 15, 18]
# The figures drawn from the run's tables (stem: what it is), beside the Kaplan-Meier ones.
CHART_FILES = {
    "flow_diagram": "Figure 1. Treatment flow (flow.csv)",
    "forest_table2": "Forest plot of Table 2 (table2_subgroups.csv)",
    "swimmer": "Swimmer plot (analysis_dataset.csv, cycles.csv)",
}


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
    extra = beyond_tables(snapshot, parameters)
    # One file for the proportional-hazards tests of every Cox model of the run.
    out["cox_ph_test.csv"] = pd.concat(
        [out["cox_ph_test.csv"], extra.pop("cox_ph_test.csv")], ignore_index=True
    )
    out.update(extra)
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
    out["cox_ph_test.csv"] = surv.ph_test
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
    return {**extra.tables, "cox_ph_test.csv": extra.ph_test}


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


def write_tables(results: dict[str, pd.DataFrame], out: Path, formatted=lambda: []) -> list[str]:
    """Each table as its CSV, then tables.xlsx: the formatted tables (`formatted()`, built from
    the CSVs just written) and every table as a sheet. Text cells that a spreadsheet would run
    as a formula are quoted, numbers stay numbers."""
    for name, frame in results.items():
        safe_frame(frame).to_csv(out / name, index=False)
    write_tables_xlsx(results, formatted(), out)
    return [*results, "tables.xlsx"]


def _write_xlsx(df: pd.DataFrame, path: Path, sheet_name: str) -> None:
    """The frame as one sheet (header row, empty cells for missing values), streamed by
    analysis.xlsx: openpyxl's per-cell objects took ~40 s for the 100,000-row dataset."""
    with xlsx.Workbook(path) as book:
        book.frame_sheet(sheet_name, safe_frame(df))


def write_xlsx_frames(frames, columns, path: Path, sheet_name: str, on_frame=None) -> None:
    """Frames with the same columns as one sheet, each written and dropped before the next is
    read (the background xlsx export of the dataset: memory stays flat). `on_frame(n)`: called
    with each frame's row count once written."""
    with xlsx.Workbook(path) as book:
        book.frames_sheet(
            sheet_name, (safe_frame(df) for df in frames), [str(c) for c in columns], True, on_frame
        )


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
            title = fmt.figure_title(endpoint, grouping)
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

    def figure(self):
        return figures.km_figure(self.frame, **self.options)

    def write(self, out: Path) -> None:
        figures.save_figure(self.figure(), out / self.stem)

    def files(self) -> list[str]:
        return [f"{self.stem}.png", f"{self.stem}.svg"]


@dataclass(frozen=True)
class ChartSpec:
    """One of the run's other figures: file stem, the analysis.charts function and its
    arguments (a worker draws it like a Kaplan-Meier figure)."""

    stem: str
    function: str
    args: tuple

    def columns(self) -> "ChartSpec":
        return self

    def figure(self):
        return getattr(charts, self.function)(*self.args)

    write, files = FigureSpec.write, FigureSpec.files


@dataclass(frozen=True)
class DatasetSpec:
    """One format of the analysis dataset, written by a worker like a figure (the xlsx, sav and
    dta of 100,000 patients are seconds of CPU the run need not wait for)."""

    fmt: str
    frame: pd.DataFrame

    @property
    def stem(self) -> str:
        return f"analysis_dataset.{self.fmt}"

    def columns(self) -> "DatasetSpec":
        return self

    def write(self, out: Path) -> None:
        write_dataset_as(self.frame, out, self.fmt)

    def files(self) -> list[str]:
        return [self.stem]


def chart_specs(snapshot: RegistrySnapshot, results: dict) -> list[ChartSpec]:
    """Figure 1, the forest plot of Table 2 and the swimmer plot."""
    return [
        ChartSpec("flow_diagram", "flow_diagram", (results["flow.csv"],)),
        ChartSpec("forest_table2", "forest_plot", (results["table2_subgroups.csv"],)),
        swimmer_spec(snapshot),
    ]


def swimmer_spec(snapshot: RegistrySnapshot) -> ChartSpec:
    return ChartSpec("swimmer", "swimmer_plot", (snapshot.dataset, snapshot.cycles))


def _draw(specs: list, out: Path) -> None:
    for spec in specs:
        spec.write(out)


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
    Where a process may not fork (a daemonic worker) or has one CPU, `wait()` draws them all;
    so it does in a thread other than the main one (a run in the web process without a broker,
    analysis.background): forking a process whose other threads may hold a lock (logging, the
    database driver) can leave the child waiting on it forever."""

    REFUSED = (AssertionError, BrokenProcessPool, OSError)  # e.g. "daemonic processes are not
    # allowed to have children"; a figure's own error is raised by wait() as it is.

    def __init__(self, specs: list[FigureSpec], out: Path):
        self.specs, self.out = specs, Path(out)
        self.pool, self.jobs, self.blas = None, [], None
        cpus = len(os.sched_getaffinity(0))
        workers = min(len(specs), cpus - 1)
        if (
            workers < 1
            or "fork" not in multiprocessing.get_all_start_methods()
            or threading.current_thread() is not threading.main_thread()
        ):
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

    def add(self, specs: list) -> None:
        """More figures to draw (e.g. those drawn from the tables, once they are computed)."""
        self.specs = [*self.specs, *specs]
        if self.pool is not None:
            try:
                self.jobs += [self.pool.submit(_draw, [spec.columns()], self.out) for spec in specs]
            except self.REFUSED:
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
        return [name for spec in self.specs for name in spec.files()]


def _step(progress, key):
    progress(*PROGRESS_STEPS[key])


def write_run(snapshot, out_dir, parameters, metadata=None, progress=lambda pct, step: None):
    """Write the whole run into out_dir; returns the metadata written to run.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # The figures are drawn in worker processes while this one computes the tables.
    # The swimmer plot next (it needs no table): the run takes back, last first, the figures
    # no worker has started; then Figure 1 and the forest plot, once their tables exist.
    # The dataset's files go first: a worker writes them while this process computes.
    drawing = Drawing(
        [DatasetSpec(fmt, snapshot.dataset) for fmt in DATASET_FORMATS]
        + [swimmer_spec(snapshot)]
        + paper_figure_specs(snapshot.dataset)
        + landmark_figure_specs(snapshot.dataset, _landmark_days(parameters)),
        out,
    )
    try:
        _step(progress, "dataset")
        files = []
        safe_frame(snapshot.adverse_events).to_csv(out / "adverse_events.csv", index=False)
        safe_frame(snapshot.cycles).to_csv(out / "cycles.csv", index=False)
        files += ["adverse_events.csv", "cycles.csv"]
        _step(progress, "tables")
        results = compute_tables(snapshot, parameters)
        n_patients = len(snapshot.dataset)
        frames = {}  # the table CSVs, read once for both layouts of the run
        files += write_tables(
            results,
            out,
            formatted=lambda: display.all_tables(
                run_sections(out, {"n_patients": n_patients}, [], src=str, frames=frames)
            ),
        )
        _step(progress, "charts")
        drawing.add([spec for spec in chart_specs(snapshot, results) if spec.stem != "swimmer"])
        _step(progress, "km")
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
    # Every formatted view is built from the files just written, as the dashboard builds it;
    # the report's words in the run's language (metadata "language"; the data files, figures
    # and codes are the same in every language).
    with translation.override(meta.get("language") or "en"):
        sections = run_sections(out, meta, files, lambda name: _data_uri(out / name), frames)
        _step(progress, "report")
        (out / "report.html").write_text(render_report(sections, meta, out))
        files.append("report.html")
        _step(progress, "docx")
        docx_report.write(out / "report.docx", sections, meta, out)
        files.append("report.docx")
    meta["files"] = sorted([*files, "run.json"])
    (out / "run.json").write_text(json.dumps(meta, indent=2, default=str))
    return meta


def draw_charts(snapshot: RegistrySnapshot, results: dict, out: Path) -> list[str]:
    """Figure 1, the forest plot of Table 2 and the swimmer plot (PNG and SVG each)."""
    specs = chart_specs(snapshot, results)
    _draw(specs, out)
    return [f"{spec.stem}.{ext}" for spec in specs for ext in ("png", "svg")]


def run_sections(out: Path, meta: dict, files, src, frames: dict | None = None):
    """The run laid out as the paper (analysis.display), from the CSVs in `out`; footnotes
    state the dataset's definitions (analysis.dataset.DEFINITIONS) in the active language.
    `frames`: a dict the CSVs are read into on the first call and taken from on the next
    (write_run lays the run out twice: for tables.xlsx, then for the reports)."""
    if frames is None:
        frames = {}
    if not frames:
        frames.update(display.load_frames(out, display.SOURCES))
    rules = {column: definition(column, translation.gettext) for column in DEFINITIONS}
    return display.sections(dict(frames), meta, files, src, definitions=rules)


# The dataset's rules stated with every view of a run (evaluable, best response, EFS and OS
# with their censoring), as the codebook and the README state them.
DEFINED = ("evaluable", "best_response", "efs_days", "os_days")


def definitions() -> list[tuple[str, str, str]]:
    """(column, label, definition) of each DEFINED column, in the active language."""
    gettext = translation.gettext
    return [(c, gettext(VARIABLES[c][0]), definition(c, gettext)) for c in DEFINED]


def _data_uri(path: Path) -> str:
    """A figure embedded in the self-contained report (its PNG)."""
    png = path.with_suffix(".png")
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()


# A sheet per formatted table, named as the paper names it, before the machine-readable sheets.
SHEET_TITLES = {
    "table1": "Table 1",
    "table2": "Table 2",
    "table3": "Table 3",
    "adverse_events_by_term": "AEs by term (formatted)",
    "survival_median": "Survival (formatted)",
    "cox": "Cox models (formatted)",
    "cox_ph_test": "PH tests (formatted)",
    "landmark_median": "Landmark (formatted)",
    "landmark_excluded": "Landmark excluded (formatted)",
    "cox_time_varying": "Time-varying Cox (formatted)",
    "response_rate": "Response rate (formatted)",
}


def write_tables_xlsx(results: dict, formatted: list, out: Path) -> str:
    """tables.xlsx: the formatted tables as the page shows them (the paper's labels; numbers
    behind numeric cells stay numbers, with a format showing them the same), then every table
    as its CSV (machine-readable, numbers as numbers)."""
    bold = xlsx.Style(bold=True)
    widths = {0: 48, **{i: 22 for i in range(1, 8)}}
    with xlsx.Workbook(out / "tables.xlsx") as book:
        by_key = {table.key: table for table in formatted}
        for key, title in SHEET_TITLES.items():  # the paper's tables first
            if key not in by_key:
                continue
            table = by_key[key]
            rows = [[(table.title, bold)], [(c, bold) for c in table.columns]]
            for row in table.rows:
                cells = []
                for i, c in enumerate(row.cells):
                    value = c.value if c.value is not None else safe_cell(c.text)
                    style = xlsx.Style(
                        bold=bool(row.section),
                        number_format=c.number_format or None,
                        right=bool(c.number_format),
                        indent=1 if (row.indent and not row.section and i == 0) else 0,
                    )
                    cells.append((value, style))
                rows.append(cells)
            if table.footnote:
                rows += [[], [(table.footnote, None)]]
            book.sheet(title, rows, widths)
        for name, frame in results.items():
            book.frame_sheet(name.removesuffix(".csv")[:31], safe_frame(frame))
    return "tables.xlsx"


def render_report(sections, meta, out: Path | None = None) -> str:
    """One self-contained HTML file: the run as the dashboard shows it, figures embedded, with
    the paper's printed numbers beside the run's (reproduction.csv in `out`)."""
    side_by_side = None
    if out is not None and (out / REPRODUCTION).exists():
        side_by_side = reproduction.report_html(
            pd.read_csv(out / REPRODUCTION, dtype=str, keep_default_na=False)
        )
    return render_to_string(
        "analysis/report.html",
        {
            "meta": meta,
            "sections": sections,
            "parameters": fmt.parameter_items(meta["parameters"]),
            "definitions": definitions(),
            "reproduction_title": translation.gettext(TABLE_FILES[REPRODUCTION]),
            "reproduction_html": side_by_side,
            "report": True,
        },
    )


def reproduction_view(out: Path) -> dict | None:
    """The printed-vs-recomputed rows of a run and their counts (the run page's side-by-side
    table, templates/analysis/_reproduction.html)."""
    if not (out / REPRODUCTION).exists():
        return None
    frame = pd.read_csv(out / REPRODUCTION, dtype=str, keep_default_na=False)
    return {
        "title": translation.gettext(TABLE_FILES[REPRODUCTION]),
        "name": REPRODUCTION,
        "rows": frame.to_dict("records"),
        "summary": reproduction.summary(frame),
    }
