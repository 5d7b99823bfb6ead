"""The codebook: every variable of the case report forms and of the analysis dataset.

Built, never written by hand: CRF variables come from the model fields (verbose_name, help_text,
choices, validators, constraints, and the docstring of the rule that derives a derived field);
analysis variables come from analysis.dataset.VARIABLES, the table the SPSS/Stata exports label
their columns from. So a label changed in a model or in VARIABLES changes here too.

Labels, types, units and rules are in the page's language (README "Languages"); variable names,
codes and the CTCAE terms are the same in every language.
"""

import csv
import inspect
import io
import re
from dataclasses import dataclass

from django.core import validators as dj_validators
from django.db import models
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from analysis.dataset import DEFINITIONS, VARIABLES, definition
from registry import ctcae, rules
from registry.models import (
    Baseline,
    CrfStatus,
    Institution,
    Patient,
    ResponseAssessment,
)

from . import spec
from .safe import safe_row

ANALYSIS_DATASET = gettext_lazy("Analysis dataset (analysis_dataset.csv, SPSS/Stata exports)")

# The rule function that derives each derived field; its docstring is the rule's text.
DERIVATIONS = {
    (ResponseAssessment, "response"): rules.derive_response,
    (Baseline, "cyto_dx_risk"): rules.derive_cytogenetic_risk,
    (Baseline, "cyto_start_risk"): rules.derive_cytogenetic_risk,
}

# Analysis columns that carry a registry field unchanged (their codes and units are the field's).
DATASET_SOURCES = {
    "study_id": (Patient, "study_id"),
    "institution": (Institution, "code"),
    "sex": (Patient, "sex"),
    "salvage_phase": (Baseline, "salvage_phase"),
    "ecog": (Baseline, "ecog"),
    "prior_therapies_n": (Baseline, "prior_therapies_n"),
    "cyto_risk_diagnosis": (Baseline, "cyto_dx_risk"),
    "cyto_risk_start": (Baseline, "cyto_start_risk"),
    "relapse_site": (Baseline, "relapse_site"),
    "marrow_blasts_pct": (Baseline, "marrow_blasts_pct"),
    "pb_blasts_per_ul": (Baseline, "pb_blasts_per_ul"),
    "prior_allo_sct": (Baseline, "prior_allo_sct"),
    "dexamethasone_mg_before": (Baseline, "dexamethasone_mg_before"),
    "best_response": (ResponseAssessment, "response"),
    "response_after_cycle1": (ResponseAssessment, "response"),
}
RISK_VALUES = [
    (rules.RISK_STANDARD, gettext_lazy("Standard risk")),
    (rules.RISK_HIGH, gettext_lazy("High risk")),
]
UNIT_IN_PARENTHESES = re.compile(r"\(([^()]*)\)\s*$")


@dataclass(frozen=True)
class Variable:
    variable: str
    label: str
    type: str
    unit: str
    values: tuple[tuple[str, str], ...]  # (code, label)
    rule: str
    crf: str
    source: str  # model (registry.Model) or the analysis dataset
    template_column: str  # file:column of the import template, empty when not entered

    @property
    def values_text(self) -> str:
        return "; ".join(f"{code} = {label}" for code, label in self.values)


CSV_COLUMNS = [
    ("variable", "variable"),
    ("label", "label"),
    ("type", "type"),
    ("unit", "unit"),
    ("values_text", "allowed_values"),
    ("rule", "rule"),
    ("crf", "crf"),
    ("source", "source"),
    ("template_column", "template_column"),
]


# --- Field metadata (also used by the import template and the ODM export) ---------------------


def field_type(f: models.Field) -> str:
    if f.is_relation:
        return _("integer (cycle number)") if f.name == "cycle" else _("reference")
    if isinstance(f, models.BooleanField):
        return _("boolean")
    if isinstance(f, models.DateField):
        return _("date")
    if isinstance(f, models.DecimalField):
        return _("decimal (%(n)s decimal places)") % {"n": f.decimal_places}
    if isinstance(f, models.FloatField):
        return _("float")
    if isinstance(f, models.IntegerField):
        return _("integer")
    if f.choices or f.name in ("cyto_dx_risk", "cyto_start_risk", "ctcae_term"):
        return _("code")
    if isinstance(f, models.CharField):
        return _("text (up to %(n)s characters)") % {"n": f.max_length}
    return f.get_internal_type()


def field_unit(f: models.Field) -> str:
    """The unit a numeric field is entered in, as its label states it."""
    if isinstance(f, models.DateField):
        return _("ISO date YYYY-MM-DD")
    if not isinstance(f, models.DecimalField | models.FloatField | models.IntegerField):
        return ""
    if f.choices:
        return ""
    match = UNIT_IN_PARENTHESES.search(str(f.verbose_name))
    if match:
        return match.group(1)
    if f.name.endswith("_days"):
        return _("days")
    if f.name.endswith("_year"):
        return _("year")
    return ""


def field_values(f: models.Field) -> tuple[tuple[str, str], ...]:
    if f.name == "ctcae_term":
        return tuple(
            (
                t.term,
                _("%(soc)s; grades %(grades)s")
                % {"soc": t.soc, "grades": ", ".join(map(str, t.grades))},
            )
            for t in sorted(ctcae.terms().values(), key=lambda t: (t.soc, t.term))
        )
    if f.name in ("cyto_dx_risk", "cyto_start_risk"):
        return tuple((code, str(label)) for code, label in RISK_VALUES)
    if isinstance(f, models.BooleanField):
        return (("yes", _("Yes")), ("no", _("No")))
    if f.choices:
        return tuple((str(code), str(label)) for code, label in f.flatchoices)
    return ()


def _sentence(text) -> str:
    text = " ".join(str(text).split())
    return text if not text or text.endswith((".", ")", "?")) else text + "."


# Limits of the database column types (Django adds them to integer fields): not study rules.
COLUMN_TYPE_LIMIT = 2**31 - 1


def validator_text(v) -> str | None:
    limit = getattr(v, "limit_value", None)
    if isinstance(limit, int) and abs(limit) >= COLUMN_TYPE_LIMIT // 2:
        return None
    if isinstance(v, dj_validators.MinValueValidator):
        return _("At least %(n)s.") % {"n": v.limit_value}
    if isinstance(v, dj_validators.MaxValueValidator):
        return _("At most %(n)s.") % {"n": v.limit_value}
    if isinstance(v, dj_validators.DecimalValidator | dj_validators.MaxLengthValidator):
        return None  # the type says it
    doc = inspect.getdoc(v)
    return _sentence(doc) if doc else _sentence(v.__name__.replace("_", " ").capitalize())


def _condition_fields(q) -> set[str]:
    names = set()
    for child in getattr(q, "children", []):
        if isinstance(child, tuple):
            lookup, value = child
            names.add(lookup.split("__")[0])
            if isinstance(value, models.F):
                names.add(value.name)
        else:
            names |= _condition_fields(child)
    return names


def constraint_texts(model, name) -> list[str]:
    texts = []
    for c in model._meta.constraints:
        if isinstance(c, models.CheckConstraint) and name in _condition_fields(c.condition):
            texts.append(_("Database constraint %(name)s.") % {"name": c.name})
        elif isinstance(c, models.UniqueConstraint) and name in c.fields:
            others = [f for f in c.fields if f != name]
            texts.append(
                _("Unique with %(fields)s (%(name)s).")
                % {"fields": ", ".join(others), "name": c.name}
            )
    return texts


def field_rule(model, f: models.Field) -> str:
    parts = []
    if not f.editable:
        derive = DERIVATIONS.get((model, f.name))
        parts.append(_("Derived by the registry, never entered."))
        if derive:
            parts.append(f"{derive.__name__}: {_sentence(inspect.getdoc(derive))}")
    elif spec.field_is_required(f):
        parts.append(_("Required."))
    elif f.has_default():
        default = f.get_default()
        if isinstance(default, bool):
            default = _("yes") if default else _("no")
        parts.append(_("Optional (default %(default)s).") % {"default": default})
    else:
        parts.append(_("Optional."))
    parts += [t for t in (validator_text(v) for v in f.validators) if t]
    if f.help_text:
        parts.append(_sentence(f.help_text))
    if f.name == "ctcae_term":
        parts.append(_("One of the CTCAE v4.03 terms shipped with the registry (registry/data)."))
    if f.name == "cycle":
        parts.append(_("A cycle of the same patient."))
    parts += constraint_texts(model, f.name)
    return " ".join(parts)


def field_label(f: models.Field) -> str:
    return capfirst(str(f.verbose_name))


# --- The codebook ---------------------------------------------------------------------------


def _template_columns() -> dict:
    where = {}
    for rt in spec.RECORD_TYPES:
        for c in rt.columns:
            if c.name not in spec.KEY_COLUMNS or rt.key == "patient":
                where.setdefault((c.model, c.field), f"{rt.filename}:{c.name}")
    return where


def crf_label(crf) -> str:
    return str(dict(CrfStatus.CRF_CHOICES)[crf])


def crf_variables() -> list[Variable]:
    template = _template_columns()
    rows = []
    for model in spec.CASE_MODELS:
        crf = crf_label(CrfStatus.crf_of(model))
        fields = [
            f
            for f in model._meta.fields
            if f.name not in ("id", "patient", "created_at", "updated_at", "version", "sequence")
        ]
        for f in fields:
            rows.append(
                Variable(
                    variable=f.name,
                    label=field_label(f),
                    type=field_type(f),
                    unit=field_unit(f),
                    values=field_values(f),
                    rule=field_rule(model, f),
                    crf=crf,
                    source=f"registry.{model.__name__}",
                    template_column=template.get((model, f.name), ""),
                )
            )
    return rows


def _dataset_type(name, value_labels, source) -> str:
    if value_labels:
        return _("integer (coded)")
    if source:
        return field_type(source)
    if name.endswith(("_days", "_given", "_years")):
        return _("integer")
    if "months" in name:
        return _("float")
    return _("text")


def _dataset_unit(name, label, type_, source) -> str:
    if source:
        return field_unit(source)
    if type_ in (_("integer"), _("float")) and ", " in label:
        return label.rsplit(", ", 1)[1]
    if name.endswith("_days"):
        return _("days")
    if name.startswith("months_"):
        return _("months")
    return ""


def dataset_variables() -> list[Variable]:
    rows = []
    for name, (label, value_labels) in VARIABLES.items():
        source_model, source_field = DATASET_SOURCES.get(name, (None, None))
        source = source_model._meta.get_field(source_field) if source_model else None
        if value_labels:
            values = tuple((str(code), _(text)) for code, text in value_labels.items())
        elif source is not None and not isinstance(source, models.BooleanField):
            values = field_values(source)
        else:
            values = ()
        if name in DEFINITIONS:
            rule = definition(name, _) + " " + _("Derived by analysis.dataset.derive().")
        elif source_model is Institution:
            rule = _("The site's code (registry.Institution.code).")
        elif source is not None:
            crf = crf_label(CrfStatus.crf_of(source_model))
            rule = _("From %(field)s (%(crf)s CRF).") % {
                "field": f"registry.{source_model.__name__}.{source_field}",
                "crf": crf,
            }
        else:
            rule = _("Derived by analysis.dataset.derive() from the case records.")
        type_ = _dataset_type(name, value_labels, source)
        rows.append(
            Variable(
                variable=name,
                label=_(label),
                type=type_,
                unit=_dataset_unit(name, _(label), type_, source),
                values=values,
                rule=rule,
                crf=str(ANALYSIS_DATASET),
                source="analysis.dataset.VARIABLES",
                template_column="",
            )
        )
    return rows


def codebook() -> list[Variable]:
    return crf_variables() + dataset_variables()


def codebook_csv() -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([heading for _attr, heading in CSV_COLUMNS])
    for v in codebook():
        writer.writerow(safe_row(getattr(v, attr) for attr, _heading in CSV_COLUMNS))
    return out.getvalue()


def grouped() -> list[tuple[str, list[Variable]]]:
    """Variables by CRF, in CRF order, the analysis dataset last."""
    groups: dict[str, list[Variable]] = {}
    for v in codebook():
        groups.setdefault(v.crf, []).append(v)
    return list(groups.items())
