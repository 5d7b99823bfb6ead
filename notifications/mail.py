"""The registry's e-mails: who gets which message, and what it says.

- A query opened: the investigators of the case's site.
- A query answered: the monitor who opened it (while they still monitor the case).
- The daily digest (notifications.digest): each user's open work.

Every message names cases by study ID only: never the question, the answer, a value, a date or a
record's label (those hold patient data); the link opens the page where they are. Links are
absolute, from settings.SITE_URL. One message per recipient (nobody sees the other addresses),
each ending with where to turn that kind of message off. Each user's preferences
(NotificationPreference) are honoured here, at sending time, and each message is written in its
recipient's saved language (notifications.language.email_language; English by default).
"""

from collections import defaultdict

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.urls import reverse
from django.utils import translation
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from monitoring.models import QueryEvent
from registry.access import monitored_patients_for
from registry.models import Membership

from .language import email_language
from .models import NotificationPreference


def subject_prefix() -> str:
    return "[" + _("Blinatumomab registry") + "] "


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
    text = str(query.get_crf_display())
    if not query.field_label:
        return text
    return _("%(crf)s, field “%(field)s”") % {"crf": text, "field": capfirst(query.field_label)}


def footer(reason, kind_label) -> str:
    return (
        "\n--\n"
        + _(
            "E-mails from the registry carry no patient data beyond the study ID: the details "
            "are on the page linked above, after you log in."
        )
        + "\n"
        + _("You receive this because %(reason)s.") % {"reason": reason}
        + " "
        + _("Turn off “%(kind)s” in your profile: %(url)s")
        % {"kind": kind_label, "url": profile_url()}
        + "\n"
    )


def _message(user, subject, body) -> EmailMessage:
    return EmailMessage(subject_prefix() + subject, body, to=[user.email])


def in_language_of(user, build, *args) -> EmailMessage:
    """build(user, *args) written in the recipient's language."""
    with translation.override(email_language(user)):
        return build(user, *args)


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
        opener = q.opened_by.get_username() if q.opened_by else _("the edit checks")
        ids = {"n": q.pk, "case": q.patient.study_id, "site": q.patient.institution.code}
        subject = _("Query #%(n)s opened on %(case)s") % ids
        body = (
            _("A query was opened by %(who)s on case %(case)s (site %(site)s).")
            % {**ids, "who": opener}
            + "\n\n"
            + _("Query #%(n)s: %(about)s") % {"n": q.pk, "about": about(q)}
            + "\n"
            + _("Open it to read the question and answer: %(url)s") % {"url": query_url(q)}
            + "\n"
        )
    else:
        n = len(queries)
        subject = ngettext(
            "%(n)s query opened at %(sites)s", "%(n)s queries opened at %(sites)s", n
        ) % {"n": n, "sites": ", ".join(sites)}
        lines = [query_line(q) for q in queries]
        body = (
            ngettext(
                "%(n)s query was opened on cases of your site(s):",
                "%(n)s queries were opened on cases of your site(s):",
                n,
            )
            % {"n": n}
            + "\n\n"
            + "\n".join(lines)
        )
        body += "\n"
    reason = _("you are an investigator at %(sites)s") % {"sites": ", ".join(sites)}
    return _message(user, subject, body + footer(reason, label))


def query_line(q) -> str:
    text = _("query #%(n)s, %(about)s") % {"n": q.pk, "about": about(q)}
    return f"- {q.patient.study_id}: {text}\n  {query_url(q)}"


def _answered_message(user, events) -> EmailMessage:
    label = NotificationPreference._meta.get_field("query_answered").verbose_name
    queries = {e.query_id: e.query for e in events}
    if len(queries) == 1:
        e = events[-1]
        q = e.query
        who = e.user.get_username() if e.user else _("an investigator")
        ids = {"n": q.pk, "case": q.patient.study_id, "site": q.patient.institution.code}
        subject = _("Query #%(n)s on %(case)s answered") % ids
        body = (
            _("%(who)s answered query #%(n)s on case %(case)s (site %(site)s), %(about)s.")
            % {**ids, "who": who, "about": about(q)}
            + "\n\n"
            + _("Read the answer, then close or re-open the query: %(url)s") % {"url": query_url(q)}
            + "\n"
        )
    else:
        n = len(queries)
        subject = ngettext(
            "%(n)s of your queries answered", "%(n)s of your queries answered", n
        ) % {"n": n}
        lines = [query_line(q) for q in queries.values()]
        body = (
            ngettext(
                "%(n)s query you opened was answered:",
                "%(n)s queries you opened were answered:",
                n,
            )
            % {"n": n}
            + "\n\n"
            + "\n".join(lines)
            + "\n"
        )
    return _message(user, subject, body + footer(_("you opened the query"), label))


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
            out.append(in_language_of(users[pk], _opened_messages, queries))
    for pk, evs in answered.items():
        user = users[pk]
        patients = {e.query.patient_id for e in evs}
        still_monitors = monitored_patients_for(user).filter(pk__in=patients).count() == len(
            patients
        )
        if still_monitors and NotificationPreference.wants(user, "query_answered"):
            out.append(in_language_of(user, _answered_message, evs))
    return out


def send(messages) -> int:
    if not messages:
        return 0
    with get_connection() as connection:
        return connection.send_messages(messages)


def send_for_events(event_ids) -> int:
    return send(messages_for_events(event_ids))
