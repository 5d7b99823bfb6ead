"""One navigation per role, the same on every page (registry/context_processors.py), every link
answering for that role; and each role lands where its work is, after logging in too."""

import re

import pytest
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from registry.models import Membership
from tests import factories as f
from tests.monitoring.conftest import full_case

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-1"  # tests.factories.user

EXPECTED = {
    "investigator": ["cases", "register", "exchange"],
    "monitor": ["cases", "monitoring", "audit", "analyses", "exchange", "admin"],
    "statistician": ["analyses", "exchange"],
    "superuser": ["cases", "register", "monitoring", "audit", "analyses", "exchange", "admin"],
}
LANDING = {
    "investigator": "/",
    "monitor": "/",
    "statistician": "/analysis/",
    "superuser": "/",
}


@pytest.fixture
def people(settings):
    settings.REQUIRE_2FA = True  # as in production: monitors and staff enter a TOTP code
    site = f.institution("KR01")
    monitor = f.user("mon", role=Membership.MONITOR)
    monitor.is_staff = True
    monitor.save()
    superuser = f.user("root", sites=())
    superuser.is_superuser = superuser.is_staff = True
    superuser.save()
    users = {
        "investigator": f.user("inv"),
        "monitor": monitor,
        "statistician": f.user("stat", role=Membership.STATISTICIAN),
        "superuser": superuser,
    }
    for user in (monitor, superuser):
        TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    return site, users


def log_in(client, user):
    """Log in through the pages, as a person does; returns the URL they land on."""
    response = client.post(
        reverse("login"), {"username": user.username, "password": PASSWORD}, follow=True
    )
    device = TOTPDevice.objects.filter(user=user).first()
    if device is not None:  # the code page first
        assert response.redirect_chain[-1][0].startswith(reverse("security:two_factor_verify"))
        code = f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"
        verify = response.redirect_chain[-1][0]
        response = client.post(verify, {"token": code}, follow=True)
    assert response.status_code == 200
    return response.redirect_chain[-1][0] if response.redirect_chain else reverse("login")


def nav_of(html) -> list[tuple[str, str]]:
    bar = re.search(r'<div class="navbar-nav me-auto" id="main-nav">(.*?)</div>', html, re.S)
    return re.findall(r'data-nav="(\w+)" href="([^"]+)"', bar.group(1))


def pages_for(name, case, site) -> list[str]:
    """Six or more pages the role works on."""
    common = [reverse(f"exchange:{name}") for name in ("index", "codebook", "api_token")]
    case_pages = [
        reverse("registry:case_list"),
        reverse("registry:case", args=[case.pk]),
        reverse("registry:single_record", args=[case.pk, "baseline"]),
    ]
    return {
        "investigator": [*case_pages, reverse("registry:register"), *common],
        "monitor": [
            *case_pages,
            reverse("monitoring:progress"),
            reverse("monitoring:site", args=[site.code]),
            reverse("analysis:dashboard"),
            *common,
        ],
        "statistician": [reverse("analysis:dashboard"), *common, reverse("exchange:template")],
        "superuser": [
            *case_pages,
            reverse("registry:register"),
            reverse("monitoring:progress"),
            reverse("analysis:dashboard"),
            *common,
        ],
    }[name]


@pytest.mark.parametrize("name", EXPECTED)
def test_each_role_has_one_navigation_on_every_page_and_every_link_answers(client, people, name):
    site, users = people
    case = full_case(site)
    landed = log_in(client, users[name])
    assert landed == LANDING[name]
    seen = {}
    for path in pages_for(name, case, site):
        response = client.get(path)
        assert response.status_code == 200, path
        seen[path] = nav_of(response.content.decode())
    navigations = set(map(tuple, seen.values()))
    assert len(navigations) == 1, seen  # the same bar on every page
    links = dict(navigations.pop())
    assert list(links) == EXPECTED[name]
    for key, href in links.items():
        assert client.get(href).status_code == 200, (name, key, href)


def test_the_current_section_is_marked_active(client, people):
    _site, users = people
    client.force_login(users["investigator"])
    page = client.get(reverse("exchange:codebook")).content.decode()
    active = re.findall(r'class="nav-link active" data-nav="(\w+)"', page)
    assert active == ["exchange"]


def test_the_admin_header_carries_the_same_navigation(client, people):
    _site, users = people
    log_in(client, users["monitor"])
    page = client.get(reverse("admin:monitoring_auditentry_changelist")).content.decode()
    bar = re.search(r'<nav id="main-nav" aria-label="Registry">(.*?)</nav>', page, re.S)
    assert [k for k, _ in re.findall(r'data-nav="(\w+)" href="([^"]+)"', bar.group(1))] == (
        EXPECTED["monitor"]
    )


def test_an_unverified_monitor_sees_no_navigation_on_the_code_page(client, people):
    _site, users = people
    client.post(reverse("login"), {"username": "mon", "password": PASSWORD})
    page = client.get(reverse("security:two_factor_verify")).content.decode()
    assert nav_of(page) == []


def test_the_exchange_tabs_offer_import_to_investigators_only(client, people):
    _site, users = people
    for name, has_import in (("investigator", True), ("statistician", False)):
        client.force_login(users[name])
        page = client.get(reverse("exchange:index")).content.decode()
        assert (f'href="{reverse("exchange:import")}">Import</a>' in page) is has_import, name
