"""Log-in throttling per address: one guess for each of many usernames from one address locks
the address (security.backends.UsernameAndAddressHandler), beside axes' username+address limit."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from .conftest import PASSWORD, make_user
from .test_login import LOGIN, attempt

pytestmark = pytest.mark.django_db


def spray(client, n, address="10.1.1.1", path=LOGIN):
    """One wrong password for each of n usernames (most of them do not exist)."""
    return [attempt(client, f"user{i}", "Winter2026!", address, path).status_code for i in range(n)]


def test_twenty_failures_over_twenty_usernames_lock_the_address(client):
    make_user("inv", sites={"KR01": {"investigator"}})
    assert settings.LOGIN_ADDRESS_FAILURE_LIMIT == 20
    assert spray(client, 19) == [200] * 19  # no username failed twice: axes alone locks nothing
    assert attempt(client, "inv", PASSWORD).status_code == 302  # under the limit: in
    client.logout()
    assert spray(client, 1, path=LOGIN)[0] == 429  # the 20th failure locks the address
    # now every username is refused from that address, the right password too ...
    locked = attempt(client, "inv", PASSWORD)
    assert locked.status_code == 429 and b"Too many failed log-ins" in locked.content
    token = Client().post(
        reverse("exchange:api_token_obtain"),
        {"username": "inv", "password": PASSWORD},
        REMOTE_ADDR="10.1.1.1",
    )
    assert token.status_code in (400, 403, 429) and "token" not in token.json()
    # ... but not from another address
    assert attempt(Client(), "inv", PASSWORD, address="10.2.2.2").status_code == 302
    # and the cool-off ends it
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=31))
    assert attempt(Client(), "inv", PASSWORD).status_code == 302


def test_a_success_does_not_reset_the_other_usernames_failures(client):
    make_user("inv", sites={"KR01": {"investigator"}})
    spray(client, 19)
    assert attempt(client, "inv", PASSWORD).status_code == 302  # resets inv's own count only
    client.logout()
    assert attempt(client, "inv", "wrong").status_code == 429


def test_the_limit_is_a_setting(client, settings):
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 3
    make_user("inv", sites={"KR01": {"investigator"}})
    assert spray(client, 3) == [200, 200, 429]
    assert attempt(client, "inv", PASSWORD).status_code == 429
