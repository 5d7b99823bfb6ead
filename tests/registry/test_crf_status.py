"""CRF status, reasons for change once complete, and each field's history on the case page."""

import pytest

from registry.models import CrfStatus, Cycle, Membership
from tests import factories as f
from tests.registry.test_crf_forms import form_data, url

pytestmark = pytest.mark.django_db


@pytest.fixture
def investigator(client):
    user = f.user("inv")
    client.force_login(user)
    return user


def statuses(patient):
    return {s.crf: s.status for s in CrfStatus.for_patient(patient)}


def complete(client, patient, crf):
    return client.post(url("crf_complete", patient.pk, crf), follow=True)


def test_a_crf_goes_from_not_started_to_in_progress_to_complete(client, investigator):
    p = f.patient()
    assert set(statuses(p).values()) == {"not_started"}
    f.baseline(p)
    assert statuses(p)["baseline"] == "in_progress"
    response = complete(client, p, "baseline")
    assert b"Registration and baseline marked complete." in response.content
    stored = p.crf_statuses.get()
    assert (stored.status, stored.marked_complete_by) == ("complete", investigator)
    assert stored.marked_complete_at == stored.first_completed_at
    assert statuses(p)["baseline"] == "complete"


@pytest.mark.parametrize("crf", ["baseline", "cycles", "follow_up"])
def test_a_crf_that_needs_data_cannot_be_complete_empty(client, investigator, crf):
    p = f.patient()
    response = complete(client, p, crf)
    assert b"enter the data before marking the CRF complete" in response.content
    assert not p.crf_statuses.exists()


@pytest.mark.parametrize("crf", ["assessments", "adverse_events", "transplant"])
def test_a_crf_may_be_complete_with_nothing_to_report(client, investigator, crf):
    p = f.patient()
    complete(client, p, crf)
    assert statuses(p)[crf] == "complete"


def test_marking_complete_is_a_post(client, investigator):
    p = f.patient()
    f.baseline(p)
    client.get(url("crf_complete", p.pk, "baseline"))
    assert statuses(p)["baseline"] == "in_progress"


def test_the_case_is_complete_when_every_crf_is(client, investigator):
    p = f.patient()
    f.baseline(p)
    c = f.cycle(p)
    f.assessment(p, c)
    f.adverse_event(p, c)
    f.followup(p)
    crfs = [crf for crf, _label in CrfStatus.CRF_CHOICES]
    for crf in crfs[:-1]:
        complete(client, p, crf)
    assert b'id="case-complete"' not in client.get(url("case", p.pk)).content
    complete(client, p, crfs[-1])
    assert b'id="case-complete"' in client.get(url("case", p.pk)).content
    row = client.get("/").context["page"][0]
    assert row.state.is_complete


def test_after_completion_every_change_needs_a_reason(client, investigator):
    p = f.patient()
    f.baseline(p)
    c = f.cycle(p)
    complete(client, p, "cycles")
    edit = url("record_edit", p.pk, "cycles", c.pk)
    response = client.post(edit, form_data(c, interruption_days=2, interruption_reason="CRS"))
    assert response.context["form"].errors["change_reason"] == ["This field is required."]
    c.refresh_from_db()
    assert (c.interruption_days, c.version) == (0, 1)
    data = form_data(c, interruption_days=2, interruption_reason="CRS")
    data["change_reason"] = "Source document re-checked"
    data["outcome"] = Cycle.INTERRUPTED
    assert client.post(edit, data).status_code == 302
    latest = c.history.latest()
    assert latest.history_change_reason == "Source document re-checked"
    assert latest.history_user == investigator
    # a new record in a complete CRF is a change too
    new = client.get(url("record_new", p.pk, "cycles")).context["form"]
    assert new.fields["change_reason"].required


def test_before_completion_no_reason_is_asked(client, investigator):
    p = f.patient()
    form = client.get(url("single_record", p.pk, "baseline")).context["form"]
    assert "change_reason" not in form.fields


def test_the_registration_data_need_a_reason_once_the_baseline_crf_is_complete(
    client, investigator
):
    p = f.patient()
    f.baseline(p)
    complete(client, p, "baseline")
    response = client.post(url("single_record", p.pk, "registration"), form_data(p, sex="male"))
    assert "change_reason" in response.context["form"].errors
    p.refresh_from_db()
    assert p.sex == "female"


def test_the_case_page_shows_each_fields_history(client, investigator):
    p = f.patient()
    f.baseline(p)
    c = f.cycle(p)
    complete(client, p, "cycles")
    data = form_data(c, interruption_days=3, interruption_reason="Neurotoxicity")
    data.update(outcome=Cycle.INTERRUPTED, change_reason="Late report from the ward")
    client.post(url("record_edit", p.pk, "cycles", c.pk), data)
    history = client.get(url("case", p.pk)).context["history"]
    rows = {(h.record, h.field): h for h in history}
    days = rows[("Cycle 1", "days of interruption")]
    assert (days.old, days.new, days.user) == ("0", "3", "inv")
    assert days.reason == "Late report from the ward"
    outcome = rows[("Cycle 1", "how the cycle ended")]
    assert (outcome.old, outcome.new) == ("Completed as planned", "Completed after interruption(s)")
    status = rows[("CRF blinatumomab cycles", "status")]
    assert status.new == "Complete"
    assert rows[("Cycle 1", "")].new == "created"
    page = client.get(url("record_edit", p.pk, "cycles", c.pk))
    assert b"Late report from the ward" in page.content


def test_a_locked_crf_refuses_changes(client, investigator):
    p = f.patient()
    f.baseline(p)
    c = f.cycle(p)
    CrfStatus.objects.create(patient=p, crf="cycles", status=CrfStatus.LOCKED)
    edit = url("record_edit", p.pk, "cycles", c.pk)
    response = client.post(edit, {**form_data(c, interruption_days=1), "change_reason": "x"})
    assert response.status_code == 302
    c.refresh_from_db()
    assert c.version == 1
    remove = url("record_remove", p.pk, "cycles", c.pk)
    client.post(remove, {"reason": "x", "version": 1})
    assert p.cycles.exists()


def test_another_sites_investigator_cannot_mark_complete(client):
    p = f.patient(site=f.institution("KR02", "Korea University Ansan Hospital"))
    f.baseline(p)
    client.force_login(f.user("inv", role=Membership.INVESTIGATOR))
    assert complete(client, p, "baseline").status_code == 404
    assert not p.crf_statuses.exists()
