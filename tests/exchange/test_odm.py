"""The CDISC ODM 1.3.2 export validates against the ODM 1.3.2 schema vendored in exchange/."""

from datetime import UTC, datetime
from xml.etree import ElementTree as ET

import pytest
import xmlschema
from django.http import StreamingHttpResponse

from exchange import odm
from registry.models import CrfStatus, Patient
from tests import factories as f

pytestmark = pytest.mark.django_db
NS = {"odm": odm.NS}


@pytest.fixture(scope="module")
def schema():
    return xmlschema.XMLSchema10(str(odm.SCHEMA))


@pytest.fixture
def registry():
    kr01 = f.institution("KR01")
    kr02 = f.institution("KR02", "Korea University Ansan Hospital")
    alive = f.patient(site=kr01, site_case_number="H-1")
    f.baseline(alive, relapse_site="both", emd_cns=True)
    c1 = f.cycle(alive)
    c2 = f.cycle(alive, number=2)
    f.assessment(alive, c1, anc_10e9_per_l="1.0")
    f.assessment(alive, c2)
    f.adverse_event(alive, c1)
    f.transplant(alive)
    alive.subsequent_therapies.create(
        category="targeted", regimen="Inotuzumab ozogamicin", start_date=f.START.replace(month=9)
    )
    f.followup(alive)
    dead = f.patient(site=kr02)
    f.baseline(dead)
    f.followup(
        dead,
        vital_status="dead",
        death_date=f.START.replace(month=5),
        last_contact_date=f.START.replace(month=5),
        death_cause="disease",
    )
    return alive, dead


def test_the_study_definition_alone_is_valid_odm_1_3_2(schema):
    document = odm.odm_document()
    schema.validate(document.decode())
    root = ET.fromstring(document)
    assert root.get("ODMVersion") == "1.3.2"
    mdv = root.find("odm:Study/odm:MetaDataVersion", NS)
    forms = [fd.get("Name") for fd in mdv.findall("odm:FormDef", NS)]
    assert forms == [label for _crf, label in CrfStatus.CRF_CHOICES]
    assert mdv.find("odm:StudyEventDef", NS).get("OID") == odm.EVENT_OID
    anc = mdv.find("odm:ItemDef[@Name='anc_10e9_per_l']", NS)
    assert anc.get("DataType") == "float" and anc.get("SignificantDigits") == "2"
    unit_oid = anc.find("odm:MeasurementUnitRef", NS).get("MeasurementUnitOID")
    unit = root.find(f"odm:Study/odm:BasicDefinitions/odm:MeasurementUnit[@OID='{unit_oid}']", NS)
    assert unit.get("Name") == "×10^9/L"
    assert "exactly 1.0 counts as not recovered (CRi)" in "".join(anc.itertext())
    checks = {
        (r.get("Comparator"), r.find("odm:CheckValue", NS).text)
        for r in anc.findall("odm:RangeCheck", NS)
    }
    assert checks == {("GE", "0"), ("LE", "500")}
    outcome = mdv.find("odm:CodeList[@OID='CL.ADVERSEEVENT.OUTCOME']", NS)
    assert "fatal" in [i.get("CodedValue") for i in outcome.findall("odm:CodeListItem", NS)]
    assert root.find("odm:ClinicalData", NS) is None


def test_the_clinical_data_export_is_valid_odm_1_3_2(schema, registry):
    alive, dead = registry
    document = odm.odm_document(Patient.objects.all())
    schema.validate(document.decode())
    root = ET.fromstring(document)
    subjects = root.findall("odm:ClinicalData/odm:SubjectData", NS)
    assert [s.get("SubjectKey") for s in subjects] == [alive.study_id, dead.study_id]
    first = subjects[0]
    assert first.find("odm:SiteRef", NS).get("LocationOID") == "LOC.KR01"
    cycles = first.findall(".//odm:ItemGroupData[@ItemGroupOID='IG.CYCLE']", NS)
    assert [c.get("ItemGroupRepeatKey") for c in cycles] == ["1", "2"]
    responses = [
        i.get("Value")
        for i in first.findall(".//odm:ItemData[@ItemOID='IT.RESPONSEASSESSMENT.RESPONSE']", NS)
    ]
    assert responses == ["CRi", "CR"]
    death = subjects[1].find(".//odm:ItemData[@ItemOID='IT.FOLLOWUP.DEATH_DATE']", NS)
    assert death.get("Value") == "2017-05-06"


def test_the_xsd_rejects_an_export_that_breaks_the_schema(schema, registry):
    """The schema check has teeth: a value outside the ODM enumeration fails."""
    document = odm.odm_document(Patient.objects.all()).decode()
    broken = document.replace('Repeating="No"', 'Repeating="Sometimes"', 1)
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        schema.validate(broken)


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_the_document_streamed_one_case_at_a_time_equals_one_batch(schema, registry, monkeypatch):
    """Batches are seams in the stream only: the bytes are those of one batch of every case."""
    monkeypatch.setattr(odm.timezone, "now", lambda: datetime(2026, 11, 26, 1, 2, 3, tzinfo=UTC))
    whole = odm.odm_document(Patient.objects.all())
    monkeypatch.setattr(odm, "BATCH", 1)
    chunks = list(odm.odm_chunks(Patient.objects.all()))
    assert b"".join(chunks) == whole
    # opening, study, admin data, clinical data opening, two cases, its closing, the root's
    assert len(chunks) == 8
    schema.validate(whole.decode())
    assert whole.count(b"<SubjectData ") == 2 and b"xmlns=" not in whole.split(b"<Study ")[1]


def test_a_statistician_downloads_every_case_de_identified(client, registry):
    alive, dead = registry
    client.force_login(f.user("stat", role="statistician", sites=("KR01",)))
    response = client.get("/exchange/odm.xml")
    assert response.status_code == 200 and response["Content-Type"] == "application/xml"
    assert isinstance(response, StreamingHttpResponse)
    root = ET.fromstring(b"".join(response.streaming_content))
    keys = [s.get("SubjectKey") for s in root.findall("odm:ClinicalData/odm:SubjectData", NS)]
    assert keys == [alive.study_id, dead.study_id]
    assert root.find(".//odm:ItemData[@ItemOID='IT.PATIENT.BIRTH_DATE']", NS) is None
    assert root.find(".//odm:ItemData[@ItemOID='IT.PATIENT.SITE_CASE_NUMBER']", NS) is None


def test_an_investigator_downloads_only_own_cases_in_full(client, registry):
    alive, _dead = registry
    client.force_login(f.user("inv", sites=("KR01",)))
    root = ET.fromstring(body(client.get("/exchange/odm.xml")))
    subjects = root.findall("odm:ClinicalData/odm:SubjectData", NS)
    assert [s.get("SubjectKey") for s in subjects] == [alive.study_id]
    birth = subjects[0].find(".//odm:ItemData[@ItemOID='IT.PATIENT.BIRTH_DATE']", NS)
    assert birth.get("Value") == "1972-04-15"
    definition = ET.fromstring(body(client.get("/exchange/odm.xml", {"data": "0"})))
    assert definition.find("odm:ClinicalData", NS) is None


def test_the_command_writes_the_same_valid_document(tmp_path, schema, registry):
    from django.core.management import call_command

    out = tmp_path / "odm.xml"
    call_command("export_odm", "--output", str(out), "--institution", "KR02")
    schema.validate(str(out))
    root = ET.parse(out).getroot()
    keys = [s.get("SubjectKey") for s in root.findall("odm:ClinicalData/odm:SubjectData", NS)]
    assert keys == [registry[1].study_id]
