"""Synthetic analysis datasets for the statistics tests (no database, no real patients).

make_dataset: a random but clinically plausible cohort of any size.
paper_cohort: 50 patients built so that Tables 1 and 2 reproduce the paper's printed counts.
make_adverse_events / paper_adverse_events: the matching adverse-event frames.
require_rscript: the R interpreter the reference comparisons need.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd

from analysis.reproduction import printed_numbers

DAYS_PER_MONTH = 30.4375
N_INSTITUTIONS = 16


def require_rscript() -> str:
    """Path of Rscript, or a test failure saying how to get it (R is a test dependency)."""
    import pytest

    path = shutil.which("Rscript")
    if path is None:
        pytest.fail(
            "Rscript not found: these tests compare with R. "
            "Install it with: apt-get install r-base-core r-cran-survival"
        )
    return path


def _study_ids(n: int, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    institutions = rng.integers(1, N_INSTITUTIONS + 1, size=n)
    ids, serial = [], {}
    for code in institutions:
        serial[code] = serial.get(code, 0) + 1
        ids.append(f"KR{code:02d}-{serial[code]:03d}")
    return ids, [f"KR{code:02d}" for code in institutions]


def _nullable(values, missing) -> pd.Series:
    return pd.Series(values, dtype="boolean").mask(np.asarray(missing))


def add_derived_flags(df: pd.DataFrame) -> pd.DataFrame:
    """The boolean convenience columns, derived exactly as the dataset builder does."""
    blasts = df["marrow_blasts_pct"]
    return df.assign(
        age_ge_55=df["age_years"] >= 55,
        diagnosis_ge_12m=df["months_diagnosis_to_start"] >= 12,
        salvage_ge_2=df["salvage_phase"] >= 2,
        ecog_ge_2=df["ecog"] >= 2,
        emd=df["relapse_site"] != "marrow",
        blasts_gt_50=_nullable(blasts > 50, blasts.isna()),
        dexamethasone_gt_80=df["dexamethasone_mg_before"] > 80,
        responder=df["best_response"].isin(["CR", "CRi"]),
    )


FLAG_COLUMNS = [
    "age_ge_55",
    "diagnosis_ge_12m",
    "salvage_ge_2",
    "ecog_ge_2",
    "emd",
    "blasts_gt_50",
    "prior_allo_sct",
    "dexamethasone_gt_80",
    "response_assessed",
    "evaluable",
    "responder",
    "allo_sct_after",
    "salvage_chemo_after",
]


def as_registry_dtypes(df: pd.DataFrame) -> pd.DataFrame:
    """Recast as the registry's dataset builder stores columns: flags as 0/1 (nullable Int64
    where a flag can be missing) and integer codes as Int64."""
    out = df.copy()
    for column in FLAG_COLUMNS:
        out[column] = out[column].astype("boolean").astype("Int64")
    for column in ("salvage_phase", "ecog", "cycles_given"):
        out[column] = out[column].astype("Int64")
    return out


def _survival_days(rng, responder, allo, evaluable) -> dict[str, np.ndarray]:
    """EFS/OS in whole days: responders and transplanted patients do better."""
    n = len(responder)
    efs_median = np.where(responder, 7.5, 2.0) * np.where(allo, 1.3, 1.0)
    efs_true = rng.exponential(efs_median / np.log(2)) * DAYS_PER_MONTH
    os_gap = rng.exponential(4.0 / np.log(2), size=n) * DAYS_PER_MONTH
    os_true = efs_true + os_gap
    follow_up = rng.uniform(3, 18, size=n) * DAYS_PER_MONTH
    # The early deaths that make patients non-evaluable happen in cycle 1.
    early_death = rng.integers(5, 28, size=n)
    efs_true = np.where(evaluable, efs_true, early_death)
    os_true = np.where(evaluable, os_true, early_death)
    efs_days = np.ceil(np.minimum(efs_true, follow_up))
    os_days = np.ceil(np.minimum(os_true, follow_up))
    return {
        "efs_days": efs_days,
        "efs_event": (efs_true <= follow_up).astype(int),
        "os_days": os_days,
        "os_event": (os_true <= follow_up).astype(int),
    }


def _responses(rng, df, evaluable) -> pd.DataFrame:
    n = len(df)
    logit = 0.3 - 0.9 * (df["ecog"] >= 2) - 0.7 * df["emd"] - 0.4 * (df["marrow_blasts_pct"] > 50)
    responder = evaluable & (rng.random(n) < 1 / (1 + np.exp(-logit)))
    best = np.where(
        responder,
        rng.choice(["CR", "CRi"], size=n, p=[0.9, 0.1]),
        rng.choice(["NR", "PD"], size=n, p=[0.55, 0.45]),
    )
    best = np.where(evaluable, best, "NE")
    after_c1 = np.where(responder & (rng.random(n) < 0.85), best, rng.choice(["NR", "PD"], size=n))
    after_c1 = pd.Series(after_c1, dtype=object)
    after_c1[(rng.random(n) < 0.06) | ~evaluable] = None
    allo = responder & (rng.random(n) < 0.7)
    return pd.DataFrame(
        {
            # Every assessed patient here had a determinable response.
            "response_assessed": evaluable,
            "evaluable": evaluable,
            "best_response": best,
            "response_after_cycle1": after_c1,
            "cycles_given": np.where(evaluable, rng.choice([1, 2, 2, 3], size=n), 1),
            "allo_sct_after": allo,
            "salvage_chemo_after": evaluable & ~responder & (rng.random(n) < 0.5),
        }
    )


def make_dataset(n: int = 50, seed: int = 0) -> pd.DataFrame:
    """A random analysis dataset with the registry's column names and conventions."""
    rng = np.random.default_rng(seed)
    study_id, institution = _study_ids(n, rng)
    site = rng.choice(["marrow", "extramedullary", "both"], size=n, p=[0.78, 0.10, 0.12])
    blasts = np.round(100 * rng.beta(4, 1.2, size=n))
    # Extramedullary-only relapses and some marrow reports have no blast count.
    blasts_missing = (site == "extramedullary") | (rng.random(n) < 0.08)
    dexamethasone = np.where(rng.random(n) < 0.5, 0.0, 20 * rng.integers(1, 16, size=n))
    cyto = ["standard", "high", None]
    df = pd.DataFrame(
        {
            "study_id": study_id,
            "institution": institution,
            "sex": rng.choice(["male", "female"], size=n, p=[0.4, 0.6]),
            "age_years": np.round(np.clip(rng.normal(45, 14, size=n), 19, 80), 1),
            "months_diagnosis_to_start": np.round(
                np.clip(rng.lognormal(np.log(13.5), 0.9, size=n), 0.5, 200), 1
            ),
            "salvage_phase": rng.choice([1, 2, 3], size=n, p=[0.58, 0.24, 0.18]),
            "ecog": rng.choice([0, 1, 2, 3, 4], size=n, p=[0.3, 0.4, 0.2, 0.08, 0.02]),
            "cyto_risk_diagnosis": rng.choice(cyto, size=n, p=[0.75, 0.17, 0.08]),
            "cyto_risk_start": rng.choice(cyto, size=n, p=[0.52, 0.32, 0.16]),
            "relapse_site": site,
            "marrow_blasts_pct": np.where(blasts_missing, np.nan, blasts),
            "prior_allo_sct": rng.random(n) < 0.54,
            "dexamethasone_mg_before": dexamethasone,
        }
    )
    df["emd"] = df["relapse_site"] != "marrow"
    evaluable = rng.random(n) > 0.03
    df = pd.concat([df, _responses(rng, df, evaluable)], axis=1)
    df = add_derived_flags(df)
    days = _survival_days(rng, df["responder"], df["allo_sct_after"], evaluable)
    return df.assign(
        efs_months=days["efs_days"] / DAYS_PER_MONTH,
        efs_event=days["efs_event"],
        os_months=days["os_days"] / DAYS_PER_MONTH,
        os_event=days["os_event"],
    )


# ---------------------------------------------------------------------------
# The paper's cohort, reconstructed from its printed counts
# ---------------------------------------------------------------------------

# Table 2's two levels per subgroup, as analysis.tables names them (the printed values are in
# analysis/data/paper_printed.csv), and the level of the one non-evaluable patient, chosen so
# that Table 1 (n = 50) also matches.
TABLE2_LEVELS = {
    "age": (("<55", ">=55"), 2),
    "sex": (("male", "female"), 2),
    "salvage_phase": (("1", ">=2"), 2),
    "time_from_diagnosis": (("<12 months", ">=12 months"), 1),
    "ecog": (("0-1", ">=2"), 1),
    "cyto_risk_diagnosis": (("standard", "high"), None),
    "cyto_risk_start": (("standard", "high"), None),
    "prior_allo_sct": (("no", "yes"), 2),
    "dexamethasone": (("<=80 mg", ">80 mg"), 1),
}


def _table2_counts(variable: str, levels) -> tuple[tuple, tuple]:
    """(level 1, level 2, missing) for the 22 responders and the 27 non-responders, from the
    printed Table 2 row."""
    (_, k1, n1), (_, k2, n2) = (printed_numbers(f"table2:{variable}|{level}") for level in levels)
    responders, others = 22, 27
    k1, n1, k2, n2 = int(k1), int(n1), int(k2), int(n2)
    return (k1, k2, responders - k1 - k2), (n1 - k1, n2 - k2, others - (n1 - k1) - (n2 - k2))


PAPER_TABLE2 = {
    key: (*_table2_counts(key, levels), dead) for key, (levels, dead) in TABLE2_LEVELS.items()
}

# Age pools: median 45 (range 19-71) over 50 patients with five older than 65 (Table 1).
_YOUNG_AGES = [19, 21, 23, 24, 25, 26, 27, 28, 29, 30, *range(31, 45), 45, 45, 46, 48]
_YOUNG_AGES += [49, 51, 52, 54]
_OLD_AGES = [55, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 65, 66, 67, 68, 70, 71]
# Months from diagnosis: median 13.5 (0.9-160.8) with 24 patients under 12 months.
_EARLY_MONTHS = [0.9, *np.round(np.linspace(2.0, 11.5, 23), 1)]
_LATE_MONTHS = [13.0, 14.0, *np.round(np.linspace(15.0, 90.0, 23), 1), 160.8]
# BM blasts: one patient at exactly 50% explains Table 1 (8 <50%) vs Table 2 (9 <=50%).
_LOW_BLASTS = [4, 10, 15, 20, 25, 30, 40, 45, 50]
_HIGH_BLASTS = [55, 58, 60, 62, 65, 68, 70, 72, 75, 77, 79, 80, 81, *range(82, 100), 97, 98, 99]


def _levels(rng, counts, dead) -> np.ndarray:
    """Per-patient level (1, 2 or 0 = missing): 22 responders, 27 non-responders, dead."""
    parts = []
    for level1, level2, missing in counts:
        part = np.array([1] * level1 + [2] * level2 + [0] * missing)
        parts.append(rng.permutation(part))
    return np.concatenate([*parts, [dead or 0]])


def _shuffled(rng, items: list) -> list:
    return [items[i] for i in rng.permutation(len(items))]


def _site_and_blasts(rng) -> tuple[list[str], list[float]]:
    """Joint relapse site / blasts so extramedullary-only relapses have no blast count.

    Evaluable EMD: 3 responders (2 marrow + EMD, 1 EMD only), 7 non-responders (4 + 3);
    BM blasts (<=50 / >50 / missing): responders 6/14/2, non-responders 3/20/4.
    """
    responders = [("extramedullary", 0), ("marrow", 0), ("both", 2), ("both", 2)]
    responders += [("marrow", 1)] * 6 + [("marrow", 2)] * 12
    others = [("extramedullary", 0)] * 3 + [("marrow", 0)] + [("both", 2)] * 4
    others += [("marrow", 1)] * 3 + [("marrow", 2)] * 16
    pairs = [*_shuffled(rng, responders), *_shuffled(rng, others), ("extramedullary", 0)]
    low, high = iter(_shuffled(rng, _LOW_BLASTS)), iter(_shuffled(rng, _HIGH_BLASTS))
    sites, blasts = [], []
    for site, level in pairs:
        sites.append(site)
        blasts.append(np.nan if level == 0 else float(next(low if level == 1 else high)))
    return sites, blasts


def _paper_responses(rng) -> pd.DataFrame:
    """Best response (21 CR + 1 CRi of 49) and the post-cycle-1 picture of Figure 1."""
    best = ["CR"] * 21 + ["CRi"] + list(rng.choice(["NR", "PD"], size=27)) + ["NE"]
    after_c1 = ["CR"] * 19 + ["CRi"] + ["NR", "NR"]
    after_c1 += list(rng.choice(["NR", "PD"], size=24)) + [None] * 3 + [None]
    allo = [True] * 16 + [False] * 34
    chemo = [False] * 22 + [True] * 13 + [False] * 15
    cycles = [2] * 22 + [2] * 14 + [1] * 13 + [1]
    return pd.DataFrame(
        {
            "response_assessed": [True] * 49 + [False],
            "evaluable": [True] * 49 + [False],
            "best_response": best,
            "response_after_cycle1": pd.Series(after_c1, dtype=object),
            "cycles_given": cycles,
            "allo_sct_after": allo,
            "salvage_chemo_after": chemo,
        }
    )


def paper_cohort(seed: int = 0) -> pd.DataFrame:
    """50 patients whose Table 1 and Table 2 counts are the paper's printed ones.

    Rows 0-21 are the responders, 22-48 the non-responders and row 49 the patient who died
    in cycle 1 before response assessment. Survival times are random (seeded).
    """
    rng = np.random.default_rng(seed)
    level = {key: _levels(rng, counts, dead) for key, (*counts, dead) in PAPER_TABLE2.items()}
    sites, blasts = _site_and_blasts(rng)
    cyto = {0: None, 1: "standard", 2: "high"}
    df = pd.DataFrame(
        {
            "study_id": [f"KR{1 + i % N_INSTITUTIONS:02d}-{1 + i // 16:03d}" for i in range(50)],
            "institution": [f"KR{1 + i % N_INSTITUTIONS:02d}" for i in range(50)],
            "sex": np.where(level["sex"] == 1, "male", "female"),
            "age_years": _fill(rng, level["age"], _YOUNG_AGES, _OLD_AGES),
            "months_diagnosis_to_start": _fill(
                rng, level["time_from_diagnosis"], _EARLY_MONTHS, _LATE_MONTHS
            ),
            "salvage_phase": _fill(rng, level["salvage_phase"], [1] * 29, [2] * 12 + [3] * 9),
            "ecog": _fill(rng, level["ecog"], [0] * 15 + [1] * 20, [2] * 11 + [3] * 4),
            "cyto_risk_diagnosis": [cyto[v] for v in level["cyto_risk_diagnosis"]],
            "cyto_risk_start": [cyto[v] for v in level["cyto_risk_start"]],
            "relapse_site": sites,
            "marrow_blasts_pct": blasts,
            "prior_allo_sct": level["prior_allo_sct"] == 2,
            "dexamethasone_mg_before": _fill(
                rng, level["dexamethasone"], [0] * 20 + [20, 40, 60, 80] * 5, [100, 160, 240] * 5
            ),
        }
    )
    df["salvage_phase"] = df["salvage_phase"].astype(int)
    df["ecog"] = df["ecog"].astype(int)
    df = pd.concat([df, _paper_responses(rng)], axis=1)
    df = add_derived_flags(df)
    days = _survival_days(rng, df["responder"], df["allo_sct_after"], df["evaluable"])
    return df.assign(
        efs_months=days["efs_days"] / DAYS_PER_MONTH,
        efs_event=days["efs_event"],
        os_months=days["os_days"] / DAYS_PER_MONTH,
        os_event=days["os_event"],
    )


def _fill(rng, levels: np.ndarray, pool1, pool2) -> np.ndarray:
    """Values for level-1 / level-2 patients drawn without replacement from two pools."""
    out = np.full(levels.size, np.nan)
    for level, pool in ((1, pool1), (2, pool2)):
        mask = levels == level
        out[mask] = rng.permutation(np.asarray(pool, dtype=float))[: int(mask.sum())]
    return out


# ---------------------------------------------------------------------------
# Adverse events
# ---------------------------------------------------------------------------

# Paper's Table 3 rows with the CTCAE v4.03 term (and SOC) used to record them here; the printed
# patients by worst grade come from analysis/data/paper_printed.csv.
_TABLE3_TERMS = {
    "Febrile neutropenia": ("Febrile neutropenia", "Blood and lymphatic system disorders"),
    "Neutropenia": ("Neutrophil count decreased", "Investigations"),
    "Anemia": ("Anemia", "Blood and lymphatic system disorders"),
    "Thrombocytopenia": ("Platelet count decreased", "Investigations"),
    "Infection": ("Lung infection", "Infections and infestations"),
    "Cytokine release syndrome": ("Cytokine release syndrome", "Immune system disorders"),
    "Rash": ("Rash maculo-papular", "Skin and subcutaneous tissue disorders"),
    "Nausea": ("Nausea", "Gastrointestinal disorders"),
    "Jaundice": ("Blood bilirubin increased", "Investigations"),
    "Tumor lysis syndrome": ("Tumor lysis syndrome", "Metabolism and nutrition disorders"),
    "Encephalopathy": ("Encephalopathy", "Nervous system disorders"),
    "Dizziness": ("Dizziness", "Nervous system disorders"),
    "Somnolence": ("Somnolence", "Nervous system disorders"),
    "Cardiovascular events": ("Sinus tachycardia", "Cardiac disorders"),
    "Tremor": ("Tremor", "Nervous system disorders"),
    "Altered state of consciousness": (
        "Depressed level of consciousness",
        "Nervous system disorders",
    ),
    "Confusion": ("Confusion", "Psychiatric disorders"),
    "Ataxia": ("Ataxia", "Nervous system disorders"),
    "Aphasia": ("Dysphasia", "Nervous system disorders"),
    "Hiccups": ("Hiccups", "Respiratory, thoracic and mediastinal disorders"),
}
# Patients by worst grade as (grade 1-2, 3, 4, 5) per row, with the term and SOC.
PAPER_TABLE3 = {
    row: (
        tuple(
            int(printed_numbers(f"table3:{row}|{band}")[0])
            for band in ("grade_1_2", "grade_3", "grade_4", "grade_5")
        ),
        term,
        soc,
    )
    for row, (term, soc) in _TABLE3_TERMS.items()
}


def paper_adverse_events(study_ids, seed: int = 0) -> pd.DataFrame:
    """Events reproducing Table 3, plus milder repeat events that must not be double counted.

    Every patient with a grade >= 3 worst event also gets a grade 1-2 event in the same row
    (for infections a different infection term), so per-patient worst-grade logic is needed.
    """
    rng = np.random.default_rng(seed)
    study_ids = np.asarray(study_ids)
    rows = []
    for band_counts, term, soc in PAPER_TABLE3.values():
        grades = [int(rng.choice([1, 2])) for _ in range(band_counts[0])]
        grades += [3] * band_counts[1] + [4] * band_counts[2] + [5] * band_counts[3]
        patients = rng.choice(study_ids, size=len(grades), replace=False)
        for patient, grade in zip(patients, grades, strict=True):
            rows.append((patient, term, soc, grade))
            if grade >= 3:
                extra = "Urinary tract infection" if soc.startswith("Infections") else term
                rows.append((patient, extra, soc, 2 if extra != term else 1))
    ae = pd.DataFrame(rows, columns=["study_id", "ctcae_term", "soc", "grade"])
    return ae.sample(frac=1, random_state=seed).reset_index(drop=True)


_RANDOM_AE_TERMS = [
    ("Febrile neutropenia", "Blood and lymphatic system disorders", (3, 4, 5), 0.4),
    ("Neutrophil count decreased", "Investigations", (1, 2, 3, 4), 0.7),
    ("Anemia", "Blood and lymphatic system disorders", (1, 2, 3), 0.7),
    ("Platelet count decreased", "Investigations", (1, 2, 3, 4), 0.7),
    ("Lung infection", "Infections and infestations", (2, 3, 4, 5), 0.3),
    ("Sepsis", "Infections and infestations", (4, 5), 0.05),
    ("Urinary tract infection", "Infections and infestations", (2, 3), 0.15),
    ("Cytokine release syndrome", "Immune system disorders", (1, 2, 3), 0.2),
    ("Tremor", "Nervous system disorders", (1, 2), 0.12),
    ("Hypotension", "Vascular disorders", (1, 2, 3), 0.08),
    ("Sinus tachycardia", "Cardiac disorders", (1, 2), 0.08),
]


def make_adverse_events(study_ids, seed: int = 0) -> pd.DataFrame:
    """Random adverse events (sometimes several per patient and term) for a cohort."""
    rng = np.random.default_rng(seed)
    rows = []
    for patient in study_ids:
        for term, soc, grades, probability in _RANDOM_AE_TERMS:
            for _ in range(rng.binomial(2, probability / 2)):
                rows.append((patient, term, soc, int(rng.choice(grades))))
    return pd.DataFrame(rows, columns=["study_id", "ctcae_term", "soc", "grade"])
