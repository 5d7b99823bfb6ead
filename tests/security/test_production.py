"""Production settings (DJANGO_DEBUG=0): `check --deploy` is clean, HTTPS-only cookies, HSTS,
a Content-Security-Policy without inline scripts, and no debug pages."""

import os
import re
import secrets
import string
import subprocess
import sys
from pathlib import Path

import pytest
from django.http import HttpResponse
from django.test import Client
from django.urls import path

ROOT = Path(__file__).resolve().parents[2]


def production_env(**extra):
    alphabet = string.ascii_letters + string.digits + "!@#%^&*(-_=+)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="".join(secrets.choice(alphabet) for _ in range(64)),
        DJANGO_ALLOWED_HOSTS="registry.example.org",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    env.update(extra)
    return env


def run(args, **env):
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=production_env(**env),
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_check_deploy_is_clean_with_the_production_settings():
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues (0 silenced)." in output, output
    assert "WARNING" not in output.upper().replace("WARNINGS: 0", "")


def test_production_settings_values():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, "
        "s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.REQUIRE_2FA, "
        "s.SESSION_COOKIE_AGE, s.SESSION_ENGINE, "
        "'security.sessions.IdleTimeoutMiddleware' in s.MIDDLEWARE)"
    )
    result = run(["-c", code])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "False",
        "True",
        "True",
        "True",
        "31536000",
        "True",
        "True",
        "1800",
        "security.sessions",
        "True",
    ]


def test_the_demo_settings_keep_debug_and_leave_two_factor_off_unless_asked():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DEBUG, s.REQUIRE_2FA)"
    )
    demo = run(["-c", code], DJANGO_DEBUG="1", DJANGO_SECRET_KEY="")
    assert demo.stdout.split() == ["True", "False"], demo.stderr
    forced = run(["-c", code], DJANGO_DEBUG="1", DJANGO_SECRET_KEY="", DJANGO_REQUIRE_2FA="1")
    assert forced.stdout.split() == ["True", "True"], forced.stderr


def test_production_refuses_a_missing_secret_key():
    result = run(["-c", "import django; django.setup()"], DJANGO_SECRET_KEY="")
    assert result.returncode != 0 and "DJANGO_SECRET_KEY must be set" in result.stderr


# --- Headers -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_page_carries_a_csp_without_inline_scripts(client):
    response = client.get("/accounts/login/")
    policy = response["Content-Security-Policy"]
    directives = dict(
        (d.split(" ", 1) + [""])[:2] for d in (p.strip() for p in policy.split(";")) if d
    )
    assert directives["script-src"] == "'self'"
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    assert directives["default-src"] == "'self'"
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


@pytest.mark.django_db
def test_hsts_and_the_https_redirect_in_production(client, settings):
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_SSL_REDIRECT = True
    plain = client.get("/accounts/login/")
    assert plain.status_code == 301 and plain["Location"].startswith("https://")
    secure = client.get("/accounts/login/", secure=True)
    assert secure["Strict-Transport-Security"].startswith("max-age=31536000")


INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=", re.I)


def template_files():
    return sorted((ROOT / "templates").rglob("*.html"))


@pytest.mark.parametrize("template", template_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_template_has_inline_script_or_handlers(template):
    text = template.read_text()
    for match in re.finditer(r"<script\b([^>]*)>(.*?)</script>", text, re.S | re.I):
        attrs, body = match.groups()
        assert "src=" in attrs or not body.strip(), f"inline script in {template}"
    assert not INLINE_HANDLER.search(re.sub(r"\{[{%].*?[%}]\}", "", text)), template
    assert "javascript:" not in text, template
    assert 'style="' not in text, f"inline style in {template} (the CSP refuses it)"


def test_page_scripts_are_files_served_by_the_app():
    for name in ("autosubmit.js", "ctcae.js", "response.js", "run_status.js"):
        assert (ROOT / "static" / "js" / name).is_file(), name


# --- No debug pages ----------------------------------------------------------------------------


def crash(request):
    raise RuntimeError("secret internals: SECRET_KEY")


def ok(request):
    return HttpResponse("ok")


urlpatterns = [path("crash/", crash), path("ok/", ok)]


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_errors_show_no_debug_page(settings):
    assert settings.DEBUG is False  # pytest-django runs with DEBUG off, as production
    client = Client(raise_request_exception=False)
    missing = client.get("/no-such-page/")
    assert missing.status_code == 404
    assert b"URLconf" not in missing.content and b"Traceback" not in missing.content
    failed = client.get("/crash/")
    assert failed.status_code == 500
    assert b"secret internals" not in failed.content and b"Traceback" not in failed.content
