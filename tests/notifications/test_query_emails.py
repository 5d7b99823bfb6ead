"""A query opened notifies the site's investigators, an answer the monitor who opened it: real
messages through a real SMTP server, with a link that opens the query, and no patient data
beyond the study ID."""

import re

import pytest
from django.test import Client

from monitoring.models import Finding, Query
from notifications.models import NotificationPreference
from tests import factories as f

from .conftest import SITE_URL, body, links, url

pytestmark = pytest.mark.django_db

QUESTION = "Is the marrow blast count of 81% right? The report says 18%."
ANSWER = "Typo: 18.0, corrected."


def open_query(client, patient, field="marrow_blasts_pct", message=QUESTION):
    baseline = patient.baseline
    new = url("monitoring:query_new", patient.pk) + f"?record=baseline:{baseline.pk}"
    return client.post(new, {"field_name": field, "message": message})


def test_a_monitors_query_arrives_in_the_investigators_smtp_inbox(
    smtp, case, with_emails, kr02, django_capture_on_commit_callbacks
):
    investigator, monitor = with_emails
    other_site = f.user("inv-kr02", sites=("KR02",))
    other_site.email = "inv@site02.example.org"
    other_site.save()
    mon = Client()
    mon.force_login(monitor)
    with django_capture_on_commit_callbacks(execute=True):
        assert open_query(mon, case).status_code == 302
    query = Query.objects.get()

    assert len(smtp.received) == 1  # the co-investigator has no address; KR02's gets nothing
    recipients, message = smtp.received[0]
    assert recipients == ["inv@site01.example.org"]
    assert message["To"] == "inv@site01.example.org"
    assert message["From"] == "registry@example.org"
    assert (
        message["Subject"] == f"[Blinatumomab registry] Query #{query.pk} opened on {case.study_id}"
    )
    text = body(message)
    assert "field “Bone marrow blasts (%)”" in text and "opened by mon" in text

    # the link opens the query on the case page, for the investigator
    path = links(message)[0]
    assert path == f"/cases/{case.pk}/#query-{query.pk}"
    inv = Client()
    inv.force_login(investigator)
    page = inv.get(path.split("#")[0])
    assert page.status_code == 200
    assert f'id="query-{query.pk}"' in page.content.decode()

    # no patient data beyond the study ID: not the question, no value, no date, no birth year
    assert QUESTION not in text and "81" not in text and "18%" not in text
    assert not re.search(r"\d{4}-\d{2}-\d{2}", text)
    assert str(case.birth_year) not in text
    assert re.findall(r"KR\d\d-\d{3}", text + message["Subject"]) and set(
        re.findall(r"KR\d\d-\d{3}", text + message["Subject"])
    ) == {case.study_id}
    assert f"{SITE_URL}/accounts/profile/" in text  # where to turn it off


def test_an_answer_notifies_the_monitor_who_opened_the_query(
    smtp, case, with_emails, django_capture_on_commit_callbacks
):
    investigator, monitor = with_emails
    mon, inv = Client(), Client()
    mon.force_login(monitor)
    inv.force_login(investigator)
    with django_capture_on_commit_callbacks(execute=True):
        open_query(mon, case)
    query = Query.objects.get()
    smtp.received.clear()
    with django_capture_on_commit_callbacks(execute=True):
        inv.post(url("monitoring:query_answer", query.pk), {"message": ANSWER})
    assert len(smtp.received) == 1
    recipients, message = smtp.received[0]
    assert recipients == ["mon@cro.example.org"]
    assert (
        message["Subject"]
        == f"[Blinatumomab registry] Query #{query.pk} on {case.study_id} answered"
    )
    assert ANSWER not in body(message) and "inv answered" in body(message)
    path = links(message)[0]
    assert mon.get(path.split("#")[0]).status_code == 200


def test_each_message_can_be_turned_off_in_the_profile(
    smtp, case, with_emails, django_capture_on_commit_callbacks
):
    investigator, monitor = with_emails
    inv, mon = Client(), Client()
    inv.force_login(investigator)
    mon.force_login(monitor)
    # the investigator turns off "query opened", keeps the digest
    response = inv.post(
        url("notifications:profile"),
        {"pref-daily_digest": "on", "mail-email": investigator.email},
    )
    assert response.status_code == 302
    pref = NotificationPreference.objects.get(user=investigator)
    assert (pref.query_opened, pref.query_answered, pref.daily_digest) == (False, False, True)
    mon.post(
        url("notifications:profile"),
        {"pref-query_opened": "on", "pref-daily_digest": "on", "mail-email": monitor.email},
    )
    with django_capture_on_commit_callbacks(execute=True):
        open_query(mon, case)
    with django_capture_on_commit_callbacks(execute=True):
        inv.post(url("monitoring:query_answer", Query.objects.get().pk), {"message": ANSWER})
    assert smtp.received == []


def test_changing_ones_address_needs_the_password(client, with_emails):
    investigator, _monitor = with_emails
    client.force_login(investigator)
    data = {"pref-query_opened": "on", "mail-email": "new@site01.example.org"}
    refused = client.post(url("notifications:profile"), data)
    assert refused.status_code == 200
    assert "Enter your password to change the e-mail address." in refused.content.decode()
    investigator.refresh_from_db()
    assert investigator.email == "inv@site01.example.org"
    client.post(url("notifications:profile"), {**data, "mail-password": "pw-for-tests-1"})
    investigator.refresh_from_db()
    assert investigator.email == "new@site01.example.org"


def test_queries_opened_for_every_finding_come_in_one_email(
    smtp, kr01, with_emails, django_capture_on_commit_callbacks
):
    from tests.monitoring.conftest import full_case

    _investigator, monitor = with_emails
    cases = [full_case(kr01) for _ in range(3)]
    for i, p in enumerate(cases):
        Finding.objects.create(
            key=f"t:{i}", rule="test", patient=p, crf="follow_up", message="Check"
        )
    mon = Client()
    mon.force_login(monitor)
    with django_capture_on_commit_callbacks(execute=True):
        mon.post(url("monitoring:query_all", "KR01"))
    assert Query.objects.count() == 3
    assert len(smtp.received) == 1
    recipients, message = smtp.received[0]
    assert recipients == ["inv@site01.example.org"]
    assert message["Subject"] == "[Blinatumomab registry] 3 queries opened at KR01"
    assert sorted(link for link in links(message) if link.startswith("/cases/")) == sorted(
        f"/cases/{q.patient_id}/#query-{q.pk}" for q in Query.objects.all()
    )


def test_an_smtp_server_that_refuses_does_not_break_opening_a_query(
    settings, case, with_emails, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    _investigator, monitor = with_emails
    mon = Client()
    mon.force_login(monitor)
    with django_capture_on_commit_callbacks(execute=True):
        response = open_query(mon, case)
    assert response.status_code == 302
    assert Query.objects.count() == 1
