"""Why an analysis run or a case-book archive failed is stored in English (for the administrator
and the logs, whoever asked) and shown in the language of whoever reads it, the exception's
class and text kept as they are; English stays the default (as the background exports, in
test_exports_language.py)."""

import pytest
from django.urls import reverse
from django.utils import timezone, translation

from analysis.background import reason_in_language
from analysis.models import LOST, AnalysisRun
from analysis.outputs import default_parameters
from analysis.runs import failure_message
from casebook.models import LOST_ERROR, SiteArchive
from registry.models import Membership
from tests import factories as f

from .clients import KO, client_for

pytestmark = pytest.mark.django_db


def failed_run(error: str) -> AnalysisRun:
    return AnalysisRun.objects.create(
        parameters=default_parameters(),
        status=AnalysisRun.FAILED,
        finished_at=timezone.now(),
        error=error,
    )


def test_a_runs_failure_reads_in_korean_with_its_step_and_exception_kept():
    stopped = failure_message(
        "Computing tables and survival models", ValueError("Singular matrix (rank 2 of 3)")
    )
    memory = failure_message("Drawing the Kaplan-Meier figures", MemoryError())
    starting = failure_message("", OSError(28, "No space left on device"))
    runs = [failed_run(f"{m}\n\nTraceback ...") for m in (stopped, memory, starting)]
    with translation.override("ko"):
        shown = [run.error_summary for run in runs]
    assert shown == [
        "표와 생존 모형 계산 중 분석이 중단되었습니다: Singular matrix (rank 2 of 3) "
        "(ValueError). 레지스트리는 변경되지 않았습니다. 분석을 다시 시작하고, 같은 방식으로 "
        "다시 실패하면 이 메시지를 관리자에게 보내세요.",
        "Kaplan-Meier 그림 그리는 중 서버의 메모리가 부족했습니다. 진행 중인 분석이 적을 때 "
        "다시 시작하거나, 관리자에게 메모리 증설을 요청하세요.",
        "시작하는 중 분석 파일을 쓰지 못했습니다 (No space left on device). 관리자에게 미디어 "
        "폴더의 디스크 공간과 권한을 확인해 달라고 요청하세요.",
    ]
    with translation.override("en"):  # as stored
        assert [run.error_summary for run in runs] == [stopped, memory, starting]
    assert stopped == (
        "The run stopped while computing tables and survival models: Singular matrix "
        "(rank 2 of 3) (ValueError). Nothing in the registry was changed; start the run again, "
        "and if it fails the same way, send this message to the administrator."
    )


def test_a_stale_or_lost_run_reads_in_korean_on_its_page_and_status():
    statistician = f.user("stat", role=Membership.STATISTICIAN)
    silent = AnalysisRun.objects.create(
        parameters=default_parameters(),
        status=AnalysisRun.RUNNING,
        heartbeat_at=timezone.now() - timezone.timedelta(hours=1),
    )
    AnalysisRun.fail_stale_runs()
    silent.refresh_from_db()
    assert silent.error == (
        "The analysis worker stopped responding (worker lost); start the run again."
    )
    lost = failed_run(LOST % {"error": "WorkerLostError: Worker exited prematurely"})
    korean = client_for(statistician, **KO)
    status = korean.get(reverse("analysis:run_status", args=[silent.pk])).json()
    assert status["error"] == (
        "분석 작업 프로세스가 응답하지 않습니다 (작업 프로세스 중단). 분석을 다시 시작하세요."
    )
    page = korean.get(reverse("analysis:run_detail", args=[lost.pk])).content.decode()
    assert (
        "분석 작업 프로세스가 중단되었습니다 (WorkerLostError: Worker exited prematurely). "
        "분석을 다시 시작하세요." in page
    )
    english = client_for(statistician).get(reverse("analysis:run_detail", args=[lost.pk]))
    assert (
        "The analysis worker was lost (WorkerLostError: Worker exited prematurely); "
        "start the run again." in english.content.decode()
    )


def test_an_archives_failure_reads_in_korean_on_the_site_page_and_status():
    investigator = f.user("inv", sites=("KR01",))
    site = f.institution("KR01")
    old = timezone.now() - timezone.timedelta(hours=2)
    silent = SiteArchive.objects.create(
        institution=site, status=SiteArchive.RUNNING, heartbeat_at=old, created_at=old
    )
    lost = SiteArchive.objects.create(
        institution=site,
        status=SiteArchive.FAILED,
        error=LOST_ERROR % {"error": "WorkerLostError"},
    )
    korean = client_for(investigator, **KO)
    status = korean.get(reverse("casebook:archive_status", args=[silent.pk])).json()
    assert status["error"] == "작업 프로세스가 응답하지 않습니다. 보관 파일을 다시 만드세요."
    silent.refresh_from_db()
    assert silent.error == "The worker stopped responding; build the archive again."
    page = korean.get(reverse("casebook:site_archives", args=["KR01"])).content.decode()
    assert "작업 프로세스가 중단되었습니다 (WorkerLostError). 보관 파일을 다시 만드세요." in page
    english = client_for(investigator).get(reverse("casebook:archive_status", args=[lost.pk]))
    assert english.json()["error"] == (
        "The worker was lost (WorkerLostError); build the archive again."
    )


def test_a_reason_not_written_by_the_registry_is_shown_as_stored():
    reasons = ("The worker was lost (%(error)s); start again.",)
    with translation.override("ko"):
        assert reason_in_language("RuntimeError: font exploded", reasons) == (
            "RuntimeError: font exploded"
        )
        assert reason_in_language("The worker was lost; start again.", reasons) == (
            "The worker was lost; start again."
        )


def test_a_run_nobody_requested_in_person_names_where_it_was_started_in_the_pages_language():
    statistician = f.user("stat", role=Membership.STATISTICIAN)
    run = AnalysisRun.objects.create(parameters=default_parameters(), source="command line")
    url = reverse("analysis:run_detail", args=[run.pk])
    korean = client_for(statistician, **KO).get(url).content.decode()
    english = client_for(statistician).get(url).content.decode()
    when = timezone.localtime(run.created_at).strftime("%Y-%m-%d %H:%M:%S")
    assert f"{when}, 명령줄</dd>" in korean
    assert f"{when} by the command line</dd>" in english
    dashboard = client_for(statistician, **KO).get(reverse("analysis:dashboard")).content.decode()
    assert "<td>명령줄</td>" in dashboard


def test_an_exceptions_text_of_several_paragraphs_or_pages_stays_one_translated_reason():
    """The reason is the error's first paragraph: the exception's text in it is one line, at
    most 500 characters (the whole text stays with the technical details)."""
    paragraphs = failure_message("Writing the report", ValueError("first line\n\nsecond line"))
    long_text = failure_message("Writing the report", ValueError("x" * 10_000))
    runs = [failed_run(f"{m}\n\nValueError: ...") for m in (paragraphs, long_text)]
    with translation.override("ko"):
        shown = [run.error_summary for run in runs]
    assert shown[0].startswith(
        "보고서 쓰는 중 분석이 중단되었습니다: first line second line (ValueError). "
    )
    assert shown[1].startswith(f"보고서 쓰는 중 분석이 중단되었습니다: {'x' * 499}… (ValueError)")


def test_a_reason_without_placeholders_is_shown_as_written_percent_signs_and_all():
    reason = "The worker used 100% of its memory; start again."
    with translation.override("ko"):
        assert reason_in_language(reason, (reason,)) == reason
