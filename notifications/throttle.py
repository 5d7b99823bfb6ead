"""Password reset requests are throttled per client address and per e-mail address.

PASSWORD_RESET_ADDRESS_LIMIT requests from one address, or PASSWORD_RESET_EMAIL_LIMIT for one
e-mail address, within PASSWORD_RESET_WINDOW_MINUTES: beyond either, no e-mail is sent. Counted in
the database, so every web process (gunicorn worker) sees the same counts.
"""

import hashlib
from datetime import timedelta

from axes.helpers import get_client_ip_address
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import PasswordResetRequest

ADDRESS, EMAIL = "address", "email"


def _digest(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def record_and_check(request, email) -> str | None:
    """Record this request; return which limit it is over (ADDRESS, EMAIL) or None."""
    now = timezone.now()
    since = now - timedelta(minutes=settings.PASSWORD_RESET_WINDOW_MINUTES)
    address = get_client_ip_address(request) or None
    digest = _digest(email)
    with transaction.atomic():
        PasswordResetRequest.objects.filter(at__lt=since).delete()
        PasswordResetRequest.objects.create(at=now, address=address, email_sha256=digest)
        recent = PasswordResetRequest.objects.filter(at__gte=since)
        if (
            address
            and recent.filter(address=address).count() > settings.PASSWORD_RESET_ADDRESS_LIMIT
        ):
            return ADDRESS
        if recent.filter(email_sha256=digest).count() > settings.PASSWORD_RESET_EMAIL_LIMIT:
            return EMAIL
    return None
