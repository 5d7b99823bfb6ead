"""Who may see what: the one place that scopes querysets to a user's sites and roles.

Every view that shows case data starts from `patients_for(request.user)`; a case outside that
queryset is a 404, so a guessed ID reveals nothing.
"""

from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

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


def patients_for(user, roles=(Membership.INVESTIGATOR, Membership.MONITOR), memberships=None):
    """Cases the user may open: those of the sites where they are investigator or monitor.

    `memberships`: the user's request_memberships(), when the caller has them: the same sites as
    a list of IDs instead of a subquery (half the CPU of building the query, on every case URL)."""
    if memberships is not None and user.is_authenticated and not user.is_superuser:
        sites = sorted({site for site, role in memberships if role in roles})
        return Patient.objects.filter(institution_id__in=sites)
    return Patient.objects.filter(institution__in=institutions_for(user, roles))


def has_role(user, *roles) -> bool:
    if not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    return Membership.objects.filter(user=user, role__in=roles).exists()


CASE_ROLES = (Membership.INVESTIGATOR, Membership.MONITOR)


def case_institutions_for(user):
    """Sites whose cases the user may open (the case list's site switcher)."""
    return institutions_for(user, CASE_ROLES)


def archive_institutions_for(user):
    """Sites whose case-book archive (every case book of the site) the user may build and
    download: the sites whose every case they may open (casebook/)."""
    return case_institutions_for(user)


def registering_institutions_for(user):
    """Sites where the user may register new patients: investigators only."""
    return institutions_for(user, (Membership.INVESTIGATOR,))


# --- Whole-registry reading: analyses, API, ODM export -------------------------------------------
#
# Who reads every site's data: working-party statisticians (de-identified: no names, only study
# IDs, and the fields in exchange.spec.IDENTIFYING_FIELDS, full birth date and the site's own
# case number, left out for cases outside their own case sites), monitors of every site and
# superusers. A monitor of some sites reads those sites, an investigator theirs, nobody more:
# the API, the ODM export and the analysis dataset download all ask the functions below.


def is_statistician(user) -> bool:
    return institutions_for(user, (Membership.STATISTICIAN,)).exists()


def monitors_every_site(user) -> bool:
    """A monitor at every site of the registry (a site added later narrows them to a
    single-site monitor until they are given it too)."""
    monitored = Membership.objects.filter(user=user, role=Membership.MONITOR)
    return (
        monitored.exists()
        and not Institution.objects.exclude(pk__in=monitored.values("institution")).exists()
    )


def reads_whole_registry(user) -> bool:
    """Statisticians, monitors of every site and superusers read every site's data."""
    if not user.is_authenticated:
        return False
    return user.is_superuser or is_statistician(user) or monitors_every_site(user)


def readable_patients(user):
    """Cases the user may read through the API and the ODM export: whole-registry readers every
    case (statisticians de-identified outside `full_access_sites`), everyone else the cases
    they may open."""
    if reads_whole_registry(user):
        return Patient.objects.all()
    return patients_for(user)


# --- Analyses ------------------------------------------------------------------------------------
#
# An analysis run covers the whole registry, so runs (starting one, its pages, its tables and
# files) are for whole-registry readers. A monitor of some sites downloads the analysis dataset of
# their sites only and sees no run; investigators reach no analysis.


def can_run_analyses(user) -> bool:
    """Start runs, see them and download their files: whole-registry readers."""
    return reads_whole_registry(user)


def analysis_patients_for(user):
    """The patients of the analysis dataset the user may download: every patient for
    whole-registry readers, a monitor's own sites, nobody else's."""
    if reads_whole_registry(user):
        return Patient.objects.all()
    return monitored_patients_for(user)


def can_open_analyses(user) -> bool:
    """The analyses page: whole-registry readers, and monitors for their sites' dataset."""
    return reads_whole_registry(user) or has_role(user, Membership.MONITOR)


def full_access_sites(user) -> set[int]:
    """Sites whose cases the user reads with identifying fields."""
    return set(case_institutions_for(user).values_list("pk", flat=True))


# --- Data monitoring ------------------------------------------------------------------------------


def monitored_institutions_for(user):
    """Sites the user monitors (all for superusers): queries, checks, verification, locks."""
    return institutions_for(user, (Membership.MONITOR,))


def monitored_patients_for(user):
    """Cases the user monitors."""
    return patients_for(user, roles=(Membership.MONITOR,))


def investigated_patients_for(user):
    """Cases the user enters data for (answers queries on): investigators of the case's site."""
    return patients_for(user, roles=(Membership.INVESTIGATOR,))


def is_principal_investigator(user, institution) -> bool:
    """The site's principal investigator signs its cases (a superuser is not one by default)."""
    if not user.is_authenticated:
        return False
    return Membership.objects.filter(
        user=user, institution=institution, is_principal_investigator=True
    ).exists()


def progress_institutions_for(user):
    """Sites on the progress page (counts only): superusers all; monitors the sites they monitor;
    other staff users (the coordinating centre) all sites; anyone else none."""
    if not user.is_authenticated:
        return Institution.objects.none()
    if user.is_superuser:
        return Institution.objects.all()
    monitored = monitored_institutions_for(user)
    if monitored.exists() or not user.is_staff:
        return monitored
    return Institution.objects.all()


def admin_institutions_for(user):
    """Sites whose data a user sees in the Django admin: superusers all, monitors (staff) theirs."""
    if not (user.is_authenticated and user.is_staff):
        return Institution.objects.none()
    return monitored_institutions_for(user)


def is_admin_monitor(user) -> bool:
    """A staff user who monitors at least one site: views the admin for those sites."""
    return bool(user.is_authenticated and user.is_staff) and (
        Membership.objects.filter(user=user, role=Membership.MONITOR).exists()
    )


def scope_to_sites(queryset, user, site_path: str):
    """`queryset` limited to the admin sites of `user`; `site_path` leads to the Institution
    (e.g. "patient__institution"; "pk" for institutions themselves)."""
    if user.is_superuser:
        return queryset
    return queryset.filter(**{f"{site_path}__in": admin_institutions_for(user)})


# --- Two-factor authentication (security/middleware.py) ---------------------------------------

TWO_FACTOR_ROLES = (Membership.MONITOR,)


def requires_two_factor(user, memberships=None) -> bool:
    """Monitors and administrators (staff, superusers) verify a TOTP code after the password.

    `memberships`: the user's request_memberships(), when the caller has them."""
    if not user.is_authenticated:
        return False
    if user.is_staff or user.is_superuser:
        return True
    memberships = memberships_of(user) if memberships is None else memberships
    return any(role in TWO_FACTOR_ROLES for _site, role in memberships)


def may_change_case(user, patient, memberships=None) -> bool:
    """Case data is entered and changed by the investigators of the case's site (and
    superusers); monitors read it and raise queries, statisticians never open it.

    `memberships`: the user's request_memberships(), when the caller has them."""
    if not user.is_authenticated:
        return False
    memberships = memberships_of(user) if memberships is None else memberships
    return user.is_superuser or (patient.institution_id, Membership.INVESTIGATOR) in memberships


MAY_NOT_CHANGE = _("Monitors read cases and raise queries; the site's investigators change them.")


@dataclass(frozen=True)
class CaseRights:
    """What one user may do on one case, decided once per page and handed to its templates, so
    a page offers only the actions the user may take (the views refuse the rest with the same
    facts: case_of() for the role, the CRF's lock for the data)."""

    may_change: bool  # the case's data: its site's investigators (and superusers)
    locked_crfs: frozenset  # CRFs locked (by the case's lock or its site's): nobody changes them

    def may_edit(self, crf) -> bool:
        """Add, edit, remove records of the CRF and mark it complete."""
        return self.may_change and crf not in self.locked_crfs

    def why_not(self, crf) -> str:
        """Why may_edit(crf) is false ("" when it is true)."""
        if not self.may_change:
            return MAY_NOT_CHANGE
        if crf in self.locked_crfs:
            return _("This CRF is locked: nothing in it changes until a monitor unlocks it.")
        return ""


def case_rights(user, patient, statuses, memberships=None) -> CaseRights:
    """`statuses`: the case's CrfStatus rows as loaded for the page (CrfStatus.for_patient())."""
    return CaseRights(
        may_change=may_change_case(user, patient, memberships),
        locked_crfs=frozenset(s.crf for s in statuses if s.is_locked),
    )


# --- Roles as the navigation and the landing page read them --------------------------------------


def roles_of(user, memberships) -> frozenset[str]:
    """The user's roles at any site (`memberships`: request_memberships()); a superuser holds
    every role."""
    if not user.is_authenticated:
        return frozenset()
    if user.is_superuser:
        return frozenset(role for role, _label in Membership.ROLE_CHOICES)
    return frozenset(role for _site, role in memberships)


def landing_url(user, memberships) -> str | None:
    """Where a user without case access works instead (None: the case list is their page).
    Statisticians open no case: they land on the analyses."""
    roles = roles_of(user, memberships)
    if roles & set(CASE_ROLES):
        return None
    if Membership.STATISTICIAN in roles:
        return "analysis:dashboard"
    return None


# --- Per request ---------------------------------------------------------------------------------


def request_memberships(request) -> frozenset[tuple[int, str]]:
    """(site id, role) of every membership of the request's user, read once per request.

    The two-factor middleware, the navigation bar and case_of() each need the user's roles; this
    is one query per request instead of one each. Kept on the request (not on the user object)
    and keyed by the user, so it never outlives the request nor follows a log-in or log-out."""
    user = request.user
    key = user.pk if user.is_authenticated else None
    cached = getattr(request, "_registry_memberships", None)
    if cached is None or cached[0] != key:
        cached = request._registry_memberships = (key, memberships_of(user))
    return cached[1]


def memberships_of(user) -> frozenset[tuple[int, str]]:
    """(site id, role) of every membership of the user (one query; none when logged out)."""
    if not user.is_authenticated:
        return frozenset()
    return frozenset(Membership.objects.filter(user=user).values_list("institution_id", "role"))


# --- Exports -------------------------------------------------------------------------------------
#
# A download or background export of case data covers what the user reads: the cases of the API
# and the ODM export (readable_patients), or for the analysis dataset analysis_patients_for. A
# background job fixes its scope when it is asked for ("registry", or the site codes) and reads,
# when it runs, the cases of that scope the user still reads.

WHOLE_REGISTRY = "registry"


def export_scope(user, dataset=False) -> str | None:
    """ "registry" for whole-registry readers; otherwise the codes of the sites whose cases the
    user reads (for the dataset: the sites they monitor), space-separated; None: no site."""
    if dataset and not can_open_analyses(user):
        return None
    if reads_whole_registry(user):
        return WHOLE_REGISTRY
    sites = institutions_for(user, (Membership.MONITOR,) if dataset else CASE_ROLES)
    codes = sorted(sites.values_list("code", flat=True))
    return " ".join(codes) or None


def export_scope_allowed(user, scope: str, dataset=False) -> bool:
    """Whether the user still reads everything an export of `scope` holds (its download)."""
    now = export_scope(user, dataset)
    if now is None:
        return False
    if now == WHOLE_REGISTRY:
        return True
    return scope != WHOLE_REGISTRY and set(scope.split()) <= set(now.split())


def exported_patients(user, scope: str, dataset=False):
    """The cases an export of `scope` holds for `user`, as the user's rights are now."""
    patients = analysis_patients_for(user) if dataset else readable_patients(user)
    if scope != WHOLE_REGISTRY:
        patients = patients.filter(institution__code__in=scope.split())
    return patients
