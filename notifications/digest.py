"""The daily digest: each user's open work, in one e-mail a day (only when there is any).

Investigators: the open queries on their sites' cases (waiting for their answer) and the cases
whose follow-up is overdue (settings.FOLLOW_UP_OVERDUE_MONTHS without a follow-up: the last contact
is older, or there is no follow-up CRF and blinatumomab started before then; dead patients and
locked cases are left out, there is nothing to add). Monitors: the answered queries at the sites
they monitor, waiting to be closed. Each list shows its first LIST_MAX entries and how many more.
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.db.models import Exists, OuterRef, Q
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from monitoring.models import Query
from registry.models import CrfStatus, FollowUp, Membership, Patient

from .language import email_language
from .mail import absolute, footer, query_line, send, subject_prefix
from .models import NotificationPreference

LIST_MAX = 50
DAYS_PER_MONTH = 30.4375  # the registry's month (README: months = days / 30.4375)


def overdue_cutoff(today=None):
    today = today or timezone.localdate()
    return today - timedelta(days=round(settings.FOLLOW_UP_OVERDUE_MONTHS * DAYS_PER_MONTH))


def follow_up_overdue(patients, today=None):
    """The cases of `patients` whose follow-up is overdue (see the module docstring)."""
    cutoff = overdue_cutoff(today)
    followup = FollowUp.objects.filter(patient=OuterRef("pk"))
    locked = CrfStatus.objects.filter(patient=OuterRef("pk"), status=CrfStatus.LOCKED)
    return (
        patients.filter(institution__locked_at__isnull=True)
        .exclude(Exists(locked))
        .exclude(Exists(followup.filter(vital_status=FollowUp.DEAD)))
        .filter(
            Exists(followup.filter(last_contact_date__lt=cutoff))
            | (~Exists(followup) & Q(blinatumomab_start_date__lt=cutoff))
        )
    )


def _cases_where(user, role):
    """The cases of the sites where the user holds `role` (a superuser's digest is about the
    sites they belong to, not the whole registry)."""
    sites = Membership.objects.filter(user=user, role=role).values("institution")
    return Patient.objects.filter(institution__in=sites)


def _listed(items, line, more_url, more_text) -> str:
    shown = [line(x) for x in items[:LIST_MAX]]
    rest = len(items) - len(shown)
    text = "\n".join(shown)
    if rest > 0:
        text += "\n- " + more_text % {"n": rest, "url": more_url}
    return text + "\n"


def digest_for(user, today=None):
    """The user's digest message, or None when they have nothing open (or do not want it);
    written in the user's language."""
    if not NotificationPreference.wants(user, "daily_digest"):
        return None
    with translation.override(email_language(user)):
        return _digest(user, today)


def _digest(user, today):
    on_case_list = _("… and %(n)s more on the case list: %(url)s")
    sections, counts = [], []
    mine = _cases_where(user, Membership.INVESTIGATOR)
    cases_url = absolute(reverse("registry:case_list"))
    if mine.exists():
        open_queries = list(
            Query.objects.filter(patient__in=mine, status=Query.OPEN)
            .select_related("patient", "content_type")
            .order_by("patient__study_id", "pk")
        )
        if open_queries:
            n = len(open_queries)
            counts.append(ngettext("%(n)s open query", "%(n)s open queries", n) % {"n": n})
            sections.append(
                _("Open queries waiting for your answer:")
                + "\n"
                + _listed(open_queries, query_line, cases_url, on_case_list)
            )
        overdue = list(
            follow_up_overdue(mine, today).order_by("study_id").values_list("pk", "study_id")
        )
        if overdue:
            n = len(overdue)
            counts.append(
                ngettext("%(n)s follow-up overdue", "%(n)s follow-ups overdue", n) % {"n": n}
            )
            months = settings.FOLLOW_UP_OVERDUE_MONTHS
            sections.append(
                _("Follow-up overdue (nothing recorded for %(months)s months):")
                % {"months": months}
                + "\n"
                + _listed(
                    overdue,
                    lambda row: (
                        f"- {row[1]}: "
                        + absolute(reverse("registry:single_record", args=[row[0], "follow-up"]))
                    ),
                    cases_url,
                    on_case_list,
                )
            )
    monitored = _cases_where(user, Membership.MONITOR)
    if monitored.exists():
        answered = list(
            Query.objects.filter(patient__in=monitored, status=Query.ANSWERED)
            .select_related("patient", "content_type")
            .order_by("patient__study_id", "pk")
        )
        if answered:
            n = len(answered)
            counts.append(
                ngettext("%(n)s answered query to close", "%(n)s answered queries to close", n)
                % {"n": n}
            )
            sections.append(
                _("Answered queries waiting to be closed:")
                + "\n"
                + _listed(
                    answered,
                    query_line,
                    absolute(reverse("monitoring:progress")),
                    _("… and %(n)s more on the monitoring pages: %(url)s"),
                )
            )
    if not sections:
        return None
    label = NotificationPreference._meta.get_field("daily_digest").verbose_name
    day = (today or timezone.localdate()).isoformat()
    body = _("Your open work in the registry on %(day)s.") % {"day": day} + "\n\n"
    body += "\n".join(sections)
    body += footer(_("you enter or monitor data at these sites"), label)
    subject = _("Your open work: %(counts)s") % {"counts": ", ".join(counts)}
    return EmailMessage(subject_prefix() + subject, body, to=[user.email])


def send_digests(today=None) -> int:
    """Send every user's digest; returns the number of messages sent."""
    users = (
        get_user_model()
        .objects.filter(is_active=True)
        .exclude(email="")
        .filter(Q(memberships__role__in=[Membership.INVESTIGATOR, Membership.MONITOR]))
        .distinct()
        .order_by("pk")
    )
    messages = [m for m in (digest_for(u, today) for u in users) if m is not None]
    return send(messages)
