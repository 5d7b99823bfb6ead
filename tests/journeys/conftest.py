"""The demo registry the journeys walk through, with two-factor authentication on."""

from io import StringIO

import pytest
from django.core.management import call_command

from security.demo import ensure_demo_devices

# seed_demo's deterministic registry: with 20 patients KR01 (the investigator's site) holds 2
# cases, KR02 and KR03 (investigator2's) 1 and 2; the other sites' cases only the monitor sees.
DEMO_PATIENTS = 20
DEMO_USERS = ["admin", "investigator", "investigator2", "statistician", "monitor"]


@pytest.fixture
def demo_registry(db, settings):
    settings.REQUIRE_2FA = True  # as in production: the monitor and the admin enter a TOTP code
    # An analysis run goes to the (eager) Celery task, as with a worker: not to a thread started
    # on commit, which never comes inside a test's transaction.
    settings.ANALYSIS_IN_THREAD = False
    call_command("seed_demo", patients=DEMO_PATIENTS, allow_production=True, stdout=StringIO())
    ensure_demo_devices(DEMO_USERS)  # the authenticator apps of the monitor and the admin
