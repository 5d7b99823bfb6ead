from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from . import models


@admin.register(models.Institution)
class InstitutionAdmin(admin.ModelAdmin):
    list_display = ["code", "name"]
    search_fields = ["code", "name"]


@admin.register(models.Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "institution", "role", "is_principal_investigator"]
    list_filter = ["role", "institution"]
    search_fields = ["user__username", "institution__code"]


class CaseRecordInline(admin.TabularInline):
    extra = 0
    show_change_link = True


class CycleInline(CaseRecordInline):
    model = models.Cycle
    fields = ["number", "start_date", "end_date", "outcome"]


class AssessmentInline(CaseRecordInline):
    model = models.ResponseAssessment
    fields = ["cycle", "assessment_date", "marrow_blasts_pct", "response"]
    readonly_fields = ["response"]


class AdverseEventInline(CaseRecordInline):
    model = models.AdverseEvent
    fields = ["ctcae_term", "grade", "onset_date", "outcome"]


@admin.register(models.Patient)
class PatientAdmin(SimpleHistoryAdmin):
    list_display = ["study_id", "institution", "sex", "blinatumomab_start_date"]
    list_filter = ["institution", "sex"]
    search_fields = ["study_id", "site_case_number"]
    readonly_fields = ["study_id", "age_at_start"]
    inlines = [CycleInline, AssessmentInline, AdverseEventInline]
    list_select_related = ["institution"]


class PatientRecordAdmin(SimpleHistoryAdmin):
    search_fields = ["patient__study_id"]
    list_select_related = ["patient", "patient__institution"]
    raw_id_fields = ["patient"]

    def get_list_filter(self, request):
        return ["patient__institution", *self.list_filter]


@admin.register(models.Baseline)
class BaselineAdmin(PatientRecordAdmin):
    list_display = ["patient", "ecog", "salvage_phase", "relapse_site", "cyto_start_risk"]
    list_filter = ["relapse_site", "cyto_start_risk"]
    readonly_fields = ["cyto_dx_risk", "cyto_start_risk"]


@admin.register(models.Cycle)
class CycleAdmin(PatientRecordAdmin):
    list_display = ["patient", "number", "start_date", "end_date", "outcome"]
    list_filter = ["outcome"]


@admin.register(models.ResponseAssessment)
class ResponseAssessmentAdmin(PatientRecordAdmin):
    list_display = ["patient", "cycle", "assessment_date", "response"]
    list_filter = ["response"]
    readonly_fields = ["response"]
    raw_id_fields = ["patient", "cycle"]


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
