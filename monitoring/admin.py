"""Admin for the monitoring records and the audit trail.

All of it is read-only for everyone, superusers included: queries move through the case page,
locks and signatures through the monitoring pages, and audit records never change. Monitors see
their own sites (registry.admin.SiteScopedAdmin).
"""

from django.contrib import admin
from django.http import HttpResponse
from django.urls import path, reverse
from django.utils import timezone, translation
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from registry.admin import SiteScopedAdmin, site_filter, user_filter

from . import audit
from .models import AuditEntry, EditCheckRun, Finding, LockEvent, Query, QueryEvent, Signature


class ReadOnlyAdmin(SiteScopedAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class QueryEventInline(admin.TabularInline):
    model = QueryEvent
    fields = ["at", "user", "action", "message"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return True  # shown only inside the query's own (scoped) page


@admin.register(Query)
class QueryAdmin(ReadOnlyAdmin):
    list_display = ["id", "patient", "crf", "target_label", "status", "opened_by", "opened_at"]
    list_filter = [site_filter("patient__institution"), "status", "crf", "opened_at"]
    search_fields = ["patient__study_id", "message"]
    list_select_related = ["patient", "opened_by", "content_type"]
    inlines = [QueryEventInline]
    readonly_fields = ["case_page"]

    @admin.display(description=_("case page"))
    def case_page(self, obj):
        url = reverse("registry:case", args=[obj.patient_id])
        text = gettext("answer, close or re-open there")
        return format_html('<a href="{}#query-{}">{}</a>', url, obj.pk, text)


@admin.register(Finding)
class FindingAdmin(ReadOnlyAdmin):
    list_display = ["patient", "crf", "record_label", "field_name", "rule", "message"]
    list_filter = [site_filter("patient__institution"), "rule", "crf"]
    search_fields = ["patient__study_id"]
    list_select_related = ["patient"]


@admin.register(EditCheckRun)
class EditCheckRunAdmin(ReadOnlyAdmin):
    site_path = "institution"
    list_display = ["institution", "ran_at", "ran_by", "findings_n", "queries_closed_n"]
    list_filter = [site_filter("institution")]


@admin.register(Signature)
class SignatureAdmin(ReadOnlyAdmin):
    list_display = ["patient", "signed_by", "signed_at", "state", "void_reason"]
    list_filter = [site_filter("patient__institution"), ("voided_at", admin.EmptyFieldListFilter)]
    search_fields = ["patient__study_id"]
    list_select_related = ["patient", "signed_by"]

    @admin.display(description=_("state"))
    def state(self, obj):
        if obj.voided_at:
            return format_html(
                "<strong>{}</strong>",
                gettext("VOIDED %(date)s") % {"date": f"{obj.voided_at:%Y-%m-%d}"},
            )
        return gettext("valid")


@admin.register(LockEvent)
class LockEventAdmin(ReadOnlyAdmin):
    site_path = "institution"
    list_display = ["at", "institution", "patient", "action", "user", "reason"]
    list_filter = [site_filter("institution"), "action"]
    search_fields = ["patient__study_id"]


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """Every change to case data (django-simple-history), filterable and exportable as CSV."""

    site_path = "institution"
    list_display = [
        "history_date",
        "history_user",
        "institution",
        "study_id",
        "model",
        "object_id",
        "history_type",
        "changes",
        "history_change_reason",
    ]
    list_filter = [
        user_filter("history_user"),
        site_filter("institution"),
        "model",
        "history_type",
        "history_date",
    ]
    date_hierarchy = "history_date"
    search_fields = ["=study_id"]
    list_select_related = ["history_user", "institution"]
    list_per_page = 100
    show_full_result_count = False
    fields = [
        "history_date",
        "history_user",
        "institution",
        "study_id",
        "model",
        "object_id",
        "history_type",
        "changes",
        "history_change_reason",
    ]
    readonly_fields = fields

    def get_changelist(self, request, **kwargs):
        base = super().get_changelist(request, **kwargs)

        class AuditChangeList(base):
            def get_results(self, request):
                super().get_results(request)
                rows = list(self.result_list)
                described = audit.describe_entries(rows)
                for row in rows:
                    row.changes_text = described.get(row.id, "")

        return AuditChangeList

    @admin.display(description=_("changes"))
    def changes(self, obj):
        text = getattr(obj, "changes_text", None)
        if text is None:
            text = audit.describe_entries([obj]).get(obj.id, "")
        return text

    def get_urls(self):
        export = path(
            "export/",
            self.admin_site.admin_view(self.export_csv),
            name="monitoring_auditentry_export",
        )
        return [export, *super().get_urls()]

    def export_csv(self, request):
        """The changelist's rows, with its filters, as CSV."""
        if not self.has_view_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        entries = changelist.get_queryset(request)
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="audit-trail-{stamp}.csv"'
        # A file for the study's records: in English whatever the page's language (README
        # "Languages"), as every export is.
        with translation.override("en"):
            audit.write_csv(entries, response)
        return response
