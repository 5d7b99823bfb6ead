"""The one navigation bar: built here from the user's roles, the same on every page (base.html,
and the admin's header through templates/admin/base_site.html). A link is shown only to the
roles whose views answer it (tests/registry/test_navigation.py walks every link as every role)."""

from dataclasses import dataclass

from django.urls import reverse
from django.utils.functional import SimpleLazyObject
from django.utils.translation import gettext_lazy as _

from .access import CASE_ROLES, request_memberships, roles_of
from .models import Membership

INVESTIGATOR, MONITOR, STATISTICIAN = (
    Membership.INVESTIGATOR,
    Membership.MONITOR,
    Membership.STATISTICIAN,
)


@dataclass(frozen=True)
class NavLink:
    key: str
    label: str
    url: str
    active: bool = False


def _links(user, roles) -> list[tuple[str, str, str]]:
    """(key, label, URL name) of every link the user may follow, in the bar's order."""
    links = []
    if roles & set(CASE_ROLES):
        links.append(("cases", _("Cases"), "registry:case_list"))
    if INVESTIGATOR in roles:
        links.append(("register", _("Register a patient"), "registry:register"))
    if MONITOR in roles or user.is_staff:  # registry.access.progress_institutions_for
        links.append(("monitoring", _("Monitoring"), "monitoring:progress"))
    if user.is_staff and MONITOR in roles:  # the admin's audit trail: monitors and superusers
        links.append(("audit", _("Audit trail"), "admin:monitoring_auditentry_changelist"))
    if roles & {STATISTICIAN, MONITOR}:  # registry.access.can_run_analyses
        links.append(("analyses", _("Analyses"), "analysis:dashboard"))
    links.append(("exchange", _("Data exchange"), "exchange:index"))  # import, codebook, API
    if user.is_staff:
        links.append(("admin", _("Admin"), "admin:index"))
    return links


def _active_key(request) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return ""
    if match.view_name == "registry:register":
        return "register"
    if match.namespace == "admin":
        return "audit" if match.url_name.startswith("monitoring_auditentry") else "admin"
    return {
        "registry": "cases",
        "monitoring": "monitoring",
        "analysis": "analyses",
        "exchange": "exchange",
    }.get(match.namespace, "")


def navigation_for(request) -> list[NavLink]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return []
    from security.middleware import two_factor_pending  # security imports registry

    if two_factor_pending(user, request):  # nothing but the code page until it is entered
        return []
    roles = roles_of(user, request_memberships(request))
    active = _active_key(request)
    return [
        NavLink(key, label, reverse(name), key == active)
        for key, label, name in _links(user, roles)
    ]


def navigation(request):
    """The navigation bar's links and the user's roles (at most one query per request, shared
    with the two-factor check and case_of(); only when a page uses them)."""

    def roles():
        user = getattr(request, "user", None)
        if user is None:
            return frozenset()
        return roles_of(user, request_memberships(request))

    return {
        "nav_links": SimpleLazyObject(lambda: navigation_for(request)),
        "nav_roles": SimpleLazyObject(roles),
    }
