"""CDISC ODM 1.3.2 export: the study definition (one FormDef per CRF, built from the model fields)
and the clinical data of the cases a user may read (one SubjectData per case, keyed by study ID).

The document validates against the ODM 1.3.2 schema vendored in exchange/schemas/ (see
tests/exchange/test_odm.py).
"""

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from xml.etree import ElementTree as ET

from django.core import validators as dj_validators
from django.db import models
from django.utils import timezone

from registry.models import CrfStatus, Cycle, Institution, Patient

from . import codebook, spec

NS = "http://www.cdisc.org/ns/odm/v1.3"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
SCHEMA = Path(__file__).resolve().parent / "schemas" / "odm1.3.2" / "ODM1-3-2.xsd"
STUDY_OID = "ST.BLINA-RR-ALL"
MDV_OID = "MDV.1"
EVENT_OID = "SE.CASE"
STUDY_NAME = "Blinatumomab R/R ALL registry"
STUDY_DESCRIPTION = (
    "Retrospective multi-site registry of blinatumomab in adults with relapsed/refractory "
    "Philadelphia-negative B-cell precursor ALL (Korean Society of Hematology ALL Working Party)."
)
PROTOCOL_NAME = "KSH ALL WP blinatumomab R/R ALL registry"
# Registry-managed columns that are not CRF data.
NOT_ITEMS = {"id", "patient", "institution", "study_id", "sequence"}
NOT_ITEMS |= {"created_at", "updated_at", "version"}

ET.register_namespace("", NS)


def _q(tag):
    return f"{{{NS}}}{tag}"


def _el(parent, tag, text=None, **attrs):
    element = ET.SubElement(parent, _q(tag), {k: str(v) for k, v in attrs.items() if v != ""})
    if text is not None:
        element.text = str(text)
    return element


def _translated(parent, tag, text):
    wrapper = _el(parent, tag)
    translated = _el(wrapper, "TranslatedText", text)
    translated.set(XML_LANG, "en")
    return wrapper


# --- Study definition ---------------------------------------------------------------------


def group_oid(model) -> str:
    return f"IG.{model.__name__.upper()}"


def form_oid(crf) -> str:
    return f"F.{crf.upper()}"


def item_fields(model) -> list[models.Field]:
    return [f for f in model._meta.fields if f.name not in NOT_ITEMS]


def item_name(f) -> str:
    return spec.CYCLE_NUMBER if f.is_relation else f.name


def item_oid(model, f) -> str:
    return f"IT.{model.__name__.upper()}.{item_name(f).upper()}"


def codelist_oid(model, f) -> str:
    return f"CL.{model.__name__.upper()}.{f.name.upper()}"


def is_repeating(model) -> bool:
    if model is Patient:
        return False
    return not isinstance(model._meta.get_field("patient"), models.OneToOneField)


def crf_models() -> list[tuple[str, list]]:
    """(crf, [models]) in CRF order; the registration (Patient) belongs to the baseline CRF."""
    by_crf = {crf: [] for crf, _label in CrfStatus.CRF_CHOICES}
    for model in spec.CASE_MODELS:
        by_crf[CrfStatus.crf_of(model)].append(model)
    return [(crf, ms) for crf, ms in by_crf.items() if ms]


def _data_type(f) -> dict:
    if f.is_relation:
        return {"DataType": "integer", "Length": 2}
    if isinstance(f, models.BooleanField):
        return {"DataType": "boolean"}
    if isinstance(f, models.DateField):
        return {"DataType": "date"}
    if isinstance(f, models.DecimalField):
        return {
            "DataType": "float",
            "Length": f.max_digits,
            "SignificantDigits": f.decimal_places,
        }
    if isinstance(f, models.FloatField):
        return {"DataType": "float"}
    if isinstance(f, models.IntegerField):
        maximum = max(
            (v.limit_value for v in f.validators if isinstance(v, dj_validators.MaxValueValidator)),
            default=None,
        )
        length = len(str(maximum)) if maximum and maximum < 10**9 else 10
        return {"DataType": "integer", "Length": length}
    return {"DataType": "text", "Length": f.max_length or 200}


def _range_checks(item, f):
    if f.is_relation or isinstance(f, models.BooleanField | models.DateField):
        return
    for v in f.validators:
        limit = getattr(v, "limit_value", None)
        if not isinstance(limit, int | float | Decimal) or abs(limit) >= 2**30:
            continue  # database column limits, not study rules
        if isinstance(v, dj_validators.MinValueValidator):
            comparator = "GE"
        elif isinstance(v, dj_validators.MaxValueValidator):
            comparator = "LE"
        else:
            continue
        check = _el(item, "RangeCheck", Comparator=comparator, SoftHard="Hard")
        _el(check, "CheckValue", limit)
        _translated(check, "ErrorMessage", codebook.validator_text(v))


def _units(models_by_crf) -> dict[str, str]:
    units = {}
    for _crf, ms in models_by_crf:
        for model in ms:
            for f in item_fields(model):
                unit = codebook.field_unit(f)
                if unit and not isinstance(f, models.DateField) and unit not in units:
                    units[unit] = f"MU.{len(units) + 1}"
    return units


def study_element(root):
    crfs = crf_models()
    study = _el(root, "Study", OID=STUDY_OID)
    variables = _el(study, "GlobalVariables")
    _el(variables, "StudyName", STUDY_NAME)
    _el(variables, "StudyDescription", STUDY_DESCRIPTION)
    _el(variables, "ProtocolName", PROTOCOL_NAME)
    units = _units(crfs)
    if units:
        basic = _el(study, "BasicDefinitions")
        for unit, oid in units.items():
            mu = _el(basic, "MeasurementUnit", OID=oid, Name=unit)
            _translated(mu, "Symbol", unit)
    mdv = _el(
        study, "MetaDataVersion", OID=MDV_OID, Name="Registry case report forms", Description=""
    )
    protocol = _el(mdv, "Protocol")
    _el(protocol, "StudyEventRef", StudyEventOID=EVENT_OID, OrderNumber=1, Mandatory="Yes")
    event = _el(mdv, "StudyEventDef", OID=EVENT_OID, Name="Registry case", Repeating="No")
    event.set("Type", "Common")
    for order, (crf, _models) in enumerate(crfs, start=1):
        mandatory = "Yes" if crf in CrfStatus.NEEDS_RECORD else "No"
        _el(event, "FormRef", FormOID=form_oid(crf), OrderNumber=order, Mandatory=mandatory)
    for crf, ms in crfs:
        form = _el(mdv, "FormDef", OID=form_oid(crf), Name=codebook.crf_label(crf), Repeating="No")
        for order, model in enumerate(ms, start=1):
            _el(form, "ItemGroupRef", ItemGroupOID=group_oid(model), OrderNumber=order)
            form[-1].set("Mandatory", "No" if is_repeating(model) else "Yes")
    for _crf, ms in crfs:
        for model in ms:
            repeating = "Yes" if is_repeating(model) else "No"
            name = str(model._meta.verbose_name)
            group = _el(mdv, "ItemGroupDef", OID=group_oid(model), Name=name, Repeating=repeating)
            for order, f in enumerate(item_fields(model), start=1):
                mandatory = "Yes" if f.editable and spec.field_is_required(f) else "No"
                _el(
                    group,
                    "ItemRef",
                    ItemOID=item_oid(model, f),
                    OrderNumber=order,
                    Mandatory=mandatory,
                )
    codelists = []
    for _crf, ms in crfs:
        for model in ms:
            for f in item_fields(model):
                item = _el(mdv, "ItemDef", OID=item_oid(model, f), Name=item_name(f))
                for attr, value in _data_type(f).items():
                    item.set(attr, str(value))
                if not f.editable:
                    item.set("Origin", "Derived")
                _translated(item, "Description", codebook.field_rule(model, f))
                _translated(item, "Question", codebook.field_label(f))
                unit = codebook.field_unit(f)
                if unit in units:
                    _el(item, "MeasurementUnitRef", MeasurementUnitOID=units[unit])
                _range_checks(item, f)
                values = codebook.field_values(f)
                if values and not isinstance(f, models.BooleanField):
                    _el(item, "CodeListRef", CodeListOID=codelist_oid(model, f))
                    codelists.append((model, f, values))
    for model, f, values in codelists:
        data_type = "integer" if isinstance(f, models.IntegerField) else "text"
        codelist = _el(
            mdv, "CodeList", OID=codelist_oid(model, f), Name=item_name(f), DataType=data_type
        )
        for code, label in values:
            entry = _el(codelist, "CodeListItem", CodedValue=code)
            _translated(entry, "Decode", label)
    return study


# --- Clinical data --------------------------------------------------------------------------


def _value(value) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _item_group_data(form, model, record, repeat_key, hidden):
    attrs = {"ItemGroupOID": group_oid(model)}
    if repeat_key is not None:
        attrs["ItemGroupRepeatKey"] = repeat_key
    group = _el(form, "ItemGroupData", **attrs)
    for f in item_fields(model):
        if f.name in hidden:
            continue
        if f.is_relation:
            cycle = getattr(record, f.name)
            value = cycle.number if cycle else None
        else:
            value = getattr(record, f.attname)
        text = _value(value)
        if text is not None:
            _el(group, "ItemData", ItemOID=item_oid(model, f), Value=text)


def _records(patient, model):
    if model is type(patient):
        return [patient]
    name = model._meta.get_field("patient").remote_field.get_accessor_name()
    if not is_repeating(model):
        record = getattr(patient, name, None)
        return [record] if record else []
    return list(getattr(patient, name).all())


def subject_element(patient, crfs, hidden):
    """One case's SubjectData: a FormData per CRF that has records."""
    subject = ET.Element(_q("SubjectData"), {"SubjectKey": patient.study_id})
    _el(subject, "SiteRef", LocationOID=location_oid(patient.institution))
    event = _el(subject, "StudyEventData", StudyEventOID=EVENT_OID)
    for crf, ms in crfs:
        rows = [(m, _records(patient, m)) for m in ms]
        if not any(records for _m, records in rows):
            continue
        form = _el(event, "FormData", FormOID=form_oid(crf))
        for model, records in rows:
            for n, record in enumerate(records, start=1):
                key = None
                if is_repeating(model):
                    key = record.number if isinstance(record, Cycle) else n
                _item_group_data(form, model, record, key, hidden)
    return subject


BATCH = 500  # cases per query: prefetching bounds the IN lists (SQLite caps expression depth)


def _batches(patients):
    """The cases in study ID order, BATCH at a time, with their records prefetched."""
    related = ["baseline", "transplant", "followup"]
    prefetch = ["cycles", "assessments__cycle", "adverse_events__cycle", "subsequent_therapies"]
    ids = list(patients.order_by("study_id").values_list("pk", flat=True))
    for start in range(0, len(ids), BATCH):
        yield (
            Patient.objects.filter(pk__in=ids[start : start + BATCH])
            .select_related("institution", *related)
            .prefetch_related(*prefetch)
            .order_by("study_id")
        )


def location_oid(institution) -> str:
    return f"LOC.{institution.code}"


def admin_data_element(root, institutions):
    admin = _el(root, "AdminData", StudyOID=STUDY_OID)
    today = timezone.localdate().isoformat()
    for site in institutions.order_by("code"):
        location = _el(
            admin, "Location", OID=location_oid(site), Name=str(site), LocationType="Site"
        )
        _el(
            location,
            "MetaDataVersionRef",
            StudyOID=STUDY_OID,
            MetaDataVersionOID=MDV_OID,
            EffectiveDate=today,
        )
    return admin


def _fragment(element, level: int) -> str:
    """An element as indented text at `level`, to be placed inside the ODM root: its namespace is
    the root's default one, so the declaration ElementTree repeats on it is dropped."""
    ET.indent(element, space="  ", level=level)
    text = ET.tostring(element, encoding="unicode")
    return "  " * level + text.replace(f' xmlns="{NS}"', "", 1) + "\n"


def odm_chunks(patients=None, full_sites=None, on_cases=None):
    """The ODM file as a stream of UTF-8 chunks: the study definition, then the clinical data of
    `patients` (when given) one batch of cases at a time, so memory stays flat however many
    cases there are. `full_sites`: institution pks whose cases keep identifying fields
    (None: every site). `on_cases(n)`: called after each batch of n cases (a job's progress)."""
    now = timezone.now().replace(microsecond=0)
    root = ET.Element(
        _q("ODM"),
        {
            "FileType": "Snapshot",
            "FileOID": f"BLINA-REGISTRY-{now:%Y%m%dT%H%M%S}",
            "CreationDateTime": now.isoformat(),
            "ODMVersion": "1.3.2",
            "Originator": STUDY_NAME,
            "SourceSystem": "blinatumomab-registry",
        },
    )
    opening = ET.tostring(root, encoding="unicode").replace(" />", ">")
    yield f"<?xml version='1.0' encoding='UTF-8'?>\n{opening}\n".encode()
    yield _fragment(study_element(root), 1).encode()
    if patients is not None:
        sites = Institution.objects.filter(pk__in=patients.values("institution"))
        if sites.exists():
            yield _fragment(admin_data_element(root, sites), 1).encode()
        clinical = _el(root, "ClinicalData", StudyOID=STUDY_OID, MetaDataVersionOID=MDV_OID)
        yield _fragment(clinical, 1).replace(" />\n", ">\n").encode()  # its opening tag
        crfs = crf_models()
        for batch in _batches(patients):
            parts = []
            for patient in batch:
                full = full_sites is None or patient.institution_id in full_sites
                hidden = set() if full else spec.IDENTIFYING_FIELDS
                parts.append(_fragment(subject_element(patient, crfs, hidden), 2))
            yield "".join(parts).encode()
            if on_cases is not None:
                on_cases(len(parts))
        yield b"  </ClinicalData>\n"
    yield b"</ODM>"


def odm_document(patients=None, full_sites=None) -> bytes:
    """The whole ODM file in memory (small registries and tests; the views stream odm_chunks)."""
    return b"".join(odm_chunks(patients, full_sites))
