"""The audit trail in the admin (read-only for everyone, filterable, CSV) and the admin's site
scoping for monitors, filters, search and read-only derived fields."""

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.admin.utils import quote
from django.db import transaction
from django.utils import timezone

from monitoring.audit import AuditRecordProtected
from monitoring.models import AuditEntry
from registry.models import Cycle, FollowUp, Membership, Patient
from tests import factories as f

from .conftest import full_case, url

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/monitoring/auditentry/"
EXPORT = "/admin/monitoring/auditentry/export/"


def rows(response):
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode())))


@pytest.fixture
def history(kr01, kr02):
    """Changes by two people at two sites."""
    alice = f.user("alice", sites=("KR01",))
    bob = f.user("bob", sites=("KR02",))
    p1 = f.patient(site=kr01)
    c1 = f.cycle(p1)
    c1._history_user, c1._change_reason = alice, "Source document re-checked"
    c1.interruption_days, c1.interruption_reason, c1.outcome = 2, "CRS", Cycle.INTERRUPTED
    c1.save()
    p2 = f.patient(site=kr02)
    p2._history_user = bob
    p2.sex = "male"
    p2.save()
    return {"alice": alice, "bob": bob, "p1": p1, "c1": c1, "p2": p2}


def test_the_audit_trail_unions_every_history_table(history):
    models = set(AuditEntry.objects.values_list("model", flat=True))
    assert models == {"patient", "cycle"}
    entry = AuditEntry.objects.get(model="cycle", history_type="~")
    assert entry.history_user == history["alice"]
    assert (entry.study_id, entry.institution.code) == (history["p1"].study_id, "KR01")
    assert entry.history_change_reason == "Source document re-checked"


def test_the_csv_export_holds_the_filtered_rows(client, superuser, history):
    client.force_login(superuser)
    everything = rows(client.get(EXPORT))
    assert (
        len(everything) == AuditEntry.objects.count() == 5
    )  # 2 cases + 1 cycle, created; 2 changes
    by_alice = rows(client.get(EXPORT, {"history_user__id__exact": history["alice"].pk}))
    assert len(by_alice) == 1
    (row,) = by_alice
    assert row["user"] == "alice" and row["site"] == "KR01" and row["model"] == "cycle"
    assert row["study_id"] == history["p1"].study_id and row["action"] == "changed"
    assert "days of interruption: 0 → 2" in row["changes"]
    assert (
        "how the cycle ended: Completed as planned → Completed after interruption(s)"
        in (row["changes"])
    )
    assert row["reason"] == "Source document re-checked"
    kr02 = rows(client.get(EXPORT, {"institution__id__exact": history["p2"].institution_id}))
    assert {(r["study_id"], r["action"]) for r in kr02} == {
        (history["p2"].study_id, "created"),
        (history["p2"].study_id, "changed"),
    }
    assert [r["changes"] for r in kr02 if r["action"] == "changed"] == ["sex: Female → Male"]
    cycles = rows(client.get(EXPORT, {"model__exact": "cycle"}))
    assert {r["action"] for r in cycles} == {"created", "changed"}
    today = timezone.localdate()
    tomorrow = today + timedelta(days=1)
    dated = {"history_date__gte": str(today), "history_date__lt": str(tomorrow)}
    assert len(rows(client.get(EXPORT, dated))) == 5
    before = {"history_date__lt": str(today)}
    assert rows(client.get(EXPORT, before)) == []
    page = client.get(CHANGELIST, {"q": history["p2"].study_id})
    assert page.status_code == 200
    assert {e.study_id for e in page.context["cl"].result_list} == {history["p2"].study_id}
    assert 'id="audit-export"' in page.content.decode()


def test_the_audit_trail_is_read_only_even_for_superusers(client, superuser, history):
    client.force_login(superuser)
    entry = AuditEntry.objects.first()
    change = f"{CHANGELIST}{quote(entry.pk)}/change/"
    assert client.get(change).status_code == 200  # viewable
    assert client.post(change, {"history_change_reason": "tampered"}).status_code == 403
    assert client.post(f"{CHANGELIST}{quote(entry.pk)}/delete/", {"post": "yes"}).status_code == 403
    assert client.get(f"{CHANGELIST}add/").status_code == 403
    action = {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"}
    client.post(CHANGELIST, action)
    assert AuditEntry.objects.count() == 5
    assert entry.historical_record().history_change_reason != "tampered"


def test_historical_rows_cannot_be_deleted_or_rewritten(history):
    record = history["c1"].history.first()
    with pytest.raises(AuditRecordProtected), transaction.atomic():
        record.delete()
    with pytest.raises(AuditRecordProtected), transaction.atomic():
        Cycle.history.all().delete()
    record.history_change_reason = "rewritten"
    with pytest.raises(AuditRecordProtected):
        record.save()
    assert Cycle.history.count() == 2


def test_a_monitor_sees_the_audit_trail_of_their_sites_only(client, monitor, history):
    client.force_login(monitor)
    exported = rows(client.get(EXPORT))
    assert {r["site"] for r in exported} == {"KR01"} and len(exported) == 3
    other = AuditEntry.objects.get(
        model="patient", study_id=history["p2"].study_id, history_type="~"
    )
    assert client.get(f"{CHANGELIST}{quote(other.pk)}/change/").status_code == 302  # not found


def test_the_audit_trail_filters_by_user_names_of_the_monitors_sites(client, monitor, history):
    client.force_login(monitor)
    page = client.get(CHANGELIST)
    (by_user,) = [s for s in page.context["cl"].filter_specs if s.title == "user"]
    names = [name for _pk, name in by_user.lookup_choices]
    assert names == ["alice", "mon"]  # KR01's people; bob works at KR02 only
    alice = history["alice"].pk
    exported = rows(client.get(f"{EXPORT}?history_user__id__exact={alice}"))
    assert {r["user"] for r in exported} == {"alice"} and len(exported) == 1


# --- Admin scoping and lists --------------------------------------------------------------------


def test_admin_querysets_are_scoped_to_the_monitors_sites(client, kr01, kr02, monitor):
    own, foreign = full_case(kr01), full_case(kr02)
    client.force_login(monitor)
    listing = client.get("/admin/registry/patient/")
    assert listing.status_code == 200
    assert [p.study_id for p in listing.context["cl"].result_list] == [own.study_id]
    for model in ("cycle", "responseassessment", "adverseevent", "followup", "baseline"):
        page = client.get(f"/admin/registry/{model}/")
        assert {r.patient_id for r in page.context["cl"].result_list} == {own.pk}, model
    assert client.get(url("admin:registry_patient_change", own.pk)).status_code == 200
    denied = client.get(url("admin:registry_patient_change", foreign.pk))
    assert denied.status_code == 302  # "does not exist", as for any record of another site
    cycle = foreign.cycles.get()
    assert client.get(url("admin:registry_cycle_change", cycle.pk)).status_code == 302
    assert client.get(url("admin:registry_cycle_history", cycle.pk)).status_code == 403
    statuses = client.get("/admin/registry/crfstatus/").context["cl"].result_list
    assert all(s.patient_id == own.pk for s in statuses)
    # view-only: a monitor changes nothing in the admin
    post = client.post(url("admin:registry_patient_change", own.pk), {"sex": "male"})
    assert post.status_code == 403


def test_the_superuser_sees_every_site_and_monitors_need_staff(client, kr01, kr02, superuser):
    full_case(kr01), full_case(kr02)
    client.force_login(superuser)
    listing = client.get("/admin/registry/patient/")
    assert len(listing.context["cl"].result_list) == 2
    plain = f.user("plainmon", role=Membership.MONITOR, sites=("KR01",))  # not staff
    client.force_login(plain)
    assert client.get("/admin/registry/patient/").status_code == 302  # to the admin login


def test_admin_lists_filter_by_site_crf_status_response_and_grade(client, kr01, kr02, superuser):
    from monitoring import services

    own, foreign = full_case(kr01), full_case(kr02)
    services.open_query(own, "cycles", "?", superuser, record=own.cycles.get())
    f.adverse_event(
        foreign, ctcae_term="Fever", grade=1, serious=False, action_taken="none"
    )  # grade 1 only in KR02
    client.force_login(superuser)

    def listed(path, **params):
        page = client.get(path, params)
        assert page.status_code == 200, page
        return page.context["cl"].result_list

    patients = "/admin/registry/patient/"
    assert [p.pk for p in listed(patients, institution__id__exact=kr02.pk)] == [foreign.pk]
    assert [p.pk for p in listed(patients, crf_status="query_open")] == [own.pk]
    assert {p.pk for p in listed(patients, response="CR")} == {own.pk, foreign.pk}
    assert [p.pk for p in listed(patients, ae_grade="1")] == [foreign.pk]
    assert [p.pk for p in listed(patients, q=foreign.study_id)] == [foreign.pk]
    cycles = listed("/admin/registry/cycle/", crf_status="query_open")
    assert [c.patient_id for c in cycles] == [own.pk]
    events = listed("/admin/registry/adverseevent/", grade__exact="1")
    assert [e.patient_id for e in events] == [foreign.pk]
    assessments = listed("/admin/registry/responseassessment/", response__exact="CR")
    assert len(assessments) == 2
    assert len(listed("/admin/registry/cycle/", q=own.study_id)) == 1


def test_derived_fields_are_read_only_and_a_case_reaches_its_records(client, case, superuser):
    client.force_login(superuser)
    assessment = case.assessments.get()
    page = client.get(url("admin:registry_responseassessment_change", assessment.pk))
    assert "response" not in page.context["adminform"].form.fields
    assert "response" in page.context["adminform"].readonly_fields
    baseline = client.get(url("admin:registry_baseline_change", case.baseline.pk))
    assert {"cyto_dx_risk", "cyto_start_risk"} <= set(baseline.context["adminform"].readonly_fields)
    patient = client.get(url("admin:registry_patient_change", case.pk))
    html = patient.content.decode()
    assert "study_id" not in patient.context["adminform"].form.fields
    for name in ("cycle", "responseassessment", "adverseevent", "followup", "baseline"):
        assert f"/admin/registry/{name}/" in html, name  # each record one click away
    assert url("registry:case", case.pk) in html


def test_a_locked_case_cannot_be_changed_in_the_admin_either(client, case, superuser, monitor):
    from monitoring import services

    services.lock_case(case, monitor)
    client.force_login(superuser)
    ae = case.adverse_events.get()
    response = client.post(url("admin:registry_adverseevent_delete", ae.pk), {"post": "yes"})
    assert response.status_code == 302
    assert "is locked" in client.get(response.url).content.decode()
    assert case.adverse_events.filter(pk=ae.pk).exists()
    change = client.post(
        url("admin:registry_adverseevent_change", ae.pk), {"grade": "2", "outcome": "recovered"}
    )
    assert change.status_code == 200 and "is locked" in change.content.decode()
    action = {"action": "delete_selected", "_selected_action": [case.pk], "post": "yes"}
    client.post("/admin/registry/patient/", action)
    assert Patient.objects.filter(pk=case.pk).exists()


def test_every_admin_page_opens_for_a_superuser_and_a_monitor(client, case, monitor, superuser):
    from django.contrib import admin

    from monitoring import checks, services

    f.transplant(case)
    query = services.open_query(case, "cycles", "?", monitor, record=case.cycles.get())
    services.answer_query(query, monitor, "answered")
    services.close_query(query, monitor)
    FollowUp.objects.filter(pk=case.followup.pk).update(vital_status="")
    checks.run(case.institution, monitor)
    services.lock_case(case, monitor)
    for user in (superuser, monitor):
        client.force_login(user)
        for model in admin.site._registry:
            if model._meta.app_label not in ("registry", "monitoring"):
                continue
            name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
            listing = client.get(url(f"{name}_changelist"))
            assert listing.status_code == 200, (user, model)
            first = listing.context["cl"].result_list[:1]
            if first:
                page = client.get(url(f"{name}_change", quote(first[0].pk)))
                assert page.status_code == 200, (user, model)
