"""Who writes what through the API and the imports, on registry.access (which also holds who
reads what: `readable_patients`, `full_access_sites`).

Only investigators write, and only at their own sites; superusers everywhere.
"""

from registry.access import has_role, patients_for, registering_institutions_for
from registry.models import Membership


def writable_institutions(user):
    return registering_institutions_for(user)


def writable_patients(user):
    return patients_for(user, roles=(Membership.INVESTIGATOR,))


def can_write(user) -> bool:
    return has_role(user, Membership.INVESTIGATOR)


def importing_institutions(user):
    """Sites a user may import cases into: investigators their own, superusers all."""
    return registering_institutions_for(user)
