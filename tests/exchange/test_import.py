"""Bulk import: every row or none, each problem with its file, row, column and message."""

import io
import zipfile

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from openpyxl import load_workbook

from exchange import spec, template
from exchange.importer import Problem
from registry import rules
from registry.models import (
    AdverseEvent,
    Baseline,
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


def counts():
    return {m.__name__: m.objects.count() for m in CASE_MODELS}


def nothing_saved():
    return all(n == 0 for n in counts().values())


def run_command(path, *args):
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("import_cases", str(path), *args, stdout=out, stderr=err)
    except CommandError as e:
        return False, out.getvalue(), err.getvalue() + str(e)
    return True, out.getvalue(), err.getvalue()


@pytest.fixture
def kr01():
    return f.institution("KR01")


def test_a_clean_directory_of_csv_files_imports_every_row(tmp_path, kr01):
    path = legacy.write_csv_dir(tmp_path / "legacy")
    ok, out, err = run_command(path, "--institution", "KR01")
    assert ok, err
    assert counts() == {
        "Patient": 3,
        "Baseline": 3,
        "Cycle": 4,
        "ResponseAssessment": 3,
        "AdverseEvent": 3,
        "Transplant": 1,
        "SubsequentTherapy": 1,
        "FollowUp": 3,
    }
    assert f"Imported {legacy.row_count()} row(s)" in out
    assert sorted(Patient.objects.values_list("study_id", flat=True)) == [
        "KR01-001",
        "KR01-002",
        "KR01-003",
    ]
    # The models derived what the site never types.
    p2 = Patient.objects.get(site_case_number="H-0002")
    assert p2.baseline.cyto_start_risk == rules.RISK_HIGH and p2.baseline.cyto_dx_risk == ""
    responses = dict(
        ResponseAssessment.objects.values_list("patient__site_case_number", "response")
    )
    assert responses == {"H-0001": rules.CR, "H-0002": rules.CRI, "H-0003": rules.PROGRESSIVE}


def test_imported_rows_are_audited_as_an_import_by_the_user(tmp_path, kr01):
    importer = f.user("importer", sites=("KR01",))
    path = legacy.write_csv_dir(tmp_path / "legacy")
    ok, _out, err = run_command(path, "--institution", "KR01", "--user", "importer")
    assert ok, err
    expected = {
        Patient: "import patients.csv",
        Baseline: "import patients.csv",
        Cycle: "import cycles.csv",
        ResponseAssessment: "import response_assessments.csv",
        AdverseEvent: "import adverse_events.csv",
        Transplant: "import transplants.csv",
        SubsequentTherapy: "import subsequent_therapies.csv",
        FollowUp: "import follow_up.csv",
    }
    for model, reason in expected.items():
        history = model.history.all()
        assert history.count() == model.objects.count() > 0
        assert set(history.values_list("history_type", flat=True)) == {"+"}
        assert set(history.values_list("history_change_reason", flat=True)) == {reason}
        assert set(history.values_list("history_user", flat=True)) == {importer.pk}


def test_a_bad_grade_in_row_3_of_adverse_events_saves_nothing_and_says_where(tmp_path, kr01):
    events = legacy.files()["adverse_events"]
    assert events[1]["ctcae_term"] == "Febrile neutropenia"
    events[1]["grade"] = "2"  # febrile neutropenia exists at grades 3-5 only
    path = legacy.write_csv_dir(tmp_path / "bad", legacy.files(adverse_events=events))
    ok, _out, err = run_command(path, "--institution", "KR01")
    assert not ok
    assert nothing_saved()
    assert (
        "adverse_events.csv, row 3, column grade: CTCAE v4.03 defines Febrile neutropenia only "
        "at grade(s) 3, 4, 5; grade 2 does not exist." in err
    )
    assert "1 problem(s): nothing was imported" in err


def test_every_problem_is_listed_not_only_the_first(tmp_path, kr01):
    data = legacy.files()
    data["patients"][0]["birth_year"] = "1998"  # 18 at start: not older than 18
    data["patients"][0]["birth_date"] = ""
    data["cycles"][2]["end_date"] = "29/05/2017"  # not ISO
    data["response_assessments"][0]["anc_10e9_per_l"] = "-1"
    data["follow_up"][1]["death_date"] = "2018-01-01"  # dead but vital status alive
    path = legacy.write_csv_dir(tmp_path / "bad", data)
    ok, _out, err = run_command(path, "--institution", "KR01")
    assert not ok and nothing_saved()
    assert (
        "patients.csv, row 2, column birth_year: Not eligible: Patients must be older than 18 at "
        "blinatumomab start; this patient was 18." in err
    )
    assert (
        "cycles.csv, row 4, column end_date: “29/05/2017” value has an invalid date format" in err
    )
    assert "response_assessments.csv, row 2, column anc_10e9_per_l: " in err
    assert "follow_up.csv, row 3, column vital_status: A date of death is given" in err
    assert "follow_up.csv, row 3, column last_contact_date: Last contact is after the date" in err
    assert "5 problem(s): nothing was imported" in err  # and no other


def test_cross_record_rules_see_the_records_imported_before(tmp_path, kr01):
    data = legacy.files()
    # Nothing after death: H-0003 died on 2017-09-20.
    data["subsequent_therapies"][0]["start_date"] = "2017-10-01"
    # Cycle order: cycle 2 without a cycle 1.
    data["cycles"] = [c for c in data["cycles"] if c["site_case_number"] != "H-0002"]
    data["cycles"].append(
        {
            "site_case_number": "H-0002",
            "cycle_number": "2",
            "start_date": "2017-06-20",
            "end_date": "2017-07-17",
            "starting_dose_ug_per_day": "28",
            "outcome": "completed",
        }
    )
    data["response_assessments"] = data["response_assessments"][:1]
    data["adverse_events"] = [data["adverse_events"][0], data["adverse_events"][2]]
    path = legacy.write_csv_dir(tmp_path / "bad", data)
    ok, _out, err = run_command(path, "--institution", "KR01")
    assert not ok and nothing_saved()
    assert (
        "subsequent_therapies.csv, row 2, column start_date: Subsequent therapy (2017-10-01) is "
        "after the patient's death (2017-09-20)." in err
    )
    assert "cycles.csv, row 5, column cycle_number: Enter cycle 1 first." in err


def test_grade_5_needs_the_death_in_follow_up(tmp_path, kr01):
    data = legacy.files()
    data["follow_up"] = data["follow_up"][:2]  # H-0003's death not recorded
    path = legacy.write_csv_dir(tmp_path / "bad", data)
    ok, _out, err = run_command(path, "--institution", "KR01")
    assert not ok and nothing_saved()
    assert "adverse_events.csv, row 4, column grade: Grade 5 means the patient died" in err


def test_a_workbook_with_excel_typed_cells_imports_every_row(tmp_path, kr01):
    path = tmp_path / "legacy.xlsx"
    path.write_bytes(legacy.xlsx_bytes())
    ok, out, err = run_command(path, "--institution", "KR01")
    assert ok, err
    assert Patient.objects.count() == 3 and Cycle.objects.count() == 4
    assert f"Imported {legacy.row_count()} row(s)" in out
    assert set(Cycle.history.values_list("history_change_reason", flat=True)) == {
        "import legacy.xlsx"
    }


def test_a_bad_workbook_row_names_the_sheet(tmp_path, kr01):
    events = legacy.files()["adverse_events"]
    events[1]["grade"] = "2"
    path = tmp_path / "legacy.xlsx"
    path.write_bytes(legacy.xlsx_bytes(legacy.files(adverse_events=events)))
    ok, _out, err = run_command(path, "--institution", "KR01")
    assert not ok and nothing_saved()
    assert "legacy.xlsx sheet adverse_events, row 3, column grade: CTCAE v4.03" in err


def test_without_a_site_every_row_needs_an_institution_column(tmp_path, kr01):
    f.institution("KR02", "Korea University Ansan Hospital")
    path = legacy.write_csv_dir(tmp_path / "nosite")
    ok, _out, err = run_command(path)
    assert not ok and nothing_saved()
    assert "patients.csv, row 2, column institution: Give the site code" in err

    data = legacy.files()
    for rows in data.values():
        for row in rows:
            row["institution"] = "KR02" if row["site_case_number"] == "H-0002" else "KR01"
    path = legacy.write_csv_dir(tmp_path / "allsites", data)
    ok, _out, err = run_command(path)
    assert ok, err
    assert sorted(Patient.objects.values_list("study_id", flat=True)) == [
        "KR01-001",
        "KR01-002",
        "KR02-001",
    ]


def test_a_row_of_another_site_than_the_import_is_refused(tmp_path, kr01):
    f.institution("KR02", "Korea University Ansan Hospital")
    data = legacy.files()
    data["patients"][1]["institution"] = "KR02"
    path = legacy.write_csv_dir(tmp_path / "mixed", data)
    ok, _out, err = run_command(path, "--institution", "KR01")
    assert not ok and nothing_saved()
    assert "patients.csv, row 3, column institution: This import is for KR01" in err


def test_records_link_to_registered_cases_by_study_id(tmp_path, kr01):
    p = f.patient(site=kr01)
    f.baseline(p)
    f.cycle(p)
    rows = [{"study_id": p.study_id, "last_contact_date": "2018-01-05", "vital_status": "alive"}]
    path = legacy.write_csv_dir(tmp_path / "fu", {"follow_up": rows})
    ok, out, err = run_command(path, "--institution", "KR01")
    assert ok, err
    assert FollowUp.objects.get().patient == p
    assert "follow_up.csv: 1 row(s)" in out


def test_a_case_registered_before_cannot_be_imported_twice(tmp_path, kr01):
    f.patient(site=kr01, site_case_number="H-0001")
    path = legacy.write_csv_dir(tmp_path / "again")
    ok, _out, err = run_command(path, "--institution", "KR01")
    assert not ok
    assert Patient.objects.count() == 1
    assert "patients.csv, row 2, column site_case_number: Already registered as KR01-001" in err


def test_unknown_and_missing_columns_are_reported_on_the_header_row(tmp_path, kr01):
    path = tmp_path / "cols"
    path.mkdir()
    (path / "follow_up.csv").write_text(
        "site_case_number,vital_status,favourite_colour\nH-0001,alive,blue\n"
    )
    ok, _out, err = run_command(path, "--institution", "KR01")
    assert not ok
    assert "follow_up.csv, row 1, column favourite_colour: Unknown column" in err
    assert "follow_up.csv, row 1, column last_contact_date: Required column is missing." in err


# --- The browser ----------------------------------------------------------------------------


def upload(client, files, **data):
    payload = {"files": files, **data}
    return client.post(reverse("exchange:import"), payload)


def csv_uploads(data=None):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return [
        SimpleUploadedFile(f"{name}.csv", legacy.csv_bytes(name, rows), "text/csv")
        for name, rows in (data or legacy.FILES).items()
    ]


def test_an_investigator_imports_into_their_own_site_in_the_browser(client, kr01):
    user = f.user("inv", sites=("KR01",))
    client.force_login(user)
    assert client.get(reverse("exchange:import")).status_code == 200
    response = upload(client, csv_uploads(), institution=kr01.pk)
    assert response.status_code == 200, response.content.decode()
    assert f"Imported {legacy.row_count()} rows" in response.content.decode()
    assert Patient.objects.count() == 3
    assert set(AdverseEvent.history.values_list("history_user", flat=True)) == {user.pk}


def test_check_only_saves_nothing(client, kr01):
    client.force_login(f.user("inv", sites=("KR01",)))
    response = upload(client, csv_uploads(), institution=kr01.pk, check_only="on")
    assert response.status_code == 200
    assert "Check passed" in response.content.decode()
    assert nothing_saved()


def test_the_browser_lists_every_problem_with_file_row_and_column(client, kr01):
    client.force_login(f.user("inv", sites=("KR01",)))
    events = legacy.files()["adverse_events"]
    events[1]["grade"] = "2"
    response = upload(client, csv_uploads(legacy.files(adverse_events=events)), institution=kr01.pk)
    assert response.status_code == 400
    page = response.content.decode()
    assert "nothing was imported" in page
    assert "<td>adverse_events.csv</td><td>3</td><td>grade</td>" in page
    assert nothing_saved()


def test_an_investigator_cannot_import_into_another_site(client, kr01):
    kr02 = f.institution("KR02", "Korea University Ansan Hospital")
    client.force_login(f.user("inv", sites=("KR01",)))
    # Through the institution column ...
    data = legacy.files()
    for rows in data.values():
        for row in rows:
            row["institution"] = "KR02"
    response = upload(client, csv_uploads(data))
    assert response.status_code == 400
    assert "You cannot import into site KR02." in response.content.decode()
    # ... or by choosing the site.
    response = upload(client, csv_uploads(), institution=kr02.pk)
    assert "Select a valid choice" in response.content.decode()
    assert nothing_saved()


def test_only_investigators_and_superusers_import(client, kr01):
    client.force_login(f.user("stat", role="statistician", sites=("KR01",)))
    assert client.get(reverse("exchange:import")).status_code == 403
    client.force_login(f.user("mon", role="monitor", sites=("KR01",)))
    assert client.get(reverse("exchange:import")).status_code == 403


def test_a_superuser_imports_for_all_sites_from_a_workbook(client, kr01):
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile

    f.institution("KR02", "Korea University Ansan Hospital")
    admin = get_user_model().objects.create_superuser("root", password="pw-for-tests-1")
    client.force_login(admin)
    data = legacy.files()
    for rows in data.values():
        for row in rows:
            row["institution"] = "KR02"
    book = SimpleUploadedFile("legacy.xlsx", legacy.xlsx_bytes(data))
    response = upload(client, [book])
    assert response.status_code == 200, response.content.decode()
    assert set(Patient.objects.values_list("institution__code", flat=True)) == {"KR02"}


# --- The template -------------------------------------------------------------------------


def test_the_template_downloads_hold_every_file_and_column(client, kr01):
    client.force_login(f.user("inv", sites=("KR01",)))
    archive = zipfile.ZipFile(io.BytesIO(client.get(reverse("exchange:template_zip")).content))
    for rt in spec.RECORD_TYPES:
        header = archive.read(rt.filename).decode().strip().split(",")
        assert header == rt.column_names
    assert "README.txt" in archive.namelist() and "codebook.csv" in archive.namelist()
    book = load_workbook(io.BytesIO(client.get(reverse("exchange:template_xlsx")).content))
    assert book.sheetnames == ["README"] + [rt.name for rt in spec.RECORD_TYPES]
    for rt in spec.RECORD_TYPES:
        assert [c.value for c in book[rt.name][1]] == rt.column_names
    page = client.get(reverse("exchange:template")).content.decode()
    assert "anc_10e9_per_l" in page and "×10^9/L" in page


def test_the_empty_template_is_refused_as_no_data_rows(client, kr01):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(f.user("inv", sites=("KR01",)))
    for name, content in [
        ("import_template.zip", template.template_zip()),
        ("import_template.xlsx", template.template_xlsx()),
    ]:
        response = upload(client, [SimpleUploadedFile(name, content)], institution=kr01.pk)
        assert response.status_code == 400, response.content.decode()
        page = response.content.decode()
        assert f"<td>{name}</td><td></td><td></td><td>No data rows: the files hold only" in page
        assert "Imported 0 rows" not in page
    assert nothing_saved()


def test_an_upload_without_a_file_is_a_field_error_not_an_empty_import(client, kr01):
    client.force_login(f.user("inv", sites=("KR01",)))
    response = client.post(reverse("exchange:import"), {"institution": kr01.pk})
    assert response.status_code in (200, 400)
    assert response.context["form"].errors["files"] == ["This field is required."]
    assert "Imported 0 rows" not in response.content.decode()
    assert nothing_saved()


def test_the_readme_documents_every_template_column():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Data exchange", 1)[1]
    for rt in spec.RECORD_TYPES:
        assert f"`{rt.filename}`" in section
        for column in rt.column_names:
            assert f"`{column}`" in section, (rt.filename, column)


def test_problem_text_names_file_row_and_column():
    assert str(Problem("a.csv", 3, "grade", "Bad.")) == "a.csv, row 3, column grade: Bad."


def test_the_command_lists_the_first_twenty_and_the_last_study_id_of_a_large_import(tmp_path, kr01):
    """A legacy registry registers thousands of cases: the summary names the first 20 and the
    last (in row order) and counts the rest, instead of one line of every study ID."""
    patients = []
    for n in range(1, 26):
        row = dict(legacy.PATIENTS[0])
        row["site_case_number"] = f"H-{n:04d}"
        patients.append(row)
    data = {"patients": patients}
    ok, out, err = run_command(
        legacy.write_csv_dir(tmp_path / "many", data), "--institution", "KR01"
    )
    assert ok, err
    first = ", ".join(f"KR01-{n:03d}" for n in range(1, 21))
    assert f"25 case(s) registered: {first}, ... (4 more), KR01-025\n" in out
    assert Patient.objects.count() == 25


def test_the_command_lists_every_study_id_of_a_small_import(tmp_path, kr01):
    ok, out, err = run_command(legacy.write_csv_dir(tmp_path / "legacy"), "--institution", "KR01")
    assert ok, err
    assert "3 case(s) registered: KR01-001, KR01-002, KR01-003\n" in out
