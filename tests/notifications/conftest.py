"""A real SMTP server (aiosmtpd) on a free loopback port, and the registry's e-mail settings
pointed at it through EMAIL_URL, as a deployment would set them."""

import email
import email.policy
import re
import socket
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller

from config.email import email_settings
from tests.monitoring.conftest import (  # noqa: F401 - fixtures
    case,
    coinvestigator,
    complete_all,
    full_case,
    investigator,
    kr01,
    kr02,
    monitor,
    monitor2,
    superuser,
    url,
)

SITE_URL = "https://registry.example.org"


@dataclass
class Inbox:
    """Every message the server accepted: (envelope recipients, parsed message)."""

    received: list = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.received.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def to(self, address):
        return [m for rcpt, m in self.received if address in rcpt]


def body(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def links(message) -> list[str]:
    return re.findall(rf"{re.escape(SITE_URL)}(/\S*)", body(message))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp(settings):
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        env = {
            "EMAIL_URL": f"smtp://127.0.0.1:{controller.port}",
            "DEFAULT_FROM_EMAIL": "registry@example.org",
        }
        for name, value in email_settings(env, debug=True).items():
            setattr(settings, name, value)
        settings.SITE_URL = SITE_URL
        yield inbox
    finally:
        controller.stop()


@pytest.fixture
def with_emails(investigator, coinvestigator, monitor):  # noqa: F811 - the fixtures
    investigator.email = "inv@site01.example.org"
    investigator.save()
    monitor.email = "mon@cro.example.org"
    monitor.save()
    return investigator, monitor
