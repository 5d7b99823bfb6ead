"""Every URL of the root URLconf, as every role, by GET and POST (and PATCH on the API's records):
each answers as url_rules.RULES says. Another site's case is a 404, a guessed ID is a 404, a
role without the right is a 403 or a log-in redirect, and nothing crashes. The monitor and admin
sessions are two-factor verified, as in production (REQUIRE_2FA on)."""

import re

import pytest
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.test import Client
from django.urls import reverse

from . import url_rules as rules
from .conftest import ROLE_NAMES, log_in

pytestmark = pytest.mark.django_db

SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>", re.S | re.I)
HANDLER = re.compile(r"<[a-z][^>]*?\s(on[a-z]+)\s*=", re.I)


@pytest.fixture(autouse=True)
def _production_like(settings):
    settings.REQUIRE_2FA = True


def inline_script_problems(html: str) -> list[str]:
    """Inline <script> code, on* handler attributes and javascript: URLs (the CSP refuses them)."""
    problems = []
    for attrs, body in SCRIPT.findall(html):
        if "src=" in attrs or "application/json" in attrs:
            continue
        if body.strip():
            problems.append(f"inline script: {body.strip()[:60]!r}")
    problems += [f"{name}= handler" for name in HANDLER.findall(html)]
    if re.search(r"""(href|src|action)\s*=\s*["']\s*javascript:""", html, re.I):
        problems.append("javascript: URL")
    return problems


def request(client, method, url):
    if method == "patch":
        return client.patch(url, data="{}", content_type="application/json")
    return getattr(client, method)(url)


def test_every_url_name_has_a_rule():
    missing = rules.unruled_routes()
    assert not missing, (
        "URLs without an access rule: add them to tests/security/url_rules.py RULES:\n"
        + "\n".join(missing)
    )


def test_every_rule_names_a_url():
    names = {r.name for r in rules.routes()}
    stale = sorted(set(rules.RULES) - names)
    assert not stale, f"rules for URLs that no longer exist: {stale}"


def test_the_walk_covers_the_whole_urlconf(world):
    walked = {(route.route, url) for route, _rule, url, _target in rules.walk(world)}
    routes = {route.route for route, *_ in rules.walk(world)}
    assert routes == {r.route for r in rules.routes()}
    assert len(walked) > 250
    # guessed IDs are part of the walk
    assert any(t.site == rules.MISSING for *_x, t in rules.walk(world))


def test_each_role_gets_exactly_what_the_table_says_on_every_url(world):
    clients = {
        name: log_in(Client(raise_request_exception=False), world, name) for name in ROLE_NAMES
    }
    foreign = world.foreign
    untouched = (foreign.version, foreign.cycles.get().version, foreign.crf_statuses.count())
    failures, scripts = [], set()
    for route, rule, url, target in rules.walk(world):
        for method in ("get", "post", "patch"):
            policy = getattr(rule, method)
            if policy is None:
                continue
            for name in ROLE_NAMES:
                role = world.roles[name]
                response = request(clients[name], method, url)
                got = rules.classify(response)
                expected = policy(role, target)
                if got not in expected:
                    failures.append(
                        f"{method.upper()} {url} as {name}: {got} ({response.status_code}), "
                        f"expected {'/'.join(sorted(expected))}"
                    )
                content_type = response.get("Content-Type", "")
                if got == rules.OK and content_type.startswith("text/html"):
                    for problem in inline_script_problems(response.content.decode()):
                        scripts.add(f"{url}: {problem}")
                if route.name in ("logout", "admin:logout") and not role.anonymous:
                    log_in(clients[name], world, name)  # the walk logged them out
    assert not failures, f"{len(failures)} unexpected answers:\n" + "\n".join(failures[:100])
    foreign.refresh_from_db()  # another site's case, reached by guessed record IDs only
    assert untouched == (
        foreign.version,
        foreign.cycles.get().version,
        foreign.crf_statuses.count(),
    )
    assert not scripts, "pages with inline script (the CSP blocks it):\n" + "\n".join(
        sorted(scripts)
    )


# --- The admin: staff only, and a monitor sees only their sites' objects ------------------------


def site_scoped_models():
    """Registered admin models with a path to a site: (model, lookup to the site's code)."""
    for model in admin.site._registry:
        path = rules._site_path(model)
        if path is not None:
            yield model, ("code" if path == "pk" else f"{path}__code")


def test_a_monitors_admin_shows_only_their_sites_objects(world):
    client = log_in(Client(raise_request_exception=False), world, "monitor")
    seen_changelists = 0
    for model, site_code in site_scoped_models():
        info = (model._meta.app_label, model._meta.model_name)
        foreign = list(model._default_manager.filter(**{site_code: "KR02"}))
        home = list(model._default_manager.filter(**{site_code: "KR01"}))
        changelist = client.get(reverse("admin:{}_{}_changelist".format(*info)))
        if changelist.status_code == 200:
            seen_changelists += 1
            page = changelist.content.decode()
            for obj in foreign:
                change = reverse("admin:{}_{}_change".format(*info), args=[quote(obj.pk)])
                assert change not in page, f"{model.__name__} of KR02 listed for a KR01 monitor"
            for obj in home[:1]:
                change = reverse("admin:{}_{}_change".format(*info), args=[quote(obj.pk)])
                assert change in page, f"{model.__name__} of KR01 not listed for its monitor"
        else:
            assert changelist.status_code == 403, (model, changelist.status_code)
        for obj in foreign:
            for view in ("change", "history", "delete"):
                url = reverse(f"admin:{info[0]}_{info[1]}_{view}", args=[quote(obj.pk)])
                response = client.get(url)
                assert response.status_code in (302, 403, 404), (url, response.status_code)
                if response.status_code == 302:  # "doesn't exist": back to the admin index
                    assert response["Location"] == reverse("admin:index"), url
            version = rules.latest_history(model, obj)
            if version is not None:  # one version of its history (django-simple-history)
                url = reverse(
                    f"admin:{info[0]}_{info[1]}_simple_history", args=[quote(obj.pk), version]
                )
                assert client.get(url).status_code in (302, 403, 404), url
    # the registry's case models are monitored in the admin: the check above is not vacuous
    assert seen_changelists >= 5


def test_a_monitor_cannot_open_accounts_tokens_or_two_factor_devices_in_the_admin(world):
    """Site-less admin models hold every user's credentials: superusers only."""
    client = log_in(Client(raise_request_exception=False), world, "monitor")
    for model in admin.site._registry:
        if rules._site_path(model) is not None:
            continue
        info = (model._meta.app_label, model._meta.model_name)
        response = client.get(reverse("admin:{}_{}_changelist".format(*info)))
        assert response.status_code == 403, (model.__name__, response.status_code)


def test_non_staff_users_are_sent_to_the_admin_login(world):
    for name in ("investigator", "statistician", "other_site_investigator", "anonymous"):
        client = log_in(Client(), world, name)
        for path in ("/admin/", "/admin/registry/patient/", f"/admin/auth/user/{1}/change/"):
            response = client.get(path)
            assert response.status_code == 302 and "/admin/login/" in response["Location"]
