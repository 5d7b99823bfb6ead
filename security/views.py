"""The second factor: verify a TOTP code, or enrol an authenticator app (django-otp TOTP devices).

Enrolment shows the secret as text, as an otpauth:// URI and as a QR code drawn on the server
(segno, an inline SVG): nothing is sent to an outside QR service. A user who already has a
confirmed device cannot add another here (an administrator resets it in the admin).
"""

import base64

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django_otp import devices_for_user, match_token
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice


class TokenForm(forms.Form):
    token = forms.CharField(
        label=_("Code from your authenticator app"),
        max_length=8,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )

    def clean_token(self):
        return self.cleaned_data["token"].strip().replace(" ", "")


def _next(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, {request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return settings.LOGIN_REDIRECT_URL


def _with_next(name, request) -> str:
    return f"{reverse(name)}?{urlencode({'next': _next(request)})}"


def _has_device(user) -> bool:
    return any(devices_for_user(user, confirmed=True))


@never_cache
@sensitive_post_parameters("token")
@login_required
def two_factor_verify(request):
    if not _has_device(request.user):
        return redirect(_with_next("security:two_factor_setup", request))
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device = match_token(request.user, form.cleaned_data["token"])
        if device is not None:
            otp_login(request, device)
            return redirect(_next(request))
        form.add_error("token", _("That code is not valid (or too many tries: wait a moment)."))
    return render(
        request, "registration/two_factor_verify.html", {"form": form, "next": _next(request)}
    )


@never_cache
@sensitive_post_parameters("token")
@login_required
def two_factor_setup(request):
    user = request.user
    if _has_device(user):
        return redirect(_with_next("security:two_factor_verify", request))
    if not settings.OTP_SELF_ENROLMENT:
        return render(request, "registration/two_factor_setup.html", {"self_enrolment": False})
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if device.verify_token(form.cleaned_data["token"]):
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            TOTPDevice.objects.filter(user=user, confirmed=False).delete()
            otp_login(request, device)
            return redirect(_next(request))
        form.add_error("token", _("That code does not match: check the clock of your phone."))
    context = {
        "self_enrolment": True,
        "form": form,
        "next": _next(request),
        "secret": base64.b32encode(device.bin_key).decode(),
        "config_url": device.config_url,
        "qr_data_uri": _qr_data_uri(device.config_url),
    }
    return render(request, "registration/two_factor_setup.html", context)


def _qr_data_uri(text) -> str:
    import segno

    return segno.make(text, error="m").svg_data_uri(scale=5, border=2)
