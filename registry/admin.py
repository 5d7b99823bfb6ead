"""The Django admin for every registry model.

Superusers see and (subject to locks) change everything. Monitors are staff users with monitor
memberships: they see the records of the sites they monitor (registry.access.scope_to_sites),
read-only unless granted Django permissions; a record of another site is "not found". Derived
fields are read-only; a case's records are inlines of the case, each linking to its own page.
"""

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from simple_history.admin import SimpleHistoryAdmin

from . import models, rules
from .access import is_admin_monitor, scope_to_sites

BOOKKEEPING = ["version", "created_at", "updated_at"]


def _is_monitor(request) -> bool:
    """is_admin_monitor() once per request: the admin asks for every model in the sidebar."""
    cached = getattr(request, "_registry_admin_monitor", None)
    if cached is None:
        cached = request._registry_admin_monitor = is_admin_monitor(request.user)
    return cached


def _in_scope(model_admin, request, obj) -> bool:
    if obj is None or request.user.is_superuser:
        return True
    return model_admin.get_queryset(request).filter(pk=obj.pk).exists()


class SiteScopedAdmin(admin.ModelAdmin):
    """Querysets limited to the user's admin sites; monitors may view them."""

    site_path = "patient__institution"  # from the model to its Institution
    # The filtered count is shown; a second count of every in-scope record ("of N total") joined
    # each record to its case again on every page (0.3-1.3 s for a monitor at 100,000 cases).
    show_full_result_count = False

    def get_queryset(self, request):
        return scope_to_sites(super().get_queryset(request), request.user, self.site_path)

    def has_module_permission(self, request):
        return super().has_module_permission(request) or _is_monitor(request)

    def has_view_permission(self, request, obj=None):
        allowed = super().has_view_permission(request, obj) or _is_monitor(request)
        return allowed and _in_scope(self, request, obj)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and _in_scope(self, request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and _in_scope(self, request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.related_model
        if related is models.Patient:
            kwargs["queryset"] = scope_to_sites(
                models.Patient.objects.all(), request.user, "institution"
            )
        elif related is models.Institution:
            kwargs["queryset"] = scope_to_sites(
                models.Institution.objects.all(), request.user, "pk"
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    # A locked case refuses changes in the model layer; say so instead of a bare 403.
    def _refused(self, request, error):
        self.message_user(request, str(error.args[0] if error.args else error), messages.ERROR)
        return HttpResponseRedirect(request.get_full_path())

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except models.CaseLocked as e:
            return self._refused(request, e)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except models.CaseLocked as e:
            return self._refused(request, e)

    def delete_queryset(self, request, queryset):
        try:
            with transaction.atomic():
                super().delete_queryset(request, queryset)
        except models.CaseLocked as e:
            self.message_user(request, gettext("Nothing deleted: %s") % e, messages.ERROR)


class ScopedInline:
    """Inlines follow their case's permissions: monitors view them."""

    extra = 0
    show_change_link = True

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) or _is_monitor(request)


# --- Filters ------------------------------------------------------------------------------------


class CaseCrfStatusFilter(admin.SimpleListFilter):
    """Cases with at least one CRF in a status."""

    title = _("CRF status")
    parameter_name = "crf_status"

    def lookups(self, request, model_admin):
        stored = [
            (value, label)
            for value, label in models.CrfStatus.STATUS_CHOICES
            if value not in (models.CrfStatus.NOT_STARTED, models.CrfStatus.IN_PROGRESS)
        ]
        return [*stored, ("incomplete", _("Some CRF not complete"))]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if value == "incomplete":
            complete = (
                models.CrfStatus.objects.filter(marked_complete_at__isnull=False)
                .values("patient")
                .order_by()
                .annotate(n=Count("pk"))
                .filter(n=len(models.CrfStatus.CRF_CHOICES))
                .values("patient")
            )
            return queryset.exclude(pk__in=complete)
        statuses = models.CrfStatus.objects.filter(patient=OuterRef("pk"), status=value)
        return queryset.filter(Exists(statuses))


class RecordCrfStatusFilter(admin.SimpleListFilter):
    """Records whose CRF (of their case) is in a status."""

    title = _("CRF status")
    parameter_name = "crf_status"

    def __init__(self, request, params, model, model_admin):
        self.crf = models.CrfStatus.crf_of(model)
        super().__init__(request, params, model, model_admin)

    def lookups(self, request, model_admin):
        return [
            (value, label)
            for value, label in models.CrfStatus.STATUS_CHOICES
            if value != models.CrfStatus.NOT_STARTED
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        stored = models.CrfStatus.objects.filter(patient=OuterRef("patient"), crf=self.crf)
        if value == models.CrfStatus.IN_PROGRESS:  # no row, or a row saying so
            other = stored.exclude(
                status__in=[models.CrfStatus.IN_PROGRESS, models.CrfStatus.NOT_STARTED]
            )
            return queryset.exclude(Exists(other))
        return queryset.filter(Exists(stored.filter(status=value)))


class ResponseReachedFilter(admin.SimpleListFilter):
    title = _("response (any assessment)")
    parameter_name = "response"

    def lookups(self, request, model_admin):
        return rules.RESPONSE_CHOICES

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        found = models.ResponseAssessment.objects.filter(
            patient=OuterRef("pk"), response=self.value()
        )
        return queryset.filter(Exists(found))


class AdverseEventGradeFilter(admin.SimpleListFilter):
    title = _("adverse event grade")
    parameter_name = "ae_grade"

    def lookups(self, request, model_admin):
        return [(str(g), gettext("Grade %(grade)s") % {"grade": g}) for g in range(1, 6)]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        found = models.AdverseEvent.objects.filter(patient=OuterRef("pk"), grade=self.value())
        return queryset.filter(Exists(found))


class SiteListFilter(admin.RelatedFieldListFilter):
    """The sites the user administers. RelatedOnlyFieldListFilter would run a DISTINCT over every
    record of the list on each page view (a second per page at 100,000 patients)."""

    def field_choices(self, field, request, model_admin):
        sites = scope_to_sites(models.Institution.objects.all(), request.user, "pk")
        return [(site.pk, str(site)) for site in sites.order_by("code")]


def site_filter(path):
    return (path, SiteListFilter)


class SiteUserListFilter(admin.RelatedFieldListFilter):
    """People who may have changed the sites' data: members of the sites the user administers,
    and superusers (listed by user name; a site list here filtered users by site IDs)."""

    def field_choices(self, field, request, model_admin):
        sites = scope_to_sites(models.Institution.objects.all(), request.user, "pk")
        people = field.related_model._default_manager.filter(
            Q(memberships__institution__in=sites) | Q(is_superuser=True)
        )
        return [(u.pk, u.get_username()) for u in people.distinct().order_by("username")]


def user_filter(path):
    return (path, SiteUserListFilter)


# --- Sites and people ---------------------------------------------------------------------------


@admin.register(models.Institution)
class InstitutionAdmin(SiteScopedAdmin):
    site_path = "pk"
    list_display = ["code", "name", "locked_at"]
    search_fields = ["code", "name"]
    readonly_fields = ["locked_at", "locked_by"]


@admin.register(models.Membership)
class MembershipAdmin(SiteScopedAdmin):
    site_path = "institution"
    list_display = ["user", "institution", "role", "is_principal_investigator"]
    list_filter = ["role", site_filter("institution")]
    search_fields = ["user__username", "institution__code"]


# --- The case and its records ---------------------------------------------------------------------


class BaselineInline(ScopedInline, admin.StackedInline):
    model = models.Baseline
    fields = ["ecog", "salvage_phase", "relapse_site", "marrow_blasts_pct", "cyto_start_risk"]
    readonly_fields = ["cyto_start_risk"]
    max_num = 1


class CycleInline(ScopedInline, admin.TabularInline):
    model = models.Cycle
    fields = ["number", "start_date", "end_date", "outcome"]


class AssessmentInline(ScopedInline, admin.TabularInline):
    model = models.ResponseAssessment
    fields = ["cycle", "assessment_date", "marrow_blasts_pct", "response"]
    readonly_fields = ["response"]
    # A select of every cycle in the registry on every row: 9,000 queries at 10,000 patients.
    raw_id_fields = ["cycle"]


class AdverseEventInline(ScopedInline, admin.TabularInline):
    model = models.AdverseEvent
    fields = ["ctcae_term", "grade", "onset_date", "outcome"]


class TransplantInline(ScopedInline, admin.TabularInline):
    model = models.Transplant
    fields = ["sct_date", "donor_type"]
    max_num = 1


class SubsequentTherapyInline(ScopedInline, admin.TabularInline):
    model = models.SubsequentTherapy
    fields = ["category", "regimen", "start_date"]


class FollowUpInline(ScopedInline, admin.TabularInline):
    model = models.FollowUp
    fields = ["last_contact_date", "vital_status", "death_date"]
    max_num = 1


class CrfStatusInline(ScopedInline, admin.TabularInline):
    model = models.CrfStatus
    fields = ["crf", "status", "marked_complete_at", "open_queries", "verified_at", "locked_at"]
    readonly_fields = fields
    can_delete = False
    max_num = 0


@admin.register(models.Patient)
class PatientAdmin(SiteScopedAdmin, SimpleHistoryAdmin):
    site_path = "institution"
    list_display = ["study_id", "institution", "sex", "blinatumomab_start_date", "signed"]
    list_filter = [
        site_filter("institution"),
        CaseCrfStatusFilter,
        ResponseReachedFilter,
        AdverseEventGradeFilter,
        "sex",
    ]
    search_fields = ["study_id", "site_case_number"]
    readonly_fields = ["study_id", "age_at_start", "monitoring", *BOOKKEEPING]
    inlines = [
        CrfStatusInline,
        BaselineInline,
        CycleInline,
        AssessmentInline,
        AdverseEventInline,
        TransplantInline,
        SubsequentTherapyInline,
        FollowUpInline,
    ]
    list_select_related = ["institution"]

    def get_queryset(self, request):
        # "signed" in one subquery, not one query per row of the change list.
        signatures = models.Patient.signatures.rel.related_model.objects.filter(
            patient=OuterRef("pk"), voided_at__isnull=True
        )
        return super().get_queryset(request).annotate(has_signature=Exists(signatures))

    @admin.display(boolean=True, description=_("signed"))
    def signed(self, obj):
        if hasattr(obj, "has_signature"):
            return obj.has_signature
        return obj.signatures.filter(voided_at__isnull=True).exists()

    @admin.display(description=_("monitoring"))
    def monitoring(self, obj):
        if obj.pk is None:
            return "—"
        signature = obj.signatures.order_by("-signed_at").first()
        if signature is None:
            state = gettext("not signed")
        elif signature.voided_at:
            state = gettext("signature of %(who)s VOIDED on %(date)s: %(reason)s") % {
                "who": signature.signed_by,
                "date": f"{signature.voided_at:%Y-%m-%d}",
                "reason": signature.void_reason,
            }
        else:
            state = gettext("signed by %(who)s on %(when)s") % {
                "who": signature.signed_by,
                "when": f"{signature.signed_at:%Y-%m-%d %H:%M}",
            }
        return format_html(
            '<a href="{}">{}</a> · <a href="{}?patient__id__exact={}">{}</a> · '
            '<a href="{}?q={}">{}</a> · {}',
            reverse("registry:case", args=[obj.pk]),
            gettext("case page"),
            reverse("admin:monitoring_query_changelist"),
            obj.pk,
            gettext("queries"),
            reverse("admin:monitoring_auditentry_changelist"),
            obj.study_id,
            gettext("audit trail"),
            state,
        )


class PatientRecordAdmin(SiteScopedAdmin, SimpleHistoryAdmin):
    search_fields = ["patient__study_id"]
    list_select_related = ["patient", "patient__institution"]
    raw_id_fields = ["patient"]
    readonly_fields = BOOKKEEPING

    def get_list_filter(self, request):
        return [site_filter("patient__institution"), RecordCrfStatusFilter, *self.list_filter]


@admin.register(models.Baseline)
class BaselineAdmin(PatientRecordAdmin):
    list_display = ["patient", "ecog", "salvage_phase", "relapse_site", "cyto_start_risk"]
    list_filter = ["relapse_site", "cyto_start_risk"]
    readonly_fields = ["cyto_dx_risk", "cyto_start_risk", *BOOKKEEPING]


@admin.register(models.Cycle)
class CycleAdmin(PatientRecordAdmin):
    list_display = ["patient", "number", "start_date", "end_date", "outcome"]
    list_filter = ["outcome"]


@admin.register(models.ResponseAssessment)
class ResponseAssessmentAdmin(PatientRecordAdmin):
    list_display = ["patient", "cycle", "assessment_date", "response"]
    list_filter = ["response"]
    readonly_fields = ["response", *BOOKKEEPING]
    raw_id_fields = ["patient", "cycle"]
    list_select_related = [*PatientRecordAdmin.list_select_related, "cycle__patient"]


@admin.register(models.AdverseEvent)
class AdverseEventAdmin(PatientRecordAdmin):
    list_display = ["patient", "ctcae_term", "grade", "onset_date", "serious"]
    list_filter = ["grade", "serious"]
    raw_id_fields = ["patient", "cycle"]


@admin.register(models.Transplant)
class TransplantAdmin(PatientRecordAdmin):
    list_display = ["patient", "sct_date", "donor_type"]


@admin.register(models.SubsequentTherapy)
class SubsequentTherapyAdmin(PatientRecordAdmin):
    list_display = ["patient", "category", "regimen", "start_date"]


@admin.register(models.FollowUp)
class FollowUpAdmin(PatientRecordAdmin):
    list_display = ["patient", "vital_status", "last_contact_date", "death_date"]
    list_filter = ["vital_status"]


@admin.register(models.CrfStatus)
class CrfStatusAdmin(SiteScopedAdmin, SimpleHistoryAdmin):
    """Read-only: statuses change through "mark complete" and the monitoring actions."""

    list_display = ["patient", "crf", "status", "open_queries", "verified_at", "locked_at"]
    list_filter = [site_filter("patient__institution"), "status", "crf"]
    search_fields = ["patient__study_id"]
    list_select_related = ["patient"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
