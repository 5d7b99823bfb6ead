"""The analysis dataset: the one place the analysis side reads the registry.

`load_registry()` runs a handful of read-only queries and returns plain pandas frames; every
statistic downstream is a function of those frames. Nothing here writes to the database.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, NamedTuple

from django.apps import apps
from django.db import connection
from django.db.models import (
    BooleanField,
    CharField,
    DateField,
    DateTimeField,
    DecimalField,
    Max,
    TextField,
)
from django.utils.translation import gettext_noop

from exchange.safe import safe_frame
from registry import ctcae, rules
from registry.models import (
    AdverseEvent,
    Baseline,
    Cycle,
    FollowUp,
    Patient,
    ResponseAssessment,
    SubsequentTherapy,
    TrackedRecord,
    Transplant,
)

# pandas and numpy are imported inside the functions that use them: this module's constants
# (VARIABLES, DEFINITIONS, Cuts) are read by forms, the codebook and URL modules, which every web
# and Celery process loads at start-up and which must not pay for the numerical stack.
if TYPE_CHECKING:
    import pandas as pd

# Months = days / 30.4375 (the mean Gregorian month, 365.25 / 12), stated in every output.
DAYS_PER_MONTH = 30.4375


@dataclass(frozen=True)
class Cuts:
    """Cut points of the paper's Table 2 (its defaults); each is a parameter of a run."""

    age_years: float = 55  # < 55 vs >= 55
    months_from_diagnosis: float = 12  # < 12 vs >= 12 months
    marrow_blasts_pct: float = 50  # <= 50% vs > 50%
    dexamethasone_mg: float = 80  # <= 80 mg vs > 80 mg


# Every column of analysis_dataset.csv: label, and value labels where the values are codes.
# The SPSS/Stata exports and the README's column list are built from this one table.
# Labels in English, as the exports (CSV, SPSS, Stata) write them; marked for translation
# (gettext_noop) so the codebook can show them in the page's language (exchange.codebook).
YES_NO = {0: gettext_noop("No"), 1: gettext_noop("Yes")}
VARIABLES = {
    "study_id": (gettext_noop("Study ID (site code and number)"), None),
    "institution": (gettext_noop("Institution code"), None),
    "sex": (gettext_noop("Sex"), None),
    "age_years": (gettext_noop("Age at blinatumomab start, completed years"), None),
    "age_ge_55": (gettext_noop("Age >= cut (default 55 years)"), YES_NO),
    "months_diagnosis_to_start": (
        gettext_noop("Months from diagnosis to blinatumomab start"),
        None,
    ),
    "diagnosis_ge_12m": (gettext_noop("Diagnosis to start >= cut (default 12 months)"), YES_NO),
    "salvage_phase": (
        gettext_noop("Salvage phase (3 = third or later)"),
        {1: gettext_noop("First"), 2: gettext_noop("Second"), 3: gettext_noop("Third or later")},
    ),
    "salvage_ge_2": (gettext_noop("Second or later salvage"), YES_NO),
    "ecog": (gettext_noop("ECOG performance status at start"), None),
    "ecog_ge_2": (gettext_noop("ECOG >= 2"), YES_NO),
    "prior_therapies_n": (gettext_noop("Number of prior therapies"), None),
    "cyto_risk_diagnosis": (gettext_noop("Cytogenetic risk at diagnosis (empty = not done)"), None),
    "cyto_risk_start": (
        gettext_noop("Cytogenetic risk at blinatumomab start (empty = not done)"),
        None,
    ),
    "relapse_site": (gettext_noop("Relapse site at start"), None),
    "emd": (gettext_noop("Extramedullary disease at start"), YES_NO),
    "cns_disease": (gettext_noop("CNS disease at start"), YES_NO),
    "marrow_blasts_pct": (gettext_noop("Bone marrow blasts at start, %"), None),
    "blasts_gt_50": (gettext_noop("Marrow blasts > cut (default 50%)"), YES_NO),
    "pb_blasts_per_ul": (gettext_noop("Peripheral blood blasts at start, /uL"), None),
    "prior_allo_sct": (gettext_noop("Allogeneic SCT before blinatumomab"), YES_NO),
    "dexamethasone_mg_before": (
        gettext_noop("Cumulative dexamethasone before blinatumomab, mg"),
        None,
    ),
    "dexamethasone_gt_80": (gettext_noop("Dexamethasone > cut (default 80 mg)"), YES_NO),
    "cycles_given": (gettext_noop("Blinatumomab cycles given"), None),
    "response_assessed": (
        gettext_noop("At least one response assessment (any result, NE included)"),
        YES_NO,
    ),
    "evaluable": (
        gettext_noop("Evaluable for response (a determinable response: CR, CRi, NR or PD)"),
        YES_NO,
    ),
    "best_response": (
        gettext_noop("Best response (CR, CRi, NR, PD; NE = no determinable response)"),
        None,
    ),
    "responder": (gettext_noop("Responder (best response CR or CRi)"), YES_NO),
    "response_after_cycle1": (gettext_noop("Response at the first assessment after cycle 1"), None),
    "response_after_cycle2": (gettext_noop("Response at the first assessment after cycle 2"), None),
    "allo_sct_after": (gettext_noop("Allogeneic SCT after blinatumomab"), YES_NO),
    "sct_days": (gettext_noop("Days from day 1 to the allogeneic SCT after blinatumomab"), None),
    "response_days": (gettext_noop("Days from day 1 to the first CR/CRi assessment"), None),
    "salvage_chemo_after": (gettext_noop("Salvage chemotherapy after blinatumomab"), YES_NO),
    "efs_days": (gettext_noop("Event-free survival, days from day 1"), None),
    "efs_months": (gettext_noop("Event-free survival, months (days / 30.4375)"), None),
    "efs_event": (gettext_noop("EFS event: relapse, progression or death (0 = censored)"), YES_NO),
    "efs_cause": (
        gettext_noop("EFS event type"),
        {
            0: gettext_noop("Censored"),
            1: gettext_noop("Relapse or progression"),
            2: gettext_noop("Death without relapse"),
        },
    ),
    "os_days": (gettext_noop("Overall survival, days from day 1"), None),
    "os_months": (gettext_noop("Overall survival, months (days / 30.4375)"), None),
    "os_event": (
        gettext_noop("Death from any cause (0 = censored at the latest dated record)"),
        YES_NO,
    ),
}
FLAG_COLUMNS = [c for c, (_, labels) in VARIABLES.items() if labels is YES_NO]

# The censoring rule, stated once: the codebook, the report and the README say this.
CENSORING_DEFINITION = gettext_noop(
    "censored at the latest date on any record of the case (any date of the patient, baseline, "
    "cycles, response assessments, adverse events, transplant, subsequent therapies or "
    "follow-up): the follow-up's last contact, unless another record is dated later (it shows "
    "the patient alive then); without a follow-up CRF, the latest dated record"
)
# How the variables that encode a rule are derived (codebook "rule" column, report.html), with
# the censoring rule and the evaluable definition as %(censoring)s and %(evaluable)s.
_DEFINITION_TEXTS = {
    "response_assessed": gettext_noop(
        "At least one response assessment recorded, whatever its result (NE included)."
    ),
    "evaluable": gettext_noop(
        "Evaluable for response: %(evaluable)s (registry.rules.is_evaluable; the paper's 49 of 50)."
    ),
    "best_response": gettext_noop(
        "The best category reached at any response assessment, in the order CR > CRi > NR > PD; "
        "NE when no assessment gave a determinable response (not evaluable)."
    ),
    "efs_days": gettext_noop(
        "From day 1 to the first relapse or progression (follow-up CRF, or a PD response "
        "assessment) or death, whichever is first; without any, %(censoring)s."
    ),
    "efs_event": gettext_noop(
        "1 at the EFS event of efs_days (relapse, progression or death); 0 when %(censoring)s."
    ),
    "os_days": gettext_noop("From day 1 to death from any cause; alive, %(censoring)s."),
    "os_event": gettext_noop("1 at death from any cause; 0 when alive, %(censoring)s."),
}


def definition(column: str, translate=lambda text: text) -> str:
    """The rule of `column`: in English for the files (the default), or through `translate`
    (gettext) in the page's language."""
    return translate(_DEFINITION_TEXTS[column]) % {
        "censoring": translate(CENSORING_DEFINITION),
        "evaluable": translate(rules.EVALUABLE_DEFINITION),
    }


DEFINITIONS = {column: definition(column) for column in _DEFINITION_TEXTS}  # English: files


@dataclass
class RegistrySnapshot:
    """The frozen input of an analysis run."""

    dataset: pd.DataFrame  # one row per patient, the columns of VARIABLES
    adverse_events: pd.DataFrame  # one row per event: study_id, ctcae_term, soc, grade, cycle
    # One row per blinatumomab cycle: CYCLE_COLUMNS (the swimmer plot's bars).
    cycles: pd.DataFrame = field(default_factory=lambda: _empty_frame(CYCLE_COLUMNS))

    def content_hash(self) -> str:
        """SHA-256 of the three frames: per column its name, type, missing-value mask and
        values (numbers as their bytes, anything else as text). Linear, and ~20x cheaper than
        hashing the frames' CSV text (3.2 s at 100,000 patients, issue #19)."""
        digest = hashlib.sha256()
        for frame in (self.dataset, self.adverse_events, self.cycles):
            digest.update(f"{frame.shape}".encode())
            for name in frame.columns:
                _hash_column(digest, name, frame[name])
        return digest.hexdigest()


def _hash_column(digest, name, column) -> None:
    import numpy as np

    digest.update(f"\x1e{name}\x1f{column.dtype}\x1f".encode())
    missing = column.isna().to_numpy()
    digest.update(np.packbits(missing).tobytes())
    if isinstance(column.dtype, np.dtype) and column.dtype.kind in "biufmM":
        digest.update(np.ascontiguousarray(column.to_numpy()).tobytes())
    else:  # text, dates, nullable types: each present value as text, unit-separated
        digest.update("\x1f".join(map(str, column[~missing].tolist())).encode())


CYCLE_COLUMNS = ["study_id", "cycle", "start_day", "end_day"]


def _empty_frame(columns) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(columns=columns)


def cycle_days(records: Records) -> pd.DataFrame:
    """Each cycle's first and last day counted from day 1 (the blinatumomab start, day 0 here
    as in efs_days), by study ID then cycle number; end_day is empty while a cycle has no end
    date. Days, not dates: the run's files stay free of calendar dates."""
    import pandas as pd

    cycles = records.cycles.merge(
        records.patients[["id", "study_id", "blinatumomab_start_date"]],
        left_on="patient_id",
        right_on="id",
        suffixes=("", "_patient"),
    )
    start = cycles["blinatumomab_start_date"]
    out = pd.DataFrame(
        {
            "study_id": cycles["study_id"],
            "cycle": cycles["number"].astype(int),
            "start_day": (cycles["start_date"] - start).dt.days,
            "end_day": (cycles["end_date"] - start).dt.days.astype("Int64"),
        }
    )
    return out.sort_values(["study_id", "cycle"], ignore_index=True)[CYCLE_COLUMNS]


def _frame(queryset, columns, *, copy=None) -> pd.DataFrame:
    """The queryset's `columns` as a frame: dates as datetime64, text and flags as objects
    (missing: None), numbers as int64 or float64 (missing: NaN; decimals as float64).

    On PostgreSQL the rows come through COPY and pandas' CSV reader: at 100,000 patients that is
    a third faster than a Python tuple per row (~1.3 million of them). `copy`: force either way
    (the tests compare the two)."""
    import pandas as pd

    copy = connection.vendor == "postgresql" if copy is None else copy
    if copy:
        frame = _copied_frame(queryset, columns)
    else:
        frame = pd.DataFrame.from_records(list(queryset.values_list(*columns)), columns=columns)
    for column in columns:
        field = _output_field(queryset, column)
        if isinstance(field, DateField):
            frame[column] = pd.to_datetime(frame[column], format="ISO8601")
        elif isinstance(field, DecimalField):
            frame[column] = frame[column].astype(float)
        elif isinstance(field, BooleanField) and copy:
            frame[column] = frame[column].map({"t": True, "f": False, None: None}).infer_objects()
    return frame


def _copied_frame(queryset, columns) -> pd.DataFrame:
    import pandas as pd

    sql, params = queryset.values_list(*columns).query.sql_with_params()
    text = {c for c in columns if isinstance(_output_field(queryset, c), TEXT_FIELDS)}
    buffer = io.BytesIO()
    with connection.cursor() as cursor:
        # NULL as \N, so that a NULL and an empty string stay apart.
        statement = f"COPY ({sql}) TO STDOUT (FORMAT csv, HEADER true, NULL '\\N')"
        with cursor.cursor.copy(statement, params) as copy:
            for block in copy:
                buffer.write(block)
    buffer.seek(0)
    frame = pd.read_csv(
        buffer,
        header=0,
        names=columns,
        dtype={c: str for c in text},
        keep_default_na=False,
        na_values=["\\N"],
        float_precision="round_trip",  # as Python's float(): correctly rounded
        skip_blank_lines=False,  # one text column holding "" is a blank line
    )
    for column in text:
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


# Read as text from the CSV (so "007" stays "007"); _frame() then converts flags and dates.
TEXT_FIELDS = (CharField, TextField, BooleanField, DateField)


def _output_field(queryset, column):
    if column in queryset.query.annotations:
        return queryset.query.annotations[column].output_field
    model, *path = queryset.model, *column.split("__")
    for name in path[:-1]:
        model = model._meta.get_field(name).related_model
    return model._meta.get_field(path[-1])


def _scoped(model, scope):
    """Rows of `model` for the patients of `scope`, unordered; scope None is the whole registry,
    read without the `patient_id IN (SELECT ...)` semi-join (at 100,000 patients it costs more
    than the read itself)."""
    rows = model.objects.order_by()
    return rows if scope is None else rows.filter(patient__in=scope)


def load_registry(patients=None, cuts: Cuts = Cuts()) -> RegistrySnapshot:
    """Read the registry (all patients, or the given queryset) into an analysis snapshot."""
    aes = _frame(
        _scoped(AdverseEvent, patients),
        _with_dates(AdverseEvent, ["id", "patient_id", "ctcae_term", "grade", "cycle_id"]),
    )
    records = _read_records(patients, adverse_events=aes)
    dataset = derive(records, cuts)
    return RegistrySnapshot(
        dataset=dataset,
        adverse_events=_adverse_event_frame(aes, records),
        cycles=cycle_days(records),
    )


def _adverse_event_frame(aes: pd.DataFrame, records: Records) -> pd.DataFrame:
    """The snapshot's events: study ID order (as the dataset), then entry order; the cycle's
    number and the term's system organ class instead of their keys.

    Sorted here by the patient's position in the study-ID-ordered dataset rather than by the
    database: ORDER BY the joined study ID was the slowest query of the build."""
    import pandas as pd

    columns = ["study_id", "ctcae_term", "soc", "grade", "cycle", "onset_date"]
    if aes.empty:
        return pd.DataFrame(columns=columns)
    position = pd.Index(records.patients["id"]).get_indexer(aes["patient_id"])
    aes = aes.assign(position=position).sort_values(["position", "id"], kind="stable")
    out = pd.DataFrame(
        {
            "study_id": records.patients["study_id"].to_numpy()[aes["position"].to_numpy()],
            "ctcae_term": aes["ctcae_term"].to_numpy(),
            "grade": aes["grade"].to_numpy(),
            "cycle": aes["cycle_id"].map(records.cycles.set_index("id")["number"]).to_numpy(),
            "onset_date": aes["onset_date"].to_numpy(),
        }
    )
    socs = {t: ctcae.get(t).soc if ctcae.get(t) else "" for t in out["ctcae_term"].unique()}
    out.insert(2, "soc", out["ctcae_term"].map(socs).astype(object))
    return out[columns]


def iter_dataset_csv(patients=None, cuts: Cuts = Cuts(), chunk_size: int = 5000):
    """analysis_dataset.csv as text chunks, `chunk_size` patients at a time, so that memory stays
    flat however large the registry is. Every derived variable is a function of one patient's
    records, so the chunks joined are byte for byte the CSV of the whole frame."""
    yield ",".join(VARIABLES) + "\n"
    for frame in iter_dataset_frames(patients, cuts, chunk_size):
        yield safe_frame(frame).to_csv(index=False, header=False)


def iter_dataset_frames(patients=None, cuts: Cuts = Cuts(), chunk_size: int = 5000):
    """The dataset's frame `chunk_size` patients at a time, in study ID order (the streamed CSV,
    the background xlsx export)."""
    patients = Patient.objects.all() if patients is None else patients
    after = None
    while True:
        page = patients.order_by("study_id")
        if after is not None:
            page = page.filter(study_id__gt=after)
        last = page.values_list("study_id", flat=True)[chunk_size - 1 : chunk_size].first()
        # A study ID range, not a list of pks: the record queries then select the chunk with
        # the study ID index instead of binding thousands of parameters each.
        chunk = page if last is None else page.filter(study_id__lte=last)
        frame = dataset_frame(chunk, cuts)
        if frame.empty:
            return
        yield frame
        if last is None:
            return
        after = last


def dataset_frame(patients, cuts: Cuts = Cuts()) -> pd.DataFrame:
    """One row per patient of `patients` (in study ID order): the columns of VARIABLES."""
    return derive(_read_records(patients), cuts)


class Records(NamedTuple):
    """The case records of a set of patients, one frame per CRF; the dates of the records
    (not the patient's own) as datetime64."""

    patients: pd.DataFrame  # in study ID order
    baseline: pd.DataFrame
    assessments: pd.DataFrame
    cycles: pd.DataFrame
    followup: pd.DataFrame
    transplants: pd.DataFrame
    salvage_patient_ids: pd.Series
    latest_dates: pd.Series  # by patient ID: the latest date on any record of the case


def case_record_models() -> list[type]:
    """Patient and every model of a case's records (a tracked record linked to one patient),
    found rather than listed, so that a record type added later counts without a change here."""
    found = [Patient]
    for model in apps.get_models():
        if model is Patient or not issubclass(model, TrackedRecord):
            continue
        link = next((f for f in model._meta.concrete_fields if f.name == "patient"), None)
        if link is not None and link.related_model is Patient:
            found.append(model)
    return found


def date_fields(model) -> list[str]:
    """The model's calendar dates; not the entry timestamps (DateTimeField, a DateField too)."""
    return [
        f.name
        for f in model._meta.concrete_fields
        if isinstance(f, DateField) and not isinstance(f, DateTimeField)
    ]


def _with_dates(model, columns: list[str]) -> list[str]:
    """`columns` and every date field of `model` (for the censoring date)."""
    return columns + [name for name in date_fields(model) if name not in columns]


def _latest_record_dates(read: dict, scope) -> pd.Series:
    """The latest date on any record of each case, by patient ID, over every date field of every
    case record model (CENSORING_DEFINITION). `read`: frames already read in full, by model, with
    every date field (_with_dates); any other model (one the dataset needs nothing else from, or
    a new one) is one query grouped by patient: the latest value of each of its date fields."""
    import pandas as pd

    parts = []
    for model in case_record_models():
        fields = date_fields(model)
        if not fields:
            continue
        if model in read:
            frame = read[model]
            ids = frame["id" if model is Patient else "patient_id"]
            day = frame[fields].max(axis=1)
        else:
            latest = {f"latest_{name}": Max(name) for name in fields}
            grouped = _scoped(model, scope).values("patient_id").annotate(**latest)
            frame = _frame(grouped, ["patient_id", *latest])
            ids, day = frame["patient_id"], frame[list(latest)].max(axis=1)
        parts.append(pd.DataFrame({"patient_id": ids, "day": day}))
    days = pd.concat(parts, ignore_index=True).dropna()
    return days.groupby("patient_id")["day"].max()


def _read_records(scope, adverse_events: pd.DataFrame | None = None) -> Records:
    """One query per CRF table, for the patients of `scope` (None: the whole registry), each with
    every date field of its model; `adverse_events`, when the caller has read them (all their
    rows, _with_dates), are not queried again for the censoring date."""
    columns = [
        "id",
        "study_id",
        "institution__code",
        "sex",
        "birth_year",
        "birth_date",
        "diagnosis_date",
        "blinatumomab_start_date",
    ]
    patients = _frame(
        (Patient.objects.all() if scope is None else scope).order_by("study_id"),
        _with_dates(Patient, columns),
    ).rename(columns={"institution__code": "institution"})
    baseline = _frame(
        _scoped(Baseline, scope),
        _with_dates(
            Baseline,
            [
                "patient_id",
                "ecog",
                "salvage_phase",
                "prior_therapies_n",
                "prior_allo_sct",
                "relapse_site",
                "emd_cns",
                "marrow_blasts_pct",
                "pb_blasts_per_ul",
                "cyto_dx_risk",
                "cyto_start_risk",
                "dexamethasone_mg_before",
            ],
        ),
    )
    assessments = _frame(
        _scoped(ResponseAssessment, scope),
        _with_dates(ResponseAssessment, ["id", "patient_id", "response", "cycle_id"]),
    )
    cycles = _frame(_scoped(Cycle, scope), _with_dates(Cycle, ["id", "patient_id", "number"]))
    assessments["cycle"] = assessments["cycle_id"].map(cycles.set_index("id")["number"])
    followup = _frame(_scoped(FollowUp, scope), _with_dates(FollowUp, ["patient_id"]))
    transplants = _frame(_scoped(Transplant, scope), _with_dates(Transplant, ["patient_id"]))
    salvage = _frame(
        _scoped(SubsequentTherapy, scope).filter(category=SubsequentTherapy.SALVAGE_CHEMO),
        ["patient_id"],
    )["patient_id"]
    read = {
        Patient: patients,
        Baseline: baseline,
        ResponseAssessment: assessments,
        Cycle: cycles,
        FollowUp: followup,
        Transplant: transplants,
    }
    if adverse_events is not None:
        read[AdverseEvent] = adverse_events
    latest = _latest_record_dates(read, scope)
    # Same-day assessments in entry order.
    assessments = assessments.sort_values(["patient_id", "assessment_date", "id"], kind="stable")
    return Records(patients, baseline, assessments, cycles, followup, transplants, salvage, latest)


def _date_parts(dates: pd.Series) -> SimpleNamespace:
    """A column of dates as rules' functions take one date: .year, .month, .day (arrays)."""
    return SimpleNamespace(
        year=dates.dt.year.to_numpy(), month=dates.dt.month.to_numpy(), day=dates.dt.day.to_numpy()
    )


def _assumed_birth_dates(df: pd.DataFrame) -> pd.Series:
    """rules.assumed_birth_date() of every patient, called once per distinct birth year."""
    import pandas as pd

    missing = df["birth_date"].isna()
    mid_year = {
        year: rules.assumed_birth_date(None, int(year))
        for year in df.loc[missing, "birth_year"].dropna().unique()
    }
    return df["birth_date"].where(~missing, pd.to_datetime(df["birth_year"].map(mid_year)))


def _days_between(later: pd.Series, earlier: pd.Series) -> pd.Series:
    import pandas as pd

    return (pd.to_datetime(later) - pd.to_datetime(earlier)).dt.days


def derive(records: Records, cuts: Cuts) -> pd.DataFrame:
    """Derived variables of the paper, one row per patient (in study ID order); the rules that
    are not plain readings are stated in DEFINITIONS."""
    import numpy as np
    import pandas as pd

    # Each CRF joined on the patient's own ID: a case without a baseline keeps its follow-up.
    df = records.patients
    for crf in (records.baseline, records.followup):
        crf = crf.rename(columns={"patient_id": "id"})
        df = df.merge(crf, on="id", how="left", validate="one_to_one")
    ids = df["id"]
    start = df["blinatumomab_start_date"]
    out = pd.DataFrame(
        {"study_id": df["study_id"], "institution": df["institution"], "sex": df["sex"]}
    )
    out["age_years"] = rules.age_in_years(_date_parts(_assumed_birth_dates(df)), _date_parts(start))
    out["months_diagnosis_to_start"] = (
        _days_between(start, df["diagnosis_date"]) / DAYS_PER_MONTH
    ).round(4)
    out["salvage_phase"] = df["salvage_phase"].astype("Int64")
    out["ecog"] = df["ecog"].astype("Int64")
    out["prior_therapies_n"] = df["prior_therapies_n"].astype("Int64")
    out["cyto_risk_diagnosis"] = df["cyto_dx_risk"].replace("", None)
    out["cyto_risk_start"] = df["cyto_start_risk"].replace("", None)
    out["relapse_site"] = df["relapse_site"]
    out["emd"] = df["relapse_site"].isin([Baseline.EXTRAMEDULLARY_ONLY, Baseline.BOTH])
    out["cns_disease"] = df["emd_cns"].astype("boolean").fillna(False).astype(bool)
    out["marrow_blasts_pct"] = df["marrow_blasts_pct"].astype(float)
    out["pb_blasts_per_ul"] = df["pb_blasts_per_ul"].astype("Int64")
    out["prior_allo_sct"] = df["prior_allo_sct"].astype("boolean").fillna(False).astype(bool)
    out["dexamethasone_mg_before"] = df["dexamethasone_mg_before"].astype(float)

    # Subgroup flags with the run's cut points (missing stays missing).
    out["age_ge_55"] = out["age_years"] >= cuts.age_years
    out["diagnosis_ge_12m"] = out["months_diagnosis_to_start"] >= cuts.months_from_diagnosis
    out["salvage_ge_2"] = _flag(out["salvage_phase"], lambda s: s >= 2)
    out["ecog_ge_2"] = _flag(out["ecog"], lambda s: s >= 2)
    out["blasts_gt_50"] = _flag(out["marrow_blasts_pct"], lambda s: s > cuts.marrow_blasts_pct)
    out["dexamethasone_gt_80"] = _flag(
        out["dexamethasone_mg_before"], lambda s: s > cuts.dexamethasone_mg
    )

    out["cycles_given"] = ids.map(records.cycles["patient_id"].value_counts()).fillna(0)
    out["cycles_given"] = out["cycles_given"].astype(int)

    best, after_c1, after_c2, first_pd, first_response = _assessment_facts(ids, records.assessments)
    out["response_assessed"] = ids.isin(records.assessments["patient_id"])
    # rules.is_evaluable() on whole columns: the best response is a determinable one.
    out["evaluable"] = best.isin(rules.DETERMINABLE_RESPONSES)
    out["best_response"] = best
    out["responder"] = best.isin(rules.RESPONDER_CATEGORIES)
    out["response_after_cycle1"] = after_c1
    out["response_after_cycle2"] = after_c2
    sct_dates = records.transplants.set_index("patient_id")["sct_date"]
    out["allo_sct_after"] = ids.isin(sct_dates.index)
    # Dates of the time-dependent events, for landmark and time-varying analyses.
    out["response_days"] = _days_between(first_response, start).astype("Int64")
    out["sct_days"] = _days_between(ids.map(sct_dates), start).astype("Int64")
    out["salvage_chemo_after"] = ids.isin(records.salvage_patient_ids)

    # Censoring date (CENSORING_DEFINITION): the latest date on any record of the case, the
    # follow-up's last contact included; never missing, as blinatumomab start is one of them.
    last_seen = ids.map(records.latest_dates)
    death = df["death_date"]
    relapse = df["relapse_or_progression_date"]
    efs_date = pd.concat([relapse, first_pd, death], axis=1).min(axis=1)
    out["efs_event"] = efs_date.notna().astype(int)
    # Competing risks: which event ended EFS. Death counts as the cause only without an earlier
    # or same-day relapse/progression (non-relapse mortality).
    relapse_first = pd.concat([relapse, first_pd], axis=1).min(axis=1)
    out["efs_cause"] = np.select(
        [relapse_first.notna() & (relapse_first <= efs_date), efs_date.notna()], [1, 2], 0
    )
    out["efs_days"] = _days_between(efs_date.fillna(last_seen), start).astype(int)
    out["efs_months"] = out["efs_days"] / DAYS_PER_MONTH
    out["os_event"] = death.notna().astype(int)
    out["os_days"] = _days_between(death.fillna(last_seen), start).astype(int)
    out["os_months"] = out["os_days"] / DAYS_PER_MONTH
    for column in FLAG_COLUMNS:
        if out[column].dtype == bool:
            out[column] = out[column].astype(int)
        else:
            out[column] = out[column].astype("Int64")
    return out[list(VARIABLES)]


def _assessment_facts(ids: pd.Series, assessments: pd.DataFrame):
    """Per patient (as Series aligned with `ids`), from the assessments in date order: best
    response, the responses at the first assessments after cycles 1 and 2, and the dates of the
    first PD and of the first CR/CRi (missing when there is none).

    One sort (by the reader) and a few vectorised lookups instead of a loop over patients
    (100,000 patients took minutes that way); equal, patient by patient, to
    rules.best_response() over the patient's assessments and to taking the first matching row
    in date order.
    """
    import numpy as np
    import pandas as pd

    order = rules.BEST_RESPONSE_ORDER
    labels = np.array([*order, rules.NOT_EVALUABLE], dtype=object)
    a = assessments
    rank = a["response"].map({c: i for i, c in enumerate(order)}).fillna(len(order))
    best_rank = rank.groupby(a["patient_id"].to_numpy()).min()
    best = ids.map(best_rank).fillna(len(order)).astype(int)
    best = pd.Series(labels[best.to_numpy()], index=ids.index, dtype=object)

    def first(rows, column):
        found = rows.drop_duplicates("patient_id", keep="first").set_index("patient_id")[column]
        return ids.map(found)

    after_c1, after_c2 = (
        first(a[a["cycle"] == cycle], "response").astype(object) for cycle in (1, 2)
    )
    after_c1, after_c2 = (r.where(r.notna(), None) for r in (after_c1, after_c2))
    first_pd = pd.to_datetime(first(a[a["response"] == rules.PROGRESSIVE], "assessment_date"))
    responded = a[a["response"].isin(rules.RESPONDER_CATEGORIES)]
    first_cr = pd.to_datetime(first(responded, "assessment_date"))
    return best, after_c1, after_c2, first_pd, first_cr


def _flag(values: pd.Series, condition) -> pd.Series:
    """A 0/1 flag that stays missing where the value is missing."""
    import numpy as np
    import pandas as pd

    numeric = pd.to_numeric(values, errors="coerce").astype(float)
    flag = pd.Series(np.where(condition(numeric), 1, 0), index=values.index).astype("Int64")
    return flag.mask(numeric.isna())
