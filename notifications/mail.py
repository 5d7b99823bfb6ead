"""The registry's e-mails: who gets which message, and what it says.

- A query opened: the investigators of the case's site.
- A query answered: the monitor who opened it (while they still monitor the case).
- The daily digest (notifications.digest): each user's open work.

Every message names cases by study ID only: never the question, the answer, a value, a date or a
record's label (those hold patient data); the link opens the page where they are. Links are
absolute, from settings.SITE_URL. One message per recipient (nobody sees the other addresses),
each ending with where to turn that kind of message off. Each user's preferences
(NotificationPreference) are honoured here, at sending time.
"""

from collections import defaultdict

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.urls import reverse
from django.utils.text import capfirst

from monitoring.models import QueryEvent
from registry.access import monitored_patients_for
from registry.models import Membership

from .models import NotificationPreference

SUBJECT_PREFIX = "[Blinatumomab registry] "


def absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def query_url(query) -> str:
    """The case page, scrolled to the query's thread (registry/case.html: id="query-<pk>")."""
    return absolute(reverse("registry:case", args=[query.patient_id]) + f"#query-{query.pk}")


def profile_url() -> str:
    return absolute(reverse("notifications:profile"))


def about(query) -> str:
    """What the query is on, without patient data: the CRF and the field's label (no record
    label: those carry dates and terms)."""
    text = query.get_crf_display()
    return f"{text}, field “{capfirst(query.field_label)}”" if query.field_label else text


def footer(reason, kind_label) -> str:
    return (
        "\n--\nE-mails from the registry carry no patient data beyond the study ID: the details "
        f"are on the page linked above, after you log in.\nYou receive this because {reason}. "
        f"Turn off “{kind_label}” in your profile: {profile_url()}\n"
    )


def _message(user, subject, body) -> EmailMessage:
    return EmailMessage(SUBJECT_PREFIX + subject, body, to=[user.email])


def site_investigators(site_id):
    return [
        m.user
        for m in Membership.objects.filter(
            institution_id=site_id, role=Membership.INVESTIGATOR
        ).select_related("user")
    ]


# --- Query events ---------------------------------------------------------------------------------


def _opened_messages(user, queries) -> EmailMessage:
    sites = sorted({q.patient.institution.code for q in queries})
    label = NotificationPreference._meta.get_field("query_opened").verbose_name
    if len(queries) == 1:
        q = queries[0]
        opener = q.opened_by.get_username() if q.opened_by else "the edit checks"
        subject = f"Query #{q.pk} opened on {q.patient.study_id}"
        body = (
            f"A query was opened by {opener} on case {q.patient.study_id} "
            f"(site {q.patient.institution.code}).\n\n"
            f"Query #{q.pk}: {about(q)}\n"
            f"Open it to read the question and answer: {query_url(q)}\n"
        )
    else:
        subject = f"{len(queries)} queries opened at {', '.join(sites)}"
        lines = [
            f"- {q.patient.study_id}: query #{q.pk}, {about(q)}\n  {query_url(q)}" for q in queries
        ]
        body = f"{len(queries)} queries were opened on cases of your site(s):\n\n" + "\n".join(
            lines
        )
        body += "\n"
    reason = f"you are an investigator at {', '.join(sites)}"
    return _message(user, subject, body + footer(reason, label))


def _answered_message(user, events) -> EmailMessage:
    label = NotificationPreference._meta.get_field("query_answered").verbose_name
    queries = {e.query_id: e.query for e in events}
    if len(queries) == 1:
        e = events[-1]
        q = e.query
        who = e.user.get_username() if e.user else "an investigator"
        subject = f"Query #{q.pk} on {q.patient.study_id} answered"
        body = (
            f"{who} answered query #{q.pk} on case {q.patient.study_id} "
            f"(site {q.patient.institution.code}), {about(q)}.\n\n"
            f"Read the answer, then close or re-open the query: {query_url(q)}\n"
        )
    else:
        subject = f"{len(queries)} of your queries answered"
        lines = [
            f"- {q.patient.study_id}: query #{q.pk}, {about(q)}\n  {query_url(q)}"
            for q in queries.values()
        ]
        body = f"{len(queries)} queries you opened were answered:\n\n" + "\n".join(lines) + "\n"
    return _message(user, subject, body + footer("you opened the query", label))


def messages_for_events(event_ids) -> list[EmailMessage]:
    """The e-mails for these query events (opened and answered), one per recipient and kind."""
    events = list(
        QueryEvent.objects.filter(
            pk__in=event_ids, action__in=[QueryEvent.OPENED, QueryEvent.ANSWERED]
        )
        .select_related("user", "query__patient__institution", "query__opened_by")
        .select_related("query__content_type")
        .order_by("at", "pk")
    )
    opened, answered = defaultdict(list), defaultdict(list)
    users = {}
    for event in events:
        query = event.query
        if event.action == QueryEvent.OPENED:
            for user in site_investigators(query.patient.institution_id):
                if user.pk != getattr(event.user, "pk", None):
                    users[user.pk] = user
                    opened[user.pk].append(query)
        else:
            monitor = query.opened_by
            if monitor is None or monitor.pk == getattr(event.user, "pk", None):
                continue
            users[monitor.pk] = monitor
            answered[monitor.pk].append(event)
    out = []
    for pk, queries in opened.items():
        if NotificationPreference.wants(users[pk], "query_opened"):
            out.append(_opened_messages(users[pk], queries))
    for pk, evs in answered.items():
        user = users[pk]
        patients = {e.query.patient_id for e in evs}
        still_monitors = monitored_patients_for(user).filter(pk__in=patients).count() == len(
            patients
        )
        if still_monitors and NotificationPreference.wants(user, "query_answered"):
            out.append(_answered_message(user, evs))
    return out


def send(messages) -> int:
    if not messages:
        return 0
    with get_connection() as connection:
        return connection.send_messages(messages)


def send_for_events(event_ids) -> int:
    return send(messages_for_events(event_ids))
