"""Sites, people and cases for the monitoring tests."""

import pytest
from django.urls import reverse
from django.utils import timezone

from registry.models import CrfStatus, Membership
from tests import factories as f

PASSWORD = "pw-for-tests-1"  # tests.factories.user


def complete_all(patient, user):
    """Mark every CRF of the case complete (as the investigator's button does)."""
    now = timezone.now()
    for crf, _label in CrfStatus.CRF_CHOICES:
        status, _ = CrfStatus.objects.get_or_create(patient=patient, crf=crf)
        status.marked_complete_at = status.first_completed_at = now
        status.marked_complete_by = user
        status.refresh_status()
        status.save()


def full_case(site=None):
    """A case with a record in every CRF, every rule passing."""
    p = f.patient(site=site)
    f.baseline(p)
    c = f.cycle(p)
    f.assessment(p, c)
    f.adverse_event(p, c)
    f.followup(p)
    return p


def url(name, *args):
    return reverse(name, args=args)


@pytest.fixture
def kr01():
    return f.institution("KR01")


@pytest.fixture
def kr02():
    return f.institution("KR02", "Korea University Ansan Hospital")


@pytest.fixture
def investigator(kr01):
    """Investigator and principal investigator at KR01."""
    user = f.user("inv", sites=("KR01",))
    Membership.objects.filter(user=user).update(is_principal_investigator=True)
    return user


@pytest.fixture
def coinvestigator(kr01):
    """An investigator at KR01 who is not its principal investigator."""
    return f.user("inv2", sites=("KR01",))


@pytest.fixture
def monitor(kr01):
    """A data monitor of KR01 only (staff: works in the admin)."""
    user = f.user("mon", role=Membership.MONITOR, sites=("KR01",))
    user.is_staff = True
    user.save()
    return user


@pytest.fixture
def monitor2(kr02):
    user = f.user("mon2", role=Membership.MONITOR, sites=("KR02",))
    user.is_staff = True
    user.save()
    return user


@pytest.fixture
def superuser(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_superuser("root", password=PASSWORD)


@pytest.fixture
def case(kr01):
    return full_case(kr01)
