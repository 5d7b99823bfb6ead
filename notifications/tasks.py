"""Celery tasks: query e-mails (queued when the query event commits) and the daily digest
(Celery beat, settings.CELERY_BEAT_SCHEDULE)."""

import logging
import smtplib

from celery import shared_task

from . import digest, mail

log = logging.getLogger(__name__)


@shared_task(bind=True, max_retries=5)
def send_query_emails(self, event_ids):
    try:
        return mail.send_for_events(event_ids)
    except (OSError, smtplib.SMTPException) as exc:
        if self.request.is_eager:  # in the web process: the request must not fail for it
            log.warning("query e-mails for events %s not sent: %s", event_ids, exc)
            return 0
        raise self.retry(exc=exc, countdown=60 * 2**self.request.retries) from exc


@shared_task
def send_daily_digests():
    return digest.send_digests()
