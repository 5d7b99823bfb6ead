"""Who gets which analysis data (registry.access.analysis_patients_for, can_run_analyses):
statisticians, monitors of every site and superusers the whole registry; a monitor of some
sites the dataset of their sites and no run (a run covers every site); nobody else anything."""

import json
from io import StringIO

import pandas as pd
import pytest
from django.urls import reverse

from analysis.models import AnalysisRun
from analysis.views import DASHBOARD_TABLES
from registry.access import analysis_patients_for, can_run_analyses, readable_patients
from registry.models import Membership
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def registry():
    """One case at each of two sites."""
    kr01, kr02 = f.institution("KR01"), f.institution("KR02", "Korea University Ansan Hospital")
    return {site.code: f.patient(site=site).study_id for site in (kr01, kr02)}


@pytest.fixture
def run(registry, tmp_path):
    """A succeeded run whose dataset holds both sites' cases."""
    out = tmp_path / "run"
    out.mkdir()
    for name in DASHBOARD_TABLES:  # what the run page shows
        (out / name).write_text("a,b\n1,2\n")
    (out / "analysis_dataset.csv").write_text("study_id\n" + "\n".join(registry.values()) + "\n")
    files = ["analysis_dataset.csv", *DASHBOARD_TABLES]
    (out / "run.json").write_text(json.dumps({"files": files, "notes": {}}))
    return AnalysisRun.objects.create(
        status=AnalysisRun.SUCCEEDED, output_path=str(out), progress_pct=100
    )


def monitor_of(*codes, name="mon"):
    user = f.user(name, role=Membership.MONITOR, sites=codes)
    user.is_staff = True
    user.save()
    return user


def dataset_ids(client):
    response = client.get(reverse("analysis:dataset_csv"))
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    return sorted(pd.read_csv(StringIO(body))["study_id"])


def run_urls(run):
    return [
        reverse("analysis:run_detail", args=[run.pk]),
        reverse("analysis:run_status", args=[run.pk]),
        reverse("analysis:download", args=[run.pk, "analysis_dataset.csv"]),
    ]


def test_a_single_site_monitor_gets_their_sites_dataset_and_no_run(client, registry, run):
    client.force_login(monitor_of("KR01"))
    assert dataset_ids(client) == [registry["KR01"]]
    for url in run_urls(run):
        assert client.get(url).status_code == 403, url
    assert client.post(reverse("analysis:start_run"), {}).status_code == 403
    assert AnalysisRun.objects.count() == 1
    page = client.get(reverse("analysis:dashboard"))
    assert page.status_code == 200
    content = page.content.decode()
    assert 'id="sites-only"' in content and "You monitor KR01:" in content
    assert str(run.pk) not in content and 'id="runs"' not in content


@pytest.mark.parametrize("who", ["statistician", "monitor_of_every_site", "superuser"])
def test_whole_registry_readers_get_every_sites_data_and_the_runs(client, registry, run, who):
    if who == "statistician":
        user = f.user("stat", role=Membership.STATISTICIAN, sites=("KR01",))
    elif who == "monitor_of_every_site":
        user = monitor_of("KR01", "KR02")
    else:
        user = f.user("root", sites=())
        user.is_superuser = True
        user.save()
    client.force_login(user)
    assert dataset_ids(client) == sorted(registry.values())
    for url in run_urls(run):
        assert client.get(url).status_code == 200, url
    download = client.get(run_urls(run)[-1])
    body = b"".join(download.streaming_content).decode()
    assert sorted(body.split()[1:]) == sorted(registry.values())


def test_a_new_site_narrows_a_monitor_of_every_site_until_they_are_given_it(client, registry, run):
    user = monitor_of("KR01", "KR02")
    assert can_run_analyses(user)
    kr03 = f.institution("KR03", "A new site")
    new_case = f.patient(site=kr03).study_id
    client.force_login(user)
    assert not can_run_analyses(user)
    assert dataset_ids(client) == sorted(registry.values())  # KR01 and KR02, not KR03
    assert client.get(run_urls(run)[-1]).status_code == 403
    Membership.objects.create(user=user, institution=kr03, role=Membership.MONITOR)
    assert dataset_ids(client) == sorted([*registry.values(), new_case])


def test_investigators_get_no_analysis_data(client, registry, run):
    user = f.user("inv", sites=("KR01",))
    assert not analysis_patients_for(user).exists()
    client.force_login(user)
    assert client.get(reverse("analysis:dataset_csv")).status_code == 403
    assert client.get(reverse("analysis:dashboard")).status_code == 403
    for url in run_urls(run):
        assert client.get(url).status_code == 403, url


def test_the_api_and_the_analysis_dataset_read_the_same_cases_for_monitors(registry):
    single, every = monitor_of("KR01"), monitor_of("KR01", "KR02", name="mon-all")
    for user in (single, every):
        assert set(readable_patients(user)) == set(analysis_patients_for(user))
    assert [p.study_id for p in analysis_patients_for(single)] == [registry["KR01"]]
