"""A user is shown only the actions they may take (registry.access.CaseRights): monitors read
cases, locked CRFs change for nobody. A refused action answers a styled page that says why."""

import re

import pytest
from django.urls import reverse

from monitoring import services
from registry.models import CrfStatus, Membership
from tests import factories as f
from tests.monitoring.conftest import full_case

pytestmark = pytest.mark.django_db

CHANGE_ACTIONS = ("Mark complete", "Add cycle", "Add assessment", "Add adverse event", ">Edit<")


@pytest.fixture
def investigator():
    return f.user("inv")


@pytest.fixture
def monitor():
    user = f.user("mon", role=Membership.MONITOR)
    user.is_staff = True
    user.save()
    return user


@pytest.fixture
def case():
    return full_case()


def url(name, *args):
    return reverse(f"registry:{name}", args=args)


def actions_on(html) -> dict:
    timeline = html.split('id="timeline"', 1)[1].split("</ol>", 1)[0]
    return {
        "change": sorted(a for a in CHANGE_ACTIONS if a in html),
        "remove": timeline.count(">Remove</a>"),
        "view": timeline.count(">View</a>"),
    }


def enabled_fields(html) -> list[str]:
    """Names of the form's fields a user could type into or post."""
    form = html.split('id="crf-form"', 1)[1].split("</form>", 1)[0]
    fields = re.findall(r"<(?:input|select|textarea)\b[^>]*>", form)
    return sorted(
        re.search(r'name="([^"]+)"', tag).group(1)
        for tag in fields
        if "disabled" not in tag and 'type="hidden"' not in tag
    )


def test_investigators_see_the_change_actions_and_monitors_none(
    client, case, investigator, monitor
):
    client.force_login(investigator)
    mine = actions_on(client.get(url("case", case.pk)).content.decode())
    assert mine["change"] == sorted(CHANGE_ACTIONS) and mine["remove"] == 3
    assert mine["view"] == 0
    client.force_login(monitor)
    theirs = actions_on(client.get(url("case", case.pk)).content.decode())
    assert theirs == {"change": [], "remove": 0, "view": 7}  # every timeline entry


def test_a_monitor_reads_a_crf_without_save_and_with_every_field_disabled(client, case, monitor):
    client.force_login(monitor)
    cycle = case.cycles.get()
    page = client.get(url("record_edit", case.pk, "cycles", cycle.pk)).content.decode()
    assert ">Save</button>" not in page
    assert enabled_fields(page) == []
    assert 'id="read-only"' in page and "Monitors read cases and raise queries" in page
    registration = client.get(url("single_record", case.pk, "registration")).content.decode()
    assert ">Save</button>" not in registration and enabled_fields(registration) == []


def test_an_investigators_crf_page_has_save_and_enabled_fields(client, case, investigator):
    client.force_login(investigator)
    cycle = case.cycles.get()
    page = client.get(url("record_edit", case.pk, "cycles", cycle.pk)).content.decode()
    assert ">Save</button>" in page and "number" in enabled_fields(page)
    assert 'id="read-only"' not in page


@pytest.mark.parametrize("debug", [True, False])
def test_a_monitors_change_is_refused_with_a_styled_page_that_says_why(
    client, case, monitor, settings, debug
):
    settings.DEBUG = debug
    client.force_login(monitor)
    response = client.post(url("crf_complete", case.pk, CrfStatus.CYCLES), HTTP_REFERER="/")
    assert response.status_code == 403
    page = response.content.decode()
    assert page.startswith("<!doctype html>")  # base.html, not Django's bare "403 Forbidden"
    assert 'id="main-nav"' in page
    reason = re.search(r'id="refused-reason">([^<]+)<', page).group(1)
    said = "Monitors read cases and raise queries; the site&#x27;s investigators change them."
    assert reason == said
    assert re.search(r'<a class="btn btn-outline-secondary" href="/">Back</a>', page)
    assert not CrfStatus.objects.filter(patient=case, crf=CrfStatus.CYCLES).exists()


@pytest.mark.parametrize("debug", [True, False])
def test_pages_only_for_changes_refuse_a_monitor_on_every_method(
    client, case, monitor, settings, debug
):
    settings.DEBUG = debug
    client.force_login(monitor)
    cycle = case.cycles.get()
    for path in (
        url("record_new", case.pk, "cycles"),
        url("record_remove", case.pk, "cycles", cycle.pk),
    ):
        for method in (client.get, client.post):
            response = method(path)
            assert response.status_code == 403, (path, method)
            assert b"Monitors read cases and raise queries" in response.content


def test_on_a_locked_case_investigators_see_no_change_actions(client, case, investigator, monitor):
    services.lock_case(case, monitor)
    client.force_login(investigator)
    actions = actions_on(client.get(url("case", case.pk)).content.decode())
    assert actions == {"change": [], "remove": 0, "view": 7}
    cycle = case.cycles.get()
    page = client.get(url("record_edit", case.pk, "cycles", cycle.pk)).content.decode()
    assert ">Save</button>" not in page and enabled_fields(page) == []
    assert "This CRF is locked" in page
    new = client.get(url("record_new", case.pk, "cycles"))
    assert new.status_code == 302
    assert "This CRF is locked" in client.get(new["Location"]).content.decode()


def test_a_403_page_says_why_whatever_refused(client, investigator, monitor, settings):
    """handler403 shows the PermissionDenied message of any view (here monitoring's)."""
    settings.DEBUG = False
    case = full_case()
    client.force_login(investigator)
    response = client.post(reverse("monitoring:case_lock", args=[case.pk]))
    assert response.status_code == 403
    reason = re.search(r'id="refused-reason">([^<]+)<', response.content.decode()).group(1)
    assert reason == "Only the monitors of KR01 do this."


def test_a_post_without_its_security_token_gets_the_styled_403_page(case, investigator):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(investigator)
    response = client.post(url("crf_complete", case.pk, CrfStatus.CYCLES))
    assert response.status_code == 403
    reason = re.search(r'id="refused-reason">([^<]+)<', response.content.decode()).group(1)
    assert reason.startswith("The form was sent without a valid security token")
    assert not CrfStatus.objects.filter(patient=case, crf=CrfStatus.CYCLES).exists()
