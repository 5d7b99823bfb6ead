"""Bulk import of legacy cases from the import template (CSV files or one Excel workbook).

The upload is all or nothing. Every row becomes model instances that go through full_clean(), so
the import applies exactly the rules of the web forms. Rows are imported in dependency order
(cases first, then follow-up, cycles in cycle order, assessments, adverse events, transplants and
subsequent therapies) inside one transaction, so the cross-record rules (cycle order, nothing
after death, grade 5 needs the death) see the records they depend on. Every problem is collected
with its file or sheet, row, column and message; if there is any, the transaction is rolled back
and nothing is saved. A clean upload saves every row, audited as "import <filename>" by the user.
"""

import csv
import io
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, models, transaction

from registry.models import CrfStatus, Cycle, Institution, Patient

from . import spec
from .safe import safe_row

REASON_MAX_LENGTH = 100  # simple_history's history_change_reason column
# The template's companions (its README sheet, the codebook in the zip): not record files.
IGNORED_SHEETS = {"readme", "codes", "codebook"}


def _ignored(name: str) -> bool:
    return Path(name).stem.strip().lower() in IGNORED_SHEETS


@dataclass(frozen=True)
class Problem:
    source: str  # file name, or "sheet <name>" of a workbook
    row: int | None  # the row number a spreadsheet shows (the header is row 1)
    column: str  # template column, empty for the whole row or file
    message: str

    def __str__(self):
        where = self.source
        if self.row:
            where += f", row {self.row}"
        if self.column:
            where += f", column {self.column}"
        return f"{where}: {self.message}"


@dataclass
class Table:
    """One CSV file or one workbook sheet."""

    record_type: spec.RecordType
    source: str  # how problems name it: "adverse_events.csv" or "sheet adverse_events"
    filename: str  # the uploaded file, for the audit trail
    header: list[str]
    rows: list[tuple[int, dict]]  # (row number, {column: raw cell})


@dataclass
class ImportResult:
    problems: list[Problem] = field(default_factory=list)
    imported: dict[str, int] = field(default_factory=dict)  # rows per source
    study_ids: list[str] = field(default_factory=list)  # cases registered
    saved: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def rows(self) -> int:
        return sum(self.imported.values())


# --- Reading the files ------------------------------------------------------------------------


def _table(stem, source, filename, header, rows, problems) -> Table | None:
    record_type = spec.BY_NAME.get(stem.strip().lower())
    if record_type is None:
        names = ", ".join(rt.name for rt in spec.RECORD_TYPES)
        problems.append(Problem(source, None, "", f"Not a template file or sheet ({names})."))
        return None
    header = [str(h).strip() if h is not None else "" for h in header]
    body = []
    for number, cells in rows:
        values = {h: c for h, c in zip(header, cells, strict=False) if h}
        if any(_is_filled(c) for c in values.values()):
            body.append((number, values))
    return Table(record_type, source, filename, header, body)


def _is_filled(value) -> bool:
    return value is not None and str(value).strip() != ""


def read_csv(name: str, data: bytes, problems: list, filename: str | None = None):
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        problems.append(Problem(name, None, "", "Save the file as UTF-8 CSV."))
        return None
    reader = csv.reader(io.StringIO(text, newline=""))
    lines = list(reader)
    if not lines:
        problems.append(Problem(name, None, "", "The file is empty: keep at least the header."))
        return None
    rows = [(i, line) for i, line in enumerate(lines[1:], start=2)]
    return _table(Path(name).stem, name, filename or name, lines[0], rows, problems)


def read_xlsx(name: str, data, problems: list) -> list[Table]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(data if isinstance(data, Path) else io.BytesIO(data), data_only=True)
    except Exception:  # noqa: BLE001 - openpyxl raises many kinds for a bad file
        problems.append(Problem(name, None, "", "Not a readable Excel workbook (.xlsx)."))
        return []
    tables = []
    for sheet in book.worksheets:
        if _ignored(sheet.title):
            continue
        lines = list(sheet.iter_rows(values_only=True))
        if not lines:
            continue
        rows = [(i, list(line)) for i, line in enumerate(lines[1:], start=2)]
        source = f"{name} sheet {sheet.title}"
        table = _table(sheet.title, source, name, list(lines[0]), rows, problems)
        if table:
            tables.append(table)
    return tables


def read_zip(name: str, data: bytes, problems: list) -> list[Table]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        problems.append(Problem(name, None, "", "Not a readable zip file."))
        return []
    tables = []
    for info in archive.infolist():
        member = Path(info.filename).name
        if info.is_dir() or not member.lower().endswith(".csv") or member.startswith("."):
            continue
        if _ignored(member):
            continue
        table = read_csv(member, archive.read(info), problems, filename=f"{name}/{member}")
        if table:
            tables.append(table)
    return tables


def read_upload(name: str, data: bytes, problems: list) -> list[Table]:
    """Tables from one uploaded file: a CSV, a zip of CSVs or an .xlsx workbook."""
    lower = name.lower()
    if lower.endswith(".xlsx"):
        return read_xlsx(name, data, problems)
    if lower.endswith(".zip"):
        return read_zip(name, data, problems)
    if lower.endswith(".csv"):
        table = read_csv(name, data, problems)
        return [table] if table else []
    problems.append(Problem(name, None, "", "Upload .csv files, a .zip of them or an .xlsx."))
    return []


def read_path(path: Path, problems: list) -> list[Table]:
    """Tables from a directory of CSV files or one .xlsx workbook (the management command)."""
    path = Path(path)
    if path.is_dir():
        tables = []
        for csv_path in sorted(path.glob("*.csv")):
            if _ignored(csv_path.name):
                continue
            table = read_csv(csv_path.name, csv_path.read_bytes(), problems)
            if table:
                tables.append(table)
        if not tables and not problems:
            problems.append(Problem(str(path), None, "", "No CSV files in this directory."))
        return tables
    if path.is_file():
        return read_upload(path.name, path.read_bytes(), problems)
    problems.append(Problem(str(path), None, "", "No such file or directory."))
    return []


# --- Cell values ------------------------------------------------------------------------------


class CellError(Exception):
    pass


def cell_value(f: models.Field, raw):
    """The Python value of one cell for a model field. Empty: the field's default or empty."""
    if isinstance(raw, str):
        raw = raw.strip()
    if raw is None or raw == "":
        if f.has_default():
            return f.get_default()
        return None if f.null or not isinstance(f, models.CharField) else ""
    if isinstance(f, models.BooleanField):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text.endswith(".0"):
            text = text[:-2]
        if text in spec.BOOLEAN_TRUE:
            return True
        if text in spec.BOOLEAN_FALSE:
            return False
        raise CellError(f"“{raw}” is not yes or no.")
    if isinstance(f, models.DateField):
        if isinstance(raw, datetime):
            return raw.date()
        if isinstance(raw, date):
            return raw
    if isinstance(raw, float):
        if isinstance(f, models.DecimalField):
            raw = Decimal(repr(raw))
        elif raw.is_integer() and not isinstance(f, models.FloatField):
            raw = int(raw)
    if isinstance(f, models.CharField) and not isinstance(raw, str):
        raw = str(raw)
    try:
        return f.to_python(raw)
    except ValidationError as e:
        raise CellError(" ".join(e.messages)) from e


# --- The import -------------------------------------------------------------------------------


class _Failed:
    """Marks a case whose own row failed: its other rows are still checked, field by field."""


FAILED = _Failed()


class CaseImport:
    """Import tables into the registry: all rows, or none with every problem listed.

    `institutions`: the sites this import may write (a queryset); `institution`: the site of rows
    that carry no institution column (or must match it when they do).
    """

    def __init__(self, tables, *, user=None, institutions=None, institution=None):
        self.tables = tables
        self.user = user if user is not None and user.is_authenticated else None
        self.institutions = institutions if institutions is not None else Institution.objects.all()
        self.institution = institution
        self.result = ImportResult()
        self.cases: dict[tuple[int, str], Patient | _Failed] = {}  # (site pk, case number)
        self.by_pk: dict[int, Patient] = {}  # one instance per case, so its caches agree
        self.new_patient_ids: set[int] = set()
        self.failed_cycles: set[tuple[int, int]] = set()
        self._sites: dict[str, Institution | None] = {}

    # -- entry point

    def run(self, commit=True, problems=()) -> ImportResult:
        self.result.problems.extend(problems)
        self._check_tables()
        by_type = {}
        for table in self.tables:
            by_type.setdefault(table.record_type.name, []).append(table)
        with transaction.atomic():
            for record_type in spec.IMPORT_ORDER:
                for table in by_type.get(record_type.name, []):
                    self._import_table(table)
            if self.result.problems or not commit:
                transaction.set_rollback(True)
            else:
                self.result.saved = True
        if not self.result.saved:
            self.result.study_ids = []
        return self.result

    def problem(self, table, row, column, message):
        self.result.problems.append(Problem(table.source, row, column, message))

    def _check_tables(self):
        seen = {}
        for table in self.tables:
            rt = table.record_type
            if rt.name in seen:
                self.problem(table, None, "", f"{rt.name} comes twice (also {seen[rt.name]}).")
            seen[rt.name] = table.source
            known = set(rt.column_names)
            for name in table.header:
                if name and name not in known:
                    self.problem(table, 1, name, "Unknown column: see the template.")
            missing = [c for c in rt.required_columns() if c not in table.header]
            for name in missing:
                self.problem(table, 1, name, "Required column is missing.")
            if rt.key == "case" and not {spec.STUDY_ID, spec.SITE_CASE_NUMBER} & set(table.header):
                self.problem(
                    table, 1, spec.STUDY_ID, "Give study_id or site_case_number to name the case."
                )

    # -- sites and cases

    def _site(self, table, number, row) -> Institution | None:
        code = str(row.get(spec.INSTITUTION) or "").strip()
        if not code:
            if self.institution is None:
                self.problem(
                    table,
                    number,
                    spec.INSTITUTION,
                    "Give the site code (or choose the site for the whole import).",
                )
            return self.institution
        if self.institution is not None and code != self.institution.code:
            self.problem(
                table,
                number,
                spec.INSTITUTION,
                f"This import is for {self.institution.code}; the row says {code}.",
            )
            return None
        if code not in self._sites:
            self._sites[code] = self.institutions.filter(code=code).first()
        site = self._sites[code]
        if site is None:
            self.problem(table, number, spec.INSTITUTION, f"You cannot import into site {code}.")
        return site

    def _case(self, table, number, row) -> Patient | _Failed | None:
        """The case a row belongs to, by study ID or by the site's case number."""
        study_id = str(row.get(spec.STUDY_ID) or "").strip()
        case_number = _text(row.get(spec.SITE_CASE_NUMBER))
        if study_id:
            patient = (
                Patient.objects.filter(institution__in=self.institutions, study_id=study_id)
                .select_related("institution")
                .first()
            )
            if patient is None:
                self.problem(table, number, spec.STUDY_ID, f"No case {study_id} at your sites.")
                return None
            code = str(row.get(spec.INSTITUTION) or "").strip()
            site = self.institution.code if self.institution else code
            if site and site != patient.institution.code:
                self.problem(
                    table,
                    number,
                    spec.STUDY_ID,
                    f"{study_id} is a case of another site than {site}.",
                )
                return None
            if case_number and patient.site_case_number != case_number:
                self.problem(
                    table,
                    number,
                    spec.SITE_CASE_NUMBER,
                    f"{study_id} has site case number “{patient.site_case_number}”, "
                    f"not “{case_number}”.",
                )
                return None
            return self.by_pk.setdefault(patient.pk, patient)
        if not case_number:
            self.problem(table, number, spec.STUDY_ID, "Give study_id or site_case_number.")
            return None
        site = self._site(table, number, row)
        if site is None:
            return None
        key = (site.pk, case_number)
        if key in self.cases:
            return self.cases[key]
        matches = list(
            Patient.objects.filter(institution=site, site_case_number=case_number)
            .select_related("institution")
            .order_by("study_id")[:2]
        )
        if len(matches) != 1:
            message = (
                f"No case with site case number “{case_number}” at {site.code}, "
                "neither in patients nor in the registry."
                if not matches
                else f"Several cases at {site.code} have site case number “{case_number}”: "
                "use study_id."
            )
            self.problem(table, number, spec.SITE_CASE_NUMBER, message)
            return None
        self.cases[key] = self.by_pk.setdefault(matches[0].pk, matches[0])
        return self.cases[key]

    def _check_crf_open(self, table, number, patient, model) -> bool:
        if patient.pk in self.new_patient_ids:
            return True
        crf = CrfStatus.crf_of(model)
        status = patient.crf_statuses.filter(crf=crf).first()
        if status and status.is_locked:
            self.problem(
                table, number, "", f"The {status.get_crf_display()} CRF of {patient} is locked."
            )
            return False
        return True

    # -- rows

    def _values(self, table, number, row, model, skip=()) -> tuple[dict, set]:
        """Field values of one model from a row, and the columns that could not be read."""
        values, bad = {}, set()
        for column in table.record_type.columns:
            if column.model is not model or column.name in spec.KEY_COLUMNS:
                continue
            if column.name in skip:
                continue
            f = column.model_field
            raw = row.get(column.name)
            if not _is_filled(raw) and table.record_type.is_required(column):
                self.problem(table, number, column.name, "Required.")
                bad.add(column.name)
                continue
            try:
                values[f.name] = cell_value(f, raw)
            except CellError as e:
                self.problem(table, number, column.name, str(e))
                bad.add(column.name)
        return values, bad

    def _validate(self, table, number, instance, bad, exclude=()) -> bool:
        """full_clean() the instance; report its errors under the template's columns."""
        rt = table.record_type
        try:
            instance.full_clean(exclude=list(exclude) or None)
        except ValidationError as e:
            for field_name, messages in e.message_dict.items():
                column = (
                    ""
                    if field_name == NON_FIELD_ERRORS
                    else rt.column_for(type(instance), field_name)
                )
                if column in bad:
                    continue  # already reported as unreadable or missing
                for message in messages:
                    self.problem(table, number, column, message)
            return False
        return not bad

    def _save(self, table, number, instance) -> bool:
        instance._history_user = self.user
        instance._change_reason = f"import {table.filename}"[:REASON_MAX_LENGTH]
        try:
            with transaction.atomic():
                instance.save()
        except IntegrityError as e:
            self.problem(table, number, "", f"Not saved: the database refused it ({e}).")
            return False
        return True

    def _import_table(self, table):
        if table.record_type.key == "patient":
            rows = table.rows
        elif table.record_type is spec.CYCLES:
            rows = sorted(table.rows, key=lambda r: _sort_number(r[1].get(spec.CYCLE_NUMBER)))
        else:
            rows = table.rows
        imported = 0
        for number, row in rows:
            if table.record_type.key == "patient":
                ok = self._import_case(table, number, row)
            else:
                ok = self._import_record(table, number, row)
            imported += bool(ok)
        self.result.imported[table.source] = imported

    def _import_case(self, table, number, row) -> bool:
        patient_model, baseline_model = table.record_type.models
        site = self._site(table, number, row)
        case_number = _text(row.get(spec.SITE_CASE_NUMBER))
        values, bad = self._values(table, number, row, patient_model)
        patient = patient_model(institution=site, site_case_number=case_number, **values)
        ok = site is not None and bool(case_number)
        if not case_number:
            self.problem(table, number, spec.SITE_CASE_NUMBER, "Required: it links the case.")
        if site is not None and case_number:
            key = (site.pk, case_number)
            earlier = self.cases.get(key)
            if earlier is not None:
                self.problem(
                    table,
                    number,
                    spec.SITE_CASE_NUMBER,
                    f"Site case number “{case_number}” comes twice at {site.code}.",
                )
                ok = False
            else:
                registered = Patient.objects.filter(institution=site, site_case_number=case_number)
                first = registered.order_by("study_id").first()
                if first is not None:
                    self.problem(
                        table,
                        number,
                        spec.SITE_CASE_NUMBER,
                        f"Already registered as {first.study_id}: link its records by study_id.",
                    )
                    ok = False
        exclude = ["institution"] if site is None else []
        ok = self._validate(table, number, patient, bad, exclude) and ok
        ok = ok and self._save(table, number, patient)
        if site is not None and case_number:
            self.cases.setdefault((site.pk, case_number), patient if ok else FAILED)
        if ok:
            self.by_pk[patient.pk] = patient
            self.new_patient_ids.add(patient.pk)
            self.result.study_ids.append(patient.study_id)

        # The baseline shares the row; a row with no baseline cell filled registers the case only.
        baseline_columns = [c.name for c in table.record_type.columns if c.model is baseline_model]
        if not any(_is_filled(row.get(c)) for c in baseline_columns):
            return ok
        b_values, b_bad = self._values(table, number, row, baseline_model)
        baseline = baseline_model(**b_values)
        if ok:
            baseline.patient = patient
        b_ok = self._validate(table, number, baseline, b_bad, [] if ok else ["patient"])
        b_ok = ok and b_ok and self._save(table, number, baseline)
        if ok and not b_ok:
            _forget(patient, baseline)
        return b_ok

    def _import_record(self, table, number, row) -> bool:
        rt = table.record_type
        model = rt.model
        patient = self._case(table, number, row)
        linked = isinstance(patient, Patient)
        values, bad = self._values(table, number, row, model, skip=_cycle_ref(model))
        cycle, cycle_column = None, None
        if _cycle_ref(model):
            cycle_column = spec.CYCLE_NUMBER
            cycle_field = model._meta.get_field("cycle")
            raw = row.get(spec.CYCLE_NUMBER)
            if _is_filled(raw):
                n = _number(raw)
                if n is None:
                    self.problem(table, number, spec.CYCLE_NUMBER, f"“{raw}” is not a number.")
                    bad.add(spec.CYCLE_NUMBER)
                elif linked:
                    cycle = patient.cycles.filter(number=n).first()
                    if cycle is None:
                        if (patient.pk, n) not in self.failed_cycles:
                            self.problem(
                                table,
                                number,
                                spec.CYCLE_NUMBER,
                                f"{patient} has no cycle {n}, neither in cycles nor in the "
                                "registry.",
                            )
                        bad.add(spec.CYCLE_NUMBER)
            elif not cycle_field.null:
                self.problem(table, number, spec.CYCLE_NUMBER, "Required.")
                bad.add(spec.CYCLE_NUMBER)
        instance = model(**values)
        exclude = []
        if linked:
            instance.patient = patient
        else:
            exclude.append("patient")
        if cycle is not None:
            instance.cycle = cycle
        elif cycle_column:
            exclude.append("cycle")
        if linked and not self._check_crf_open(table, number, patient, model):
            return False
        ok = self._validate(table, number, instance, bad, exclude) and linked and not bad
        ok = ok and self._save(table, number, instance)
        if not ok and linked:
            _forget(patient, instance)
            if model is Cycle and "number" in values:
                self.failed_cycles.add((patient.pk, values["number"]))
        return ok


def _forget(patient, instance):
    """Drop the case's cached link to a one-to-one record that was not saved (e.g. a follow-up
    whose death date must not count for the case's later rows)."""
    relation = instance._meta.get_field("patient")
    if isinstance(relation, models.OneToOneField) and relation.remote_field.is_cached(patient):
        relation.remote_field.delete_cached_value(patient)


def _cycle_ref(model) -> tuple[str, ...]:
    return (spec.CYCLE_NUMBER,) if model is not Cycle and _has_cycle(model) else ()


def _has_cycle(model) -> bool:
    return any(f.name == "cycle" for f in model._meta.fields)


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _number(value) -> int | None:
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return int(number) if number.is_integer() else None


def _sort_number(value) -> float:
    n = _number(value) if _is_filled(value) else None
    return float("inf") if n is None else n


def import_tables(tables, *, problems=(), commit=True, **options) -> ImportResult:
    return CaseImport(tables, **options).run(commit=commit, problems=problems)


# --- The problem report -------------------------------------------------------------------------

PROBLEM_COLUMNS = ["file_or_sheet", "row", "column", "problem"]


def problems_csv(problems) -> str:
    """The problems of an import as CSV, one per row. Problems quote the uploaded file names and
    cells, so text a spreadsheet would run as a formula is quoted (exchange.safe)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(PROBLEM_COLUMNS)
    for p in problems:
        writer.writerow(safe_row([p.source, p.row if p.row else "", p.column, p.message]))
    return out.getvalue()
