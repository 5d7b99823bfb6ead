"""Login throttling (django-axes): an authentication backend and the lockout handler."""

from axes.attempts import get_cool_off_threshold
from axes.backends import AxesStandaloneBackend
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum


class LoginAttemptsBackend(AxesStandaloneBackend):
    """Refuses a username+address that failed too often (settings.AXES_*).

    Only web requests are throttled: an `authenticate()` without a request (a management command,
    a shell) has no address to key on, so this backend steps aside instead of raising, and the
    next backend checks the password as usual.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class UsernameAndAddressHandler(AxesDatabaseHandler):
    """Two limits: AXES_FAILURE_LIMIT failures for one username from one address lock that pair
    (axes' own count), and LOGIN_ADDRESS_FAILURE_LIMIT failures from one address, whatever the
    usernames, lock the address (one guess per username over many usernames).

    axes compares every lockout parameter with one limit; the address's own, higher limit is
    added here: once it is reached, the address counts as at the pair limit for every username,
    so axes' lockout (the page, the 429, the cool-off) applies unchanged."""

    def get_failures(self, request, credentials=None) -> int:
        failures = super().get_failures(request, credentials)
        by_address = (
            AccessAttempt.objects.filter(
                ip_address=request.axes_ip_address,
                attempt_time__gte=get_cool_off_threshold(request),
            ).aggregate(n=Sum("failures_since_start"))["n"]
            or 0
        )
        if by_address >= settings.LOGIN_ADDRESS_FAILURE_LIMIT:
            return max(failures, get_failure_limit(request, credentials))
        return failures
