"""Who reads and writes what through the API and the exports, built on registry.access.

- Investigators and monitors read the cases of their own sites in full (registry.access).
- Working-party statisticians read every site's cases de-identified: case data carry no names,
  only study IDs, and the fields in exchange.spec.IDENTIFYING_FIELDS (full birth date, the site's
  own case number) are left out for cases outside their own case sites. This is what the analysis
  dataset already reads (analysis.dataset.load_registry reads every case).
- Only investigators write, and only at their own sites; superusers everywhere.
"""

from registry.access import (
    case_institutions_for,
    has_role,
    institutions_for,
    patients_for,
    registering_institutions_for,
)
from registry.models import Membership, Patient


def is_statistician(user) -> bool:
    return institutions_for(user, (Membership.STATISTICIAN,)).exists()


def readable_patients(user):
    if not user.is_authenticated:
        return Patient.objects.none()
    if is_statistician(user):
        return Patient.objects.all()
    return patients_for(user)


def full_access_sites(user) -> set[int]:
    """Sites whose cases the user reads with identifying fields."""
    return set(case_institutions_for(user).values_list("pk", flat=True))


def writable_institutions(user):
    return registering_institutions_for(user)


def writable_patients(user):
    return patients_for(user, roles=(Membership.INVESTIGATOR,))


def can_write(user) -> bool:
    return has_role(user, Membership.INVESTIGATOR)


def importing_institutions(user):
    """Sites a user may import cases into: investigators their own, superusers all."""
    return registering_institutions_for(user)
