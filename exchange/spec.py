"""What the exchange formats hold, derived from the registry's models.

One table per record type (the CSV files of the import template, the sheets of its workbook, the
ODM item groups), each column tied to a model field. Nothing here states a rule: the import, the
codebook, the API and the ODM export read labels, types and choices from the model fields, and
every rule runs in the models' full_clean().
"""

from dataclasses import dataclass, field

from django.db import models
from django.utils.translation import gettext_lazy as _

from registry.models import (
    AdverseEvent,
    Baseline,
    CrfStatus,
    Cycle,
    FollowUp,
    Patient,
    ResponseAssessment,
    SubsequentTherapy,
    Transplant,
)

# Columns that link a row to its case rather than describe it.
INSTITUTION = "institution"
STUDY_ID = "study_id"
SITE_CASE_NUMBER = "site_case_number"
CYCLE_NUMBER = "cycle_number"
KEY_COLUMNS = (INSTITUTION, STUDY_ID, SITE_CASE_NUMBER)

# Fields a site never enters: the registry assigns or derives them.
NOT_ENTERED = {"id", "patient", "institution", "site_case_number"}


def entered_fields(model) -> list[models.Field]:
    """The fields a site enters on a record of this model, in model order."""
    return [f for f in model._meta.fields if f.editable and f.name not in NOT_ENTERED]


def derived_fields(model) -> list[models.Field]:
    """Fields the registry fills in itself (study ID, derived risk and response)."""
    tracked = {"id", "created_at", "updated_at", "version", "sequence"}
    return [f for f in model._meta.fields if not f.editable and f.name not in tracked]


@dataclass(frozen=True)
class Column:
    name: str  # the template's column name
    model: type  # the model whose field it fills
    field: str  # the model field (for cycle_number on a child: the `cycle` foreign key)

    @property
    def model_field(self) -> models.Field:
        return self.model._meta.get_field(self.field)


@dataclass(frozen=True)
class RecordType:
    """One file of the import template (and one sheet of the workbook)."""

    name: str  # file stem and sheet name
    title: str
    models: tuple  # the models a row fills: the first is the record, more share its row
    key: str  # how rows link to a case: "patient" (the row is the case) or "case"
    columns: tuple[Column, ...] = field(default=())

    @property
    def filename(self) -> str:
        return f"{self.name}.csv"

    @property
    def model(self):
        return self.models[0]

    @property
    def crf(self) -> str:
        return CrfStatus.crf_of(self.model)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column_for(self, model, field_name) -> str:
        """The template column that carries a model field (for error messages)."""
        for c in self.columns:
            if c.model is model and c.field == field_name:
                return c.name
        if field_name == "patient":
            return STUDY_ID if self.key == "case" else SITE_CASE_NUMBER
        return field_name

    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if self.is_required(c)]

    def is_required(self, column: Column) -> bool:
        if column.name in KEY_COLUMNS:
            # A case row is keyed by its site case number; other rows name their case by study
            # ID or site case number (either will do); the site may come with the import.
            return self.key == "patient" and column.name == SITE_CASE_NUMBER
        return field_is_required(column.model_field)


def field_is_required(f: models.Field) -> bool:
    """A field must be filled when it has no default and may not be empty."""
    if f.is_relation:
        return not f.null
    return not (f.blank or f.null or f.has_default())


def _columns(model, rename=None) -> list[Column]:
    rename = rename or {}
    return [Column(rename.get(f.name, f.name), model, f.name) for f in entered_fields(model)]


def _case_columns(model) -> list[Column]:
    """Key columns, then the record's own fields (a cycle is named by its number)."""
    keys = [
        Column(INSTITUTION, Patient, "institution"),
        Column(STUDY_ID, Patient, "study_id"),
        Column(SITE_CASE_NUMBER, Patient, "site_case_number"),
    ]
    return keys + _columns(model, {"number": CYCLE_NUMBER, "cycle": CYCLE_NUMBER})


def _record_type(name, title, model) -> RecordType:
    return RecordType(name, title, (model,), "case", tuple(_case_columns(model)))


PATIENTS = RecordType(
    "patients",
    _("Patients with registration and baseline"),
    (Patient, Baseline),
    "patient",
    tuple(
        [
            Column(INSTITUTION, Patient, "institution"),
            Column(SITE_CASE_NUMBER, Patient, "site_case_number"),
        ]
        + _columns(Patient)
        + _columns(Baseline)
    ),
)
CYCLES = _record_type("cycles", _("Blinatumomab cycles"), Cycle)
ASSESSMENTS = _record_type("response_assessments", _("Response assessments"), ResponseAssessment)
ADVERSE_EVENTS = _record_type("adverse_events", _("Adverse events"), AdverseEvent)
TRANSPLANTS = _record_type("transplants", _("Allogeneic SCT after blinatumomab"), Transplant)
THERAPIES = _record_type("subsequent_therapies", _("Subsequent therapies"), SubsequentTherapy)
FOLLOW_UP = _record_type("follow_up", _("Follow-up"), FollowUp)

# The template's order (as a site reads its records) ...
RECORD_TYPES = [PATIENTS, CYCLES, ASSESSMENTS, ADVERSE_EVENTS, TRANSPLANTS, THERAPIES, FOLLOW_UP]
# ... and the order of import: each record's rules can see the records they depend on. Follow-up
# comes right after the case so the death date is known when later records are checked against
# it (nothing after death; grade 5 needs the death recorded on the same date).
IMPORT_ORDER = [PATIENTS, FOLLOW_UP, CYCLES, ASSESSMENTS, ADVERSE_EVENTS, TRANSPLANTS, THERAPIES]
BY_NAME = {rt.name: rt for rt in RECORD_TYPES}

# Every case record model, in CRF order, with its ODM item group name.
CASE_MODELS = [
    Patient,
    Baseline,
    Cycle,
    ResponseAssessment,
    AdverseEvent,
    Transplant,
    SubsequentTherapy,
    FollowUp,
]

# Fields a reader outside the case's own sites does not see (statisticians read de-identified
# case data: no full birth date, no site file number).
IDENTIFYING_FIELDS = {"birth_date", "site_case_number"}

BOOLEAN_TRUE = {"1", "yes", "y", "true", "t"}
BOOLEAN_FALSE = {"0", "no", "n", "false", "f"}
