"""The registry's cases written in the import template's format: one CSV per record type.

The columns, their order and their names are the template's (exchange.spec: the one statement
of them); each cell is written the way the importer reads it back (exchange.importer.cell_value):
dates ISO, decimals with a point, yes/no for booleans, the codes of coded fields, the cycle a
record follows by its number, text as stored. So importing an export into an empty registry
gives the same cases, and the same analysis dataset, byte for byte (tests/exchange/
test_export_roundtrip.py).

Rows are read `CHUNK` at a time (`values_list(...).iterator()`), straight into the CSV writer:
memory stays flat whatever the registry's size.

This is a data-exchange format, not a spreadsheet export: text is written verbatim, with no
quote before a leading = + - @ (exchange.safe). A quote would be read back by the importer as
part of the value, and the round trip would not be exact (README "Exports opened in
spreadsheets").

How the cases are named: a case's rows carry its site (`institution`) and its site case number;
a case without one (registered on the web form) is named by its study ID in that column, so its
rows still link on import. `study_id` stays empty: the registry that imports assigns its own
study IDs (in the order of patients.csv, which is the study-ID order here, so an empty registry
gives every case the same study ID again when the site's numbers have no gaps).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path

from django.db.models import Count, Value
from django.db.models.functions import Coalesce, NullIf

from registry.models import Baseline, Patient

from . import spec

CHUNK = 2000  # rows read per database round trip
PATIENT_ORDER = ("institution__code", "sequence")  # the order study IDs were given in


def cell_text(value) -> str:
    """A stored value as the importer reads it back."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")  # never "1E+1"
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same float
    return str(value)


KEY_PATHS = ("institution_id", "institution__code", "study_id", "site_case_number")


def _paths(rt: spec.RecordType) -> list[str]:
    """values_list() paths of one file's rows: the case's keys, then one per data column."""
    prefix = "" if rt.key == "patient" else "patient__"
    paths = [prefix + p for p in KEY_PATHS]
    for column in _data_columns(rt):
        f = column.model_field
        path = f.name
        if f.is_relation:  # the cycle a record follows: named by its number
            path = f"{f.name}__number"
        if column.model is Baseline and rt.model is Patient:  # the baseline shares the row
            path = f"baseline__{path}"
        paths.append(path)
    return paths


def _data_columns(rt: spec.RecordType) -> list[spec.Column]:
    return [c for c in rt.columns if c.name not in spec.KEY_COLUMNS]


def _ordered(rt: spec.RecordType, patients):
    model = rt.model
    if model is Patient:
        return patients.order_by(*PATIENT_ORDER)
    case = [f"patient__{p}" for p in PATIENT_ORDER]
    # Within a case, rows in the order they were entered (pk): the importer numbers them in
    # row order, so they keep their relative order after a round trip.
    return model.objects.filter(patient__in=patients).order_by(*case, "pk")


def case_name(study_id: str, site_case_number: str) -> str:
    """How an exported row names its case: the site case number, or the study ID without one."""
    return site_case_number or study_id


def iter_rows(rt: spec.RecordType, patients, full_sites=None):
    """The rows of one template file (header first) for the cases in `patients`, as lists of
    text. `full_sites`: the site pks whose cases are written with their identifying fields
    (exchange.spec.IDENTIFYING_FIELDS); None: every case in full. Outside them a case has no
    birth date and is named by its study ID (the API's and the ODM's de-identification)."""
    yield rt.column_names
    hidden = [i for i, c in enumerate(_data_columns(rt)) if c.field in spec.IDENTIFYING_FIELDS]
    rows = _ordered(rt, patients).values_list(*_paths(rt))
    for values in rows.iterator(chunk_size=CHUNK):
        site_pk, code, study_id, case_number = values[:4]
        cells = [cell_text(v) for v in values[4:]]
        if full_sites is not None and site_pk not in full_sites:
            case_number = ""  # named by its study ID
            for i in hidden:
                cells[i] = ""
        keys = {
            spec.INSTITUTION: code,
            spec.STUDY_ID: "",
            spec.SITE_CASE_NUMBER: case_name(study_id, case_number),
        }
        out, data = [], iter(cells)
        for column in rt.columns:
            out.append(keys[column.name] if column.name in spec.KEY_COLUMNS else next(data))
        yield out


def row_counts(patients) -> dict[str, int]:
    """Rows per template file for these cases (the progress of a background export)."""
    counts = {}
    for rt in spec.RECORD_TYPES:
        if rt.model is Patient:
            counts[rt.name] = patients.count()
        else:
            counts[rt.name] = rt.model.objects.filter(patient__in=patients).count()
    return counts


def write_csv(rt: spec.RecordType, stream, patients, full_sites=None, on_row=None) -> int:
    """One template file into a text stream; returns the number of data rows."""
    writer = csv.writer(stream, lineterminator="\r\n")  # the template's own dialect
    n = -1
    for row in iter_rows(rt, patients, full_sites):
        writer.writerow(row)
        n += 1
        if on_row is not None and n:
            on_row()
    return n


README = """\
Blinatumomab registry: cases exported in the import template's format

One CSV file per record type, the columns of the import template (README.txt of
import_template.zip, or /exchange/template/ on the registry). Import them into another registry
(or an empty one) with `python manage.py import_cases DIR` or the import page: study IDs are
assigned by the registry that imports. Each case's rows name it by its site (institution) and its
site case number, or its study ID when it has none.

A data-exchange file, not a spreadsheet export: text is written exactly as stored. Open it with
the import, R or pandas; a spreadsheet would run a cell that starts with = as a formula.
"""


def write_directory(directory, patients, full_sites=None) -> dict[str, int]:
    """Every template file (and README.txt) into `directory`; returns rows per file."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "README.txt").write_text(README, encoding="utf-8")
    written = {}
    for rt in spec.RECORD_TYPES:
        with (directory / rt.filename).open("w", newline="", encoding="utf-8") as f:
            written[rt.name] = write_csv(rt, f, patients, full_sites)
    return written


def write_zip(target, patients, full_sites=None, on_row: Callable[[], None] | None = None):
    """Every template file (and README.txt) into a zip written to `target` (a path or a binary
    file); returns rows per file. Each file is streamed into the zip as it is read."""
    written = {}
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        archive.writestr("README.txt", README)
        for rt in spec.RECORD_TYPES:
            with (
                archive.open(rt.filename, "w", force_zip64=True) as raw,
                io.TextIOWrapper(raw, encoding="utf-8", newline="") as text,
            ):
                written[rt.name] = write_csv(rt, text, patients, full_sites, on_row)
    return written


def shared_case_names(patients) -> list[tuple[str, str]]:
    """(site code, name) of case names that more than one case of a site would carry: their rows
    could not be told apart on import (the registry does not require site case numbers to be
    unique). Counted by the database: nothing per case is held here."""
    name = Coalesce(NullIf("site_case_number", Value("")), "study_id")
    shared = (
        patients.order_by()
        .annotate(case_name=name)
        .values("institution__code", "case_name")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .order_by("institution__code", "case_name")
    )
    return [(row["institution__code"], row["case_name"]) for row in shared]
