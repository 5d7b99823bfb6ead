"""Who may see what: the one place that scopes querysets to a user's sites and roles.

Every view that shows case data starts from `patients_for(request.user)`; a case outside that
queryset is a 404, so a guessed ID reveals nothing.
"""

from .models import Institution, Membership, Patient


def institutions_for(user, roles=None):
    if not user.is_authenticated:
        return Institution.objects.none()
    if user.is_superuser:
        return Institution.objects.all()
    memberships = Membership.objects.filter(user=user)
    if roles:
        memberships = memberships.filter(role__in=roles)
    return Institution.objects.filter(pk__in=memberships.values("institution"))


def patients_for(user, roles=(Membership.INVESTIGATOR, Membership.MONITOR)):
    """Cases the user may open: those of the sites where they are investigator or monitor."""
    return Patient.objects.filter(institution__in=institutions_for(user, roles))


def has_role(user, *roles) -> bool:
    if not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    return Membership.objects.filter(user=user, role__in=roles).exists()


def can_run_analyses(user) -> bool:
    return has_role(user, Membership.STATISTICIAN, Membership.MONITOR)


CASE_ROLES = (Membership.INVESTIGATOR, Membership.MONITOR)


def case_institutions_for(user):
    """Sites whose cases the user may open (the case list's site switcher)."""
    return institutions_for(user, CASE_ROLES)


def registering_institutions_for(user):
    """Sites where the user may register new patients: investigators only."""
    return institutions_for(user, (Membership.INVESTIGATOR,))
