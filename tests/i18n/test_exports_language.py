"""The background exports and the export in the import template's format speak the page's
language: their pages, choices, messages and the reasons a job failed (stored in English, shown
in the language of whoever reads them); English stays the default."""

import pytest
from django.urls import reverse
from django.utils import timezone, translation

from exchange.models import LOST_ERROR, UNAVAILABLE_ERROR, ExportJob
from tests import factories as f

from .clients import KO, client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner():
    return f.user("inv", sites=("KR01",))


@pytest.fixture
def jobs(owner):
    ready = ExportJob.objects.create(
        kind=ExportJob.TEMPLATE,
        requested_by=owner,
        scope=ExportJob.REGISTRY,
        status=ExportJob.SUCCEEDED,
        total=3,
        done=3,
        size_bytes=2048,
    )
    silent = ExportJob.objects.create(  # failed as stale when the page is read
        kind=ExportJob.ODM,
        requested_by=owner,
        scope="KR01",
        status=ExportJob.RUNNING,
        heartbeat_at=timezone.now() - timezone.timedelta(seconds=901),
    )
    return ready, silent


def test_the_exports_page_is_in_korean_for_a_korean_browser(owner, jobs):
    page = client_for(owner, **KO).get(reverse("exchange:exports")).content.decode()
    assert "<title>백그라운드 내보내기" in page
    assert '<h1 class="h3">백그라운드 내보내기</h1>' in page
    assert "<th>범위</th><th>상태</th><th>진행률</th>" in page
    assert "<td>가져오기 양식과 같은 형식의 증례 (CSV 파일의 zip)</td>" in page
    assert "<td>전체 레지스트리</td>" in page
    assert '<span class="job-state">준비됨</span>' in page
    assert '<span class="job-state">실패</span>' in page
    assert "작업 프로세스가 응답하지 않습니다. 내보내기를 다시 시작하세요." in page
    assert ">내려받기</a>" in page
    # the buttons that start one: the kind and the scope
    assert "임상 자료를 포함한 CDISC ODM 1.3.2 (XML) (KR01)</button>" in page


def test_the_exports_page_stays_english_by_default(owner, jobs):
    page = client_for(owner).get(reverse("exchange:exports")).content.decode()
    assert '<h1 class="h3">Background exports</h1>' in page
    assert "<td>Whole registry</td>" in page
    assert "The worker stopped responding; start the export again." in page


def test_a_jobs_status_answers_in_the_pages_language(owner, jobs):
    _ready, silent = jobs
    url = reverse("exchange:export_status", args=[silent.pk])
    status = client_for(owner, **KO).get(url).json()
    assert (status["label"], status["error"]) == (
        "실패",
        "작업 프로세스가 응답하지 않습니다. 내보내기를 다시 시작하세요.",
    )
    silent.refresh_from_db()  # stored in English, whoever read it
    assert silent.error == "The worker stopped responding; start the export again."


def test_why_a_job_failed_is_translated_with_the_exceptions_name_kept():
    lost = ExportJob(error=LOST_ERROR % {"error": "WorkerLostError"})
    down = ExportJob(error=UNAVAILABLE_ERROR % {"error": "ConnectionError"})
    written = ExportJob(error="OSError: No space left on device")  # a writer's, technical
    with translation.override("ko"):
        shown = [job.error_text for job in (lost, down, written)]
    assert shown == [
        "작업 프로세스가 중단되었습니다 (WorkerLostError). 내보내기를 다시 시작하세요.",
        "작업 서비스를 사용할 수 없습니다 (ConnectionError).",
        "OSError: No space left on device",
    ]
    with translation.override("en"):
        assert lost.error_text == "The worker was lost (WorkerLostError); start the export again."


def test_the_exchange_page_offers_the_exports_in_korean(owner):
    page = client_for(owner, **KO).get(reverse("exchange:index")).content.decode()
    assert '<h2 class="h5">가져오기 양식과 같은 형식의 증례</h2>' in page
    zip_url = reverse("exchange:cases_zip")
    assert f'<a href="{zip_url}">KR01 증례</a> (CSV 파일의 zip)' in page
    exports_url = reverse("exchange:exports")
    assert f'<a href="{exports_url}">백그라운드 내보내기</a>: 전체 레지스트리' in page
    assert f'href="{exports_url}">백그라운드 내보내기</a>' in page  # the tab


def test_a_download_too_large_says_so_in_korean(owner, settings):
    settings.EXPORT_SYNC_MAX_CASES = 1
    f.patient(site_case_number="H-1")
    f.patient(site_case_number="H-2")
    client = client_for(owner, **KO)
    page = client.get(reverse("exchange:cases_zip"), follow=True).content.decode()
    assert (
        "증례 2건은 한 번에 내려받을 수 있는 양(EXPORT_SYNC_MAX_CASES = 1)을 넘습니다. 아래에서 "
        "“가져오기 양식과 같은 형식의 증례 (CSV 파일의 zip)”을(를) 시작하세요." in page
    )


def test_starting_an_export_says_so_in_korean(owner, monkeypatch):
    from exchange import tasks

    monkeypatch.setattr(tasks, "start", lambda job: None)
    client = client_for(owner, **KO)
    page = client.post(
        reverse("exchange:exports"), {"kind": ExportJob.TEMPLATE}, follow=True
    ).content.decode()
    assert "가져오기 양식과 같은 형식의 증례 (CSV 파일의 zip): 백그라운드에서 시작했습니다." in page
