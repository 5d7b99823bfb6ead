from django.utils.functional import SimpleLazyObject

from .access import request_memberships
from .models import Membership


def navigation(request):
    """The user's roles, for the navigation bar (at most one query per request, shared with the
    two-factor check and case_of(); only when a page uses it)."""

    def roles():
        user = request.user
        if not user.is_authenticated:
            return set()
        found = {role for _site, role in request_memberships(request)}
        if user.is_superuser:
            found |= {Membership.INVESTIGATOR, Membership.STATISTICIAN, Membership.MONITOR}
        return found

    return {"nav_roles": SimpleLazyObject(roles)}
