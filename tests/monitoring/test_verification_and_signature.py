"""Source data verification is cleared by a later change to its CRF; the principal investigator's
signature needs the password and a complete case, and a later change voids it visibly."""

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.utils import timezone

from monitoring import services
from monitoring.models import Signature
from registry.models import CrfStatus
from tests.registry.test_crf_forms import form_data

from .conftest import PASSWORD, complete_all, url

pytestmark = pytest.mark.django_db


def status_of(patient, crf):
    return patient.crf_statuses.get(crf=crf)


def edit_cycle(client, case, reason="Late report from the ward", **changes):
    cycle = case.cycles.get()
    data = form_data(cycle, **changes)
    data["change_reason"] = reason
    return client.post(url("registry:record_edit", case.pk, "cycles", cycle.pk), data)


# --- Verification ---------------------------------------------------------------------------------


def test_a_monitor_verifies_a_complete_crf(client, case, monitor, investigator):
    client.force_login(monitor)
    refused = client.post(url("monitoring:crf_verify", case.pk, "cycles"), follow=True)
    assert "only a CRF marked complete can be verified" in refused.content.decode()
    complete_all(case, investigator)
    client.post(url("monitoring:crf_verify", case.pk, "cycles"))
    status = status_of(case, "cycles")
    assert (status.status, status.verified_by) == (CrfStatus.VERIFIED, monitor)
    assert status.history.first().history_change_reason == "source data verified"
    page = client.get(url("registry:case", case.pk)).content.decode()
    assert "Verified by mon" in page


def test_only_the_sites_monitor_verifies(client, case, investigator):
    complete_all(case, investigator)
    client.force_login(investigator)
    assert client.post(url("monitoring:crf_verify", case.pk, "cycles")).status_code == 403
    assert status_of(case, "cycles").verified_at is None


def test_a_change_after_verification_clears_it_and_the_case_page_says_so(
    client, case, monitor, investigator
):
    complete_all(case, investigator)
    services.verify(case, "cycles", monitor)
    services.verify(case, "follow_up", monitor)
    client.force_login(investigator)
    response = edit_cycle(
        client, case, interruption_days=2, interruption_reason="CRS", outcome="interrupted"
    )
    assert response.status_code == 302
    cycles = status_of(case, "cycles")
    assert cycles.verified_at is None and cycles.status == CrfStatus.COMPLETE
    assert cycles.verification_cleared_note.startswith("Cycle 1 changed (")
    assert "by inv on" in cycles.verification_cleared_note
    assert status_of(case, "follow_up").status == CrfStatus.VERIFIED  # another CRF: untouched
    page = client.get(url("registry:case", case.pk)).content.decode()
    assert "Blinatumomab cycles: source data verification cleared" in page
    assert "days of interruption" in page


def test_a_save_without_a_change_keeps_the_verification(client, case, monitor, investigator):
    complete_all(case, investigator)
    services.verify(case, "cycles", monitor)
    client.force_login(investigator)
    assert edit_cycle(client, case, reason="re-checked, no change").status_code == 302
    assert status_of(case, "cycles").status == CrfStatus.VERIFIED


def test_a_new_or_removed_record_clears_the_verification(case, monitor, investigator):
    from tests import factories as f

    complete_all(case, investigator)
    services.verify(case, "adverse_events", monitor)
    f.adverse_event(case, ctcae_term="Fever", grade=1, serious=False, action_taken="none")
    assert status_of(case, "adverse_events").verified_at is None
    services.verify(case, "adverse_events", monitor)
    case.adverse_events.order_by("pk").last().delete()
    assert "removed" in status_of(case, "adverse_events").verification_cleared_note


# --- Signatures -----------------------------------------------------------------------------------


def sign(client, case, password=PASSWORD):
    return client.post(url("monitoring:sign", case.pk), {"password": password})


def test_the_principal_investigator_signs_a_complete_case_with_the_password(
    client, case, investigator
):
    complete_all(case, investigator)
    client.force_login(investigator)
    form = client.get(url("monitoring:sign", case.pk)).content.decode()
    assert Signature.MEANING in form
    wrong = sign(client, case, "not-my-password")
    assert "The password is not correct" in wrong.content.decode()
    assert not Signature.objects.exists()
    assert sign(client, case).status_code == 302
    signature = Signature.objects.get()
    assert (signature.patient, signature.signed_by) == (case, investigator)
    assert signature.meaning == Signature.MEANING and signature.signed_at and signature.is_valid
    page = client.get(url("registry:case", case.pk)).content.decode()
    assert 'id="case-signed"' in page and "I attest that the data in this case" in page
    assert "Already signed by inv" in sign(client, case).content.decode()


def test_guessing_the_signing_password_locks_the_user_out_as_at_log_in(client, case, investigator):
    complete_all(case, investigator)
    client.force_login(investigator)
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert "The password is not correct" in sign(client, case, "guess").content.decode()
    locked = sign(client, case, "guess")
    assert locked.status_code == 429 and b"Too many failed log-ins" in locked.content
    # the right password is refused too until the cool-off ends, and nothing was signed
    assert sign(client, case).status_code == 429
    assert not Signature.objects.exists()
    # the five guesses and the refused attempt, counted as failed log-ins of this user
    assert AccessAttempt.objects.get().failures_since_start == settings.AXES_FAILURE_LIMIT + 1
    AccessAttempt.objects.update(attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME * 2)
    assert sign(client, case).status_code == 302
    assert Signature.objects.get().signed_by == investigator


def test_only_the_principal_investigator_signs(client, case, investigator, coinvestigator, monitor):
    complete_all(case, investigator)
    for user in (coinvestigator, monitor):
        client.force_login(user)
        assert sign(client, case).status_code == 403
    with pytest.raises(services.MonitoringError, match="principal investigator"):
        services.sign_case(case, coinvestigator, PASSWORD)
    assert not Signature.objects.exists()


def test_an_incomplete_case_or_one_with_an_open_query_is_not_signed(case, investigator, monitor):
    with pytest.raises(services.MonitoringError, match="Only a complete case"):
        services.sign_case(case, investigator, PASSWORD)
    complete_all(case, investigator)
    query = services.open_query(case, "cycles", "Dose?", monitor, record=case.cycles.get())
    with pytest.raises(services.MonitoringError, match="no query open"):
        services.sign_case(case, investigator, PASSWORD)
    services.close_query(query, monitor)
    assert services.sign_case(case, investigator, PASSWORD).is_valid


def test_a_new_record_after_the_signature_voids_it(case, investigator):
    from tests import factories as f

    complete_all(case, investigator)
    signature = services.sign_case(case, investigator, PASSWORD)
    f.adverse_event(case, ctcae_term="Fever", grade=1, serious=False, action_taken="none")
    signature.refresh_from_db()
    assert not signature.is_valid and "created" in signature.void_reason


def test_a_change_after_the_signature_voids_it_visibly(client, case, investigator, superuser):
    complete_all(case, investigator)
    signature = services.sign_case(case, investigator, PASSWORD)
    client.force_login(investigator)
    edit_cycle(
        client, case, interruption_days=1, interruption_reason="Fever", outcome="interrupted"
    )
    signature.refresh_from_db()
    assert not signature.is_valid and "Cycle 1 changed" in signature.void_reason
    page = client.get(url("registry:case", case.pk)).content.decode()
    assert "Signature voided." in page and 'id="case-signed"' not in page
    assert 'id="sign-case"' in page  # the case can be signed again
    client.force_login(superuser)
    listing = client.get(url("admin:monitoring_signature_changelist")).content.decode()
    assert "VOIDED" in listing
    patient_admin = client.get(url("admin:registry_patient_change", case.pk)).content.decode()
    assert "VOIDED" in patient_admin
