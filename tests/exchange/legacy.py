"""A small legacy registry in the import template's format: three cases of KR01 with every record
type, all values passing every rule. Tests change one cell to break one rule."""

import csv
import io
from copy import deepcopy

from openpyxl import Workbook

PATIENTS = [
    {
        "site_case_number": "H-0001",
        "sex": "female",
        "birth_year": "1972",
        "birth_date": "1972-04-15",
        "diagnosis_date": "2015-11-02",
        "blinatumomab_start_date": "2017-03-06",
        "ecog": "1",
        "salvage_phase": "1",
        "prior_therapies_n": "1",
        "relapse_site": "marrow",
        "marrow_blasts_pct": "81",
        "pb_blasts_per_ul": "2400",
        "cyto_dx_abnormalities_n": "1",
        "cyto_dx_modal_number": "46",
        "cyto_start_abnormalities_n": "2",
        "cyto_start_modal_number": "46",
        "prephase_regimen": "dex",
        "dexamethasone_mg_before": "80",
    },
    {
        "site_case_number": "H-0002",
        "sex": "male",
        "birth_year": "1960",
        "diagnosis_date": "2016-01-10",
        "blinatumomab_start_date": "2017-05-02",
        "ecog": "2",
        "salvage_phase": "2",
        "prior_therapies_n": "3",
        "prior_allo_sct": "yes",
        "prior_allo_sct_date": "2016-08-01",
        "relapse_site": "both",
        "emd_cns": "yes",
        "marrow_blasts_pct": "40.5",
        "cyto_dx_done": "no",
        "cyto_start_abnormalities_n": "5",
        "cyto_start_modal_number": "46",
        "dexamethasone_mg_before": "120",
    },
    {
        "site_case_number": "H-0003",
        "sex": "female",
        "birth_year": "1980",
        "diagnosis_date": "2016-06-01",
        "blinatumomab_start_date": "2017-08-01",
        "ecog": "1",
        "salvage_phase": "1",
        "prior_therapies_n": "2",
        "relapse_site": "marrow",
        "marrow_blasts_pct": "60",
        "cyto_dx_abnormalities_n": "0",
        "cyto_dx_modal_number": "46",
        "cyto_start_done": "no",
        "prephase_regimen": "other",
        "prephase_other": "Vincristine + dexamethasone",
        "dexamethasone_mg_before": "40",
    },
]
CYCLES = [
    # Cycle 2 of H-0001 comes first: cycles are imported in cycle order, whatever the row order.
    {
        "site_case_number": "H-0001",
        "cycle_number": "2",
        "start_date": "2017-04-17",
        "end_date": "2017-05-14",
        "starting_dose_ug_per_day": "28",
        "outcome": "completed",
    },
    {
        "site_case_number": "H-0001",
        "cycle_number": "1",
        "start_date": "2017-03-06",
        "end_date": "2017-04-02",
        "starting_dose_ug_per_day": "9",
        "step_up_day": "8",
        "step_up_dose_ug_per_day": "28",
        "interruption_days": "2",
        "interruption_reason": "Cytokine release syndrome",
        "outcome": "interrupted",
    },
    {
        "site_case_number": "H-0002",
        "cycle_number": "1",
        "start_date": "2017-05-02",
        "end_date": "2017-05-29",
        "starting_dose_ug_per_day": "9",
        "step_up_day": "8",
        "step_up_dose_ug_per_day": "28",
        "outcome": "completed",
    },
    {
        "site_case_number": "H-0003",
        "cycle_number": "1",
        "start_date": "2017-08-01",
        "end_date": "2017-08-20",
        "starting_dose_ug_per_day": "9",
        "step_up_day": "8",
        "step_up_dose_ug_per_day": "28",
        "outcome": "discontinued",
        "discontinuation_reason": "progression",
    },
]
ASSESSMENTS = [
    {
        "site_case_number": "H-0001",
        "cycle_number": "1",
        "assessment_date": "2017-04-04",
        "marrow_blasts_pct": "2",
        "anc_10e9_per_l": "1.8",
        "platelets_10e9_per_l": "140",
        "mrd_status": "negative",
        "mrd_level": "0.00005",
    },
    {
        "site_case_number": "H-0002",
        "cycle_number": "1",
        "assessment_date": "2017-05-31",
        "marrow_blasts_pct": "3",
        "anc_10e9_per_l": "1.0",
        "platelets_10e9_per_l": "150",
        "emd_status": "resolved",
    },
    {
        "site_case_number": "H-0003",
        "cycle_number": "1",
        "assessment_date": "2017-08-22",
        "marrow_blasts_pct": "85",
        "anc_10e9_per_l": "0.4",
        "platelets_10e9_per_l": "20",
    },
]
ADVERSE_EVENTS = [
    {
        "site_case_number": "H-0001",
        "cycle_number": "1",
        "ctcae_term": "Cytokine release syndrome",
        "grade": "3",
        "onset_date": "2017-03-08",
        "resolution_date": "2017-03-12",
        "serious": "yes",
        "attribution": "probable",
        "action_taken": "interrupted",
        "outcome": "recovered",
    },
    {
        "site_case_number": "H-0002",
        "cycle_number": "1",
        "ctcae_term": "Febrile neutropenia",
        "grade": "3",
        "onset_date": "2017-05-10",
        "resolution_date": "2017-05-15",
        "serious": "yes",
        "attribution": "possible",
        "outcome": "recovered",
    },
    {
        "site_case_number": "H-0003",
        "ctcae_term": "Sepsis",
        "grade": "5",
        "onset_date": "2017-09-10",
        "resolution_date": "2017-09-20",
        "serious": "yes",
        "attribution": "unlikely",
        "outcome": "fatal",
    },
]
TRANSPLANTS = [
    {"site_case_number": "H-0001", "sct_date": "2017-07-01", "donor_type": "matched_sibling"},
]
THERAPIES = [
    {
        "site_case_number": "H-0003",
        "category": "salvage_chemotherapy",
        "regimen": "FLAG-Ida",
        "start_date": "2017-09-01",
    },
]
FOLLOW_UP = [
    {"site_case_number": "H-0001", "last_contact_date": "2018-03-01", "vital_status": "alive"},
    {
        "site_case_number": "H-0002",
        "last_contact_date": "2018-02-01",
        "vital_status": "alive",
        "relapse_or_progression_date": "2017-12-01",
    },
    {
        "site_case_number": "H-0003",
        "last_contact_date": "2017-09-20",
        "vital_status": "dead",
        "death_date": "2017-09-20",
        "death_cause": "infection",
    },
]

FILES = {
    "patients": PATIENTS,
    "cycles": CYCLES,
    "response_assessments": ASSESSMENTS,
    "adverse_events": ADVERSE_EVENTS,
    "transplants": TRANSPLANTS,
    "subsequent_therapies": THERAPIES,
    "follow_up": FOLLOW_UP,
}


def files(**changes):
    """The legacy files, deep-copied; `changes`: name -> replacement rows."""
    data = deepcopy(FILES)
    data.update(changes)
    return data


def row_count(data=None) -> int:
    return sum(len(rows) for rows in (data or FILES).values())


def _header(rows, spec_columns):
    used = {k for row in rows for k in row}
    return [c for c in spec_columns if c in used]


def columns_of(name):
    from exchange import spec

    return spec.BY_NAME[name].column_names


def csv_bytes(name, rows) -> bytes:
    header = _header(rows, columns_of(name))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def write_csv_dir(path, data=None):
    path.mkdir(parents=True, exist_ok=True)
    for name, rows in (data or FILES).items():
        (path / f"{name}.csv").write_bytes(csv_bytes(name, rows))
    return path


def xlsx_bytes(data=None, typed=True) -> bytes:
    """The files as one workbook; `typed` stores dates, numbers and booleans as Excel values."""
    from datetime import date

    book = Workbook()
    book.remove(book.active)
    for name, rows in (data or FILES).items():
        sheet = book.create_sheet(name)
        header = _header(rows, columns_of(name))
        sheet.append(header)
        for row in rows:
            values = []
            for column in header:
                value = row.get(column, "")
                if typed and value:
                    if column.endswith("_date"):
                        value = date.fromisoformat(value)
                    elif value in ("yes", "no"):
                        value = value == "yes"
                    else:
                        try:
                            value = float(value) if "." in value else int(value)
                        except ValueError:
                            pass
                values.append(value if value != "" else None)
            sheet.append(values)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
