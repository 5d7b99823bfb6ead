"""API tokens expire and die with the password.

A token is valid for settings.API_TOKEN_TTL_DAYS from its creation (DRF's Token keeps the time
it was created, so no field of our own is needed); an expired token is a 401 that says so and
where to get a new one. Changing a user's password deletes their tokens, whatever path changed
it (the admin's forms, set_password() and save() in a shell): a token must not outlive the
password that was leaked.

(No DRF views imported here: REST_FRAMEWORK's settings import this module.)
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import get_hasher, identify_hasher
from django.db.models.signals import post_save, pre_save
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token


def expires_at(token):
    return token.created + timedelta(days=settings.API_TOKEN_TTL_DAYS)


def is_expired(token) -> bool:
    return timezone.now() >= expires_at(token)


class ExpiringTokenAuthentication(TokenAuthentication):
    """DRF's token authentication, refusing tokens past their expiry."""

    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)
        if is_expired(token):
            raise exceptions.AuthenticationFailed(
                f"This API token expired on {expires_at(token):%Y-%m-%d %H:%M} UTC: create a new "
                "one on /exchange/api-token/."
            )
        return user, token


def current_token(user, renew_expired=False):
    """The user's token (None without one); with `renew_expired`, a new one replaces an expired
    one and one is created when there is none."""
    token = Token.objects.filter(user=user).first()
    if renew_expired and (token is None or is_expired(token)):
        Token.objects.filter(user=user).delete()
        token = Token.objects.create(user=user)
    return token


# --- Revoked when the password changes ------------------------------------------------------------


def _hash_upgrade(user, old_hash) -> bool:
    """Django re-hashes the same password at log-in when the hasher or its work factor changed
    (check_password's setter, which clears `_password`): not a new password."""
    if getattr(user, "_password", None) is not None:  # set_password() in this save
        return False
    try:
        old = identify_hasher(old_hash)
    except ValueError:
        return False
    preferred = get_hasher("default")
    return old.algorithm != preferred.algorithm or preferred.must_update(old_hash)


def _note_password_change(sender, instance, update_fields=None, raw=False, **kwargs):
    instance._revoke_api_tokens = False
    if raw or instance.pk is None:
        return
    if update_fields is not None and "password" not in update_fields:
        return  # e.g. last_login at every log-in: no query
    stored = sender._default_manager.filter(pk=instance.pk).values_list("password", flat=True)
    old_hash = stored.first()
    instance._revoke_api_tokens = (
        old_hash is not None
        and old_hash != instance.password
        and not _hash_upgrade(instance, old_hash)
    )


def _revoke_tokens(sender, instance, **kwargs):
    if getattr(instance, "_revoke_api_tokens", False):
        Token.objects.filter(user=instance).delete()
        instance._revoke_api_tokens = False


def connect_signals():
    user_model = get_user_model()
    pre_save.connect(_note_password_change, sender=user_model, dispatch_uid="api_token_pw_pre")
    post_save.connect(_revoke_tokens, sender=user_model, dispatch_uid="api_token_pw_post")
