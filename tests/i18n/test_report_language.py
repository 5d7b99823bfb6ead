"""An analysis run writes its report in the language of the page it was started from; its data
files are the same in every language."""

from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from analysis.models import AnalysisRun
from registry.models import Membership
from tests import factories as f

pytestmark = pytest.mark.django_db

SAME_IN_EVERY_LANGUAGE = ["analysis_dataset.csv", "table1.csv", "table2_subgroups.csv", "flow.csv"]


def run(out, language):
    call_command(
        "run_analysis", "--out", str(out), "--language", language, stdout=open("/dev/null", "w")
    )
    return AnalysisRun.objects.latest("created_at")


def test_the_report_is_in_the_runs_language_and_the_data_files_are_not(tmp_path, settings):
    settings.DEBUG = True  # seed_demo's guard
    call_command("seed_demo", stdout=open("/dev/null", "w"))
    settings.DEBUG = False
    korean, english = run(tmp_path / "ko", "ko"), run(tmp_path / "en", "en")
    assert (korean.language, english.language) == ("ko", "en")
    report_ko = (tmp_path / "ko" / "report.html").read_text()
    report_en = (tmp_path / "en" / "report.html").read_text()
    assert "표 1. 블리나투모맙 투여 시작 시점 전체 환자의 임상적 특성" in report_ko
    assert "Table 1. Clinical characteristics of all patients" in report_en
    assert "Table 1. Clinical" not in report_ko
    for name in SAME_IN_EVERY_LANGUAGE:
        assert (tmp_path / "ko" / name).read_bytes() == (tmp_path / "en" / name).read_bytes()


def test_a_run_started_from_a_korean_page_has_a_korean_report(monkeypatch):
    statistician = f.user("stat", role=Membership.STATISTICIAN)
    queued = []
    monkeypatch.setattr(
        "analysis.views.run_analysis_task.delay",
        lambda run_id: queued.append(run_id) or SimpleNamespace(id="task-1"),
    )
    client = Client(HTTP_ACCEPT_LANGUAGE="ko")
    client.force_login(statistician)
    form = {
        "test": "fisher",
        "age_years": "55",
        "months_from_diagnosis": "12",
        "marrow_blasts_pct": "50",
        "dexamethasone_mg": "80",
    }
    response = client.post(reverse("analysis:start_run"), form)
    assert response.status_code == 302, response.content.decode()[:500]
    assert AnalysisRun.objects.get(pk=queued[0]).language == "ko"
