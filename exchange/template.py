"""The import template: one CSV per record type (as a zip) or one sheet each (as .xlsx), and its
documentation, all generated from exchange.spec and the model fields."""

import csv
import io
import zipfile
from dataclasses import dataclass

from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from . import codebook, spec
from .safe import safe_row

# The template's texts are in the page's language (README "Languages"); column names and codes
# are the same in every language.
KEY_DESCRIPTIONS = {
    spec.INSTITUTION: _(
        "Site code, e.g. KR01. Leave empty when the import is given one site; "
        "when given, it must be a site you may import into."
    ),
    spec.STUDY_ID: _(
        "Study ID of a case already in the registry (e.g. KR01-001). Give this or site_case_number."
    ),
}
CASE_NUMBER_OF_CASE = _(
    "The site's own pseudonymous case number (never a hospital number). Required: the case's "
    "rows in the other files name the case by it."
)
CASE_NUMBER_OF_RECORD = _(
    "The case's site case number, as in patients (or of a case already registered). "
    "Give this or study_id."
)
CYCLE_REFERENCE = _("Number of the cycle of the same patient (from cycles, or already registered).")


@dataclass(frozen=True)
class ColumnDoc:
    column: str
    required: bool
    type: str
    unit: str
    values: str
    description: str


def column_docs(record_type: spec.RecordType) -> list[ColumnDoc]:
    docs = []
    for c in record_type.columns:
        f = c.model_field
        required = record_type.is_required(c)
        if c.name == spec.SITE_CASE_NUMBER:
            text = str(
                CASE_NUMBER_OF_CASE if record_type.key == "patient" else CASE_NUMBER_OF_RECORD
            )
            docs.append(ColumnDoc(c.name, required, gettext("text"), "", "", text))
            continue
        if c.name in KEY_DESCRIPTIONS:
            text = str(KEY_DESCRIPTIONS[c.name])
            docs.append(ColumnDoc(c.name, required, gettext("text"), "", "", text))
            continue
        label = codebook.field_label(f)
        rule = codebook.field_rule(c.model, f)
        if f.is_relation:
            rule = f"{CYCLE_REFERENCE} {rule}"
        values = codebook.field_values(f)
        if f.name == "ctcae_term":
            values_text = gettext("a CTCAE v4.03 term: see the codebook")
        else:
            values_text = "; ".join(f"{code} = {text}" for code, text in values)
        docs.append(
            ColumnDoc(
                c.name,
                required,
                codebook.field_type(f),
                codebook.field_unit(f),
                values_text,
                f"{label}. {rule}",
            )
        )
    return docs


INTRODUCTION = _("""\
Blinatumomab registry: import template

One CSV file per record type (or one sheet each of an .xlsx workbook), the first row the column
names below. Leave out the files you have no records for, and optional columns you do not use.
Rows link to their case by the site's case number (site_case_number, as in patients) or by the
study ID of a case already in the registry (study_id). The registry assigns study IDs.

Dates: ISO format YYYY-MM-DD. Numbers: a point for decimals (1.5), no thousands separator. Yes/no
columns: yes/no (also 1/0, true/false). Codes: the code before "=" in the allowed values. Lab
values in the units of the case report forms (ANC and platelets x10^9/L, blasts %, blood blasts
/uL). An empty cell means the field's default (shown as "default") or no value.

The upload is all or nothing: every row is checked against the same rules as the web forms, in
the order patients, follow_up, cycles (in cycle order), response_assessments, adverse_events,
transplants, subsequent_therapies. Any problem saves nothing and every problem is listed with
its file or sheet, row (the header is row 1), column and message.
""")


def documentation_text() -> str:
    out = [str(INTRODUCTION)]
    for rt in spec.RECORD_TYPES:
        out.append(f"\n{rt.filename} ({rt.title})\n" + "-" * (len(rt.filename) + len(rt.title) + 3))
        for d in column_docs(rt):
            flags = gettext("required") if d.required else gettext("optional")
            unit = d.unit and gettext("unit %(unit)s") % {"unit": d.unit}
            extra = ", ".join(x for x in (d.type, unit) if x)
            out.append(f"{d.column} [{flags}; {extra}]\n    {d.description}")
            if d.values:
                out.append("    " + gettext("Values: %(values)s") % {"values": d.values})
    return "\n".join(out) + "\n"


def csv_header(record_type) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(record_type.column_names)
    return out.getvalue().encode("utf-8")


def template_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.txt", documentation_text())
        for rt in spec.RECORD_TYPES:
            archive.writestr(rt.filename, csv_header(rt))
        archive.writestr("codebook.csv", codebook.codebook_csv())
    return buffer.getvalue()


def template_xlsx() -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    readme = book.active
    readme.title = "README"
    for line in INTRODUCTION.splitlines():
        readme.append([line])
    readme.append([])
    readme.append(["sheet", "column", "required", "type", "unit", "allowed values", "description"])
    for cell in readme[readme.max_row]:
        cell.font = Font(bold=True)
    for rt in spec.RECORD_TYPES:
        for d in column_docs(rt):
            readme.append(
                safe_row(
                    [
                        rt.name,
                        d.column,
                        "yes" if d.required else "no",
                        d.type,
                        d.unit,
                        d.values,
                        d.description,
                    ]
                )
            )
    for rt in spec.RECORD_TYPES:
        sheet = book.create_sheet(rt.name)
        sheet.append(rt.column_names)
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for col, f in enumerate(rt.columns, start=1):
            is_date = isinstance(f.model_field, models.DateField)  # not the label: translated
            if is_date and f.name not in spec.KEY_COLUMNS:
                letter = sheet.cell(row=1, column=col).column_letter
                for row in range(2, 501):
                    sheet[f"{letter}{row}"].number_format = "yyyy-mm-dd"
        sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
