"""Background exports (ExportJob) and the download of a site's cases in the template's format."""

import io
import zipfile
from datetime import UTC, datetime

import pytest
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from analysis import background
from analysis.dataset import VARIABLES, dataset_frame
from exchange import export, jobs, odm, spec
from exchange.models import ExportJob
from registry.models import Membership, Patient
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def registry():
    kr01, kr02 = f.institution("KR01"), f.institution("KR02", "Second site")
    home = f.patient(site=kr01, site_case_number="H-1")
    f.baseline(home)
    c = f.cycle(home)
    f.assessment(home, c)
    f.adverse_event(home, c)
    f.followup(home)
    away = f.patient(site=kr02, site_case_number="A-1")
    f.baseline(away)
    f.followup(away)
    return home, away


def start(client, kind):
    return client.post(reverse("exchange:exports"), {"kind": kind})


def only_job():
    return ExportJob.objects.get()


def zip_files(data: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {name: z.read(name).decode() for name in z.namelist()}


def body(response) -> bytes:
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def expected_zip(patients, full_sites=None) -> dict[str, str]:
    buffer = io.BytesIO()
    export.write_zip(buffer, patients, full_sites)
    return zip_files(buffer.getvalue())


def test_a_statistician_exports_the_whole_registry_de_identified_in_the_background(
    client, registry
):
    home, away = registry
    stat = f.user("stat", role=Membership.STATISTICIAN, sites=("KR01",))
    client.force_login(stat)
    response = start(client, ExportJob.TEMPLATE)
    assert response.status_code == 302 and response["Location"] == reverse("exchange:exports")
    job = only_job()
    assert (job.status, job.scope, job.requested_by) == (ExportJob.SUCCEEDED, "registry", stat)
    # rows: 2 cases, a cycle, an assessment, an event, 2 follow-ups
    assert (job.done, job.total) == (7, 7)
    files = zip_files(body(client.get(reverse("exchange:export_download", args=[job.pk]))))
    # A statistician reads every site de-identified (exchange.spec.IDENTIFYING_FIELDS): cases
    # are named by study ID, without birth dates, as in the API and the ODM.
    assert files == expected_zip(Patient.objects.all(), full_sites=set())
    assert "H-1" not in files["patients.csv"] and home.study_id in files["patients.csv"]
    assert "1972-04-15" not in files["patients.csv"]


def test_the_job_counts_rows_as_it_writes_them(registry):
    user = f.user("root")
    user.is_superuser = True
    user.save()
    job = ExportJob.objects.create(kind=ExportJob.TEMPLATE, requested_by=user, scope="registry")
    counts = export.row_counts(Patient.objects.all())
    assert counts == {
        "patients": 2,
        "cycles": 1,
        "response_assessments": 1,
        "adverse_events": 1,
        "transplants": 0,
        "subsequent_therapies": 0,
        "follow_up": 2,
    }
    job = jobs.build(job)
    assert (job.status, job.total, job.done, job.progress_pct) == ("succeeded", 7, 7, 100)
    assert zip_files(job.path.read_bytes()) == expected_zip(Patient.objects.all())


def test_an_investigators_export_holds_their_sites_cases_only_in_full(client, registry):
    home, _away = registry
    client.force_login(f.user("inv", sites=("KR01",)))
    start(client, ExportJob.TEMPLATE)
    job = only_job()
    assert (job.status, job.scope, job.scope_label) == ("succeeded", "KR01", "KR01")
    files = zip_files(job.path.read_bytes())
    assert files == expected_zip(Patient.objects.filter(pk=home.pk))
    assert "H-1" in files["patients.csv"] and "A-1" not in files["patients.csv"]


def test_the_odm_job_writes_the_document_the_download_streams(client, registry, monkeypatch):
    monkeypatch.setattr(odm.timezone, "now", lambda: datetime(2026, 11, 26, 1, 2, 3, tzinfo=UTC))
    client.force_login(f.user("inv", sites=("KR01",)))
    start(client, ExportJob.ODM)
    job = only_job()
    assert (job.status, job.done, job.total) == ("succeeded", 1, 1)
    download = client.get(reverse("exchange:export_download", args=[job.pk]))
    assert body(download) == body(client.get(reverse("exchange:odm")))
    assert download["Content-Disposition"].startswith(
        'attachment; filename="blinatumomab_registry_odm-'
    )


def test_the_dataset_workbook_holds_the_dataset_the_csv_holds(client, registry):
    client.force_login(f.user("stat", role=Membership.STATISTICIAN, sites=("KR01",)))
    start(client, ExportJob.DATASET_XLSX)
    job = only_job()
    assert (job.status, job.done, job.total) == ("succeeded", 2, 2)
    sheet = load_workbook(job.path, read_only=True)["analysis_dataset"]
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert rows[0] == list(VARIABLES)
    frame = dataset_frame(Patient.objects.all())
    assert [r[0] for r in rows[1:]] == list(frame["study_id"])
    assert [r[list(VARIABLES).index("age_years")] for r in rows[1:]] == list(frame["age_years"])


def test_an_investigator_may_not_start_the_dataset_export(client, registry):
    client.force_login(f.user("inv", sites=("KR01",)))
    assert start(client, ExportJob.DATASET_XLSX).status_code == 403
    assert start(client, "everything").status_code == 403
    assert not ExportJob.objects.exists()
    page = client.get(reverse("exchange:exports")).content.decode()
    assert 'name="kind" value="template"' in page and 'value="dataset_xlsx"' not in page


def test_only_the_requester_sees_a_job_and_downloads_its_file(client, registry):
    owner = f.user("inv", sites=("KR01",))
    client.force_login(owner)
    start(client, ExportJob.TEMPLATE)
    job = only_job()
    status = client.get(reverse("exchange:export_status", args=[job.pk])).json()
    assert (status["status"], status["progress_pct"], status["finished"]) == (
        "succeeded",
        100,
        True,
    )
    client.force_login(f.user("colleague", sites=("KR01",)))  # same site, not the requester
    assert client.get(reverse("exchange:export_download", args=[job.pk])).status_code == 404
    assert client.get(reverse("exchange:export_status", args=[job.pk])).status_code == 404
    assert str(job.pk) not in client.get(reverse("exchange:exports")).content.decode()


def test_a_requester_who_lost_the_scope_no_longer_downloads_the_file(client, registry):
    owner = f.user("inv", sites=("KR01",))
    client.force_login(owner)
    start(client, ExportJob.TEMPLATE)
    job = only_job()
    # A site more keeps the download; the site of the export gone refuses it.
    Membership.objects.create(user=owner, institution=f.institution("KR02"), role="investigator")
    assert client.get(reverse("exchange:export_download", args=[job.pk])).status_code == 200
    Membership.objects.filter(user=owner, institution__code="KR01").delete()
    assert client.get(reverse("exchange:export_download", args=[job.pk])).status_code == 403


def test_a_failed_export_says_why_and_leaves_no_file(client, registry, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setitem(jobs.WRITERS, ExportJob.TEMPLATE, broken)
    client.force_login(f.user("inv", sites=("KR01",)))
    start(client, ExportJob.TEMPLATE)
    job = only_job()
    assert (job.status, job.error) == ("failed", "OSError: No space left on device")
    assert not job.path.exists() and not job.path.with_name(job.path.name + ".part").exists()
    assert client.get(reverse("exchange:export_download", args=[job.pk])).status_code == 404
    assert "No space left on device" in client.get(reverse("exchange:exports")).content.decode()


def test_the_page_polls_the_exports_still_running(client, registry):
    owner = f.user("inv", sites=("KR01",))
    running = ExportJob.objects.create(
        kind=ExportJob.TEMPLATE,
        requested_by=owner,
        scope="KR01",
        status=ExportJob.RUNNING,
        heartbeat_at=timezone.now(),
        total=40,
        done=10,
    )
    client.force_login(owner)
    page = client.get(reverse("exchange:exports")).content.decode()
    status_url = reverse("exchange:export_status", args=[running.pk])
    assert f'data-status-url="{status_url}" data-finished="0"' in page
    assert "js/export_jobs.js" in page and '<span class="job-pct">25</span>%' in page
    assert client.get(status_url).json()["progress_pct"] == 25


def test_a_job_whose_worker_went_silent_is_shown_as_failed(client, settings, registry):
    owner = f.user("inv", sites=("KR01",))
    job = ExportJob.objects.create(
        kind=ExportJob.ODM,
        requested_by=owner,
        scope="KR01",
        status=ExportJob.RUNNING,
        heartbeat_at=timezone.now() - timezone.timedelta(seconds=901),
    )
    client.force_login(owner)
    status = client.get(reverse("exchange:export_status", args=[job.pk])).json()
    assert (status["status"], status["error"]) == (
        "failed",
        "The worker stopped responding; start the export again.",
    )


def test_with_the_job_service_down_the_export_is_failed_and_said_so(client, registry, monkeypatch):
    from exchange import tasks

    def down(*args, **kwargs):
        raise ConnectionError("redis")

    monkeypatch.setattr(tasks.run_export_task, "delay", down)
    client.force_login(f.user("inv", sites=("KR01",)))
    response = start(client, ExportJob.TEMPLATE)
    assert response.status_code == 302
    job = only_job()
    assert job.status == "failed" and job.error.startswith("The job service is unavailable")


@pytest.mark.django_db(transaction=True)
def test_without_a_broker_the_job_runs_in_a_thread_of_the_web_process(client, settings):
    f.followup(f.patient())
    settings.ANALYSIS_IN_THREAD = True
    client.force_login(f.user("inv", sites=("KR01",)))
    start(client, ExportJob.TEMPLATE)
    job = only_job()
    thread = background.THREADS.get(str(job.pk))
    if thread is not None:
        thread.join(timeout=120)
    job.refresh_from_db()
    assert (job.status, job.done) == ("succeeded", 2)


# --- The synchronous downloads -------------------------------------------------------------------


def test_a_sites_investigators_download_its_cases_in_the_template_format(client, registry):
    home, _away = registry
    client.force_login(f.user("inv", sites=("KR01",)))
    response = client.get(reverse("exchange:cases_zip"))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="registry_cases.zip"'
    files = zip_files(body(response))
    assert files == expected_zip(Patient.objects.filter(pk=home.pk))
    assert set(files) == {"README.txt", *(rt.filename for rt in spec.RECORD_TYPES)}
    index = client.get(reverse("exchange:index")).content.decode()
    assert reverse("exchange:cases_zip") in index and "Cases of KR01" in index


def test_a_statistician_has_no_site_download_but_the_background_export(client, registry):
    client.force_login(f.user("stat", role=Membership.STATISTICIAN, sites=("KR01",)))
    assert client.get(reverse("exchange:cases_zip")).status_code == 403
    index = client.get(reverse("exchange:index")).content.decode()
    assert reverse("exchange:cases_zip") not in index and reverse("exchange:exports") in index


def test_more_cases_than_a_request_takes_are_sent_to_the_background_export(
    client, settings, registry
):
    settings.EXPORT_SYNC_MAX_CASES = 1
    root = f.user("root", sites=())
    root.is_superuser = True
    root.save()
    client.force_login(root)
    for url in (reverse("exchange:odm"), reverse("exchange:cases_zip")):
        response = client.get(url)
        assert (response.status_code, response["Location"]) == (302, reverse("exchange:exports"))
    page = client.get(reverse("exchange:exports")).content.decode()
    assert "2 cases are more than a download can take" in page
    assert client.get(reverse("exchange:odm"), {"data": "0"}).status_code == 200  # no cases
    settings.EXPORT_SYNC_MAX_CASES = 2
    assert client.get(reverse("exchange:odm")).status_code == 200
