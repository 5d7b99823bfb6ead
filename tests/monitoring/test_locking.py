"""A locked case (or site) refuses every change, on every path; unlocking needs a reason."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from monitoring import services
from monitoring.models import LockEvent
from registry.models import (
    CaseLocked,
    CrfStatus,
    Cycle,
    Patient,
    allow_locked_changes,
)
from tests import factories as f
from tests.exchange import legacy
from tests.exchange.test_import import run_command
from tests.registry.test_crf_forms import form_data

from .conftest import url

pytestmark = pytest.mark.django_db


def lock(client, patient, reason=""):
    return client.post(url("monitoring:case_lock", patient.pk), {"reason": reason}, follow=True)


def test_a_monitor_locks_a_case_and_every_crf_shows_locked(client, case, monitor):
    client.force_login(monitor)
    response = lock(client, case, "Database lock of the interim analysis")
    assert f"{case} locked." in response.content.decode()
    assert {s.status for s in CrfStatus.for_patient(case)} == {CrfStatus.LOCKED}
    event = LockEvent.objects.get()
    assert (event.patient, event.user, event.action) == (case, monitor, LockEvent.LOCK)
    assert event.reason == "Database lock of the interim analysis"
    page = client.get(url("registry:case", case.pk)).content.decode()
    assert 'id="case-locked"' in page and "Database lock of the interim analysis" in page


def test_a_locked_case_refuses_a_web_edit_with_a_message(client, case, monitor, investigator):
    services.lock_case(case, monitor)
    client.force_login(investigator)
    cycle = case.cycles.get()
    data = {
        **form_data(cycle, interruption_days=2, interruption_reason="CRS"),
        "change_reason": "x",
    }
    response = client.post(url("registry:record_edit", case.pk, "cycles", cycle.pk), data)
    assert response.status_code == 302
    followed = client.get(response.url).content.decode()
    assert "CRF is locked" in followed
    cycle.refresh_from_db()
    assert (cycle.interruption_days, cycle.version) == (0, 1)
    # registration data, a new record, a removal: all refused
    registration = client.post(
        url("registry:single_record", case.pk, "registration"),
        {**form_data(case, sex="male"), "change_reason": "x"},
    )
    assert registration.status_code == 302
    new = client.post(url("registry:record_new", case.pk, "adverse-events"), {})
    assert new.status_code == 302
    remove = url("registry:record_remove", case.pk, "cycles", cycle.pk)
    client.post(remove, {"reason": "x", "version": 1})
    case.refresh_from_db()
    assert case.sex == "female" and case.cycles.count() == 1 and case.adverse_events.count() == 1


def test_the_model_layer_refuses_saves_and_deletes_of_a_locked_case(case, monitor):
    services.lock_case(case, monitor)
    cycle = case.cycles.get()
    cycle.interruption_days = 3
    with pytest.raises(CaseLocked, match="is locked"):
        cycle.save()
    with pytest.raises(ValidationError, match="is locked"):
        cycle.full_clean()
    case.sex = "male"
    with pytest.raises(CaseLocked):
        case.save()
    with pytest.raises(CaseLocked):
        Cycle(patient=case, number=2, start_date=case.blinatumomab_start_date).save()
    with pytest.raises(CaseLocked):
        case.adverse_events.get().delete()
    with pytest.raises(CaseLocked), transaction.atomic():
        case.adverse_events.all().delete()  # QuerySet.delete(): the pre_delete receiver
    with pytest.raises(CaseLocked):
        case.delete()
    assert Patient.objects.filter(pk=case.pk).exists() and case.adverse_events.count() == 1
    small = f.patient(site=case.institution)
    f.baseline(small)
    services.lock_case(small, monitor)
    with pytest.raises(CaseLocked), transaction.atomic():
        Patient.objects.filter(pk=small.pk).delete()  # QuerySet.delete() of the case: cascades
    assert Patient.objects.filter(pk=small.pk).exists()
    cycle.refresh_from_db()
    assert cycle.interruption_days == 0
    # QuerySet.update() bypasses save(): documented, and why the edit checks exist.
    with allow_locked_changes():
        cycle.interruption_days, cycle.interruption_reason = 1, "Fever"
        cycle.save()
    assert Cycle.objects.get(pk=cycle.pk).interruption_days == 1


def test_another_case_of_the_site_stays_open(case, monitor):
    other = f.patient(site=case.institution)
    services.lock_case(case, monitor)
    f.baseline(other)  # saves fine


def test_the_api_refuses_writes_to_a_locked_case(case, monitor, investigator):
    services.lock_case(case, monitor)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=investigator).key}")
    cycle = case.cycles.get()
    change = {"interruption_days": 1, "interruption_reason": "Fever", "version": cycle.version}
    change["change_reason"] = "late report"
    response = api.patch(f"/api/v1/cycles/{cycle.pk}/", change, format="json")
    assert response.status_code == 403
    new_ae = {
        "patient": case.study_id,
        "ctcae_term": "Fever",
        "grade": 1,
        "onset_date": str(case.blinatumomab_start_date + timedelta(days=3)),
        "attribution": "possible",
        "outcome": "recovered",
        "change_reason": "late report",
    }
    assert api.post("/api/v1/adverse-events/", new_ae, format="json").status_code in (400, 403)
    assert case.adverse_events.count() == 1


def test_the_import_refuses_records_of_a_locked_case(tmp_path, case, monitor):
    services.lock_case(case, monitor)
    rows = [{"study_id": case.study_id, "regimen": "FLAG-Ida", "category": "salvage_chemotherapy"}]
    rows[0]["start_date"] = str(case.blinatumomab_start_date + timedelta(days=200))
    path = legacy.write_csv_dir(tmp_path / "late", {"subsequent_therapies": rows})
    ok, _out, err = run_command(path, "--institution", "KR01")
    assert not ok and "is locked" in err
    assert not case.subsequent_therapies.exists()


def test_unlocking_needs_a_reason(client, case, monitor, investigator):
    services.lock_case(case, monitor)
    client.force_login(monitor)
    refused = client.post(url("monitoring:case_unlock", case.pk), {"reason": "  "}, follow=True)
    assert "Unlocking needs a reason." in refused.content.decode()
    assert services.case_is_locked(case)
    with pytest.raises(services.MonitoringError):
        services.unlock_case(case, monitor, "")
    client.post(url("monitoring:case_unlock", case.pk), {"reason": "Late SAE report to enter"})
    assert not services.case_is_locked(case)
    unlock = LockEvent.objects.filter(action=LockEvent.UNLOCK).get()
    assert (unlock.user, unlock.reason) == (monitor, "Late SAE report to enter")
    # the statuses are what they were: data entered, nothing marked complete
    statuses = {s.crf: s.status for s in CrfStatus.for_patient(case)}
    assert statuses.pop("transplant") == CrfStatus.NOT_STARTED  # no transplant recorded
    assert set(statuses.values()) == {CrfStatus.IN_PROGRESS}
    cycle = case.cycles.get()
    cycle.interruption_days, cycle.interruption_reason = 1, "Fever"
    cycle.save()
    history = case.crf_statuses.get(crf="cycles").history.first()
    assert history.history_change_reason == "case unlocked: Late SAE report to enter"


def test_only_the_sites_monitors_lock(client, case, investigator, monitor2):
    client.force_login(investigator)
    assert lock(client, case).status_code == 403
    client.force_login(monitor2)  # monitors KR02 only: the case is not theirs
    assert lock(client, case).status_code == 404
    assert not services.case_is_locked(case)


def test_a_case_with_open_queries_cannot_be_locked(case, monitor):
    services.open_query(case, "cycles", "Check the dose", monitor, record=case.cycles.get())
    with pytest.raises(services.MonitoringError, match="open queries"):
        services.lock_case(case, monitor)


def test_a_locked_site_refuses_changes_and_new_cases(client, case, kr01, monitor, investigator):
    client.force_login(monitor)
    client.post(url("monitoring:site_lock", "KR01"), {"reason": "Final database lock"})
    kr01.refresh_from_db()
    assert kr01.locked_at is not None
    assert {s.status for s in CrfStatus.for_patient(case)} == {CrfStatus.LOCKED}
    with pytest.raises(ValidationError, match="Site KR01 is locked"):
        f.patient(site=kr01)  # full_clean() says so
    new = Patient(
        institution=kr01,
        sex="male",
        birth_year=1970,
        diagnosis_date=case.diagnosis_date,
        blinatumomab_start_date=case.blinatumomab_start_date,
    )
    with pytest.raises(CaseLocked, match="Site KR01 is locked"):
        new.save()  # and save() refuses without it
    with pytest.raises(CaseLocked):
        cycle = case.cycles.get()
        cycle.save()
    with pytest.raises(services.MonitoringError, match="unlock the site"):
        services.unlock_case(case, monitor, "one case only")
    client.force_login(investigator)
    response = client.post(url("registry:register"), {"institution": kr01.pk})
    assert response.status_code == 200 and "Site KR01 is locked" in response.content.decode()
    client.force_login(monitor)
    client.post(url("monitoring:site_unlock", "KR01"), {"reason": "Corrections after audit"})
    kr01.refresh_from_db()
    assert kr01.locked_at is None
    assert CrfStatus.LOCKED not in {s.status for s in CrfStatus.for_patient(case)}
    f.patient(site=kr01)


def test_the_demo_reset_clears_monitoring_data_and_locks(monitor):
    import io

    from django.core.management import call_command

    from monitoring.models import Query, Signature
    from registry.models import Institution

    call_command("seed_demo", patients=3, allow_production=True, stdout=io.StringIO())
    demo_case = Patient.objects.first()
    services.open_query(demo_case, "cycles", "?", monitor, record=demo_case)
    Signature.objects.create(patient=demo_case, signed_by=monitor, meaning="x")
    site = Institution.objects.get(code=demo_case.institution.code)
    services.close_query(Query.objects.get(), monitor)
    services.lock_site(site, monitor)
    call_command("seed_demo", patients=3, allow_production=True, stdout=io.StringIO())
    assert not Query.objects.exists() and not Signature.objects.exists()
    assert not Institution.objects.filter(locked_at__isnull=False).exists()
    assert Patient.objects.count() == 3
