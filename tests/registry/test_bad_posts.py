"""A CRF or removal post whose `version` is missing or not a number is not a form of ours (or did
not arrive whole): a 400 page that says so and to reload, nothing saved, never a 500."""

import pytest
from django.urls import reverse

from registry.models import Cycle, ResponseAssessment
from tests import factories as f
from tests.registry.test_crf_forms import form_data, new_assessment

pytestmark = pytest.mark.django_db

BAD_VERSIONS = {"missing": None, "not a number": "abc", "a decimal": "1.5", "negative": "-1"}


@pytest.fixture
def investigator(client):
    user = f.user("inv")
    client.force_login(user)
    return user


@pytest.fixture
def case():
    p = f.patient()
    f.baseline(p)
    return p


def with_version(data, version):
    data = {k: v for k, v in data.items() if k != "version"}
    if version is not None:
        data["version"] = version
    return data


def assert_bad_request(response, back_to_case):
    assert response.status_code == 400
    page = response.content.decode()
    assert page.startswith("<!doctype html>")
    assert "incomplete or outdated" in page and "Reload the page" in page
    assert f'href="{reverse("registry:case", args=[back_to_case.pk])}"' in page


@pytest.mark.parametrize("version", BAD_VERSIONS.values(), ids=BAD_VERSIONS.keys())
def test_an_existing_record_posted_without_a_numeric_version_is_a_400(
    client, investigator, case, version
):
    cycle = f.cycle(case)
    path = reverse("registry:record_edit", args=[case.pk, "cycles", cycle.pk])
    data = with_version(form_data(cycle, interruption_days=3, interruption_reason="CRS"), version)
    assert_bad_request(client.post(path, data), case)
    cycle.refresh_from_db()
    assert (cycle.interruption_days, cycle.version) == (0, 1)
    # the same post with the version the form carried saves
    good = with_version(data, str(cycle.version))
    assert client.post(path, good).status_code == 302
    assert Cycle.objects.get(pk=cycle.pk).interruption_days == 3


@pytest.mark.parametrize("version", BAD_VERSIONS.values(), ids=BAD_VERSIONS.keys())
def test_a_new_record_posted_without_a_numeric_version_is_a_400(
    client, investigator, case, version
):
    cycle = f.cycle(case)
    path = reverse("registry:record_new", args=[case.pk, "assessments"])
    data = with_version(new_assessment(cycle), version)
    assert_bad_request(client.post(path, data), case)
    assert not ResponseAssessment.objects.exists()
    # a new record's form posts an empty version: saved
    assert client.post(path, with_version(data, "")).status_code == 302
    assert ResponseAssessment.objects.count() == 1


@pytest.mark.parametrize("version", BAD_VERSIONS.values(), ids=BAD_VERSIONS.keys())
def test_a_new_singleton_record_posted_without_a_numeric_version_is_a_400(
    client, investigator, version
):
    p = f.patient()
    path = reverse("registry:single_record", args=[p.pk, "baseline"])
    f.baseline(p)  # a valid baseline's values, then removed: the form is for a new record
    data = form_data(p.baseline, version=None)
    p.baseline.delete()
    assert_bad_request(client.post(path, with_version(data, version)), p)
    assert not hasattr(type(p).objects.get(pk=p.pk), "baseline")


@pytest.mark.parametrize("version", BAD_VERSIONS.values(), ids=BAD_VERSIONS.keys())
def test_a_removal_posted_without_a_numeric_version_is_a_400(client, investigator, case, version):
    cycle = f.cycle(case)
    path = reverse("registry:record_remove", args=[case.pk, "cycles", cycle.pk])
    assert_bad_request(client.post(path, with_version({"reason": "entered twice"}, version)), case)
    assert Cycle.objects.filter(pk=cycle.pk).exists()
    assert client.post(path, {"reason": "entered twice", "version": "1"}).status_code == 302
    assert not Cycle.objects.filter(pk=cycle.pk).exists()


def test_handler400_answers_a_styled_page_with_debug_off(client, settings):
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["testserver"]
    response = client.get("/", HTTP_HOST="attacker.example")  # DisallowedHost: a 400
    assert response.status_code == 400
    assert b"incomplete or outdated" in response.content
