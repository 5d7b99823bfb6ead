"""Bulk import of hostile or broken files: limits on size and rows, zip bombs and nested
archives refused before unpacking, reading that stops at a limit, CSV and Excel files that cannot
be read reliably (an unclosed quote, a duplicated column, a formula without a saved value),
invisible characters; each refused with its file, row and column, nothing saved."""

import io
import struct
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from openpyxl import load_workbook
from openpyxl.utils import get_column_letter

from exchange import importer
from registry.models import Patient, SubsequentTherapy
from tests import factories as f

from . import legacy

pytestmark = pytest.mark.django_db


@pytest.fixture
def kr01():
    return f.institution("KR01")


@pytest.fixture
def browser(client, kr01):
    client.force_login(f.user("inv", sites=("KR01",)))
    return client


def run_command(path, *args) -> tuple[bool, list[str]]:
    """(imported?, the lines the command wrote: each problem, then the verdict)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(
            "import_cases", str(path), "--institution", "KR01", *args, stdout=out, stderr=err
        )
    except CommandError as e:
        return False, err.getvalue().splitlines() + [str(e)]
    return True, out.getvalue().splitlines()


def problems_of(lines) -> list[str]:
    return [line for line in lines if not line.endswith("Fix them and run again.")]


def post(client, files, kr01, **data):
    return client.post(reverse("exchange:import"), {"files": files, "institution": kr01.pk, **data})


def csv_files(data=None):
    return [
        SimpleUploadedFile(f"{name}.csv", legacy.csv_bytes(name, rows), "text/csv")
        for name, rows in (data or legacy.FILES).items()
    ]


def zip_bytes(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return out.getvalue()


def legacy_zip(**extra) -> dict[str, bytes]:
    members = {f"{n}.csv": legacy.csv_bytes(n, rows) for n, rows in legacy.FILES.items()}
    return {**members, **extra}


def repeated_patients(size: int) -> bytes:
    """patients.csv of about `size` bytes: one row over and over (compresses ~1000 to 1)."""
    row = legacy.csv_bytes("patients", legacy.PATIENTS[:1]).split(b"\n", 1)
    return row[0] + b"\n" + row[1] * (size // len(row[1]))


@pytest.fixture
def no_unpacking(monkeypatch):
    """Fails the test if any archive member is opened for reading."""
    open_member = zipfile.ZipFile.open

    def refuse(self, name, mode="r", *args, **kwargs):
        if mode == "r":
            raise AssertionError("an archive member was unpacked")
        return open_member(self, name, mode, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", refuse)


def nothing_saved():
    return not Patient.objects.exists() and not Patient.history.exists()


# --- Limits ---------------------------------------------------------------------------------


def test_an_upload_over_the_size_limit_is_refused_before_it_is_read(
    browser, kr01, settings, monkeypatch
):
    settings.IMPORT_MAX_UPLOAD_BYTES = 1000

    def unread(*args, **kwargs):
        raise AssertionError("the upload was read")

    monkeypatch.setattr("exchange.views.read_upload", unread)
    response = post(browser, csv_files(), kr01)
    assert response.status_code == 413
    page = response.content.decode()
    assert "the limit is 1,000 bytes per upload. Split the files into several uploads" in page
    assert nothing_saved()


def test_a_zip_bomb_is_refused_from_its_declared_size_before_unpacking(
    tmp_path, kr01, settings, no_unpacking
):
    settings.IMPORT_MAX_UNZIPPED_BYTES = 100_000
    content = repeated_patients(300_000)
    path = tmp_path / "bomb.zip"
    path.write_bytes(zip_bytes({"patients.csv": content}))
    ok, lines = run_command(path)
    assert not ok and nothing_saved()
    assert problems_of(lines) == [
        f"bomb.zip: Unzipped, it would be {len(content):,} bytes; the limit is 100,000 bytes per "
        "upload. Nothing was unpacked."
    ]


def test_a_member_compressed_far_beyond_data_is_refused_as_a_zip_bomb(tmp_path, kr01, no_unpacking):
    path = tmp_path / "bomb.zip"
    path.write_bytes(zip_bytes({"patients.csv": repeated_patients(2_000_000)}))
    ok, lines = run_command(path)
    assert not ok and nothing_saved()
    [problem] = problems_of(lines)
    assert problem.startswith("bomb.zip: patients.csv is compressed ")
    assert problem.endswith(
        "to 1, far more than data compresses (the limit is 100 to 1): refused as a possible zip "
        "bomb. Nothing was unpacked."
    )


def with_declared_size(data: bytes, member: str, size: int) -> bytes:
    """The zip with `member`'s uncompressed size stated as `size` in both its headers."""
    data = bytearray(data)
    name = member.encode()
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = 0
        while (at := data.find(signature, at)) >= 0:
            name_at = at + (30 if signature == b"PK\x03\x04" else 46)
            if data[name_at : name_at + len(name)] == name:
                data[at + offset : at + offset + 4] = struct.pack("<I", size)
            at += 4
    return bytes(data)


def test_a_zip_whose_declared_sizes_lie_is_refused_without_reading_past_them(tmp_path, kr01):
    members = legacy_zip(**{"patients.csv": repeated_patients(5_000_000)})
    path = tmp_path / "lying.zip"
    path.write_bytes(with_declared_size(zip_bytes(members), "patients.csv", 2000))
    ok, lines = run_command(path)
    assert not ok and nothing_saved()
    assert problems_of(lines) == ["lying.zip/patients.csv: Not a readable zip file member."]


@pytest.mark.parametrize(
    "members, expected",
    [
        (
            {"more.zip": zip_bytes(legacy_zip())},
            "nested.zip/more.zip: An archive inside the zip: put the CSV files themselves in it.",
        ),
        (
            {"cycles.csv": zip_bytes(legacy_zip())},
            "nested.zip/cycles.csv: An archive, not a CSV file: unzip it.",
        ),
    ],
)
def test_an_archive_inside_the_zip_is_refused_not_opened(tmp_path, kr01, members, expected):
    path = tmp_path / "nested.zip"
    path.write_bytes(zip_bytes(legacy_zip(**members)))
    ok, lines = run_command(path)
    assert not ok and nothing_saved()
    assert problems_of(lines) == [expected]


def test_reading_stops_at_the_first_row_over_the_limit(tmp_path, kr01, settings):
    settings.IMPORT_MAX_ROWS = 5  # patients.csv has 3 rows, cycles.csv 4
    path = legacy.write_csv_dir(tmp_path / "legacy")
    ok, lines = run_command(path)
    assert not ok and nothing_saved()
    assert problems_of(lines) == [
        "cycles.csv, row 4: More than 5 data rows: the limit is 5 rows per upload. Split the "
        "import into several uploads (e.g. patients first, then the other files naming their "
        "cases by study_id)."
    ]


class CountingStream(io.BytesIO):
    """An upload that tallies how much of it was read."""

    consumed = 0

    def read(self, *args):
        data = super().read(*args)
        self.consumed += len(data)
        return data

    def read1(self, *args):
        data = super().read1(*args)
        self.consumed += len(data)
        return data

    def readinto(self, buffer):
        n = super().readinto(buffer)
        self.consumed += n
        return n

    readinto1 = readinto


def test_a_large_csv_is_read_row_by_row_and_only_up_to_the_row_limit(settings):
    settings.IMPORT_MAX_ROWS = 100
    data = repeated_patients(20_000_000)
    stream = CountingStream(data)
    source = importer.Source("patients.csv", lambda: stream)
    problems = []
    assert importer.read_upload(source, problems, importer.Budget()) == []
    assert [(p.source, p.row) for p in problems] == [("patients.csv", 102)]
    assert stream.consumed < 100_000  # of 20 MB


# --- Files that cannot be read reliably ---------------------------------------------------------


def test_an_unclosed_quote_is_one_csv_error_naming_the_row_where_it_opens(tmp_path, kr01):
    path = legacy.write_csv_dir(tmp_path / "legacy")
    patients = path / "patients.csv"
    patients.write_text(patients.read_text().replace("H-0002,", '"H-0002,'))
    ok, lines = run_command(path)
    assert not ok and nothing_saved()
    assert problems_of(lines) == [
        "patients.csv, row 3: Not valid CSV: a quoted cell that starts in this row is never "
        "closed. Nothing after it can be read reliably. A cell holding a quote, a comma or a "
        'line break is enclosed in quotes, and each quote inside it is doubled ("").'
    ]


def test_a_quote_closed_mid_cell_is_a_csv_error_naming_its_row(tmp_path, kr01):
    path = legacy.write_csv_dir(tmp_path / "legacy")
    therapies = path / "subsequent_therapies.csv"
    therapies.write_text(therapies.read_text().replace("FLAG-Ida", '"FLAG"-Ida'))
    ok, lines = run_command(path)
    assert not ok and nothing_saved()
    [problem] = problems_of(lines)
    assert problem.startswith(
        "subsequent_therapies.csv, row 2: Not valid CSV: a quoted cell in this row is closed "
        "and then continues."
    )


def test_a_value_past_the_last_column_is_refused_not_dropped(tmp_path, kr01):
    path = legacy.write_csv_dir(tmp_path / "legacy")
    therapies = path / "subsequent_therapies.csv"
    header, row = therapies.read_text().splitlines()
    therapies.write_text(f"{header}\n{row.replace('FLAG-Ida', 'FLAG, Ida')}\n")
    ok, lines = run_command(path)
    assert not ok and nothing_saved()
    column = get_column_letter(len(header.split(",")) + 1)
    assert problems_of(lines) == [
        f"subsequent_therapies.csv, row 2, column {column}: A value in a column without a "
        "header: is a comma inside an unquoted cell?"
    ]


def xlsx_path(tmp_path, change):
    book = load_workbook(io.BytesIO(legacy.xlsx_bytes()))
    change(book)
    path = tmp_path / "legacy.xlsx"
    book.save(path)
    return path


def cell(sheet, column, row):
    header = [c.value for c in sheet[1]]
    return sheet.cell(row=row, column=header.index(column) + 1)


def test_a_duplicated_column_is_refused_with_its_row_and_column(tmp_path, kr01):
    path = legacy.write_csv_dir(tmp_path / "legacy")
    patients = path / "patients.csv"
    header, *rows = patients.read_text().splitlines()
    patients.write_text("\n".join([header + ",sex", *[r + ",female" for r in rows]]) + "\n")
    ok, lines = run_command(path)
    assert not ok and nothing_saved()
    first = get_column_letter(header.split(",").index("sex") + 1)
    last = get_column_letter(len(header.split(",")) + 1)
    assert problems_of(lines) == [
        f"patients.csv, row 1, column sex: The column comes twice (columns {first} and {last}): "
        "keep one."
    ]


def test_a_duplicated_sheet_column_is_refused(tmp_path, kr01):
    def duplicate(book):
        sheet = book["cycles"]
        sheet.cell(row=1, column=sheet.max_column + 1, value="outcome")

    ok, lines = run_command(xlsx_path(tmp_path, duplicate))
    assert not ok and nothing_saved()
    [problem] = problems_of(lines)
    assert problem.startswith("legacy.xlsx sheet cycles, row 1, column outcome: The column comes")


def test_an_excel_formula_without_a_saved_value_is_refused_not_read_as_empty(tmp_path, kr01):
    def formula(book):
        cell(book["patients"], "pb_blasts_per_ul", 2).value = "=1200*2"

    ok, lines = run_command(xlsx_path(tmp_path, formula))
    assert not ok and nothing_saved()
    assert problems_of(lines) == [
        "legacy.xlsx sheet patients, row 2, column pb_blasts_per_ul: A formula without a saved "
        "value: open the workbook in Excel and save it, or paste the values instead of the "
        "formula."
    ]


def test_an_excel_error_value_is_refused_not_stored_as_text(tmp_path, kr01):
    def error(book):
        cell(book["subsequent_therapies"], "regimen", 2).value = "#N/A"

    ok, lines = run_command(xlsx_path(tmp_path, error))
    assert not ok and nothing_saved()
    assert problems_of(lines) == [
        "legacy.xlsx sheet subsequent_therapies, row 2, column regimen: An Excel error value "
        "(#N/A)."
    ]


@pytest.mark.parametrize(
    "character, message",
    [
        ("\x00", "Null characters are not allowed."),
        ("\u202e", "Remove the invisible character U+202E (right-to-left override)."),
        ("\u2067", "Remove the invisible character U+2067 (right-to-left isolate)."),
        ("\u200f", "Remove the invisible character U+200F (right-to-left mark)."),
        ("\x1b", "Remove the invisible character U+001B (control character)."),
    ],
)
def test_invisible_characters_are_refused_with_row_and_column(tmp_path, kr01, character, message):
    therapies = [{**legacy.THERAPIES[0], "regimen": f"FLAG{character}-Ida"}]
    path = legacy.write_csv_dir(tmp_path / "legacy", legacy.files(subsequent_therapies=therapies))
    ok, lines = run_command(path)
    assert not ok and nothing_saved() and not SubsequentTherapy.objects.exists()
    assert problems_of(lines) == [f"subsequent_therapies.csv, row 2, column regimen: {message}"]


# --- The check in parts --------------------------------------------------------------------


def test_the_check_runs_in_one_short_transaction_per_part_of_whole_cases(tmp_path, kr01, settings):
    """Three cases of 5-7 rows, parts of at least 5 rows: three transactions, each rolled back,
    none holding the write lock for the whole check; each case's rules still see its records."""
    settings.IMPORT_CHECK_CHUNK_ROWS = 5
    path = legacy.write_csv_dir(tmp_path / "legacy")
    with CaptureQueriesContext(connection) as queries:
        ok, lines = run_command(path, "--check")
    assert ok, lines
    rollbacks = [q for q in queries.captured_queries if q["sql"].startswith("ROLLBACK TO")]
    assert len(rollbacks) == 3
    assert f"Check passed: {legacy.row_count()} row(s), none saved." in lines[-1]
    assert nothing_saved()


def test_a_check_in_parts_finds_the_rules_that_span_a_case(tmp_path, kr01, settings):
    settings.IMPORT_CHECK_CHUNK_ROWS = 1
    data = legacy.files()
    data["follow_up"] = data["follow_up"][:2]  # H-0003's death not recorded: grade 5 refused
    data["cycles"][0]["start_date"] = "2017-04-01"  # H-0001 cycle 2 during cycle 1
    path = legacy.write_csv_dir(tmp_path / "bad", data)
    ok, lines = run_command(path)
    assert not ok and nothing_saved()
    assert problems_of(lines) == [
        "cycles.csv, row 2, column start_date: Cycle 2 must start after cycle 1 ended "
        "(2017-04-02).",
        "adverse_events.csv, row 4, column grade: Grade 5 means the patient died of this event: "
        "record the death in follow-up first.",
    ]


def test_records_named_by_study_id_are_checked_with_the_rows_naming_the_same_case(
    tmp_path, kr01, settings
):
    settings.IMPORT_CHECK_CHUNK_ROWS = 1
    p = f.patient(site=kr01, site_case_number="H-0009")
    f.baseline(p)
    cycles = [
        {
            "study_id": p.study_id,
            "cycle_number": "1",
            "start_date": p.blinatumomab_start_date,
            "end_date": "2017-04-02",
            "starting_dose_ug_per_day": "9",
            "step_up_day": "8",
            "step_up_dose_ug_per_day": "28",
            "outcome": "completed",
        },
    ]
    assessments = [
        {
            "site_case_number": "H-0009",
            "cycle_number": "1",
            "assessment_date": "2017-04-04",
            "marrow_blasts_pct": "2",
            "anc_10e9_per_l": "1.8",
            "platelets_10e9_per_l": "140",
        },
    ]
    data = {"cycles": cycles, "response_assessments": assessments}
    path = legacy.write_csv_dir(tmp_path / "records", data)
    ok, lines = run_command(path)
    assert ok, lines
    assert p.assessments.get().cycle.number == 1


def test_a_case_locked_while_the_import_runs_is_a_problem_not_a_crash(tmp_path, kr01, monkeypatch):
    from monitoring import services

    case = f.patient(site=kr01, site_case_number="H-0009")
    monitor = f.user("mon", role="monitor", sites=("KR01",))
    validate = importer._Pass._validate

    def validate_then_lock(self, *args, **kwargs):
        ok = validate(self, *args, **kwargs)
        if not services.case_is_locked(case):
            services.lock_case(case, monitor)  # between the row's check and its save
        return ok

    monkeypatch.setattr(importer._Pass, "_validate", validate_then_lock)
    rows = [{"study_id": case.study_id, "regimen": "FLAG-Ida", "category": "other"}]
    rows[0]["start_date"] = "2017-09-01"
    path = legacy.write_csv_dir(tmp_path / "late", {"subsequent_therapies": rows})
    ok, lines = run_command(path)
    assert not ok and not case.subsequent_therapies.exists()
    [problem] = problems_of(lines)
    assert problem.startswith(f"subsequent_therapies.csv, row 2: {case.study_id} is locked")


def test_an_archive_of_more_files_than_the_limit_is_refused_before_it_is_opened(
    tmp_path, kr01, settings, no_unpacking
):
    settings.IMPORT_MAX_ARCHIVE_MEMBERS = 3
    path = tmp_path / "many.zip"
    path.write_bytes(zip_bytes(legacy_zip()))
    ok, lines = run_command(path)
    assert not ok and nothing_saved()
    assert problems_of(lines) == ["many.zip: The archive holds 7 files; the limit is 3."]


def test_the_unzipped_limit_counts_every_archive_of_one_upload(browser, kr01, settings):
    content = zip_bytes(legacy_zip())
    unzipped = sum(len(v) for v in legacy_zip().values())
    settings.IMPORT_MAX_UNZIPPED_BYTES = unzipped + 100  # one copy fits, not two
    files = [SimpleUploadedFile(name, content) for name in ("a.zip", "b.zip")]
    response = post(browser, files, kr01)
    assert response.status_code == 400
    page = response.content.decode()
    assert (
        f"<td>b.zip</td><td></td><td></td><td>Unzipped, it would be {unzipped:,} bytes; the "
        f"limit is {unzipped + 100:,} bytes per upload. Nothing was unpacked.</td>"
    ) in page
    assert nothing_saved()


def test_a_registered_case_changed_after_the_check_is_checked_again_when_imported(
    tmp_path, kr01, monkeypatch
):
    from datetime import timedelta

    from registry.models import Cycle

    p = f.patient(site=kr01, site_case_number="H-0009")
    f.baseline(p)
    cycle = f.cycle(p)
    day = (cycle.end_date + timedelta(days=2)).isoformat()
    rows = [{"study_id": p.study_id, "cycle_number": "1", "assessment_date": day}]
    rows[0].update(marrow_blasts_pct="2", anc_10e9_per_l="1.8", platelets_10e9_per_l="140")
    path = legacy.write_csv_dir(tmp_path / "late", {"response_assessments": rows})
    sort_problems = importer.CaseImport._sort_problems

    def then_remove_the_cycle(self):  # runs between the check and the import
        sort_problems(self)
        if not self.result.problems:
            Cycle.objects.filter(pk=cycle.pk).delete()  # another user, meanwhile

    monkeypatch.setattr(importer.CaseImport, "_sort_problems", then_remove_the_cycle)
    ok, lines = run_command(path)
    assert not ok and not p.assessments.exists()
    assert problems_of(lines) == [
        f"response_assessments.csv, row 2, column cycle_number: {p.study_id} has no cycle 1, "
        "neither in cycles nor in the registry."
    ]
