"""The daily digest: each investigator's open queries and overdue follow-up CRFs, each monitor's
answered queries waiting to be closed; scheduled by Celery beat."""

import re
from datetime import date

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client

from config.celery import app
from monitoring import services
from notifications import digest
from notifications.models import NotificationPreference
from notifications.tasks import send_daily_digests
from registry.models import FollowUp
from tests import factories as f

from .conftest import SITE_URL, body, full_case


def links_in(text):
    return re.findall(rf"{re.escape(SITE_URL)}(/\S*)", text)


pytestmark = pytest.mark.django_db

TODAY = date(2018, 6, 1)  # the fixtures' cases started in March 2017


@pytest.fixture
def registry(kr01, investigator, monitor, settings):
    settings.SITE_URL = SITE_URL
    investigator.email, monitor.email = "inv@site01.example.org", "mon@cro.example.org"
    investigator.save()
    monitor.save()
    stale = full_case(kr01)  # last contact START + 240 days = 2017-11-01: 7 months before TODAY
    recent = full_case(kr01)
    recent.followup.last_contact_date = date(2018, 5, 1)
    recent.followup.save()
    dead = full_case(kr01)
    dead.followup.vital_status = FollowUp.DEAD
    dead.followup.death_date = dead.followup.last_contact_date
    dead.followup.save()
    no_followup = f.patient(site=kr01)  # started 2017-03-06, never followed up
    open_q = services.open_query(stale, "baseline", "Source?", monitor)
    answered = services.open_query(recent, "cycles", "Dose?", monitor)
    services.answer_query(answered, investigator, "28 µg")
    return {
        "stale": stale,
        "recent": recent,
        "dead": dead,
        "no_followup": no_followup,
        "open": open_q,
        "answered": answered,
    }


class Received:
    """A message that arrived at the SMTP server, read like django.core.mail's outbox."""

    def __init__(self, message):
        self.subject, self.body = message["Subject"], body(message)


def test_the_digest_lists_each_persons_open_work(smtp, registry, investigator, monitor):
    r = registry
    assert digest.send_digests(TODAY) == 2
    by_user = {rcpt[0]: Received(m) for rcpt, m in smtp.received}
    inv = by_user["inv@site01.example.org"]
    assert (
        inv.subject == "[Blinatumomab registry] Your open work: 1 open query, 2 follow-ups overdue"
    )
    client = Client()
    client.force_login(investigator)
    for path in links_in(inv.body):  # every link opens its page for the investigator
        assert client.get(path.split("#")[0]).status_code == 200, path
    assert f"{r['stale'].study_id}: query #{r['open'].pk}" in inv.body
    assert f"{SITE_URL}/cases/{r['stale'].pk}/#query-{r['open'].pk}" in inv.body
    overdue = inv.body.split("Follow-up overdue")[1]
    assert f"{SITE_URL}/cases/{r['stale'].pk}/follow-up/" in overdue
    assert f"{SITE_URL}/cases/{r['no_followup'].pk}/follow-up/" in overdue
    assert r["recent"].study_id not in overdue and r["dead"].study_id not in overdue
    assert f"query #{r['answered'].pk}" not in inv.body  # answered: the monitor's turn

    mon = by_user["mon@cro.example.org"]
    assert mon.subject == "[Blinatumomab registry] Your open work: 1 answered query to close"
    assert f"{r['recent'].study_id}: query #{r['answered'].pk}" in mon.body
    assert f"query #{r['open'].pk}" not in mon.body
    # no patient data beyond study IDs: no question, answer or date
    for message in (inv, mon):
        assert "Source?" not in message.body and "28 µg" not in message.body
        assert "2017-" not in message.body


def test_the_overdue_delay_is_configurable(registry, settings):
    settings.FOLLOW_UP_OVERDUE_MONTHS = 12
    message = digest.digest_for(registry["stale"].institution.memberships.first().user, TODAY)
    assert "Follow-up overdue" in message.body
    assert registry["stale"].study_id not in message.body.split("Follow-up overdue")[1]
    assert registry["no_followup"].study_id in message.body.split("Follow-up overdue")[1]


def test_nothing_open_or_digest_turned_off_sends_nothing(registry, investigator, monitor):
    NotificationPreference.objects.create(user=investigator, daily_digest=False)
    services.close_query(registry["answered"], monitor)
    assert digest.send_digests(TODAY) == 0
    assert mail.outbox == []


def test_long_lists_show_the_first_entries_and_how_many_more(registry, investigator):
    original = digest.LIST_MAX
    digest.LIST_MAX = 1
    try:
        message = digest.digest_for(investigator, TODAY)
    finally:
        digest.LIST_MAX = original
    assert "… and 1 more on the case list: https://registry.example.org/" in message.body


def test_celery_beat_runs_the_digest_daily():
    schedule = settings.CELERY_BEAT_SCHEDULE["daily-digest"]
    assert schedule["task"] == send_daily_digests.name
    assert send_daily_digests.name in app.tasks
    assert schedule["schedule"].hour == {settings.DIGEST_HOUR}
    assert schedule["schedule"].minute == {0}
