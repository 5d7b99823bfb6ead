from django.utils.functional import SimpleLazyObject

from .models import Membership


def navigation(request):
    """The user's roles, for the navigation bar (one query, only when a page uses it)."""

    def roles():
        user = request.user
        if not user.is_authenticated:
            return set()
        found = set(Membership.objects.filter(user=user).values_list("role", flat=True))
        if user.is_superuser:
            found |= {Membership.INVESTIGATOR, Membership.STATISTICIAN, Membership.MONITOR}
        return found

    return {"nav_roles": SimpleLazyObject(roles)}
