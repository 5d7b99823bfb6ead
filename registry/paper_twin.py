"""The paper's twin: a synthetic reconstruction of the 50 patients of Jung et al. (2018).

Invented patients, one row each in `registry/data/paper_twin.csv` (with their adverse events in
`paper_twin_adverse_events.csv`), chosen so that the registry's own analysis of them prints the
paper's numbers: Tables 1-3, the treatment flow, the survival medians and log-rank P values
(reproduction.csv says where a printed number cannot be met and why). The files were found by
`scripts/build_paper_twin.py` and are frozen here; `seed_demo` loads them through the same
writer as the generated registry, and every record passes the model rules.

Every twin case carries the site case number `TWIN-nn`: the pages and the analysis runs label a
registry holding them as a synthetic reconstruction, never as patient data.
"""

import csv
from datetime import date

from django.utils.translation import gettext_noop

from . import rules
from .ctcae import DATA_DIR
from .demo import Case
from .models import Cycle, Institution

PATIENTS_CSV = DATA_DIR / "paper_twin.csv"
EVENTS_CSV = DATA_DIR / "paper_twin_adverse_events.csv"
CASE_NUMBER_PREFIX = "TWIN-"
# English as stored with a run and printed by seed_demo; shown in the page's language
# (gettext_noop: in the catalogue, translated where it is shown).
LABEL = gettext_noop(
    "Synthetic data: this demo registry is a reconstruction of the cohort of Jung et al., Ann "
    "Hematol 2018, 50 invented patients built so that the registry's analysis prints the paper's "
    "numbers. No record is a real patient."
)
SITE_SUFFIX = " (synthetic demo site)"


def is_twin(site_case_number: str | None) -> bool:
    return bool(site_case_number) and site_case_number.startswith(CASE_NUMBER_PREFIX)


def registry_holds_twin(patients) -> bool:
    """Whether any of `patients` (a queryset) is a twin case."""
    return patients.filter(site_case_number__startswith=CASE_NUMBER_PREFIX).exists()


def _date(text):
    return date.fromisoformat(text) if text else None


def _int(text):
    return int(text) if text not in ("", None) else None


def _decimal(text):
    return float(text) if text not in ("", None) else None


def _bool(text):
    return text.strip().lower() in ("1", "yes", "true")


def _rows(path):
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _baseline(row) -> dict:
    b = dict(
        ecog=int(row["ecog"]),
        salvage_phase=int(row["salvage_phase"]),
        prior_therapies_n=int(row["prior_therapies_n"]),
        prior_allo_sct=bool(row["prior_allo_sct_date"]),
        prior_allo_sct_date=_date(row["prior_allo_sct_date"]),
        relapse_site=row["relapse_site"],
        marrow_blasts_pct=_decimal(row["marrow_blasts_pct"]),
        pb_blasts_per_ul=_int(row["pb_blasts_per_ul"]),
        prephase_regimen=row["prephase_regimen"],
        dexamethasone_mg_before=float(row["dexamethasone_mg_before"]),
    )
    for site in filter(None, row["emd_sites"].split(";")):
        b[f"emd_{site}"] = True
    for when in ("dx", "start"):
        done = _bool(row[f"cyto_{when}_done"])
        findings = (
            _int(row[f"cyto_{when}_abnormalities_n"]),
            _int(row[f"cyto_{when}_modal_number"]),
            _bool(row[f"cyto_{when}_kmt2a"]),
        )
        b[f"cyto_{when}_done"] = done
        b[f"cyto_{when}_abnormalities_n"], b[f"cyto_{when}_modal_number"] = findings[:2]
        b[f"cyto_{when}_kmt2a"] = findings[2]
        b[f"cyto_{when}_risk"] = rules.derive_cytogenetic_risk(done, *findings) or ""
    return b


def _cycles(row) -> list[dict]:
    cycles = []
    for n in (1, 2):
        start = row["blinatumomab_start_date"] if n == 1 else row["c2_start"]
        if not start:
            continue
        cycles.append(
            dict(
                number=n,
                start_date=_date(start),
                end_date=_date(row[f"c{n}_end"]),
                **Cycle.planned_doses(n),
                interruption_days=_int(row[f"c{n}_interruption_days"]) or 0,
                interruption_reason=row[f"c{n}_interruption_reason"],
                outcome=row[f"c{n}_outcome"],
                discontinuation_reason=row[f"c{n}_discontinuation_reason"],
            )
        )
    return cycles


def _assessments(row, baseline) -> list[tuple[int, dict]]:
    found = []
    for n in (1, 2):
        if not row[f"a{n}_date"]:
            continue
        a = dict(
            assessment_date=_date(row[f"a{n}_date"]),
            marrow_blasts_pct=_decimal(row[f"a{n}_marrow_blasts_pct"]),
            anc_10e9_per_l=_decimal(row[f"a{n}_anc_10e9_per_l"]),
            platelets_10e9_per_l=_decimal(row[f"a{n}_platelets_10e9_per_l"]),
            emd_status=row[f"a{n}_emd_status"],
            mrd_status=row[f"a{n}_mrd_status"] or "not_done",
        )
        a["response"] = rules.derive_response(
            a["marrow_blasts_pct"],
            a["anc_10e9_per_l"],
            a["platelets_10e9_per_l"],
            a["emd_status"],
            baseline["marrow_blasts_pct"],
        )
        if a["response"] != row[f"a{n}_response"]:
            raise ValueError(
                f"{row['twin_id']}: assessment after cycle {n} derives {a['response']}, "
                f"the file says {row[f'a{n}_response']}"
            )
        found.append((n - 1, a))
    return found


def _adverse_events(events) -> list[tuple[int, dict]]:
    return [
        (
            int(e["cycle"]) - 1,
            dict(
                ctcae_term=e["ctcae_term"],
                grade=int(e["grade"]),
                onset_date=_date(e["onset_date"]),
                resolution_date=_date(e["resolution_date"]),
                serious=_bool(e["serious"]),
                attribution=e["attribution"],
                action_taken=e["action_taken"],
                outcome=e["outcome"],
            ),
        )
        for e in events
    ]


def build_twin(institutions: list[Institution]) -> list[Case]:
    """The twin's 50 cases as row dicts for seed_demo's writer (study IDs per site, in file
    order)."""
    sites = {inst.code: inst for inst in institutions}
    events: dict[str, list] = {}
    for e in _rows(EVENTS_CSV):
        events.setdefault(e["twin_id"], []).append(e)
    sequence = {code: 0 for code in sites}
    cases = []
    for row in _rows(PATIENTS_CSV):
        site = sites[row["institution"]]
        sequence[site.code] += 1
        birth = _date(row["birth_date"])
        patient = dict(
            institution_id=site.pk,
            sequence=sequence[site.code],
            study_id=f"{site.code}-{sequence[site.code]:03d}",
            site_case_number=row["twin_id"],
            sex=row["sex"],
            birth_year=birth.year,
            birth_date=birth,
            diagnosis_date=_date(row["diagnosis_date"]),
            blinatumomab_start_date=_date(row["blinatumomab_start_date"]),
            relapsed_refractory=True,  # every patient of the study had R/R disease
        )
        baseline = _baseline(row)
        case = Case(patient, baseline, cycles=_cycles(row))
        case.assessments = _assessments(row, baseline)
        case.adverse_events = _adverse_events(events.get(row["twin_id"], []))
        if row["sct_date"]:
            case.transplant = dict(sct_date=_date(row["sct_date"]), donor_type=row["sct_donor"])
        if row["therapy_start"]:
            case.therapies.append(
                dict(
                    category=row["therapy_category"],
                    regimen=row["therapy_regimen"],
                    start_date=_date(row["therapy_start"]),
                )
            )
        case.followup = dict(
            last_contact_date=_date(row["last_contact_date"]),
            vital_status=row["vital_status"],
            relapse_or_progression_date=_date(row["relapse_or_progression_date"]),
            death_date=_date(row["death_date"]),
            death_cause=row["death_cause"],
        )
        cases.append(case)
    return cases
