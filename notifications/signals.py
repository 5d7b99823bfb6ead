"""Query e-mails follow the query's thread: a QueryEvent "opened" or "answered" queues them once
its transaction commits (a rolled-back query sends nothing). Inside `batch()` (opening a query for
every edit-check finding at once) the events are collected and sent together: one e-mail per
investigator listing the queries, not one per query."""

import contextlib
import contextvars
import logging

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from monitoring.models import QueryEvent

log = logging.getLogger(__name__)
NOTIFIED = (QueryEvent.OPENED, QueryEvent.ANSWERED)
_batch = contextvars.ContextVar("notification_batch", default=None)


def _queue(event_ids):
    from .tasks import send_query_emails

    try:
        send_query_emails.delay(list(event_ids))
    except Exception as exc:  # the broker is down: send from here rather than lose them
        log.warning("job service unavailable (%s): sending query e-mails in-process", exc)
        send_query_emails.apply(args=[list(event_ids)])


@receiver(post_save, sender=QueryEvent, dispatch_uid="notifications-query-event")
def _query_event(sender, instance, created, **kwargs):
    if not (created and instance.action in NOTIFIED):
        return
    pending = _batch.get()  # the batch this event belongs to, if any, taken now
    if pending is not None:
        transaction.on_commit(lambda: pending.append(instance.pk))
    else:
        transaction.on_commit(lambda: _queue([instance.pk]))


@contextlib.contextmanager
def batch():
    """Collect the query e-mails of everything inside; send them together once committed.

    Commit callbacks run in the order they were registered, so the sending registered on leaving
    comes after every event's own, whether each query committed on its own or all commit with
    an enclosing transaction."""
    pending = []
    token = _batch.set(pending)
    try:
        yield pending
    finally:
        _batch.reset(token)
        transaction.on_commit(lambda: _queue(pending) if pending else None)
