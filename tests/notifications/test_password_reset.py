"""Password reset through Django's own views at /accounts/password_reset/: the link arrives by
e-mail (a real SMTP server here), the new password follows the same rules, unknown addresses get
the same answer, and requests are throttled per address and per e-mail."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from notifications.models import PasswordResetRequest

from .conftest import SITE_URL, body, links

pytestmark = pytest.mark.django_db

RESET = "/accounts/password_reset/"
DONE = "/accounts/password_reset/done/"


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_user(
        "alice", email="alice@site01.example.org", password="old password 1234"
    )


def ask(client, email, address="10.0.0.1"):
    return client.post(RESET, {"email": email}, REMOTE_ADDR=address)


def test_the_link_sets_a_new_password_under_the_same_rules(smtp, alice):
    client = Client()
    assert client.get("/accounts/login/").content.decode().count(RESET) == 1  # linked
    response = ask(client, "ALICE@site01.example.org")
    assert (response.status_code, response["Location"]) == (302, DONE)
    assert len(smtp.received) == 1
    recipients, message = smtp.received[0]
    assert recipients == ["alice@site01.example.org"]
    assert message["Subject"] == "Blinatumomab registry: reset your password"
    assert SITE_URL in body(message)
    link = links(message)[0]
    form = client.get(link, follow=True)
    assert "Choose a new password" in form.content.decode()
    set_url = form.redirect_chain[-1][0]
    weak = client.post(set_url, {"new_password1": "alice2026", "new_password2": "alice2026"})
    page = weak.content.decode()
    assert "This password is too short. It must contain at least 12 characters." in page
    strong = "a long and unusual passphrase 77"
    done = client.post(set_url, {"new_password1": strong, "new_password2": strong})
    assert done.status_code == 302 and done["Location"] == "/accounts/reset/done/"
    alice.refresh_from_db()
    assert alice.check_password(strong)
    assert "not valid" in client.get(link, follow=True).content.decode()  # used once


def test_an_unknown_address_gets_the_same_answer_and_no_email(smtp, alice):
    response = ask(Client(), "nobody@example.org")
    assert (response.status_code, response["Location"]) == (302, DONE)
    assert smtp.received == []


def test_requests_are_throttled_per_client_address(smtp, alice, settings):
    settings.PASSWORD_RESET_ADDRESS_LIMIT = 2
    client = Client()
    for n in range(2):
        assert ask(client, f"someone{n}@example.org").status_code == 302
    refused = ask(client, "alice@site01.example.org")
    assert refused.status_code == 429
    assert "Too many password resets" in refused.content.decode()
    assert smtp.received == []
    assert ask(client, "alice@site01.example.org", address="10.0.0.2").status_code == 302
    assert len(smtp.received) == 1


def test_requests_are_throttled_per_email_with_the_same_answer(smtp, alice, settings):
    settings.PASSWORD_RESET_EMAIL_LIMIT = 2
    client = Client()
    answers = [ask(client, "alice@site01.example.org", f"10.0.1.{n}") for n in range(4)]
    assert [(a.status_code, a["Location"]) for a in answers] == [(302, DONE)] * 4
    assert len(smtp.received) == 2
    # the addresses are kept as hashes only
    assert not PasswordResetRequest.objects.filter(email_sha256__contains="@").exists()
