"""A site's archive: one zip of its case books plus an index, built by a Celery task (run in the
test process here), with progress, and downloaded when ready; for the people who may open every
case of the site."""

import hashlib
import io
import zipfile
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from casebook import content
from casebook.archive import index_rows
from casebook.models import SiteArchive
from casebook.tasks import build_site_archive_task
from registry.models import Membership

from .conftest import full_case, pdf_pages, url

pytestmark = pytest.mark.django_db


@pytest.fixture
def cases(kr01, kr02):
    return [full_case(kr01) for _ in range(3)], full_case(kr02)


def test_the_archive_holds_every_case_book_of_the_site_and_an_index(client, cases, investigator):
    home, foreign = cases
    client.force_login(investigator)
    response = client.post(url("casebook:site_archives", "KR01"))
    assert response.status_code == 302
    archive = SiteArchive.objects.get()
    assert archive.status == SiteArchive.SUCCEEDED
    assert (archive.cases_done, archive.cases_total, archive.progress_pct) == (3, 3, 100)
    assert archive.requested_by == investigator

    status = client.get(url("casebook:archive_status", archive.pk)).json()
    assert status == {
        "status": "succeeded",
        "label": "Ready",
        "cases_done": 3,
        "cases_total": 3,
        "progress_pct": 100,
        "finished": True,
        "error": "",
    }
    page = client.get(url("casebook:site_archives", "KR01")).content.decode()
    assert url("casebook:archive_download", archive.pk) in page

    download = client.get(url("casebook:archive_download", archive.pk))
    assert download.status_code == 200
    body = b"".join(download.streaming_content)
    assert hashlib.sha256(body).hexdigest() == archive.sha256
    assert len(body) == archive.size_bytes
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        names = sorted(zf.namelist())
        assert names == sorted([f"{p.study_id}.pdf" for p in home] + ["index.csv", "README.txt"])
        assert foreign.study_id + ".pdf" not in names
        books = {p.study_id: zf.read(f"{p.study_id}.pdf") for p in home}
    rows = {r["study_id"]: r for r in index_rows(archive.path)}
    assert set(rows) == {p.study_id for p in home}
    for p in home:
        row, data = rows[p.study_id], books[p.study_id]
        book = content.build(p)
        assert row["content_sha256"] == book.sha256
        assert row["pdf_sha256"] == hashlib.sha256(data).hexdigest()
        assert int(row["audit_rows"]) == len(book.audit)
        assert f"Content SHA-256: {book.sha256}" in pdf_pages(data)[0]


def test_the_request_only_queues_the_build(client, cases, investigator):
    client.force_login(investigator)
    with mock.patch.object(build_site_archive_task, "delay") as delay:
        response = client.post(url("casebook:site_archives", "KR01"))
    assert response.status_code == 302
    archive = SiteArchive.objects.get()
    delay.assert_called_once_with(str(archive.pk))
    assert archive.status == SiteArchive.QUEUED and not archive.path.exists()
    # not ready: no download yet
    assert client.get(url("casebook:archive_download", archive.pk)).status_code == 404
    build_site_archive_task.apply(args=[str(archive.pk)])  # what the worker runs
    archive.refresh_from_db()
    assert archive.status == SiteArchive.SUCCEEDED and archive.path.is_file()


@pytest.mark.django_db(transaction=True)
def test_without_a_broker_the_archive_is_built_in_a_thread_not_in_the_request(
    client, cases, investigator, settings
):
    """The demo has no broker: the request returns once the build is handed to a thread of the
    web process (analysis.background), as analysis runs and background exports are."""
    from analysis import background

    settings.ANALYSIS_IN_THREAD = True
    client.force_login(investigator)
    threads = []
    real_start = background.start_task

    def start_task(task, job_id, name=None):
        threads.append(real_start(task, job_id, name))
        return threads[-1]

    with (
        mock.patch.object(background, "start_task", start_task),
        mock.patch.object(build_site_archive_task, "delay") as delay,
    ):
        response = client.post(url("casebook:site_archives", "KR01"))
    assert response.status_code == 302 and not delay.called
    assert [t.name for t in threads] == [f"archive-{SiteArchive.objects.get().pk}"]
    threads[0].join(timeout=300)
    archive = SiteArchive.objects.get()
    assert (archive.status, archive.cases_done) == (SiteArchive.SUCCEEDED, 3)


def test_the_job_service_down_fails_the_archive_with_a_message(client, cases, investigator):
    client.force_login(investigator)
    error = ConnectionError("redis down")
    with mock.patch.object(build_site_archive_task, "delay", side_effect=error):
        response = client.post(url("casebook:site_archives", "KR01"), follow=True)
    archive = SiteArchive.objects.get()
    assert archive.status == SiteArchive.FAILED
    assert "job service is unavailable" in archive.error
    assert "The job service is unavailable" in response.content.decode()


def test_a_failed_build_is_recorded_and_leaves_no_partial_zip(client, cases, investigator):
    client.force_login(investigator)
    with mock.patch("casebook.pdf.render", side_effect=RuntimeError("font exploded")):
        client.post(url("casebook:site_archives", "KR01"))
    archive = SiteArchive.objects.get()
    assert archive.status == SiteArchive.FAILED
    assert archive.error == "RuntimeError: font exploded"
    assert not archive.path.exists()
    assert not list(archive.path.parent.glob("*.part"))


def test_an_archive_whose_worker_went_silent_shows_as_failed(client, cases, investigator, kr01):
    old = timezone.now() - timedelta(hours=2)
    archive = SiteArchive.objects.create(
        institution=kr01, status=SiteArchive.RUNNING, heartbeat_at=old, created_at=old
    )
    client.force_login(investigator)
    status = client.get(url("casebook:archive_status", archive.pk)).json()
    assert status["status"] == "failed" and status["finished"] is True
    assert "stopped responding" in status["error"]


@pytest.mark.parametrize(
    "who, expected",
    [("investigator", 200), ("monitor", 200), ("monitor2", 404), ("statistician", 404)],
)
def test_archives_are_for_the_sites_readers(
    client, cases, investigator, monitor, monitor2, kr01, who, expected
):
    from tests import factories as f

    archive = SiteArchive.objects.create(institution=kr01)
    users = {"investigator": investigator, "monitor": monitor, "monitor2": monitor2}
    users["statistician"] = f.user("stat", role=Membership.STATISTICIAN)
    client.force_login(users[who])
    assert client.get(url("casebook:site_archives", "KR01")).status_code == expected
    assert client.get(url("casebook:archive_status", archive.pk)).status_code == expected
    if expected == 404:
        assert client.post(url("casebook:site_archives", "KR01")).status_code == 404
        assert SiteArchive.objects.count() == 1
