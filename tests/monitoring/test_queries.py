"""Queries on data: opened by a monitor, answered by the site, closed or re-opened; every step is
kept with user and time, and open queries show on the case page and the case list."""

import pytest

from monitoring import services
from monitoring.models import Query, QueryEvent
from registry.models import CrfStatus
from tests.registry.test_crf_forms import form_data

from .conftest import url

pytestmark = pytest.mark.django_db


def open_on_field(client, patient, record_token, field, message):
    new = url("monitoring:query_new", patient.pk)
    return client.post(f"{new}?record={record_token}", {"field_name": field, "message": message})


def status_of(patient, crf):
    return {s.crf: s for s in CrfStatus.for_patient(patient)}[crf]


def test_a_query_goes_from_open_to_answered_to_closed_and_back(client, case, monitor, investigator):
    cycle = case.cycles.get()
    client.force_login(monitor)
    response = open_on_field(
        client, case, f"cycle:{cycle.pk}", "interruption_days", "No interruption despite CRS?"
    )
    assert response.status_code == 302
    query = Query.objects.get()
    assert (query.crf, query.record, query.field_name) == ("cycles", cycle, "interruption_days")
    assert query.status == Query.OPEN and query.opened_by == monitor
    assert status_of(case, "cycles").status == CrfStatus.QUERY_OPEN

    # the investigator sees it on the case list and the case page, and answers
    client.force_login(investigator)
    listed = client.get(url("registry:case_list")).content.decode()
    assert 'data-crf="cycles" data-status="query_open"' in listed
    assert 'class="badge text-bg-danger open-queries"' in listed
    page = client.get(url("registry:case", case.pk)).content.decode()
    assert f'id="query-{query.pk}"' in page and "No interruption despite CRS?" in page
    assert "Days of interruption" in page or "days of interruption" in page
    client.post(url("monitoring:query_answer", query.pk), {"message": "Checked: 2 days, see below"})
    query.refresh_from_db()
    assert query.status == Query.ANSWERED
    assert status_of(case, "cycles").status == CrfStatus.QUERY_OPEN  # until the monitor closes

    # the monitor closes it, then re-opens it (a message is required)
    client.force_login(monitor)
    client.post(url("monitoring:query_close", query.pk), {"message": "Thank you"})
    query.refresh_from_db()
    assert query.status == Query.CLOSED and query.closed_at
    assert status_of(case, "cycles").status == CrfStatus.IN_PROGRESS
    refused = client.post(url("monitoring:query_reopen", query.pk), {"message": ""}, follow=True)
    assert "Say why the query is re-opened." in refused.content.decode()
    client.post(url("monitoring:query_reopen", query.pk), {"message": "Dates still disagree"})
    query.refresh_from_db()
    assert query.status == Query.OPEN

    events = [(e.action, e.user.username, e.message) for e in query.events.all()]
    assert events == [
        (QueryEvent.OPENED, "mon", "No interruption despite CRS?"),
        (QueryEvent.ANSWERED, "inv", "Checked: 2 days, see below"),
        (QueryEvent.CLOSED, "mon", "Thank you"),
        (QueryEvent.REOPENED, "mon", "Dates still disagree"),
    ]
    assert all(e.at for e in query.events.all())


def test_the_investigator_changes_the_value_with_a_reason(client, case, monitor, investigator):
    cycle = case.cycles.get()
    query = services.open_query(
        case, "cycles", "Interruption?", monitor, record=cycle, field_name="interruption_days"
    )
    client.force_login(investigator)
    edit = url("registry:record_edit", case.pk, "cycles", cycle.pk)
    page = client.get(url("registry:case", case.pk)).content.decode()
    assert edit in page  # "Change the value" leads to the record's form
    data = form_data(cycle, interruption_days=2, interruption_reason="CRS", outcome="interrupted")
    response = client.post(edit, data)
    assert "change_reason" in response.context["form"].errors  # an open query needs a reason
    data["change_reason"] = "Nurse notes re-read"
    assert client.post(edit, data).status_code == 302
    change = query.events.get(action=QueryEvent.DATA_CHANGED)
    assert change.user == investigator
    assert change.message == "days of interruption: 0 → 2 Reason: Nurse notes re-read"


def test_only_the_site_answers_and_only_its_monitors_close(
    client, case, monitor, monitor2, investigator
):
    query = services.open_query(case, "baseline", "Check ECOG", monitor, record=case.baseline)
    client.force_login(investigator)
    assert client.post(url("monitoring:query_close", query.pk)).status_code == 403
    client.force_login(monitor)
    answer = client.post(url("monitoring:query_answer", query.pk), {"message": "x"})
    assert answer.status_code == 403
    client.force_login(monitor2)  # another site's monitor: the query does not exist for them
    assert client.post(url("monitoring:query_close", query.pk)).status_code == 404
    assert client.get(url("monitoring:query_new", case.pk)).status_code == 404
    query.refresh_from_db()
    assert query.status == Query.OPEN


def test_a_query_names_a_field_of_its_record(case, monitor):
    with pytest.raises(services.MonitoringError, match="no field"):
        services.open_query(
            case, "cycles", "?", monitor, record=case.cycles.get(), field_name="grade"
        )
    with pytest.raises(services.MonitoringError, match="Write the question"):
        services.open_query(case, "cycles", " ", monitor, record=case.cycles.get())


def test_open_queries_are_counted_per_case_and_per_site(client, case, kr01, monitor):
    from .conftest import full_case

    other = full_case(kr01)
    services.open_query(case, "cycles", "a", monitor, record=case.cycles.get())
    services.open_query(case, "follow_up", "b", monitor, record=case.followup)
    q = services.open_query(other, "baseline", "c", monitor, record=other)
    services.close_query(q, monitor)
    assert sum(s.open_queries for s in CrfStatus.for_patient(case)) == 2
    assert sum(s.open_queries for s in CrfStatus.for_patient(other)) == 0
    client.force_login(monitor)
    site = client.get(url("monitoring:site", "KR01"))
    cases = {p.study_id: p.open_queries for p in site.context["cases"]}
    assert cases == {case.study_id: 2, other.study_id: 0}
    assert len(site.context["queries"]) == 2
    progress = client.get(url("monitoring:progress")).context["rows"]
    assert [(r["site"].code, r["open_queries"]) for r in progress] == [("KR01", 2)]


def test_a_crf_with_a_query_open_can_still_be_marked_complete(client, case, monitor, investigator):
    services.open_query(case, "follow_up", "Last contact?", monitor, record=case.followup)
    client.force_login(investigator)
    client.post(url("registry:crf_complete", case.pk, "follow_up"))
    status = status_of(case, "follow_up")
    assert status.marked_complete_at is not None
    assert status.status == CrfStatus.QUERY_OPEN  # complete once the query is closed
    services.close_query(Query.objects.get(), monitor)
    assert status_of(case, "follow_up").status == CrfStatus.COMPLETE
