"""The REST API: token (or session) authentication, paginated, OpenAPI-described.

Same permissions and validation as the web forms: querysets come from registry.access, so
another site's case is a 404; every write builds the model instance and
calls full_clean(), so a rule violation is a 400 with the model's field errors; a locked CRF
refuses writes, a CRF once complete needs a change_reason, and an update must send the version
it read (a stale one is a 409, as the forms refuse concurrent overwrites).
"""

from collections.abc import Mapping

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, permissions, serializers, status, viewsets
from rest_framework.settings import api_settings

from registry.access import (
    full_access_sites,
    has_role,
    investigated_patients_for,
    readable_patients,
    registering_institutions_for,
)
from registry.models import (
    AdverseEvent,
    Baseline,
    CrfStatus,
    Cycle,
    FollowUp,
    Membership,
    Patient,
    ResponseAssessment,
    SubsequentTherapy,
    Transplant,
)

from . import spec

REASON_MAX_LENGTH = 100  # simple_history's history_change_reason column


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Another user changed this record since you read it."
    default_code = "conflict"


class RegistryPermission(permissions.BasePermission):
    """Read: any authenticated user (querysets decide what). Write: investigators, own sites."""

    message = "Only site investigators write case data, and only at their own sites."

    def has_permission(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        return has_role(request.user, Membership.INVESTIGATOR)

    def has_object_permission(self, request, view, obj):
        if request.method in permissions.SAFE_METHODS:
            return True
        patient = obj if isinstance(obj, Patient) else obj.patient
        sites = registering_institutions_for(request.user)
        return sites.filter(pk=patient.institution_id).exists()


def drf_errors(error: DjangoValidationError, rename=None) -> dict:
    rename = rename or {}
    errors = {}
    for field_name, messages in error.message_dict.items():
        key = (
            api_settings.NON_FIELD_ERRORS_KEY
            if field_name == NON_FIELD_ERRORS
            else rename.get(field_name, field_name)
        )
        errors.setdefault(key, []).extend(messages)
    return errors


class RecordSerializer(serializers.ModelSerializer):
    """Builds the model instance and runs its full_clean(): the model's rules, nothing restated."""

    version = serializers.IntegerField(
        required=False,
        help_text="The version you read; required on update (a stale version is a 409).",
    )
    change_reason = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=REASON_MAX_LENGTH,
        help_text="Why the record changes; required once its CRF has been marked complete.",
    )
    error_names: dict = {}  # model field name -> API field name

    def _patient(self, attrs):
        if isinstance(self.instance, Patient):
            return self.instance
        if self.instance is not None:
            return self.instance.patient
        return attrs.get("patient")

    def _check_workflow(self, attrs, reason):
        model = self.Meta.model
        patient = self._patient(attrs)
        if patient is None or patient.pk is None:
            return
        status_ = patient.crf_statuses.filter(crf=CrfStatus.crf_of(model)).first()
        if status_ and status_.is_locked:
            raise exceptions.PermissionDenied(f"The {status_.get_crf_display()} CRF is locked.")
        if status_ and status_.needs_reason and not reason:
            raise serializers.ValidationError(
                {"change_reason": ["This CRF has been marked complete: say why you change it."]}
            )

    def to_internal_value(self, data):
        # DRF drops unknown and read-only keys without a word: a client sending `institution` to
        # move a case, or a misspelt field, would get a 200 and a new version with nothing
        # changed. Each is refused by name instead, before anything is validated or saved.
        if isinstance(data, Mapping):
            errors = {}
            for name in data:
                if name not in self.fields:
                    errors[name] = ["Unknown field: not saved."]
                elif self.fields[name].read_only:
                    errors[name] = ["This field is read-only: it cannot be set here."]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)

    def validate(self, attrs):
        reason = (attrs.pop("change_reason", "") or "").strip()
        seen_version = attrs.pop("version", None)
        if self.instance is not None:
            if seen_version is None:
                raise serializers.ValidationError(
                    {"version": ["Send the version you read (the record's version field)."]}
                )
            if seen_version != self.instance.version:
                raise Conflict(
                    f"Not saved: the record is at version {self.instance.version}, you read "
                    f"version {seen_version}. Read it again and re-apply your change."
                )
            if "patient" in attrs and attrs["patient"].pk != self.instance.patient_id:
                raise serializers.ValidationError({"patient": ["A record cannot change case."]})
        self._check_workflow(attrs, reason)
        instance = self.instance if self.instance is not None else self.Meta.model()
        for name, value in self.model_values(attrs).items():
            setattr(instance, name, value)
        try:
            instance.full_clean()
        except DjangoValidationError as e:
            raise serializers.ValidationError(drf_errors(e, self.error_names)) from e
        self._clean_instance = instance
        self._reason = reason or None
        return attrs

    def model_values(self, attrs) -> dict:
        return attrs

    def _save(self):
        instance = self._clean_instance
        instance._history_user = self.context["request"].user
        instance._change_reason = self._reason
        instance.save()
        return instance

    def create(self, validated_data):
        return self._save()

    def update(self, instance, validated_data):
        return self._save()


class PatientSerializer(RecordSerializer):
    institution = serializers.SlugRelatedField(
        slug_field="code", queryset=Patient.objects.none(), help_text="Site code, e.g. KR01."
    )
    age_at_start = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = Patient
        fields = [
            "study_id",
            "institution",
            "site_case_number",
            *[f.name for f in spec.entered_fields(Patient)],
            "age_at_start",
            "version",
            "change_reason",
        ]
        read_only_fields = ["study_id"]

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None:
            fields["institution"].queryset = registering_institutions_for(request.user)
        if isinstance(self.instance, Patient):
            fields["institution"].read_only = True
        return fields

    def to_representation(self, instance):
        data = super().to_representation(instance)
        full_sites = self.context.get("full_sites")
        if full_sites is not None and instance.institution_id not in full_sites:
            for name in spec.IDENTIFYING_FIELDS:
                data.pop(name, None)
        return data


class CaseRecordSerializer(RecordSerializer):
    patient = serializers.SlugRelatedField(
        slug_field="study_id",
        queryset=Patient.objects.none(),
        help_text="Study ID of the case, e.g. KR01-001.",
    )

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None:
            fields["patient"].queryset = investigated_patients_for(request.user)
        return fields


class WithCycleSerializer(CaseRecordSerializer):
    """Records that refer to a cycle name it by its number within the case."""

    error_names = {"cycle": "cycle_number"}

    def model_values(self, attrs):
        values = dict(attrs)
        cycle = values.pop("cycle", None)
        number = cycle.get("number") if isinstance(cycle, dict) else None
        patient = self._patient(attrs)
        if number is None:
            if "cycle" in attrs or self.instance is None:
                values["cycle"] = None
            return values
        found = patient.cycles.filter(number=number).first() if patient else None
        if found is None:
            raise serializers.ValidationError(
                {"cycle_number": [f"{patient} has no cycle {number}."]}
            )
        values["cycle"] = found
        return values


def _model_serializer(model, base=CaseRecordSerializer):
    fields = ["id", "patient"]
    extra = {}
    for f in spec.entered_fields(model):
        if f.name == "cycle":
            fields.append("cycle_number")
            extra["cycle_number"] = serializers.IntegerField(
                source="cycle.number",
                required=not f.null,
                allow_null=f.null,
                help_text="Number of the cycle of the same case.",
            )
        else:
            fields.append(f.name)
    fields += [f.name for f in spec.derived_fields(model)]
    fields += ["version", "change_reason"]
    meta = type("Meta", (), {"model": model, "fields": fields})
    return type(f"{model.__name__}Serializer", (base,), {"Meta": meta, **extra})


BaselineSerializer = _model_serializer(Baseline)
CycleSerializer = _model_serializer(Cycle)
ResponseAssessmentSerializer = _model_serializer(ResponseAssessment, WithCycleSerializer)
AdverseEventSerializer = _model_serializer(AdverseEvent, WithCycleSerializer)
TransplantSerializer = _model_serializer(Transplant)
SubsequentTherapySerializer = _model_serializer(SubsequentTherapy)
FollowUpSerializer = _model_serializer(FollowUp)


# --- Views ----------------------------------------------------------------------------------

PATIENT_FILTER = OpenApiParameter(
    "patient", str, description="Only the records of this case (study ID)."
)
SITE_FILTER = OpenApiParameter("institution", str, description="Only the cases of this site code.")


class RegistryViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    permission_classes = [RegistryPermission]
    model = None

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if self.request is not None and self.request.user.is_authenticated:
            context["full_sites"] = full_access_sites(self.request.user)
        return context

    def get_queryset(self):
        patients = readable_patients(self.request.user)
        queryset = self.model.objects.filter(patient__in=patients)
        queryset = queryset.select_related("patient", "patient__institution")
        study_id = self.request.query_params.get("patient")
        if study_id:
            queryset = queryset.filter(patient__study_id=study_id)
        return queryset.order_by("patient__study_id", "pk")

    def get_object(self):
        obj = super().get_object()
        if self.request.method in ("PUT", "PATCH"):
            # Lock the row until the save commits, as the forms do (update runs in atomic).
            obj = type(obj).objects.select_for_update().get(pk=obj.pk)
            self.check_object_permissions(self.request, obj)
        return obj

    def create(self, request, *args, **kwargs):
        with transaction.atomic():
            return super().create(request, *args, **kwargs)

    def update(self, request, *args, **kwargs):
        with transaction.atomic():
            return super().update(request, *args, **kwargs)


def _viewset(model, serializer, one_per_case=False):
    attrs = {"model": model, "serializer_class": serializer, "queryset": model.objects.none()}
    if one_per_case:
        # One record per case: addressed by the case's study ID.
        attrs.update(lookup_field="patient__study_id", lookup_url_kwarg="study_id")
    cls = type(f"{model.__name__}ViewSet", (RegistryViewSet,), attrs)
    return extend_schema_view(list=extend_schema(parameters=[PATIENT_FILTER]))(cls)


class PatientViewSet(RegistryViewSet):
    """Cases. Investigators register cases at their own sites (the registry assigns the study
    ID); statisticians read every case de-identified."""

    model = Patient
    serializer_class = PatientSerializer
    queryset = Patient.objects.none()
    lookup_field = "study_id"

    @extend_schema(parameters=[SITE_FILTER])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def get_queryset(self):
        queryset = readable_patients(self.request.user).select_related("institution")
        site = self.request.query_params.get("institution")
        if site:
            queryset = queryset.filter(institution__code=site)
        return queryset.order_by("study_id")


BaselineViewSet = _viewset(Baseline, BaselineSerializer, one_per_case=True)
CycleViewSet = _viewset(Cycle, CycleSerializer)
ResponseAssessmentViewSet = _viewset(ResponseAssessment, ResponseAssessmentSerializer)
AdverseEventViewSet = _viewset(AdverseEvent, AdverseEventSerializer)
TransplantViewSet = _viewset(Transplant, TransplantSerializer, one_per_case=True)
SubsequentTherapyViewSet = _viewset(SubsequentTherapy, SubsequentTherapySerializer)
FollowUpViewSet = _viewset(FollowUp, FollowUpSerializer, one_per_case=True)

ROUTES = [
    ("patients", PatientViewSet),
    ("baselines", BaselineViewSet),
    ("cycles", CycleViewSet),
    ("response-assessments", ResponseAssessmentViewSet),
    ("adverse-events", AdverseEventViewSet),
    ("transplants", TransplantViewSet),
    ("subsequent-therapies", SubsequentTherapyViewSet),
    ("follow-ups", FollowUpViewSet),
]
