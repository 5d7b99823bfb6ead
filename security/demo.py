"""Demo TOTP devices: seed_demo gives the demo's monitor and admin an authenticator secret."""

import base64

from django.contrib.auth import get_user_model
from django_otp.plugins.otp_totp.models import TOTPDevice

from registry.access import requires_two_factor


def ensure_demo_devices(usernames) -> list[tuple[str, str, str]]:
    """(username, base32 secret, otpauth URI) of a confirmed TOTP device for each user who
    needs two factors; an existing device is kept, so the secret stays the same across runs."""
    rows = []
    for user in get_user_model().objects.filter(username__in=usernames).order_by("username"):
        if not requires_two_factor(user):
            continue
        device = TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()
        if device is None:
            device = TOTPDevice.objects.create(user=user, name="demo", confirmed=True)
        rows.append((user.username, base64.b32encode(device.bin_key).decode(), device.config_url))
    return rows
