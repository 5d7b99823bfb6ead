"""Bulk import of legacy cases from the import template (CSV files or one Excel workbook).

The upload is all or nothing. Every row becomes model instances that go through full_clean(), so
the import applies exactly the rules of the web forms. Rows are imported in dependency order
(cases first, then follow-up, cycles in cycle order, assessments, adverse events, transplants and
subsequent therapies), so the cross-record rules (cycle order, nothing after death, grade 5 needs
the death) see the records they depend on. Every problem is collected with its file or sheet,
row, column and message; if there is any, nothing is saved. A clean upload saves every row,
audited as "import <filename>" by the user.

Reading is bounded (README "Bulk import", settings IMPORT_MAX_*): files stream row by row, only
filled cells are kept, an archive's declared sizes are checked before anything is unpacked and
its bytes are counted while it is, and reading stops at the first limit passed. A file that
cannot be read (not CSV, a duplicated column, an Excel formula without a saved value, a limit)
stops the import before any row is checked.

Checking runs case by case in short transactions that are rolled back (every row of a case in
the same one, so its cross-record rules hold), so a long check never holds the database's write
lock for long: other users keep saving. Only an upload that passed the check is imported, in one
transaction that checks every row again.
"""

import contextlib
import csv
import io
import struct
import time
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, connection, models, transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from registry.models import CaseLocked, CrfStatus, Cycle, Institution, Patient

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


# --- Limits -----------------------------------------------------------------------------------

MB = 1000 * 1000  # as limits are told to users
MIB = 1024 * 1024
# Members smaller than this are not judged by their compression ratio: a small, very regular
# file (a sheet of empty formatted cells) may compress far better than data, harmlessly.
RATIO_CHECK_FROM_BYTES = MIB
# Archives within a zip upload are refused, not opened: one level of unpacking only.
ARCHIVE_SUFFIXES = (".zip", ".xlsx", ".xlsm", ".ods", ".gz", ".tgz", ".bz2", ".xz")
UNREADABLE_ZIP = gettext_noop("Not a readable zip file.")
UNREADABLE_XLSX = gettext_noop("Not a readable Excel workbook (.xlsx).")
ARCHIVE_MAGIC = (b"PK\x03\x04", b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"7z\xbc\xaf", b"Rar!")


def _size(n: int) -> str:
    return f"{n / MB:,.1f} MB" if n >= MB else f"{n:,} bytes"


@dataclass(frozen=True)
class Limits:
    """What one upload (or one run of the command) may hold; the numbers are in settings."""

    upload_bytes: int
    unzipped_bytes: int
    rows: int
    ratio: int
    members: int

    @classmethod
    def from_settings(cls) -> "Limits":
        return cls(
            upload_bytes=settings.IMPORT_MAX_UPLOAD_BYTES,
            unzipped_bytes=settings.IMPORT_MAX_UNZIPPED_BYTES,
            rows=settings.IMPORT_MAX_ROWS,
            ratio=settings.IMPORT_MAX_COMPRESSION_RATIO,
            members=settings.IMPORT_MAX_ARCHIVE_MEMBERS,
        )

    def upload_too_large(self, size: int) -> str | None:
        if size > self.upload_bytes:
            return _(
                "The upload is %(size)s; the limit is %(limit)s per upload. Split the files into "
                "several uploads (e.g. patients first, then the other files naming their cases "
                "by study_id)."
            ) % {"size": _size(size), "limit": _size(self.upload_bytes)}
        return None


class LimitExceeded(Exception):
    pass


class Budget:
    """The rows and unzipped bytes one upload may still read, shared by all its files. Reading
    stops at the first excess: nothing past a limit is unpacked or held."""

    def __init__(self, limits: Limits | None = None):
        self.limits = limits or Limits.from_settings()
        self.rows = 0
        self.unzipped = 0
        self.exhausted = False

    def add_row(self):
        self.rows += 1
        if self.rows > self.limits.rows:
            self.exhausted = True
            raise LimitExceeded(
                _(
                    "More than %(rows)s data rows: the limit is %(rows)s rows per upload. Split "
                    "the import into several uploads (e.g. patients first, then the other files "
                    "naming their cases by study_id)."
                )
                % {"rows": f"{self.limits.rows:,}"}
            )

    def add_unzipped(self, n: int):
        self.unzipped += n
        if self.unzipped > self.limits.unzipped_bytes:
            self.exhausted = True
            raise LimitExceeded(
                _(
                    "Unzipped, the upload is more than %(limit)s, the limit per upload (its "
                    "archives declared less): reading stopped there."
                )
                % {"limit": _size(self.limits.unzipped_bytes)}
            )


class _Counted(io.RawIOBase):
    """A member of an archive, read through the budget: its declared size may be a lie."""

    def __init__(self, raw, budget: Budget):
        self.raw, self.budget = raw, budget

    def readable(self):
        return True

    def readinto(self, buffer):
        data = self.raw.read(len(buffer))
        self.budget.add_unzipped(len(data))
        buffer[: len(data)] = data
        return len(data)

    def close(self):
        self.raw.close()
        super().close()


# --- Reading the files ------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One file to read: its name, and how to open it (again) as a binary stream. Uploads larger
    than FILE_UPLOAD_MAX_MEMORY_SIZE are read from Django's temporary file, never loaded whole."""

    name: str
    open: Callable[[], BinaryIO]

    @classmethod
    def from_bytes(cls, name: str, data: bytes) -> "Source":
        return cls(name, lambda: io.BytesIO(data))

    @classmethod
    def from_path(cls, path: Path) -> "Source":
        return cls(Path(path).name, lambda: Path(path).open("rb"))

    @classmethod
    def from_upload(cls, upload) -> "Source":
        if hasattr(upload, "temporary_file_path"):
            return cls(upload.name, lambda: Path(upload.temporary_file_path()).open("rb"))
        return cls.from_bytes(upload.name, upload.read())  # small: Django holds it in memory


def _table(stem, source, filename, header, rows, problems) -> Table | None:
    record_type = spec.BY_NAME.get(stem.strip().lower())
    if record_type is None:
        names = ", ".join(rt.name for rt in spec.RECORD_TYPES)
        problems.append(
            Problem(
                source,
                None,
                "",
                (_("Not a template file or sheet (%(names)s).") % {"names": names}),
            )
        )
        return None
    return Table(record_type, source, filename, header, rows)


def _is_filled(value) -> bool:
    return value is not None and str(value).strip() != ""


def _header(source, cells, problems) -> list[str] | None:
    """Column names of a header row; None when a name comes twice (which copy would count?)."""
    header = [str(h).strip() if h is not None else "" for h in cells]
    seen, ok = {}, True
    for index, name in enumerate(header, start=1):
        if not name:
            continue
        if name in seen:
            first = get_column_letter(seen[name])
            problems.append(
                Problem(
                    source,
                    1,
                    name,
                    (
                        _("The column comes twice (columns %(first)s and %(value)s): keep one.")
                        % {"first": first, "value": get_column_letter(index)}
                    ),
                )
            )
            ok = False
        else:
            seen[name] = index
    return header if ok else None


def _row_values(source, number, header, cells, problems) -> dict | None:
    """{column: cell} of a data row's filled cells ({} for an empty row); None, with a problem,
    for a row with a value past the header (a comma in an unquoted cell shifts later cells)."""
    values = {}
    for index, cell in enumerate(cells):
        if not _is_filled(cell):
            continue
        name = header[index] if index < len(header) else ""
        if not name:
            problems.append(
                Problem(
                    source,
                    number,
                    get_column_letter(index + 1),
                    (
                        _(
                            "A value in a column without a header: is a comma inside an unquoted "
                            "cell?"
                        )
                    ),
                )
            )
            return None
        values[name] = cell
    return values


CSV_ERRORS = {
    "unexpected end of data": "a quoted cell that starts in this row is never closed",
    "expected after": "a quoted cell in this row is closed and then continues",
    "field larger than field limit": "a cell that starts in this row is longer than "
    f"{csv.field_size_limit():,} characters (is a quote not closed?)",
}


def _csv_message(error: csv.Error) -> str:
    text = str(error)
    what = next((m for key, m in CSV_ERRORS.items() if key in text), text)
    return _(
        "Not valid CSV: %(what)s. Nothing after it can be read reliably. A cell holding a quote, "
        'a comma or a line break is enclosed in quotes, and each quote inside it is doubled ("").'
    ) % {"what": what}


def _take_row(source, number, header, cells, rows, problems, budget) -> bool:
    """Add a data row's filled cells to `rows` (a blank row is skipped); False when the row is
    refused or over the row limit, which ends the file's reading."""
    values = _row_values(source, number, header, cells, problems)
    if values is None:
        return False
    if values:
        try:
            budget.add_row()
        except LimitExceeded as e:
            problems.append(Problem(source, number, "", str(e)))
            return False
        rows.append((number, values))
    return True


def read_csv(name: str, stream, problems: list, budget: Budget, filename=None) -> Table | None:
    """One CSV file, read row by row: only its filled cells are kept."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.reader(text, strict=True)
    number = 0  # rows read; the row being read is number + 1 (the header is row 1)
    header, rows = None, []
    try:
        first = next(reader, None)
        number = 1
        if first is None:
            problems.append(
                Problem(name, None, "", _("The file is empty: keep at least the header."))
            )
            return None
        header = _header(name, first, problems)
        if header is None:
            return None
        for cells in reader:
            number += 1
            if not _take_row(name, number, header, cells, rows, problems, budget):
                return None
    except UnicodeDecodeError:
        problems.append(Problem(name, None, "", _("Not UTF-8 text: save the file as UTF-8 CSV.")))
        return None
    except csv.Error as e:
        problems.append(Problem(name, number + 1, "", _csv_message(e)))
        return None
    except LimitExceeded as e:  # unzipped bytes, counted while the row was read
        problems.append(Problem(name, number + 1, "", str(e)))
        return None
    return _table(Path(name).stem, name, filename or name, header, rows, problems)


def _declared_members(stream) -> int | None:
    """How many members the zip's end record declares, read before the central directory is
    parsed (a directory of millions of entries would fill memory). None: not a zip."""
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    tail_size = min(size, 22 + 65535)  # the end record, and its comment of up to 64 KiB
    stream.seek(size - tail_size)
    tail = stream.read(tail_size)
    stream.seek(0)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return None
    (total,) = struct.unpack("<H", tail[at + 10 : at + 12])
    return total  # 0xFFFF: a zip64 archive, more members than the limit anyway


def _open_archive(name, stream, problems, budget, unreadable_message):
    """The archive, once its declared sizes pass the limits: a zip bomb is refused before
    anything is unpacked."""
    limits = budget.limits
    unreadable = Problem(name, None, "", _(unreadable_message))
    members = _declared_members(stream)
    if members is None:
        problems.append(unreadable)
        return None
    if members > limits.members:
        problems.append(
            Problem(
                name,
                None,
                "",
                (
                    _("The archive holds %(members)s files; the limit is %(members2)s.")
                    % {"members": f"{members:,}", "members2": f"{limits.members:,}"}
                ),
            )
        )
        return None
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        problems.append(unreadable)
        return None
    infos = archive.infolist()
    declared = sum(info.file_size for info in infos)
    if budget.unzipped + declared > limits.unzipped_bytes:
        problems.append(
            Problem(
                name,
                None,
                "",
                (
                    _(
                        "Unzipped, it would be %(value)s; the limit is %(value2)s per upload. "
                        "Nothing was unpacked."
                    )
                    % {"value": _size(declared), "value2": _size(limits.unzipped_bytes)}
                ),
            )
        )
        archive.close()
        return None
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size >= RATIO_CHECK_FROM_BYTES and ratio > limits.ratio:
            problems.append(
                Problem(
                    name,
                    None,
                    "",
                    (
                        _(
                            "%(filename)s is compressed %(ratio)s to 1, far more than data "
                            "compresses (the limit is %(ratio2)s to 1): refused as a possible zip "
                            "bomb. Nothing was unpacked."
                        )
                        % {
                            "filename": info.filename,
                            "ratio": f"{ratio:,.0f}",
                            "ratio2": limits.ratio,
                        }
                    ),
                )
            )
            archive.close()
            return None
    return archive


def read_zip(source: Source, problems: list, budget: Budget) -> list[Table]:
    tables = []
    with source.open() as stream:
        archive = _open_archive(source.name, stream, problems, budget, UNREADABLE_ZIP)
        if archive is None:
            return []
        with archive:
            for info in archive.infolist():
                path = PurePosixPath(info.filename)
                member = path.name
                if info.is_dir() or member.startswith(".") or "__MACOSX" in path.parts:
                    continue
                where = f"{source.name}/{member}"
                if member.lower().endswith(ARCHIVE_SUFFIXES):
                    problems.append(
                        Problem(
                            where,
                            None,
                            "",
                            _("An archive inside the zip: put the CSV files themselves in it."),
                        )
                    )
                    continue
                if not member.lower().endswith(".csv") or _ignored(member):
                    continue
                try:
                    with io.BufferedReader(_Counted(archive.open(info), budget)) as raw:
                        if raw.peek(8)[:8].startswith(ARCHIVE_MAGIC):
                            problems.append(
                                Problem(where, None, "", _("An archive, not a CSV file: unzip it."))
                            )
                            continue
                        table = read_csv(member, raw, problems, budget, filename=where)
                except LimitExceeded as e:  # while peeking at the first bytes
                    problems.append(Problem(where, None, "", str(e)))
                    return tables
                except (zipfile.BadZipFile, OSError, EOFError, zlib.error):
                    problems.append(Problem(where, None, "", _("Not a readable zip file member.")))
                    continue
                if table:
                    tables.append(table)
                if budget.exhausted:
                    break
    return tables


def _check_archive_members(name, stream, problems, budget) -> bool:
    """Unpack every member of an .xlsx through the budget (and its CRC check) before openpyxl
    reads it: the sizes the archive declares are not taken on trust."""
    archive = _open_archive(name, stream, problems, budget, UNREADABLE_XLSX)
    if archive is None:
        return False
    with archive:
        try:
            for info in archive.infolist():
                with archive.open(info) as member:
                    while chunk := member.read(MIB):
                        budget.add_unzipped(len(chunk))
        except LimitExceeded as e:
            problems.append(Problem(name, None, "", str(e)))
            return False
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError):
            problems.append(Problem(name, None, "", _(UNREADABLE_XLSX)))
            return False
    return True


def _sheet_rows(values_sheet, formula_sheet) -> Iterator[tuple[int, list]]:
    """(row number, cells) of a sheet, each cell read twice: its saved value (what Excel shows)
    and whether it holds a formula. Dimensions are recomputed from the cells: a sheet declaring
    A1:XFD1048576 would otherwise pad every row to 16,384 cells."""
    values_sheet.reset_dimensions()
    formula_sheet.reset_dimensions()
    pairs = zip(values_sheet.iter_rows(), formula_sheet.iter_rows(), strict=True)
    for number, (values, formulas) in enumerate(pairs, start=1):
        yield number, list(zip(values, formulas, strict=True))


def _cell(source, number, column, value_cell, formula_cell, problems):
    """A cell's saved value; a formula without one, or an Excel error, is a problem."""
    value = value_cell.value
    if formula_cell.data_type == "f" and value is None:
        problems.append(
            Problem(
                source,
                number,
                column,
                (
                    _(
                        "A formula without a saved value: open the workbook in Excel and save "
                        "it, or paste the values instead of the formula."
                    )
                ),
            )
        )
        return None
    if value_cell.data_type == "e":
        problems.append(
            Problem(
                source, number, column, (_("An Excel error value (%(value)s).") % {"value": value})
            )
        )
        return None
    return value


def _read_sheet(name, sheet, formulas, problems, budget) -> Table | None:
    source = f"{name} sheet {sheet.title}"
    header, rows = None, []
    before = len(problems)
    for number, cells in _sheet_rows(sheet, formulas):
        names = header or []
        values = [
            _cell(source, number, _column_name(names, i), value, formula, problems)
            for i, (value, formula) in enumerate(cells)
        ]
        if len(problems) > before:
            return None
        if header is None:
            header = _header(source, values, problems)
            if header is None:
                return None
            continue
        if not _take_row(source, number, header, values, rows, problems, budget):
            return None
    if header is None:
        return None  # an empty sheet
    return _table(sheet.title, source, name, header, rows, problems)


def get_column_letter(index: int) -> str:
    """openpyxl's column letter (1 -> A); openpyxl is imported on the first call, not when the
    URLs load this module."""
    from openpyxl.utils import get_column_letter as letter

    return letter(index)


def _column_name(header, index) -> str:
    """The column's template name, or its letter where the header has none."""
    if index < len(header) and header[index]:
        return header[index]
    return get_column_letter(index + 1)


def read_xlsx(source: Source, problems: list, budget: Budget) -> list[Table]:
    from openpyxl import load_workbook

    with source.open() as stream:
        if not _check_archive_members(source.name, stream, problems, budget):
            return []
    tables = []
    with contextlib.ExitStack() as stack:
        try:
            # Read-only: rows stream from the sheet's XML. Two readings of the same file, one
            # with the values Excel saved and one with the formulas, so that a formula whose
            # value was never saved (data_only gives None) is reported instead of read as empty.
            books = []
            for data_only in (True, False):
                stream = stack.enter_context(source.open())
                book = load_workbook(stream, read_only=True, data_only=data_only)
                stack.callback(book.close)
                books.append(book)
        except Exception:  # noqa: BLE001 - openpyxl raises many kinds for a bad file
            problems.append(Problem(source.name, None, "", _(UNREADABLE_XLSX)))
            return []
        values_book, formula_book = books
        for sheet in values_book.worksheets:
            if _ignored(sheet.title):
                continue
            try:
                table = _read_sheet(source.name, sheet, formula_book[sheet.title], problems, budget)
            except Exception:  # noqa: BLE001 - a malformed sheet's XML
                problems.append(
                    Problem(
                        f"{source.name} sheet {sheet.title}", None, "", _("Not a readable sheet.")
                    )
                )
                return tables
            if table:
                tables.append(table)
            if budget.exhausted:
                break
    return tables


def read_upload(source: Source, problems: list, budget: Budget) -> list[Table]:
    """Tables from one uploaded file: a CSV, a zip of CSVs or an .xlsx workbook."""
    if budget.exhausted:
        return []
    lower = source.name.lower()
    if lower.endswith(".xlsx"):
        return read_xlsx(source, problems, budget)
    if lower.endswith(".zip"):
        return read_zip(source, problems, budget)
    if lower.endswith(".csv"):
        with source.open() as stream:
            table = read_csv(source.name, stream, problems, budget)
        return [table] if table else []
    message = _("Upload .csv files, a .zip of them or an .xlsx.")
    problems.append(Problem(source.name, None, "", message))
    return []


def read_path(path: Path, problems: list, budget: Budget | None = None) -> list[Table]:
    """Tables from a directory of CSV files or one .xlsx workbook (the management command)."""
    path = Path(path)
    budget = budget or Budget()
    if path.is_dir():
        tables = []
        for csv_path in sorted(path.glob("*.csv")):
            if _ignored(csv_path.name):
                continue
            tables += read_upload(Source.from_path(csv_path), problems, budget)
        if not tables and not problems:
            problems.append(Problem(str(path), None, "", _("No CSV files in this directory.")))
        return tables
    if path.is_file():
        return read_upload(Source.from_path(path), problems, budget)
    problems.append(Problem(str(path), None, "", _("No such file or directory.")))
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
# SQLite has one write lock and no queue for it: a waiting writer polls it (at most every
# 100 ms). Between the check's transactions the import pauses a little longer than that, so that
# a user's save waiting for the lock gets it rather than the import's next transaction.
SQLITE_HANDOVER_SECONDS = 0.12


class CaseImport:
    """Import tables into the registry: all rows, or none with every problem listed.

    `institutions`: the sites this import may write (a queryset); `institution`: the site of rows
    that carry no institution column (or must match it when they do).
    """

    def __init__(self, tables, *, user=None, institutions=None, institution=None):
        order = {rt.name: i for i, rt in enumerate(spec.IMPORT_ORDER)}
        self.tables = sorted(tables, key=lambda t: order[t.record_type.name])
        self.user = user if user is not None and user.is_authenticated else None
        self.institutions = institutions if institutions is not None else Institution.objects.all()
        self.institution = institution
        self.result = ImportResult()
        self.sites: dict[str, Institution | None] = {}  # site code -> site (None: not allowed)

    # -- entry point

    def run(self, commit=True, problems=()) -> ImportResult:
        result = self.result
        result.problems.extend(problems)
        if result.problems:  # a file could not be read: its rows are not checked
            return result
        self._check_tables()
        if not any(table.rows for table in self.tables):
            names = sorted({t.filename.split("/")[0] for t in self.tables}) or [_("The upload")]
            result.problems.append(
                Problem(
                    ", ".join(names),
                    None,
                    "",
                    (
                        _(
                            "No data rows: the files hold only their header rows. Fill in the "
                            "template below its header, one row per record."
                        )
                    ),
                )
            )
            return result
        imported = Counter()
        cases = self._cases()
        done = 0
        while done < len(cases):
            if done and connection.vendor == "sqlite":
                time.sleep(SQLITE_HANDOVER_SECONDS)
            # One transaction, rolled back, per part: whole cases until the part has
            # IMPORT_CHECK_CHUNK_ROWS rows or has run IMPORT_CHECK_CHUNK_SECONDS.
            started, rows = time.monotonic(), 0
            with transaction.atomic():
                check = _Pass(self)
                while done < len(cases) and rows < settings.IMPORT_CHECK_CHUNK_ROWS:
                    if time.monotonic() - started >= settings.IMPORT_CHECK_CHUNK_SECONDS:
                        break
                    check.run(self._tables_of(cases[done]))
                    rows += len(cases[done])
                    done += 1
                transaction.set_rollback(True)
            imported.update(check.imported)
            result.problems.extend(check.problems)
        self._sort_problems()
        if result.problems or not commit:
            result.imported = {t.source: imported[t.source] for t in self.tables}
            return result
        # The check passed: import every row in one transaction, checking each again (another
        # user may have changed a case since).
        with transaction.atomic():
            write = _Pass(self, checked=True)
            write.run(self.tables)
            if write.problems:
                transaction.set_rollback(True)
                result.problems.extend(write.problems)
                self._sort_problems()
            else:
                result.saved = True
                result.imported = {t.source: write.imported[t.source] for t in self.tables}
                result.study_ids = write.study_ids
        return result

    def _sort_problems(self):
        """Problems in the order of import, then of rows, however the check was split."""
        order = {t.source: i for i, t in enumerate(self.tables)}
        self.result.problems.sort(key=lambda p: (order.get(p.source, -1), p.row or 0))

    def _check_tables(self):
        seen = {}
        problems = self.result.problems
        for table in self.tables:
            rt = table.record_type
            if rt.name in seen:
                message = f"{rt.name} comes twice (also {seen[rt.name]})."
                problems.append(Problem(table.source, None, "", message))
            seen[rt.name] = table.source
            known = set(rt.column_names)
            for name in table.header:
                if name and name not in known:
                    problems.append(
                        Problem(table.source, 1, name, _("Unknown column: see the template."))
                    )
            missing = [c for c in rt.required_columns() if c not in table.header]
            for name in missing:
                problems.append(Problem(table.source, 1, name, _("Required column is missing.")))
            if rt.key == "case" and not {spec.STUDY_ID, spec.SITE_CASE_NUMBER} & set(table.header):
                problems.append(
                    Problem(
                        table.source,
                        1,
                        spec.STUDY_ID,
                        _("Give study_id or site_case_number to name the case."),
                    )
                )

    # -- splitting the check

    def _cases(self) -> list[list[tuple[int, int, dict]]]:
        """The rows grouped by the case they belong to, as (table index, row number, row): the
        check runs a case's rows together, so its cross-record rules see all of them."""
        registered = self._registered_cases()
        cases: dict[tuple, list[tuple[int, int, dict]]] = {}
        for index, table in enumerate(self.tables):
            for number, row in table.rows:
                key = self._case_key(table, row, registered) or ("row", index, number)
                cases.setdefault(key, []).append((index, number, row))
        return list(cases.values())

    def _tables_of(self, part) -> list[Table]:
        rows: dict[int, list] = {}
        for index, number, row in part:
            rows.setdefault(index, []).append((number, row))
        return [
            replace(table, rows=sorted(rows.get(index, []), key=lambda r: r[0]))
            for index, table in enumerate(self.tables)
        ]

    def _registered_cases(self) -> dict[str, tuple]:
        """study ID -> (site code, site case number, pk) of the registered cases rows name."""
        ids = sorted(
            {
                _text(row.get(spec.STUDY_ID))
                for table in self.tables
                if table.record_type.key == "case"
                for _number, row in table.rows
            }
            - {""}
        )
        found = {}
        for start in range(0, len(ids), 500):
            found.update(
                (study_id, (code, number, pk))
                for study_id, code, number, pk in Patient.objects.filter(
                    institution__in=self.institutions, study_id__in=ids[start : start + 500]
                ).values_list("study_id", "institution__code", "site_case_number", "pk")
            )
        return found

    def _case_key(self, table, row, registered) -> tuple | None:
        study_id = _text(row.get(spec.STUDY_ID)) if table.record_type.key == "case" else ""
        if study_id:
            if study_id not in registered:
                return ("study_id", study_id)
            code, number, pk = registered[study_id]
            return (code, number) if number else ("pk", pk)
        number = _text(row.get(spec.SITE_CASE_NUMBER))
        if not number:
            return None
        code = self.institution.code if self.institution else _text(row.get(spec.INSTITUTION))
        return (code, number)


class _Pass:
    """Rows imported inside the caller's transaction: each built, full_clean()ed and saved, in
    dependency order (the tables given to run() are in import order), its problems collected."""

    def __init__(self, run: CaseImport, checked=False):
        # `checked`: these rows passed the check moments ago. The rows of a case this pass
        # registers are then not full_clean()ed again: only their own values and the case's other
        # rows decide their rules, except a lock or a registration under the same site case number,
        # which save() and _import_case() check again. Rows of registered cases are checked again
        # (another user may have changed the case). This halves the time the import's transaction
        # holds the write lock.
        self.checked = checked
        self.user = run.user
        self.institutions = run.institutions
        self.institution = run.institution
        self._sites = run.sites
        self.problems: list[Problem] = []
        self.imported: Counter = Counter()  # rows saved per source
        self.study_ids: list[str] = []  # cases registered
        self.cases: dict[tuple[int, str], Patient | _Failed] = {}  # (site pk, case number)
        self.by_pk: dict[int, Patient] = {}  # one instance per case, so its caches agree
        self.by_study_id: dict[str, Patient | None] = {}
        self.new_patient_ids: set[int] = set()
        self.cycles: dict[tuple[int, int], Cycle | None] = {}  # (case pk, number)
        self.failed_cycles: set[tuple[int, int]] = set()
        self.locked_crfs: dict[tuple[int, str], CrfStatus | None] = {}  # (case pk, CRF)

    def run(self, tables: list[Table]):
        for table in tables:
            self._import_table(table)

    def problem(self, table, row, column, message):
        self.problems.append(Problem(table.source, row, column, message))

    # -- sites and cases

    def _site(self, table, number, row) -> Institution | None:
        code = str(row.get(spec.INSTITUTION) or "").strip()
        if not code:
            if self.institution is None:
                self.problem(
                    table,
                    number,
                    spec.INSTITUTION,
                    _("Give the site code (or choose the site for the whole import)."),
                )
            return self.institution
        if self.institution is not None and code != self.institution.code:
            self.problem(
                table,
                number,
                spec.INSTITUTION,
                (
                    _("This import is for %(code)s; the row says %(code2)s.")
                    % {"code": self.institution.code, "code2": code}
                ),
            )
            return None
        if code not in self._sites:
            self._sites[code] = self.institutions.filter(code=code).first()
        site = self._sites[code]
        if site is None:
            self.problem(
                table,
                number,
                spec.INSTITUTION,
                (_("You cannot import into site %(code)s.") % {"code": code}),
            )
        return site

    def _case(self, table, number, row) -> Patient | _Failed | None:
        """The case a row belongs to, by study ID or by the site's case number."""
        study_id = str(row.get(spec.STUDY_ID) or "").strip()
        case_number = _text(row.get(spec.SITE_CASE_NUMBER))
        if study_id:
            if study_id not in self.by_study_id:
                self.by_study_id[study_id] = (
                    Patient.objects.filter(institution__in=self.institutions, study_id=study_id)
                    .select_related("institution")
                    .first()
                )
            patient = self.by_study_id[study_id]
            if patient is None:
                self.problem(
                    table,
                    number,
                    spec.STUDY_ID,
                    (_("No case %(study_id)s at your sites.") % {"study_id": study_id}),
                )
                return None
            code = str(row.get(spec.INSTITUTION) or "").strip()
            site = self.institution.code if self.institution else code
            if site and site != patient.institution.code:
                self.problem(
                    table,
                    number,
                    spec.STUDY_ID,
                    (
                        _("%(study_id)s is a case of another site than %(site)s.")
                        % {"study_id": study_id, "site": site}
                    ),
                )
                return None
            if case_number and patient.site_case_number != case_number:
                self.problem(
                    table,
                    number,
                    spec.SITE_CASE_NUMBER,
                    (
                        _(
                            "%(study_id)s has site case number “%(site_case_number)s”, not "
                            "“%(case_number)s”."
                        )
                        % {
                            "study_id": study_id,
                            "site_case_number": patient.site_case_number,
                            "case_number": case_number,
                        }
                    ),
                )
                return None
            return self.by_pk.setdefault(patient.pk, patient)
        if not case_number:
            self.problem(table, number, spec.STUDY_ID, _("Give study_id or site_case_number."))
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
                _(
                    "No case with site case number “%(number)s” at %(site)s, neither in "
                    "patients nor in the registry."
                )
                if not matches
                else _(
                    "Several cases at %(site)s have site case number “%(number)s”: use study_id."
                )
            ) % {"number": case_number, "site": site.code}
            self.problem(table, number, spec.SITE_CASE_NUMBER, message)
            return None
        self.cases[key] = self.by_pk.setdefault(matches[0].pk, matches[0])
        return self.cases[key]

    def _check_crf_open(self, table, number, patient, model) -> bool:
        if patient.pk in self.new_patient_ids:
            return True
        crf = CrfStatus.crf_of(model)
        key = (patient.pk, crf)
        if key not in self.locked_crfs:
            status = patient.crf_statuses.filter(crf=crf).first()
            self.locked_crfs[key] = status if status and status.is_locked else None
        status = self.locked_crfs[key]
        if status:
            self.problem(
                table,
                number,
                "",
                (
                    _("The %(value)s CRF of %(patient)s is locked.")
                    % {"value": status.get_crf_display(), "patient": patient}
                ),
            )
            return False
        return True

    def _cycle(self, patient, number) -> Cycle | None:
        """The case's cycle `number`: imported in this pass, or registered before."""
        key = (patient.pk, number)
        if key not in self.cycles:
            new_case = patient.pk in self.new_patient_ids  # its cycles all come from this pass
            self.cycles[key] = None if new_case else patient.cycles.filter(number=number).first()
        return self.cycles[key]

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
                self.problem(table, number, column.name, _("Required."))
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
        patient_id = getattr(instance, "patient_id", None)
        new_case = patient_id in self.new_patient_ids or (
            isinstance(instance, Patient) and instance.pk is None
        )
        if self.checked and new_case:
            return not bad
        # A case registered by this import cannot be locked yet (its site's lock was checked
        # when it was registered): one query less per row. save() checks the locks again.
        check_lock = patient_id is None or patient_id not in self.new_patient_ids
        try:
            instance.full_clean(exclude=list(exclude) or None, check_lock=check_lock)
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
            self.problem(
                table, number, "", (_("Not saved: the database refused it (%(e)s).") % {"e": e})
            )
            return False
        except CaseLocked as e:  # locked by a monitor while the import ran
            self.problem(table, number, "", str(e))
            return False
        return True

    def _import_table(self, table):
        rows = table.rows
        if table.record_type is spec.CYCLES:
            rows = sorted(rows, key=lambda r: _sort_number(r[1].get(spec.CYCLE_NUMBER)))
        for number, row in rows:
            if table.record_type.key == "patient":
                ok = self._import_case(table, number, row)
            else:
                ok = self._import_record(table, number, row)
            self.imported[table.source] += bool(ok)

    def _import_case(self, table, number, row) -> bool:
        patient_model, baseline_model = table.record_type.models
        site = self._site(table, number, row)
        case_number = _text(row.get(spec.SITE_CASE_NUMBER))
        values, bad = self._values(table, number, row, patient_model)
        patient = patient_model(institution=site, site_case_number=case_number, **values)
        ok = site is not None and bool(case_number)
        if not case_number:
            self.problem(table, number, spec.SITE_CASE_NUMBER, _("Required: it links the case."))
        if site is not None and case_number:
            key = (site.pk, case_number)
            earlier = self.cases.get(key)
            if earlier is not None:
                self.problem(
                    table,
                    number,
                    spec.SITE_CASE_NUMBER,
                    (
                        _("Site case number “%(case_number)s” comes twice at %(code)s.")
                        % {"case_number": case_number, "code": site.code}
                    ),
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
                        (
                            _("Already registered as %(study_id)s: link its records by study_id.")
                            % {"study_id": first.study_id}
                        ),
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
            self.study_ids.append(patient.study_id)

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
                    self.problem(
                        table,
                        number,
                        spec.CYCLE_NUMBER,
                        (_("“%(raw)s” is not a number.") % {"raw": raw}),
                    )
                    bad.add(spec.CYCLE_NUMBER)
                elif linked:
                    cycle = self._cycle(patient, n)
                    if cycle is None:
                        if (patient.pk, n) not in self.failed_cycles:
                            self.problem(
                                table,
                                number,
                                spec.CYCLE_NUMBER,
                                (
                                    _(
                                        "%(patient)s has no cycle %(n)s, neither in cycles "
                                        "nor in the registry."
                                    )
                                    % {"patient": patient, "n": n}
                                ),
                            )
                        bad.add(spec.CYCLE_NUMBER)
            elif not cycle_field.null:
                self.problem(table, number, spec.CYCLE_NUMBER, _("Required."))
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
        if ok and model is Cycle:
            self.cycles[(patient.pk, instance.number)] = instance
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
