"""Each user's preferences: every kind of e-mail can be turned off in the profile, and the
language of the interface and of their e-mail is kept here (notifications.language)."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class NotificationPreference(models.Model):
    """No row means the defaults: every message on, the browser's language."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="notification_preference",
    )
    query_opened = models.BooleanField(
        _("a query is opened on a case of my sites"),
        default=True,
        help_text=_("Investigators: sent when a monitor opens a query at your site."),
    )
    query_answered = models.BooleanField(
        _("a query I opened is answered"),
        default=True,
        help_text=_("Monitors: sent when an investigator answers your query."),
    )
    daily_digest = models.BooleanField(
        _("daily digest of my open work"),
        default=True,
        help_text=_(
            "Open queries and overdue follow-up (investigators), answered queries waiting "
            "to be closed (monitors). Sent only when there is something to do."
        ),
    )
    language = models.CharField(
        _("language"),
        max_length=8,
        choices=settings.LANGUAGES,
        blank=True,
        default="",
        help_text=_(
            "The language of the pages and of your e-mail. Empty: your browser's language "
            "(e-mail in English)."
        ),
    )

    KINDS = ("query_opened", "query_answered", "daily_digest")

    class Meta:
        verbose_name = _("notification preference")
        verbose_name_plural = _("notification preferences")

    def __str__(self):
        return f"E-mail preferences of {self.user}"

    @classmethod
    def wants(cls, user, kind) -> bool:
        """Does `user` want this kind of message (and can receive e-mail at all)?"""
        if not (user and user.is_active and user.email):
            return False
        pref = cls.objects.filter(user=user).first()
        return getattr(pref, kind) if pref is not None else True


class PasswordResetRequest(models.Model):
    """One request on the password reset page, kept for the throttle's window
    (notifications.throttle). The e-mail address is kept as a SHA-256 only."""

    at = models.DateTimeField(db_index=True)
    address = models.GenericIPAddressField(_("client address"), null=True)
    email_sha256 = models.CharField(max_length=64, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["address", "at"])]
        verbose_name = _("password reset request")
        verbose_name_plural = _("password reset requests")
