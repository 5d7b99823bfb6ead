"""E-mail settings come from the environment: EMAIL_URL or the EMAIL_* variables; the console
while debugging (the demo needs nothing), SMTP in production."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.email import email_settings

SMTP = "django.core.mail.backends.smtp.EmailBackend"
CONSOLE = "django.core.mail.backends.console.EmailBackend"


def test_nothing_set_means_the_console_in_the_demo_and_smtp_in_production():
    assert email_settings({}, debug=True)["EMAIL_BACKEND"] == CONSOLE
    production = email_settings({}, debug=False)
    assert (production["EMAIL_BACKEND"], production["EMAIL_HOST"]) == (SMTP, "localhost")


def test_email_url_with_starttls_and_credentials():
    found = email_settings(
        {"EMAIL_URL": "smtp://reg%40example.org:p%3Ass@mail.example.org:587/?tls=1"}, debug=True
    )
    assert found["EMAIL_BACKEND"] == SMTP
    assert (found["EMAIL_HOST"], found["EMAIL_PORT"]) == ("mail.example.org", 587)
    assert (found["EMAIL_HOST_USER"], found["EMAIL_HOST_PASSWORD"]) == ("reg@example.org", "p:ss")
    assert (found["EMAIL_USE_TLS"], found["EMAIL_USE_SSL"]) == (True, False)


def test_smtps_url_means_tls_from_the_start_on_465():
    found = email_settings({"EMAIL_URL": "smtps://mail.example.org"}, debug=False)
    assert (found["EMAIL_PORT"], found["EMAIL_USE_SSL"], found["EMAIL_USE_TLS"]) == (
        465,
        True,
        False,
    )


def test_the_separate_variables_and_the_sender():
    found = email_settings(
        {
            "EMAIL_HOST": "relay.example.org",
            "EMAIL_PORT": "2525",
            "EMAIL_USE_TLS": "1",
            "DEFAULT_FROM_EMAIL": "registry@example.org",
        },
        debug=True,
    )
    assert found["EMAIL_BACKEND"] == SMTP  # a host means SMTP, even in the demo
    assert (found["EMAIL_HOST"], found["EMAIL_PORT"], found["EMAIL_USE_TLS"]) == (
        "relay.example.org",
        2525,
        True,
    )
    assert found["DEFAULT_FROM_EMAIL"] == "registry@example.org"


def test_an_unknown_scheme_is_refused():
    with pytest.raises(ImproperlyConfigured, match="unknown scheme 'smtpx'"):
        email_settings({"EMAIL_URL": "smtpx://host"}, debug=True)
