"""Logging in: lockout after repeated failures, strong passwords, idle sessions expire, and a
second factor (TOTP) for monitors and administrators."""

import base64
import io
import re
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from registry.models import Membership

from . import url_rules as rules
from .conftest import PASSWORD, make_user, totp_device

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


def attempt(client, username, password, address="10.1.1.1", path=LOGIN):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


def code_for(device):
    """The code an authenticator app shows now; resets the device's throttle first (after a
    wrong code, django-otp refuses any code for a moment, growing with each failure)."""
    device.refresh_from_db()
    device.throttle_reset()
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


# --- Lockout (django-axes) --------------------------------------------------------------------


def test_five_failures_lock_the_username_from_that_address_for_30_minutes(client):
    make_user("inv", sites={"KR01": {"investigator"}})
    assert settings.AXES_FAILURE_LIMIT == 5
    assert settings.AXES_COOLOFF_TIME == timedelta(minutes=30)
    for _ in range(4):
        assert attempt(client, "inv", "wrong password").status_code == 200  # the form again
    locked = attempt(client, "inv", "wrong password")
    assert locked.status_code == 429 and b"Too many failed log-ins" in locked.content
    # now even the right password is refused from that address ...
    assert attempt(client, "inv", PASSWORD).status_code == 429
    assert "_auth_user_id" not in client.session
    # ... but not from another address (keyed on username + address)
    other = Client()
    assert attempt(other, "inv", PASSWORD, address="10.2.2.2").status_code == 302
    # after the cool-off the right password works again
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=31))
    assert attempt(client, "inv", PASSWORD).status_code == 302


def test_a_success_resets_the_failure_count(client):
    make_user("inv", sites={"KR01": {"investigator"}})
    for _ in range(4):
        attempt(client, "inv", "nope")
    assert attempt(client, "inv", PASSWORD).status_code == 302
    client.logout()
    for _ in range(4):
        assert attempt(client, "inv", "nope").status_code == 200
    assert attempt(client, "inv", PASSWORD).status_code == 302


def test_the_admin_login_and_the_api_token_endpoint_are_throttled_too(client):
    make_user("boss", superuser=True, staff=True)
    for _ in range(5):
        attempt(client, "boss", "nope", path="/admin/login/")
    assert attempt(client, "boss", PASSWORD, path="/admin/login/").status_code == 429
    make_user("api", sites={"KR01": {"investigator"}})
    token_url = reverse("exchange:api_token_obtain")
    for _ in range(5):
        attempt(client, "api", "nope", path=token_url)
    refused = attempt(client, "api", PASSWORD, path=token_url)
    assert refused.status_code in (400, 403, 429) and "token" not in refused.json()


# --- Passwords and sessions -------------------------------------------------------------------


@pytest.mark.parametrize("password", ["short-pw-1", "12345678901234", "password12345", "Tide-41"])
def test_weak_passwords_are_refused(password):
    with pytest.raises(ValidationError):
        validate_password(password)


def test_a_twelve_character_passphrase_passes():
    validate_password("Blue-Heron-Tide-41")
    with pytest.raises(ValidationError, match="at least 12 characters"):
        validate_password("Bh-Tide-41x")  # 11


def test_idle_sessions_expire_after_30_minutes_and_activity_extends_them(client):
    assert settings.SESSION_COOKIE_AGE == 30 * 60
    assert "security.sessions.IdleTimeoutMiddleware" in settings.MIDDLEWARE
    make_user("inv", sites={"KR01": {"investigator"}})
    assert attempt(client, "inv", PASSWORD).status_code == 302
    session = Session.objects.get()
    soon = timezone.now() + timedelta(minutes=1)
    Session.objects.update(expire_date=soon)
    assert client.get("/").status_code == 200
    session = Session.objects.get(session_key=session.session_key)
    assert session.expire_date > timezone.now() + timedelta(minutes=29)  # the clock restarted
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))  # 30 idle minutes
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)


def test_activity_within_a_minute_of_the_last_save_does_not_rewrite_the_session(client):
    """The idle clock moves in steps of at most a minute (security/sessions.py): a request
    less than a minute after the session was saved leaves its row alone; a later one restarts
    the clock; the timeout never exceeds 30 minutes after the last request."""
    make_user("inv", sites={"KR01": {"investigator"}})
    assert attempt(client, "inv", PASSWORD).status_code == 302
    assert client.get("/").status_code == 200  # the first visit stores the chosen site
    saved = Session.objects.get().expire_date
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/").status_code == 200
    assert not [q for q in queries if "django_session" in q["sql"] and "UPDATE" in q["sql"]]
    assert Session.objects.get().expire_date == saved
    assert saved <= timezone.now() + timedelta(minutes=30)

    # 90 seconds later (the row says the session expires 90 s sooner than a save now would)
    Session.objects.update(expire_date=saved - timedelta(seconds=90))
    assert client.get("/").status_code == 200
    refreshed = Session.objects.get().expire_date
    assert (
        timezone.now() + timedelta(minutes=29) < refreshed <= timezone.now() + timedelta(minutes=30)
    )


def test_the_session_cookie_is_http_only_and_same_site_lax(client):
    make_user("inv", sites={"KR01": {"investigator"}})
    response = attempt(client, "inv", PASSWORD)
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"


# --- Two-factor authentication ----------------------------------------------------------------


@pytest.fixture
def two_factor(settings):
    settings.REQUIRE_2FA = True


def log_in_with_password(client, username):
    response = attempt(client, username, PASSWORD)
    assert response.status_code == 302, response.content[:500]
    return response


def test_monitors_and_admins_need_two_factors_investigators_do_not():
    from registry.access import requires_two_factor

    assert requires_two_factor(make_user("mon", sites={"KR01": {Membership.MONITOR}}))
    assert requires_two_factor(make_user("staff", staff=True))
    assert requires_two_factor(make_user("root", superuser=True, staff=True))
    assert not requires_two_factor(make_user("inv", sites={"KR01": {"investigator"}}))
    assert not requires_two_factor(make_user("stat", sites={"KR01": {"statistician"}}))


def test_a_monitor_reaches_no_page_before_the_totp_code(client, two_factor, world):
    """After the password, every URL of the app (but the two-factor pages and log-out) sends an
    unverified monitor to the code page; the API refuses."""
    monitor = world.roles["monitor"].user
    device = world.devices["monitor"]
    response = log_in_with_password(client, "monitor")
    assert response["Location"] == "/"
    first = client.get("/")
    assert first.status_code == 302
    assert first["Location"].startswith(reverse("security:two_factor_verify"))
    for route, _rule, url, _target in rules.walk(world):
        if route.name in ("logout", "admin:logout", "login") or (route.name or "").startswith(
            "security:"
        ):
            continue
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            if url.startswith("/api/"):
                assert response.status_code == 403, (method, url, response.status_code)
            else:
                assert response.status_code == 302, (method, url, response.status_code)
                assert "/accounts/2fa/verify/" in response["Location"], (method, url)
    # a wrong code keeps the door shut
    wrong = client.post(reverse("security:two_factor_verify"), {"token": "000000", "next": "/"})
    assert wrong.status_code == 200 and b"not valid" in wrong.content
    assert client.get("/").status_code == 302
    # the right code opens it, back to where they were going
    verify = reverse("security:two_factor_verify")
    ok = client.post(verify, {"token": code_for(device), "next": "/"})
    assert ok.status_code == 302 and ok["Location"] == "/"
    assert client.get("/").status_code == 200
    assert client.get(reverse("monitoring:progress")).status_code == 200
    assert client.get("/admin/").status_code == 200
    assert monitor.is_authenticated


def test_the_next_parameter_cannot_send_the_user_elsewhere(client, two_factor, world):
    log_in_with_password(client, "monitor")
    device = world.devices["monitor"]
    response = client.post(
        reverse("security:two_factor_verify"),
        {"token": code_for(device), "next": "https://evil.example.org/"},
    )
    assert response.status_code == 302 and response["Location"] == "/"


def test_an_investigator_logs_in_with_the_password_alone(client, two_factor):
    make_user("inv", sites={"KR01": {"investigator"}})
    log_in_with_password(client, "inv")
    assert client.get("/").status_code == 200


def test_a_superuser_without_a_device_enrols_one_on_the_setup_page(client, two_factor):
    make_user("root", superuser=True, staff=True)
    log_in_with_password(client, "root")
    to_setup = client.get("/admin/")
    assert to_setup["Location"].startswith(reverse("security:two_factor_setup"))
    page = client.get(to_setup["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    secret = re.search(r'id="otp-secret">([A-Z2-7]+)<', html).group(1)
    assert "otpauth://totp/" in html and 'src="data:image/svg+xml' in html  # QR drawn locally
    device = TOTPDevice.objects.get(user__username="root", confirmed=False)
    assert base64.b32encode(device.bin_key).decode() == secret
    assert client.get("/admin/").status_code == 302  # not enrolled until a code matches
    bad = client.post(reverse("security:two_factor_setup"), {"token": "123456"})
    assert bad.status_code == 200 and not TOTPDevice.objects.filter(confirmed=True).exists()
    done = client.post(
        reverse("security:two_factor_setup"), {"token": code_for(device), "next": "/admin/"}
    )
    assert done.status_code == 302 and done["Location"] == "/admin/"
    assert TOTPDevice.objects.get(user__username="root").confirmed
    assert client.get("/admin/").status_code == 200
    # a confirmed device cannot be replaced from the setup page: it sends to the code page
    again = client.get(reverse("security:two_factor_setup"))
    assert again["Location"].startswith(reverse("security:two_factor_verify"))


def test_without_self_enrolment_the_setup_page_asks_for_an_administrator(client, settings):
    settings.REQUIRE_2FA = True
    settings.OTP_SELF_ENROLMENT = False
    make_user("mon", sites={"KR01": {"monitor"}})
    log_in_with_password(client, "mon")
    page = client.get(reverse("security:two_factor_setup"))
    assert b"ask them to create a TOTP device" in page.content
    assert not TOTPDevice.objects.exists()


def test_an_api_token_is_never_handed_out_for_a_password_alone_to_a_monitor(client, two_factor):
    user = make_user("mon", sites={"KR01": {"monitor"}})
    totp_device(user)
    url = reverse("exchange:api_token_obtain")
    refused = client.post(url, {"username": "mon", "password": PASSWORD})
    assert refused.status_code == 403 and b"two-factor" in refused.content
    from rest_framework.authtoken.models import Token

    assert not Token.objects.filter(user=user).exists()
    make_user("inv", sites={"KR01": {"investigator"}})
    assert client.post(url, {"username": "inv", "password": PASSWORD}).status_code == 200


def test_the_demo_gives_its_monitor_and_admin_a_totp_secret(settings):
    settings.DEBUG = True
    out = io.StringIO()
    call_command("seed_demo", "--patients", "5", stdout=out)
    text = out.getvalue()
    assert re.search(r"monitor\s+secret [A-Z2-7]{32}", text)
    assert re.search(r"admin\s+secret [A-Z2-7]{32}", text)
    assert not re.search(r"investigator\s+secret", text)
    assert TOTPDevice.objects.filter(user__username__in=["admin", "monitor"]).count() == 2
