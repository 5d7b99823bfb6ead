"""The user's interface language (README "Languages").

A logged-in user's choice is kept in their profile (NotificationPreference.language: "en", "ko",
or empty for "my browser's language"). It is copied into the session when they log in and when
they change it, so UserLanguageMiddleware activates it without a query per request. Without a
saved choice, LocaleMiddleware's answer stands: Django's language cookie (set by the switcher for
visitors who are not logged in), else the browser's Accept-Language, else English.
"""

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import HttpResponseBadRequest, HttpResponseRedirect
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

SESSION_KEY = "registry_language"
API_PREFIX = "/api/"


def supported(code) -> bool:
    return code in dict(settings.LANGUAGES)


def saved_language(user) -> str:
    """The language saved in `user`'s profile, or "" (follow the browser)."""
    from .models import NotificationPreference

    if not (user and user.is_authenticated):
        return ""
    pref = NotificationPreference.objects.filter(user=user).values_list("language", flat=True)
    code = pref.first() or ""
    return code if supported(code) else ""


def remember(request, code: str):
    """Keep the user's saved choice in the session (the middleware reads it from there)."""
    if hasattr(request, "session"):
        request.session[SESSION_KEY] = code


@receiver(user_logged_in, dispatch_uid="notifications-user-language")
def _on_login(sender, request, user, **kwargs):
    if request is not None:
        remember(request, saved_language(user))


class UserLanguageMiddleware:
    """After LocaleMiddleware and authentication: a logged-in user's saved language wins over the
    cookie and the browser's Accept-Language."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info.startswith(API_PREFIX):
            # The API is language-independent: codes, and its messages in English.
            translation.activate(settings.LANGUAGE_CODE)
            request.LANGUAGE_CODE = settings.LANGUAGE_CODE
            return self.get_response(request)
        session = getattr(request, "session", None)
        code = session.get(SESSION_KEY, "") if session is not None else ""
        if code and supported(code):
            translation.activate(code)
            request.LANGUAGE_CODE = code
        return self.get_response(request)


def email_language(user) -> str:
    """The language of e-mail to `user`: their saved one, else the site's default."""
    return saved_language(user) or settings.LANGUAGE_CODE


@require_POST
def set_language(request):
    """The navigation's language switcher: POST `language` (en, ko) and `next` (the page to go
    back to). Saved in the profile when logged in; Django's language cookie either way."""
    code = request.POST.get("language", "")
    if not supported(code):
        return HttpResponseBadRequest("Unknown language.")
    next_url = request.POST.get("next") or request.META.get("HTTP_REFERER") or "/"
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = "/"
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        from .models import NotificationPreference

        NotificationPreference.objects.update_or_create(user=user, defaults={"language": code})
        remember(request, code)
    translation.activate(code)
    response = HttpResponseRedirect(next_url)
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        code,
        max_age=settings.LANGUAGE_COOKIE_AGE,
        path=settings.LANGUAGE_COOKIE_PATH,
        domain=settings.LANGUAGE_COOKIE_DOMAIN,
        secure=settings.LANGUAGE_COOKIE_SECURE or request.is_secure(),
        httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
        samesite=settings.LANGUAGE_COOKIE_SAMESITE,
    )
    return response
