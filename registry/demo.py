"""Deterministic synthetic registry shaped like the paper's cohort (Jung et al. 2018).

`build_registry(n, seed)` returns plain row dicts (field name -> value) for n patients across
the 16 sites; `seed_demo` writes them in bulk, fast enough for 100,000 patients. Every value is
generated to pass the model rules (a test runs full_clean() on every record), with outcomes in
the paper's proportions: about 45% CR/CRi among evaluable patients, ~2% early deaths before any
assessment, about 70% of responders transplanted, salvage chemotherapy after failure, and
censored follow-up.
"""

import bisect
import functools
import itertools
import math
import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from . import ctcae, rules
from .models import Baseline, Cycle, Institution, Patient, SubsequentTherapy

PB_BLASTS_MAX = next(
    v.limit_value
    for v in Baseline._meta.get_field("pb_blasts_per_ul").validators
    if v.__class__.__name__ == "MaxValueValidator"
)

# The 16 hospitals of the paper's author list.
INSTITUTIONS = [
    ("KR01", "Chonnam National University Hwasun Hospital"),
    ("KR02", "Korea University Ansan Hospital"),
    ("KR03", "Seoul St. Mary's Hospital"),
    ("KR04", "National Cancer Center"),
    ("KR05", "Seoul National University Bundang Hospital"),
    ("KR06", "Seoul National University Hospital"),
    ("KR07", "Samsung Medical Center"),
    ("KR08", "Korea University Medical Center"),
    ("KR09", "Chonbuk National University Hospital"),
    ("KR10", "Dong-A Medical Center"),
    ("KR11", "Kyungpook National University Hospital"),
    ("KR12", "Chungnam National University Hospital"),
    ("KR13", "Konkuk University Medical Center"),
    ("KR14", "Severance Hospital, Yonsei University"),
    ("KR15", "Ulsan University Hospital"),
    ("KR16", "Pusan National University Hospital"),
]

ENROLMENT_START = date(2016, 6, 1)
ENROLMENT_DAYS = 456  # June 2016 to August 2017, as in the paper
DATA_CUTOFF = date(2018, 2, 28)


@dataclass
class Case:
    """One synthetic case as row dicts; cycle links are indexes into `cycles`."""

    patient: dict
    baseline: dict
    cycles: list = field(default_factory=list)
    assessments: list = field(default_factory=list)  # (cycle index, row)
    adverse_events: list = field(default_factory=list)  # (cycle index or None, row)
    transplant: dict | None = None
    therapies: list = field(default_factory=list)
    followup: dict | None = None


@functools.cache
def _cumulative(weighted: tuple) -> tuple:
    values, weights = zip(*weighted, strict=True)
    return values, tuple(itertools.accumulate(weights))


def _pick(rng, weighted):
    """One value from (value, weight) pairs; the same draws as random.choices with weights."""
    values, cumulative = _cumulative(tuple(weighted))
    return values[bisect.bisect(cumulative, rng.random() * cumulative[-1], 0, len(values) - 1)]


def _days(n):
    return timedelta(days=int(n))


def _cytogenetics(rng, done_p):
    if rng.random() > done_p:
        return False, None, None, False
    high = rng.random() < 0.36
    if not high:
        return True, rng.choice([0, 0, 0, 1, 1, 2, 3]), rng.choice([46, 46, 46, 47, 45, 48]), False
    kind = rng.choice(["complex", "hypo", "kmt2a"])
    if kind == "complex":
        return True, rng.randint(5, 9), rng.randint(44, 50), False
    if kind == "hypo":
        return True, rng.randint(1, 4), rng.randint(30, 43), False
    return True, rng.randint(1, 3), 46, True


def _baseline(rng, patient):
    start = patient["blinatumomab_start_date"]
    relapse = _pick(
        rng, [(Baseline.MARROW_ONLY, 78), (Baseline.EXTRAMEDULLARY_ONLY, 10), (Baseline.BOTH, 12)]
    )
    sites = set()
    if relapse != Baseline.MARROW_ONLY:
        sites.add(
            _pick(
                rng,
                [
                    ("cns", 4),
                    ("liver", 1),
                    ("lymph_node", 2),
                    ("uterus", 1),
                    ("bone", 1),
                    ("skin", 1),
                    ("testis", 1),
                ],
            )
        )
        if rng.random() < 0.15:
            sites.add("lymph_node")
    if relapse == Baseline.EXTRAMEDULLARY_ONLY:
        blasts = round(rng.uniform(0, 4.5), 1)
    else:
        blasts = round(min(99.0, max(5.0, rng.betavariate(3.2, 0.9) * 100)), 1)
    salvage = _pick(rng, [(1, 58), (2, 24), (3, 18)])
    prior_sct_date = None
    window = (start - patient["diagnosis_date"]).days
    if rng.random() < 0.54 and window > 240:
        prior_sct_date = patient["diagnosis_date"] + _days(rng.randint(120, window - 60))
    dx = _cytogenetics(rng, 0.92)
    at_start = _cytogenetics(rng, 0.84)
    prephase = "none"
    if blasts >= 50 or rng.random() < 0.1:
        prephase = _pick(
            rng, [("dex", 5), ("hu_dex", 3), ("cy_dex", 1), ("arac_dex_hu", 1), ("etop_dex", 1)]
        )
    dex_mg = 0.0 if prephase == "none" else round(rng.choice([40, 60, 80, 80, 120, 160, 200]), 1)
    b = dict(
        ecog=_pick(rng, [(0, 30), (1, 40), (2, 20), (3, 8), (4, 2)]),
        salvage_phase=salvage,
        prior_therapies_n=min(4, salvage + rng.choice([0, 0, 0, 1])),
        prior_allo_sct=prior_sct_date is not None,
        prior_allo_sct_date=prior_sct_date,
        relapse_site=relapse,
        marrow_blasts_pct=blasts,
        # The log-normal's far tail passes the field's limit about once per 70,000 cases, and
        # seed_demo writes with COPY, past the rules: keep every generated value enterable.
        pb_blasts_per_ul=min(int(rng.lognormvariate(7, 1.8)), PB_BLASTS_MAX)
        if relapse != "extramedullary"
        else 0,
        cyto_dx_done=dx[0],
        cyto_dx_abnormalities_n=dx[1],
        cyto_dx_modal_number=dx[2],
        cyto_dx_kmt2a=dx[3],
        cyto_start_done=at_start[0],
        cyto_start_abnormalities_n=at_start[1],
        cyto_start_modal_number=at_start[2],
        cyto_start_kmt2a=at_start[3],
        prephase_regimen=prephase,
        dexamethasone_mg_before=dex_mg,
    )
    for s in sites:
        b[f"emd_{s}"] = True
    for when in ("dx", "start"):
        b[f"cyto_{when}_risk"] = (
            rules.derive_cytogenetic_risk(
                b[f"cyto_{when}_done"],
                b[f"cyto_{when}_abnormalities_n"],
                b[f"cyto_{when}_modal_number"],
                b[f"cyto_{when}_kmt2a"],
            )
            or ""
        )
    b["has_emd"] = relapse != Baseline.MARROW_ONLY  # generator-only key, not a column
    return b


def _labs(rng, response):
    if response in (rules.CR, rules.CRI):
        blasts = round(rng.uniform(0, 4.5), 1)
        if response == rules.CR:
            return blasts, round(rng.uniform(1.1, 5.0), 2), round(rng.uniform(101, 350), 1)
        return blasts, round(rng.uniform(0.2, 0.95), 2), round(rng.uniform(20, 95), 1)
    return (
        round(rng.uniform(6, 95), 1),
        round(rng.uniform(0.1, 4.0), 2),
        round(rng.uniform(5, 250), 1),
    )


def _assessment(rng, patient, baseline, cycle, day, response):
    blasts, anc, plt = _labs(rng, response)
    emd = rules.EMD_NONE
    if baseline["has_emd"]:
        emd = rules.EMD_RESOLVED if response in rules.RESPONDER_CATEGORIES else rules.EMD_PERSISTENT
    if response == rules.PROGRESSIVE:
        blasts = round(min(100.0, max(float(baseline["marrow_blasts_pct"]) * 1.3, 20.0)), 1)
        if float(baseline["marrow_blasts_pct"]) * 1.25 > 100:
            emd = rules.EMD_PROGRESSIVE
    a = dict(
        assessment_date=day,
        marrow_blasts_pct=blasts,
        anc_10e9_per_l=anc,
        platelets_10e9_per_l=plt,
        emd_status=emd,
        mrd_status=("negative" if response == rules.CR and rng.random() < 0.6 else "not_done"),
    )
    a["response"] = rules.derive_response(
        blasts, anc, plt, emd, float(baseline["marrow_blasts_pct"])
    )
    return a


# Table 3 shapes: (CTCAE term, share of patients, grade weights). Grades are drawn only from those
# the dictionary allows for the term.
AE_PROFILE = [
    ("Neutrophil count decreased", 0.78, {1: 2, 2: 4, 3: 10, 4: 23}),
    ("Anemia", 0.74, {1: 8, 2: 15, 3: 14}),
    ("Platelet count decreased", 0.74, {1: 2, 2: 4, 3: 7, 4: 24}),
    ("Febrile neutropenia", 0.44, {3: 15, 4: 2}),
    ("Lung infection", 0.20, {2: 6, 3: 3, 4: 1}),
    ("Upper respiratory infection", 0.12, {2: 5, 3: 1}),
    ("Sepsis", 0.04, {4: 1}),
    ("Catheter related infection", 0.10, {2: 4, 3: 1}),
    ("Cytokine release syndrome", 0.20, {1: 5, 2: 3, 3: 2}),
    ("Rash maculo-papular", 0.04, {1: 1, 2: 1}),
    ("Dizziness", 0.20, {1: 8, 2: 2}),
    ("Somnolence", 0.16, {1: 5, 2: 2, 3: 1}),
    ("Tremor", 0.12, {1: 5, 2: 1}),
    ("Sinus tachycardia", 0.08, {1: 3, 2: 1}),
    ("Hypotension", 0.06, {1: 2, 2: 1}),
    ("Depressed level of consciousness", 0.08, {1: 1, 2: 1, 3: 1, 4: 1}),
    ("Confusion", 0.06, {1: 1, 2: 1, 3: 1}),
    ("Encephalopathy", 0.02, {3: 1}),
    ("Nausea", 0.02, {3: 1}),
    ("Blood bilirubin increased", 0.02, {3: 1}),
    ("Tumor lysis syndrome", 0.02, {4: 1}),
    ("Ataxia", 0.02, {1: 1}),
    ("Dysphasia", 0.02, {3: 1}),
    ("Hiccups", 0.02, {1: 1}),
]


def _adverse_events(rng, patient, cycles, last_day):
    events = []
    for term_name, share, weights in AE_PROFILE:
        if rng.random() >= share:
            continue
        allowed = ctcae.get(term_name).grades
        grade = _pick(rng, [(g, w) for g, w in weights.items() if g in allowed])
        ci = 0 if len(cycles) == 1 or rng.random() < 0.7 else 1
        cycle = cycles[ci]
        cycle_end = cycle["end_date"] or last_day
        onset = cycle["start_date"] + _days(
            rng.randint(0, max(0, (cycle_end - cycle["start_date"]).days))
        )
        onset = min(onset, last_day)
        resolution = min(onset + _days(rng.randint(1, 21)), last_day)
        events.append(
            (
                ci,
                dict(
                    ctcae_term=term_name,
                    grade=grade,
                    onset_date=onset,
                    resolution_date=resolution,
                    serious=grade >= 3,
                    attribution=_pick(
                        rng, [("possible", 4), ("probable", 3), ("unlikely", 2), ("definite", 1)]
                    ),
                    action_taken=(
                        "interrupted"
                        if term_name == "Cytokine release syndrome" and grade >= 3
                        else "none"
                    ),
                    outcome="recovered",
                ),
            )
        )
    return events


def _case(rng, patient, baseline):
    start = patient["blinatumomab_start_date"]
    case = Case(patient, baseline)
    followup_days = rng.randint(60, 520)
    last_contact = min(start + _days(followup_days), DATA_CUTOFF)

    if rng.random() < 0.02:  # early death during cycle 1, before any assessment
        death = start + _days(rng.randint(8, 20))
        c1 = dict(
            number=1,
            start_date=start,
            end_date=death,
            **Cycle.planned_doses(1),
            outcome=Cycle.DISCONTINUED,
            discontinuation_reason="death",
        )
        case.cycles.append(c1)
        ae = dict(
            ctcae_term="Lung infection",
            grade=5,
            onset_date=death - _days(5),
            resolution_date=death,
            serious=True,
            attribution="unlikely",
            action_taken="discontinued",
            outcome="fatal",
        )
        case.adverse_events.append((0, ae))
        case.followup = dict(
            last_contact_date=death,
            vital_status="dead",
            death_date=death,
            death_cause="infection",
        )
        return case

    p_response = 0.56 - 0.15 * baseline["has_emd"] - 0.12 * (baseline["ecog"] >= 2)
    responder = rng.random() < p_response
    best = rules.CR if rng.random() < 0.93 else rules.CRI
    c1_end = start + _days(27)
    c1 = dict(
        number=1,
        start_date=start,
        end_date=c1_end,
        **Cycle.planned_doses(1),
        outcome=Cycle.COMPLETED,
    )
    if rng.random() < 0.15:
        c1.update(
            outcome=Cycle.INTERRUPTED,
            interruption_days=rng.randint(1, 5),
            interruption_reason="Cytokine release syndrome",
        )
    case.cycles.append(c1)
    day = c1_end + _days(rng.randint(1, 4))
    if rng.random() < 0.94:
        r1 = (
            best
            if responder and rng.random() < 0.8
            else (rules.PROGRESSIVE if rng.random() < 0.2 else rules.NO_RESPONSE)
        )
        case.assessments.append((0, _assessment(rng, patient, baseline, c1, day, r1)))
    second = rng.random() < (0.8 if responder else 0.45)
    last_day = day
    if second:
        c2_start = c1_end + _days(15)
        c2_end = c2_start + _days(27)
        c2 = dict(
            number=2,
            start_date=c2_start,
            end_date=c2_end,
            **Cycle.planned_doses(2),
            outcome=Cycle.COMPLETED,
        )
        case.cycles.append(c2)
        last_day = c2_end + _days(rng.randint(1, 4))
        r2 = best if responder else (rules.PROGRESSIVE if rng.random() < 0.3 else rules.NO_RESPONSE)
        case.assessments.append((1, _assessment(rng, patient, baseline, c2, last_day, r2)))
    elif responder and not case.assessments:
        case.assessments.append((0, _assessment(rng, patient, baseline, c1, day, best)))
    responded = any(a["response"] in rules.RESPONDER_CATEGORIES for _, a in case.assessments)

    # Outcome times (days from start), shaped like the paper's medians: EFS 7.5 vs 2.0 months and
    # OS 8.1 vs 5.2 months for responders vs non-responders.
    if responded:
        efs = max(last_day, start + _days(rng.expovariate(1 / 330)))
        os_days = (efs - start).days + rng.expovariate(1 / 200)
    else:
        efs = max(last_day, start + _days(rng.randint(30, 75)))
        os_days = (efs - start).days + rng.expovariate(1 / 110)
    death = start + _days(os_days) if start + _days(os_days) <= last_contact else None
    last_contact = max(last_contact, last_day)
    if death:
        death = max(death, last_day)
        last_contact = death
    relapse = efs if efs <= last_contact else None
    if relapse and death and relapse > death:
        relapse = death

    death_cause = "disease" if death else ""
    if responded and rng.random() < 0.72:
        # Straight after cycle 1 for some (day ~40-90), after cycle 2 for most (day ~80-135).
        sct = last_day + _days(rng.randint(10, 60))
        if sct < (relapse or last_contact):
            case.transplant = dict(
                sct_date=sct,
                donor_type=_pick(
                    rng,
                    [
                        ("matched_sibling", 3),
                        ("matched_unrelated", 4),
                        ("haploidentical", 3),
                        ("mismatched_unrelated", 1),
                    ],
                ),
            )
    if case.transplant and rng.random() < 0.2:
        # Transplant-related death in remission: the competing risk of non-relapse mortality.
        trm = case.transplant["sct_date"] + _days(rng.randint(20, 180))
        if trm < (relapse or last_contact):
            death, relapse, last_contact, death_cause = trm, None, trm, "transplant_related"
    if not responded and rng.random() < 0.6:
        therapy_day = last_day + _days(rng.randint(3, 20))
        if therapy_day <= last_contact:
            case.therapies.append(
                dict(
                    category=SubsequentTherapy.SALVAGE_CHEMO,
                    regimen=rng.choice(
                        [
                            "FLAG-Ida",
                            "HyperCVAD",
                            "MEC",
                            "Clofarabine-based",
                            "Inotuzumab ozogamicin",
                        ]
                    ),
                    start_date=therapy_day,
                )
            )
            if "Inotuzumab" in case.therapies[-1]["regimen"]:
                case.therapies[-1]["category"] = "targeted"
    case.adverse_events = _adverse_events(rng, patient, case.cycles, last_contact)
    case.followup = dict(
        last_contact_date=last_contact,
        vital_status="dead" if death else "alive",
        relapse_or_progression_date=relapse,
        death_date=death,
        death_cause=death_cause,
    )
    return case


def build_registry(n_patients: int, seed: int, institutions: list[Institution]) -> list[Case]:
    rng = random.Random(seed)
    sequence = {inst.code: 0 for inst in institutions}
    site_weights = [1.0 + 0.6 * math.sin(i) ** 2 for i in range(len(institutions))]
    cases = []
    for _ in range(n_patients):
        inst = rng.choices(institutions, site_weights)[0]
        sequence[inst.code] += 1
        start = ENROLMENT_START + _days(rng.randint(0, ENROLMENT_DAYS))
        age = int(min(71, max(19, rng.gauss(45, 13))))
        born = date(start.year - age, start.month, min(start.day, 28)) - _days(rng.randint(1, 360))
        full_date = rng.random() < 0.7
        months_from_dx = min(160.0, max(0.9, rng.lognormvariate(math.log(13.5), 1.0)))
        patient = dict(
            institution_id=inst.pk,
            sequence=sequence[inst.code],
            study_id=f"{inst.code}-{sequence[inst.code]:03d}",
            sex=Patient.FEMALE if rng.random() < 0.6 else Patient.MALE,
            birth_year=born.year,
            birth_date=born if full_date else None,
            diagnosis_date=start - _days(months_from_dx * 30.4375),
            blinatumomab_start_date=start,
            # The paper's eligibility: every enrolled patient meets it (stated, not defaulted).
            relapsed_refractory=True,
            bcp_all=True,
            ph_negative=True,
            cd19_positive=True,
            burkitt=False,
        )
        assumed = rules.assumed_birth_date(patient["birth_date"], born.year)
        if rules.age_in_years(assumed, start) <= rules.MIN_AGE_EXCLUSIVE_YEARS:
            patient["birth_date"] = born  # a year-only birth near 19 would read as 18
        cases.append(_case(rng, patient, _baseline(rng, patient)))
    return cases
