"""Edit checks: each kind of problem is found in data saved past the rules (QuerySet.update(),
save() without full_clean()), a clean case gives nothing, and re-running closes the queries whose
finding is gone."""

from datetime import timedelta
from decimal import Decimal

import pytest

from monitoring import checks, services
from monitoring.models import Finding, Query, QueryEvent
from registry.models import AdverseEvent, Cycle, FollowUp, Patient, ResponseAssessment, Transplant
from tests import factories as f

from .conftest import full_case, url

pytestmark = pytest.mark.django_db


def found(patient):
    return {
        (x.rule, type(x.record).__name__ if x.record else None, x.field)
        for x in checks.find(Patient.objects.filter(pk=patient.pk))
    }


def test_a_clean_case_has_no_finding(case):
    f.transplant(case)
    assert found(case) == set()


def test_a_missing_required_value(case):
    FollowUp.objects.filter(patient=case).update(vital_status="")
    assert found(case) == {("missing_value", "FollowUp", "vital_status")}
    (finding,) = checks.find(Patient.objects.filter(pk=case.pk))
    assert finding.message == "Vital status: This field cannot be blank."


def test_dates_out_of_order(case):
    c1 = case.cycles.get()
    c2 = f.cycle(case, number=2)
    f.assessment(case, c2)
    Cycle.objects.filter(pk=c2.pk).update(start_date=c1.end_date - timedelta(days=3))
    assert found(case) == {("record_rule", "Cycle", "start_date")}
    (finding,) = checks.find(Patient.objects.filter(pk=case.pk))
    assert f"must start after cycle 1 ended ({c1.end_date})" in finding.message


def test_a_response_that_does_not_match_the_labs(case):
    a = case.assessments.get()
    assert a.response == "CR"
    ResponseAssessment.objects.filter(pk=a.pk).update(platelets_10e9_per_l=Decimal("100.0"))
    assert found(case) == {("response_mismatch", "ResponseAssessment", "response")}
    (finding,) = checks.find(Patient.objects.filter(pk=case.pk))
    assert "stored response is CR" in finding.message and "give CRi" in finding.message


def test_an_adverse_event_after_death(case):
    death = case.blinatumomab_start_date + timedelta(days=60)
    FollowUp.objects.filter(patient=case).update(
        vital_status="dead", death_date=death, last_contact_date=death, death_cause="disease"
    )
    ae = case.adverse_events.get()
    AdverseEvent.objects.filter(pk=ae.pk).update(
        onset_date=death + timedelta(days=5), resolution_date=death + timedelta(days=9)
    )
    rules = found(case)
    assert ("ae_after_death", "AdverseEvent", "onset_date") in rules
    # the generic finding on the same field is not repeated; the follow-up's own rule is reported
    assert ("record_rule", "AdverseEvent", "onset_date") not in rules
    assert ("record_rule", "FollowUp", "death_date") in rules


def test_a_cycle_without_an_assessment(case):
    f.cycle(case, number=2)
    assert found(case) == {("cycle_without_assessment", "Cycle", "")}
    ongoing = full_case(case.institution)
    f.cycle(ongoing, number=2, end_date=None, outcome=Cycle.ONGOING)
    assert found(ongoing) == set()


def test_an_allogeneic_sct_before_blinatumomab_start(case):
    t = f.transplant(case)
    Transplant.objects.filter(pk=t.pk).update(
        sct_date=case.blinatumomab_start_date - timedelta(days=30)
    )
    assert found(case) == {("sct_before_start", "Transplant", "sct_date")}


@pytest.mark.parametrize("record", ["cycle", "assessment", "adverse_event", "transplant"])
def test_a_record_after_a_living_patients_last_contact(case, record):
    last_contact = case.followup.last_contact_date
    if record == "transplant":
        f.transplant(case, sct_date=last_contact + timedelta(days=9))
        later = f"transplant of {last_contact + timedelta(days=9)}"
    else:
        model = {"cycle": Cycle, "assessment": ResponseAssessment, "adverse_event": AdverseEvent}
        fields = {"cycle": "end_date", "assessment": "assessment_date"}
        field = fields.get(record, "resolution_date")
        model[record].objects.filter(patient=case).update(
            **{field: last_contact + timedelta(days=9)}
        )
        later = None
    assert found(case) >= {("records_after_last_contact", "FollowUp", "last_contact_date")}
    (finding,) = [
        x
        for x in checks.find(Patient.objects.filter(pk=case.pk))
        if x.rule == "records_after_last_contact"
    ]
    assert finding.message.startswith(f"Last contact ({last_contact}) is before these records: ")
    if later:
        assert finding.message.endswith(f"{later}.")
    # The same records before the last contact: nothing to say.
    FollowUp.objects.filter(patient=case).update(
        last_contact_date=last_contact + timedelta(days=30)
    )
    assert ("records_after_last_contact", "FollowUp", "last_contact_date") not in found(case)


def test_a_case_without_its_required_records(kr01):
    bare = f.patient(site=kr01)
    assert found(bare) == {
        ("missing_record", None, ""),
    } and {x.crf for x in checks.find(Patient.objects.filter(pk=bare.pk))} == {
        "baseline",
        "cycles",
        "follow_up",
    }


def test_findings_are_listed_per_site_and_one_click_opens_a_query(client, case, kr02, monitor):
    other_site = full_case(kr02)
    FollowUp.objects.filter(patient=other_site).update(vital_status="")
    FollowUp.objects.filter(patient=case).update(vital_status="")
    client.force_login(monitor)
    client.post(url("monitoring:run_checks", "KR01"))
    page = client.get(url("monitoring:site", "KR01"))
    findings = list(page.context["findings"])
    assert [x.patient for x in findings] == [case]  # KR02 is neither checked nor shown
    assert client.post(url("monitoring:run_checks", "KR02")).status_code == 404
    client.post(url("monitoring:finding_query", findings[0].pk))
    query = Query.objects.get()
    assert (query.patient, query.crf, query.record, query.field_name) == (
        case,
        "follow_up",
        case.followup,
        "vital_status",
    )
    assert "This field cannot be blank." in query.message and query.check_key == findings[0].key
    assert f"#{query.pk} open" in client.get(url("monitoring:site", "KR01")).content.decode()


def test_rerunning_closes_the_queries_whose_finding_is_gone(case, kr01, monitor):
    other = full_case(kr01)
    FollowUp.objects.filter(patient__in=[case, other]).update(vital_status="")
    run = checks.run(kr01, monitor)
    assert run.findings_n == 2
    queries = [checks.open_query_from(x, monitor) for x in Finding.objects.order_by("pk")]
    FollowUp.objects.filter(patient=case).update(vital_status="alive")  # corrected
    run = checks.run(kr01, monitor)
    assert (run.findings_n, run.queries_closed_n) == (1, 1)
    fixed, still = (Query.objects.get(pk=q.pk) for q in queries)
    assert fixed.status == Query.CLOSED and still.status == Query.OPEN
    note = fixed.events.get(action=QueryEvent.AUTO_CLOSED)
    assert note.user is None and note.message == checks.AUTO_CLOSE_NOTE
    assert list(Finding.objects.values_list("patient", flat=True)) == [other.pk]
    assert services.unresolved_queries(patient=case).count() == 0
    # a query opened by hand is never closed by the checks
    manual = services.open_query(case, "cycles", "Dose?", monitor, record=case.cycles.get())
    checks.run(kr01, monitor)
    manual.refresh_from_db()
    assert manual.status == Query.OPEN


def test_every_rule_has_a_label_and_a_check():
    assert set(checks.RULES) >= {"missing_value", "record_rule"}
    assert len(checks.CHECKS) == 7
