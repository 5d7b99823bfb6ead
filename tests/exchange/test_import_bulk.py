"""The import checks rows in memory and stores them in bulk (parts of CHUNK_ROWS rows, history
rows through simple_history's bulk helper, monitoring's receiver once per part); a directory
beyond IMPORT_MAX_ROWS is read from disk as it is imported, in one transaction. What that must not
change: the audit of every record, what monitoring does on a new record, all or nothing, the
messages, whichever part a row falls in and whichever way the files are read."""

import io
import re
from dataclasses import replace
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command

from exchange import importer
from monitoring import services
from monitoring.models import Signature
from registry.models import (
    AdverseEvent,
    Baseline,
    CrfStatus,
    Cycle,
    FollowUp,
    Patient,
    ResponseAssessment,
    SubsequentTherapy,
    Transplant,
)
from tests import factories as f

from . import legacy

pytestmark = pytest.mark.django_db

CASE_MODELS = [
    Patient,
    Baseline,
    Cycle,
    ResponseAssessment,
    AdverseEvent,
    Transplant,
    SubsequentTherapy,
    FollowUp,
]


@pytest.fixture
def kr01():
    return f.institution("KR01")


@pytest.fixture(params=["in memory", "streamed"])
def reading(request, settings, monkeypatch):
    """Run each test with the files held (an upload's size) and with the files read from disk
    as they are imported (a directory beyond IMPORT_MAX_ROWS), parts of two rows each."""
    monkeypatch.setattr(importer, "CHUNK_ROWS", 2)
    if request.param == "streamed":
        settings.IMPORT_MAX_ROWS = 3
        return ["--max-rows", "0"]
    return []


def run_command(path, *args) -> tuple[bool, list[str]]:
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


def nothing_saved() -> bool:
    return not any(m.objects.exists() or m.history.exists() for m in CASE_MODELS)


def test_a_directory_beyond_the_upload_limit_is_read_from_disk_not_held(tmp_path, kr01, settings):
    settings.IMPORT_MAX_ROWS = 3
    problems = []
    tables = importer.read_path(
        legacy.write_csv_dir(tmp_path / "legacy"),
        problems,
        importer.Budget(replace(importer.Limits.from_settings(), rows=10**9)),  # --max-rows 0
        stream=True,
    )
    assert problems == []
    assert {type(t.rows) for t in tables} == {importer.CsvRows}
    cycles = next(t for t in tables if t.record_type.name == "cycles")
    assert [n for n, _row in cycles.rows] == [2, 3, 4, 5]


def test_every_record_has_its_history_row_with_the_reason_and_the_user(tmp_path, kr01, reading):
    user = f.user("importer", sites=("KR01",))
    path = legacy.write_csv_dir(tmp_path / "legacy")
    ok, lines = run_command(path, "--user", "importer", *reading)
    assert ok, lines
    assert Patient.objects.count() == 3
    for model in CASE_MODELS:
        records = set(model.objects.values_list("pk", flat=True))
        history = model.history.values_list("id", "history_type", "history_user", "history_date")
        assert {pk for pk, *_ in history} == records and len(history) == len(records) > 0
        assert {(kind, who) for _pk, kind, who, _when in history} == {("+", user.pk)}
        file = "patients" if model in (Patient, Baseline) else None
        file = file or next(n for n, rt in legacy.FILES.items() if _model_of(n) is model)
        reasons = set(model.history.values_list("history_change_reason", flat=True))
        assert reasons == {f"import {file}.csv"}
    # The derived values save() gives are stored too.
    first = Patient.objects.get(site_case_number="H-0001")
    assert first.study_id == "KR01-001" and first.sequence == 1 and first.version == 1
    assert first.baseline.cyto_start_risk != ""
    assert all(a.response for a in ResponseAssessment.objects.all())


def _model_of(name):
    from exchange import spec

    return spec.BY_NAME[name].model


def test_study_ids_follow_the_sites_last_number_in_row_order(tmp_path, kr01, reading):
    f.patient(site=kr01)  # KR01-001
    path = legacy.write_csv_dir(tmp_path / "legacy")
    ok, lines = run_command(path, *reading)
    assert ok, lines
    numbers = dict(Patient.objects.values_list("site_case_number", "study_id"))
    assert numbers == {
        "": "KR01-001",
        "H-0001": "KR01-002",
        "H-0002": "KR01-003",
        "H-0003": "KR01-004",
    }


def test_a_failing_row_in_the_last_part_leaves_nothing_saved(tmp_path, kr01, reading):
    data = legacy.files()
    data["subsequent_therapies"][-1]["start_date"] = "2001-01-01"  # before blinatumomab start
    path = legacy.write_csv_dir(tmp_path / "bad", data)
    ok, lines = run_command(path, *reading)
    assert not ok and nothing_saved()
    [problem] = problems_of(lines)
    assert problem.startswith(
        f"subsequent_therapies.csv, row {len(data['subsequent_therapies']) + 1}, column "
        "start_date: Subsequent therapy (2001-01-01) is before blinatumomab start"
    )


def test_a_check_only_saves_nothing(tmp_path, kr01, reading):
    path = legacy.write_csv_dir(tmp_path / "legacy")
    ok, lines = run_command(path, "--check", *reading)
    assert ok, lines
    assert lines[-1] == f"Check passed: {legacy.row_count()} row(s), none saved."
    assert nothing_saved()


def test_duplicates_in_one_file_and_against_the_registry_give_the_same_messages(
    tmp_path, kr01, reading
):
    registered = f.patient(site=kr01, site_case_number="H-0002")
    data = legacy.files()
    data["patients"].append(dict(data["patients"][0]))  # H-0001 twice, in another part
    data["cycles"].append(dict(data["cycles"][0]))  # H-0001's cycle 2 twice
    data["follow_up"].append(dict(data["follow_up"][0]))  # a second follow-up of H-0001
    path = legacy.write_csv_dir(tmp_path / "dupes", data)
    ok, lines = run_command(path, *reading)
    assert not ok
    assert Patient.objects.get() == registered and not Cycle.objects.exists()
    assert problems_of(lines) == [
        "patients.csv, row 3, column site_case_number: Already registered as "
        f"{registered.study_id}: link its records by study_id.",
        "patients.csv, row 5, column site_case_number: Site case number “H-0001” comes twice "
        "at KR01.",
        "follow_up.csv, row 5, column study_id: Follow up with this Patient already exists.",
        "cycles.csv, row 6: Cycle with this Patient and Cycle number already exists.",
    ]


def _full_case(site, user):
    p = f.patient(site=site)
    f.baseline(p)
    c = f.cycle(p)
    f.assessment(p, c)
    f.followup(p)
    now = p.created_at
    for crf, _label in CrfStatus.CRF_CHOICES:
        status = CrfStatus(patient=p, crf=crf, marked_complete_at=now, first_completed_at=now)
        status.marked_complete_by = user
        status.refresh_status()
        status.save()
    return p


def _monitoring_trace(p):
    """What monitoring did on the case: each CRF's status and note, its signatures, and the
    reasons of its CRF status history (the minute of the note taken out)."""

    def plain(text):
        return re.sub(r" on \d{4}-\d\d-\d\d \d\d:\d\d\.", " on (when).", text or "")

    statuses = [
        (s.crf, s.status, s.verified_at is None, plain(s.verification_cleared_note))
        for s in p.crf_statuses.order_by("crf")
    ]
    signatures = [(s.voided_at is None, plain(s.void_reason)) for s in p.signatures.all()]
    reasons = sorted(
        plain(h.history_change_reason)
        for h in CrfStatus.history.filter(patient_id=p.pk)
        if h.history_change_reason
    )
    return statuses, signatures, reasons


def test_a_record_imported_into_a_verified_signed_case_clears_and_voids_as_a_form_save(
    tmp_path, kr01, reading
):
    user = f.user("importer", sites=("KR01",))
    monitor = f.user("mon", role="monitor", sites=("KR01",))
    imported, saved = _full_case(kr01, user), _full_case(kr01, user)
    for p in (imported, saved):
        services.verify(p, CrfStatus.TRANSPLANT, monitor)
        services.verify(p, CrfStatus.CYCLES, monitor)
        Signature.objects.create(patient=p, signed_by=user, meaning="I confirm.")
    day = imported.blinatumomab_start_date + timedelta(days=120)
    # Two therapies of one CRF: the first clears its verification and voids the signature.
    therapies = [("FLAG-Ida", day), ("Inotuzumab", day + timedelta(days=30))]
    rows = [
        {"study_id": imported.study_id, "category": "other", "regimen": r, "start_date": d}
        for r, d in therapies
    ]
    path = legacy.write_csv_dir(tmp_path / "late", {"subsequent_therapies": rows})
    ok, lines = run_command(path, "--user", "importer", *reading)
    assert ok, lines
    for regimen, start in therapies:  # the form path: save(), monitoring's post_save receiver
        record = SubsequentTherapy(patient=saved, category="other", regimen=regimen)
        record.start_date = start
        record._history_user = user
        record._change_reason = "import subsequent_therapies.csv"
        record.save()
    trace = _monitoring_trace(imported)
    assert trace == _monitoring_trace(saved)
    statuses, signatures, _reasons = trace
    transplant = next(s for s in statuses if s[0] == CrfStatus.TRANSPLANT)
    assert transplant[1:] == (
        CrfStatus.COMPLETE,
        True,
        f"Therapy FLAG-Ida ({day}) created by importer on (when).",
    )
    assert signatures == [(False, f"Therapy FLAG-Ida ({day}) created by importer on (when).")]
    assert next(s for s in statuses if s[0] == CrfStatus.CYCLES)[1] == CrfStatus.VERIFIED


def test_the_queries_of_an_import_do_not_grow_with_its_rows(
    tmp_path, kr01, settings, monkeypatch, reading
):
    """Queries per part of rows, not per row: ten times the cases, the same queries (the parts
    here hold whole files: CHUNK_ROWS is raised back above the files' sizes)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.IMPORT_CHECK_CHUNK_SECONDS = 3600  # the check's parts close on rows only
    monkeypatch.setattr(importer, "CHECK_GROUP_ROWS", 1000)
    monkeypatch.setattr(importer, "CHUNK_ROWS", 1000)

    def queries_for(copies, name):
        data = {file: [] for file in legacy.FILES}
        for copy in range(copies):
            for file, rows in legacy.files().items():
                for row in rows:
                    row["site_case_number"] = f"{name}{copy:02d}-{row['site_case_number']}"
                    data[file].append(row)
        path = legacy.write_csv_dir(tmp_path / f"{name}{copies}", data)
        with CaptureQueriesContext(connection) as queries:
            ok, lines = run_command(path, *reading)
        assert ok, lines
        return len(queries.captured_queries)

    few, many = queries_for(1, "A"), queries_for(10, "B")
    assert Patient.objects.count() == 33
    assert many <= few + 10, (few, many)
