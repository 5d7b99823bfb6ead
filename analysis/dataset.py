"""The analysis dataset: the one place the analysis side reads the registry.

`load_registry()` runs a handful of read-only queries and returns plain pandas frames; every
statistic downstream is a function of those frames. Nothing here writes to the database.
"""

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.db.models import Count, Max

from registry import ctcae, rules
from registry.models import (
    AdverseEvent,
    Baseline,
    Cycle,
    FollowUp,
    Patient,
    ResponseAssessment,
    SubsequentTherapy,
    Transplant,
)

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
YES_NO = {0: "No", 1: "Yes"}
VARIABLES = {
    "study_id": ("Study ID (site code and number)", None),
    "institution": ("Institution code", None),
    "sex": ("Sex", None),
    "age_years": ("Age at blinatumomab start, completed years", None),
    "age_ge_55": ("Age >= cut (default 55 years)", YES_NO),
    "months_diagnosis_to_start": ("Months from diagnosis to blinatumomab start", None),
    "diagnosis_ge_12m": ("Diagnosis to start >= cut (default 12 months)", YES_NO),
    "salvage_phase": (
        "Salvage phase (3 = third or later)",
        {1: "First", 2: "Second", 3: "Third or later"},
    ),
    "salvage_ge_2": ("Second or later salvage", YES_NO),
    "ecog": ("ECOG performance status at start", None),
    "ecog_ge_2": ("ECOG >= 2", YES_NO),
    "prior_therapies_n": ("Number of prior therapies", None),
    "cyto_risk_diagnosis": ("Cytogenetic risk at diagnosis (empty = not done)", None),
    "cyto_risk_start": ("Cytogenetic risk at blinatumomab start (empty = not done)", None),
    "relapse_site": ("Relapse site at start", None),
    "emd": ("Extramedullary disease at start", YES_NO),
    "cns_disease": ("CNS disease at start", YES_NO),
    "marrow_blasts_pct": ("Bone marrow blasts at start, %", None),
    "blasts_gt_50": ("Marrow blasts > cut (default 50%)", YES_NO),
    "pb_blasts_per_ul": ("Peripheral blood blasts at start, /uL", None),
    "prior_allo_sct": ("Allogeneic SCT before blinatumomab", YES_NO),
    "dexamethasone_mg_before": ("Cumulative dexamethasone before blinatumomab, mg", None),
    "dexamethasone_gt_80": ("Dexamethasone > cut (default 80 mg)", YES_NO),
    "cycles_given": ("Blinatumomab cycles given", None),
    "evaluable": ("Evaluable for response (at least one assessment)", YES_NO),
    "best_response": ("Best response (CR, CRi, NR, PD; NE = not evaluable)", None),
    "responder": ("Responder (best response CR or CRi)", YES_NO),
    "response_after_cycle1": ("Response at the first assessment after cycle 1", None),
    "allo_sct_after": ("Allogeneic SCT after blinatumomab", YES_NO),
    "sct_days": ("Days from day 1 to the allogeneic SCT after blinatumomab", None),
    "response_days": ("Days from day 1 to the first CR/CRi assessment", None),
    "salvage_chemo_after": ("Salvage chemotherapy after blinatumomab", YES_NO),
    "efs_days": ("Event-free survival, days from day 1", None),
    "efs_months": ("Event-free survival, months (days / 30.4375)", None),
    "efs_event": ("EFS event: relapse, progression or death (0 = censored)", YES_NO),
    "efs_cause": (
        "EFS event type",
        {0: "Censored", 1: "Relapse or progression", 2: "Death without relapse"},
    ),
    "os_days": ("Overall survival, days from day 1", None),
    "os_months": ("Overall survival, months (days / 30.4375)", None),
    "os_event": ("Death from any cause (0 = censored at last follow-up)", YES_NO),
}
FLAG_COLUMNS = [c for c, (_, labels) in VARIABLES.items() if labels is YES_NO]


@dataclass
class RegistrySnapshot:
    """The frozen input of an analysis run."""

    dataset: pd.DataFrame  # one row per patient, the columns of VARIABLES
    adverse_events: pd.DataFrame  # one row per event: study_id, ctcae_term, soc, grade, cycle

    def content_hash(self) -> str:
        digest = hashlib.sha256()
        for frame in (self.dataset, self.adverse_events):
            digest.update(frame.to_csv(index=False, lineterminator="\n").encode())
        return digest.hexdigest()


def _frame(queryset, columns):
    return pd.DataFrame.from_records(list(queryset.values_list(*columns)), columns=columns)


def load_registry(patients=None, cuts: Cuts = Cuts()) -> RegistrySnapshot:
    """Read the registry (all patients, or the given queryset) into an analysis snapshot."""
    patients = Patient.objects.all() if patients is None else patients
    aes = _frame(
        AdverseEvent.objects.filter(patient__in=patients).order_by("patient__study_id", "id"),
        ["patient__study_id", "ctcae_term", "grade", "cycle__number", "onset_date"],
    ).rename(columns={"patient__study_id": "study_id", "cycle__number": "cycle"})
    socs = {t: ctcae.get(t).soc if ctcae.get(t) else "" for t in aes["ctcae_term"].unique()}
    aes.insert(2, "soc", aes["ctcae_term"].map(socs).astype(object))
    return RegistrySnapshot(dataset=dataset_frame(patients, cuts), adverse_events=aes)


def iter_dataset_csv(patients=None, cuts: Cuts = Cuts(), chunk_size: int = 5000):
    """analysis_dataset.csv as text chunks, `chunk_size` patients at a time, so that memory stays
    flat however large the registry is. Every derived variable is a function of one patient's
    records, so the chunks joined are byte for byte the CSV of the whole frame."""
    patients = Patient.objects.all() if patients is None else patients
    yield ",".join(VARIABLES) + "\n"
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
        yield frame.to_csv(index=False, header=False)
        if last is None:
            return
        after = last


def dataset_frame(patients, cuts: Cuts = Cuts()) -> pd.DataFrame:
    """One row per patient of `patients` (in study ID order): the columns of VARIABLES."""
    scope = patients
    base = _frame(
        patients.order_by("study_id"),
        [
            "id",
            "study_id",
            "institution__code",
            "sex",
            "birth_year",
            "birth_date",
            "diagnosis_date",
            "blinatumomab_start_date",
        ],
    ).rename(columns={"institution__code": "institution"})
    ids = base["id"].tolist()
    baseline = _frame(
        Baseline.objects.filter(patient__in=scope).order_by(),
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
    )
    assessments = _frame(
        # Same-day assessments in entry order; the models' default ordering (by the patient's
        # study ID) would join the patient table to every query.
        ResponseAssessment.objects.filter(patient__in=scope).order_by(
            "patient_id", "assessment_date", "id"
        ),
        ["patient_id", "assessment_date", "response", "cycle__number"],
    )
    cycles = _frame(
        Cycle.objects.filter(patient__in=scope)
        .order_by()
        .values("patient_id")
        .annotate(n=Count("id")),
        ["patient_id", "n"],
    )
    followup = _frame(
        FollowUp.objects.filter(patient__in=scope).order_by(),
        ["patient_id", "last_contact_date", "relapse_or_progression_date", "death_date"],
    )
    transplanted = dict(
        Transplant.objects.filter(patient__in=scope)
        .order_by()
        .values_list("patient_id", "sct_date")
    )
    salvage = set(
        SubsequentTherapy.objects.filter(
            patient__in=scope, category=SubsequentTherapy.SALVAGE_CHEMO
        )
        .order_by()
        .values_list("patient_id", flat=True)
    )
    last_record = _last_record_dates(scope)
    df = base.merge(baseline, left_on="id", right_on="patient_id", how="left")
    df = df.merge(followup, on="patient_id", how="left")
    dataset = derive(df, assessments, cycles, transplanted, salvage, last_record, cuts)
    assert dataset["study_id"].tolist() == base["study_id"].tolist() and len(ids) == len(dataset)
    return dataset


def _last_record_dates(scope) -> dict:
    """Latest date any record shows the patient alive: censoring date without a follow-up CRF."""
    latest: dict[int, object] = {}
    sources = [
        (Cycle, "end_date"),
        (Cycle, "start_date"),
        (ResponseAssessment, "assessment_date"),
        (AdverseEvent, "onset_date"),
    ]
    for model, field in sources:
        per_patient = (
            model.objects.filter(patient__in=scope, **{f"{field}__isnull": False})
            .order_by()
            .values("patient_id")
            .annotate(day=Max(field))
            .values_list("patient_id", "day")
        )
        for pid, day in per_patient:
            if pid not in latest or day > latest[pid]:
                latest[pid] = day
    return latest


def _days_between(later: pd.Series, earlier: pd.Series) -> pd.Series:
    return (pd.to_datetime(later) - pd.to_datetime(earlier)).dt.days


def derive(df, assessments, cycles, transplanted, salvage, last_record, cuts: Cuts):
    """Derived variables of the paper, from the merged per-patient frame."""
    start = pd.to_datetime(df["blinatumomab_start_date"])
    born = [
        rules.assumed_birth_date(d if pd.notna(d) else None, y)
        for d, y in zip(df["birth_date"], df["birth_year"], strict=True)
    ]
    out = pd.DataFrame(
        {"study_id": df["study_id"], "institution": df["institution"], "sex": df["sex"]}
    )
    out["age_years"] = [rules.age_in_years(b, s.date()) for b, s in zip(born, start, strict=True)]
    out["months_diagnosis_to_start"] = (
        _days_between(df["blinatumomab_start_date"], df["diagnosis_date"]) / DAYS_PER_MONTH
    ).round(4)
    out["salvage_phase"] = df["salvage_phase"].astype("Int64")
    out["ecog"] = df["ecog"].astype("Int64")
    out["prior_therapies_n"] = df["prior_therapies_n"].astype("Int64")
    out["cyto_risk_diagnosis"] = df["cyto_dx_risk"].replace("", None)
    out["cyto_risk_start"] = df["cyto_start_risk"].replace("", None)
    out["relapse_site"] = df["relapse_site"]
    out["emd"] = df["relapse_site"].isin([Baseline.EXTRAMEDULLARY_ONLY, Baseline.BOTH])
    out["cns_disease"] = df["emd_cns"].fillna(False).astype(bool)
    out["marrow_blasts_pct"] = pd.to_numeric(df["marrow_blasts_pct"]).astype(float)
    out["pb_blasts_per_ul"] = df["pb_blasts_per_ul"].astype("Int64")
    out["prior_allo_sct"] = df["prior_allo_sct"].fillna(False).astype(bool)
    out["dexamethasone_mg_before"] = pd.to_numeric(df["dexamethasone_mg_before"]).astype(float)

    # Subgroup flags with the run's cut points (missing stays missing).
    out["age_ge_55"] = out["age_years"] >= cuts.age_years
    out["diagnosis_ge_12m"] = out["months_diagnosis_to_start"] >= cuts.months_from_diagnosis
    out["salvage_ge_2"] = _flag(out["salvage_phase"], lambda s: s >= 2)
    out["ecog_ge_2"] = _flag(out["ecog"], lambda s: s >= 2)
    out["blasts_gt_50"] = _flag(out["marrow_blasts_pct"], lambda s: s > cuts.marrow_blasts_pct)
    out["dexamethasone_gt_80"] = _flag(
        out["dexamethasone_mg_before"], lambda s: s > cuts.dexamethasone_mg
    )

    n_cycles = dict(zip(cycles["patient_id"], cycles["n"], strict=True))
    out["cycles_given"] = [int(n_cycles.get(pid, 0)) for pid in df["id"]]

    best, after_c1, first_pd, first_response = _assessment_facts(df["id"], assessments)
    out["evaluable"] = [b != rules.NOT_EVALUABLE for b in best]
    out["best_response"] = best
    out["responder"] = [b in rules.RESPONDER_CATEGORIES for b in best]
    out["response_after_cycle1"] = after_c1
    out["allo_sct_after"] = df["id"].isin(transplanted.keys())
    # Dates of the time-dependent events, for landmark and time-varying analyses.
    out["response_days"] = _days_between(
        pd.Series(first_response, index=df.index, dtype=object), df["blinatumomab_start_date"]
    ).astype("Int64")
    out["sct_days"] = _days_between(
        df["id"].map(transplanted), df["blinatumomab_start_date"]
    ).astype("Int64")
    out["salvage_chemo_after"] = df["id"].isin(salvage)

    # Censoring date: last contact on the follow-up CRF, else the latest dated record.
    fallback = pd.Series([last_record.get(pid) for pid in df["id"]], index=df.index)
    last_seen = df["last_contact_date"].where(df["last_contact_date"].notna(), fallback)
    last_seen = last_seen.where(last_seen.notna(), df["blinatumomab_start_date"])
    death = df["death_date"]
    progression = pd.Series(first_pd, index=df.index, dtype=object)
    relapse = df["relapse_or_progression_date"]
    efs_date = pd.concat(
        [pd.to_datetime(relapse), pd.to_datetime(progression), pd.to_datetime(death)], axis=1
    ).min(axis=1)
    out["efs_event"] = efs_date.notna().astype(int)
    # Competing risks: which event ended EFS. Death counts as the cause only without an earlier
    # or same-day relapse/progression (non-relapse mortality).
    relapse_first = pd.concat([pd.to_datetime(relapse), pd.to_datetime(progression)], axis=1).min(
        axis=1
    )
    out["efs_cause"] = np.select(
        [relapse_first.notna() & (relapse_first <= efs_date), efs_date.notna()], [1, 2], 0
    )
    out["efs_days"] = _days_between(
        efs_date.where(efs_date.notna(), pd.to_datetime(last_seen)), df["blinatumomab_start_date"]
    ).astype(int)
    out["efs_months"] = out["efs_days"] / DAYS_PER_MONTH
    out["os_event"] = death.notna().astype(int)
    out["os_days"] = _days_between(
        death.where(death.notna(), last_seen), df["blinatumomab_start_date"]
    ).astype(int)
    out["os_months"] = out["os_days"] / DAYS_PER_MONTH
    for column in FLAG_COLUMNS:
        if out[column].dtype == bool:
            out[column] = out[column].astype(int)
        else:
            out[column] = out[column].astype("Int64")
    return out[list(VARIABLES)]


def _assessment_facts(ids: pd.Series, assessments: pd.DataFrame):
    """Per patient (in `ids` order), from the assessments in date order: best response, the
    response at the first assessment after cycle 1, and the dates of the first PD and of the
    first CR/CRi (None when there is none).

    One stable sort and a few vectorised lookups instead of a loop over patients (100,000
    patients took minutes that way); equal, patient by patient, to rules.best_response() over
    the patient's assessments and to taking the first matching row in date order.
    """
    order = rules.BEST_RESPONSE_ORDER
    if not len(assessments):
        missing = [None] * len(ids)
        return [rules.NOT_EVALUABLE] * len(ids), missing, list(missing), list(missing)
    a = assessments.sort_values(["patient_id", "assessment_date"], kind="mergesort")
    rank = a["response"].map({c: i for i, c in enumerate(order)}).fillna(len(order))
    best_rank = rank.groupby(a["patient_id"].to_numpy()).min()
    labels = np.array([*order, rules.NOT_EVALUABLE], dtype=object)
    best = labels[ids.map(best_rank).fillna(len(order)).astype(int).to_numpy()].tolist()

    def first(rows, column):
        found = rows.drop_duplicates("patient_id", keep="first").set_index("patient_id")[column]
        values = ids.map(found)
        return [v if pd.notna(v) else None for v in values.astype(object)]

    after_c1 = first(a[a["cycle__number"] == 1], "response")
    first_pd = first(a[a["response"] == rules.PROGRESSIVE], "assessment_date")
    first_cr = first(a[a["response"].isin(rules.RESPONDER_CATEGORIES)], "assessment_date")
    return best, after_c1, first_pd, first_cr


def _flag(values: pd.Series, condition) -> pd.Series:
    """A 0/1 flag that stays missing where the value is missing."""
    numeric = pd.to_numeric(values, errors="coerce").astype(float)
    flag = pd.Series(np.where(condition(numeric), 1, 0), index=values.index).astype("Int64")
    return flag.mask(numeric.isna())
