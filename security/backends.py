"""Login throttling (django-axes) as an authentication backend."""

from axes.backends import AxesStandaloneBackend


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
