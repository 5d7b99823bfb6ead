"""A small two-site registry and one user per role, for the security tests.

KR01 is the home site: every object the URL walk opens belongs to it (or to nobody). KR02 holds
the users "of another site" and a case of its own, which KR01's people must never reach.
"""

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from analysis.models import AnalysisRun
from analysis.views import DASHBOARD_TABLES
from registry.models import Membership
from tests import factories as f

PASSWORD = "correct horse battery staple 42"


@dataclass
class Role:
    """Someone who requests URLs. `sites` maps a site code to the tags held there."""

    name: str
    user: object = None
    superuser: bool = False
    staff: bool = False
    sites: dict = field(default_factory=dict)

    @property
    def anonymous(self) -> bool:
        return self.user is None

    def tags_at(self, code) -> set:
        return self.sites.get(code, set())

    def has_anywhere(self, *tags) -> bool:
        return any(set(tags) & held for held in self.sites.values())


# name: (superuser, staff, {site: tags})
ROLE_SPECS = {
    "anonymous": None,
    "investigator": (False, False, {"KR01": {"investigator", "pi"}}),
    "statistician": (False, False, {"KR01": {"statistician"}}),
    "monitor": (False, True, {"KR01": {"monitor"}}),
    "superuser": (True, True, {}),
    "other_site_investigator": (False, False, {"KR02": {"investigator"}}),
    "other_site_monitor": (False, True, {"KR02": {"monitor"}}),
}
ROLE_NAMES = list(ROLE_SPECS)


def make_user(name, superuser=False, staff=False, sites=None):
    user = get_user_model().objects.create_user(
        username=name, password=PASSWORD, is_superuser=superuser, is_staff=staff
    )
    for code, tags in (sites or {}).items():
        role = next(t for t in tags if t != "pi")
        Membership.objects.create(
            user=user,
            institution=f.institution(code),
            role=role,
            is_principal_investigator="pi" in tags,
        )
    return user


def totp_device(user):
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


def full_case(site):
    """A case with one record of every kind; returns (patient, {kind slug: record pk})."""
    p = f.patient(site=site)
    f.baseline(p)
    c = f.cycle(p)
    a = f.assessment(p, c)
    ae = f.adverse_event(p, c)
    f.transplant(p)
    t = p.subsequent_therapies.create(category="other", regimen="Inotuzumab", start_date=f.START)
    f.followup(p)
    records = {
        "cycles": c.pk,
        "assessments": a.pk,
        "adverse-events": ae.pk,
        "subsequent-therapies": t.pk,
    }
    return p, records


def fake_succeeded_run(out: Path, user) -> AnalysisRun:
    """A succeeded run whose output directory holds a minimal table of each dashboard file."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    for name in DASHBOARD_TABLES:
        (out / name).write_text("a,b\n1,2\n")
    files = list(DASHBOARD_TABLES)
    (out / "run.json").write_text(json.dumps({"files": files, "notes": {}}))
    return AnalysisRun.objects.create(
        created_by=user, status=AnalysisRun.SUCCEEDED, output_path=str(out), progress_pct=100
    )


@dataclass
class World:
    roles: dict
    home: object  # the KR01 case
    home_records: dict
    foreign: object  # the KR02 case
    foreign_records: dict
    run: AnalysisRun
    query: object = None
    finding: object = None
    devices: dict = field(default_factory=dict)


@pytest.fixture
def world(db, tmp_path):
    kr01 = f.institution("KR01")
    kr02 = f.institution("KR02", "Korea University Ansan Hospital")
    roles = {}
    for name, spec in ROLE_SPECS.items():
        if spec is None:
            roles[name] = Role(name)
            continue
        superuser, staff, sites = spec
        user = make_user(name, superuser, staff, sites)
        roles[name] = Role(name, user, superuser, staff, sites)
    home, home_records = full_case(kr01)
    foreign, foreign_records = full_case(kr02)
    run = fake_succeeded_run(tmp_path / "run", roles["statistician"].user)
    w = World(roles, home, home_records, foreign, foreign_records, run)
    for role in roles.values():
        if role.user is not None and (role.staff or role.has_anywhere("monitor")):
            w.devices[role.name] = totp_device(role.user)
    try:
        from monitoring import services
        from monitoring.models import Finding
    except ImportError:  # the monitoring app is not installed
        return w
    w.query = services.open_query(home, "baseline", "Source?", roles["monitor"].user)
    w.finding = Finding.objects.create(
        key=f"test:{home.pk}", rule="test", patient=home, crf="baseline", message="Check me"
    )
    return w


def log_in(client, world, role_name):
    """Log the client in as the role; users who need two factors are OTP-verified."""
    client.logout()
    role = world.roles[role_name]
    if role.user is None:
        return client
    client.force_login(role.user)
    device = world.devices.get(role_name)
    if device is not None:
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()
    return client
