"""Two-factor authentication is required of monitors and administrators.

After the password, a user for whom `registry.access.requires_two_factor()` holds reaches nothing
but the two-factor pages (and log out) until the session is verified with a TOTP code
(django-otp). Enforced when settings.REQUIRE_2FA is on (by default whenever DEBUG is off).
"""

import json

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django_otp import devices_for_user

from registry.access import request_memberships, requires_two_factor

# Reachable before the second factor: the two-factor pages themselves and logging out.
OPEN_BEFORE_SECOND_FACTOR = frozenset(
    {"security:two_factor_verify", "security:two_factor_setup", "logout", "admin:logout", "login"}
)
TOKEN_BY_PASSWORD = "exchange:api_token_obtain"


def two_factor_pending(user, request=None) -> bool:
    """A logged-in user who must still enter a TOTP code in this session."""
    if not getattr(settings, "REQUIRE_2FA", False) or not user.is_authenticated:
        return False
    is_verified = getattr(user, "is_verified", None)
    if is_verified is not None and is_verified():
        return False
    memberships = request_memberships(request) if request is not None else None
    return requires_two_factor(user, memberships)


def second_factor_url(user, next_url) -> str:
    name = "security:two_factor_verify"
    if not any(devices_for_user(user, confirmed=True)):
        name = "security:two_factor_setup"
    return f"{reverse(name)}?{urlencode({'next': next_url})}"


class RequireTwoFactorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = timezone.now()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        if match and match.view_name == TOKEN_BY_PASSWORD and response.status_code == 200:
            return self._token_by_password(response, started)
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        match = request.resolver_match
        view_name = match.view_name if match else ""
        user = getattr(request, "user", None)
        if (
            user is None
            or view_name in OPEN_BEFORE_SECOND_FACTOR
            or not two_factor_pending(user, request)
        ):
            return None
        if request.path_info.startswith("/api/"):
            return JsonResponse(
                {"detail": "Two-factor verification required: enter your code in the browser."},
                status=403,
            )
        return redirect(second_factor_url(user, request.get_full_path()))

    @staticmethod
    def _token_by_password(response, started):
        """A password alone never yields an API token for an account that needs two factors:
        such users create their token on /exchange/api-token/ after the TOTP step. Runs after
        the token view, so failed passwords are still counted (and locked out) by django-axes."""
        if not getattr(settings, "REQUIRE_2FA", False):
            return response
        from rest_framework.authtoken.models import Token

        try:
            key = json.loads(response.content).get("token")
        except (ValueError, AttributeError):
            return response
        token = Token.objects.select_related("user").filter(key=key).first() if key else None
        if token is None or not requires_two_factor(token.user):
            return response
        if token.created >= started:  # made by this request: nobody has seen it
            token.delete()
        return JsonResponse(
            {
                "detail": "This account uses two-factor authentication: create the API token "
                "on /exchange/api-token/ after logging in."
            },
            status=403,
        )
