"""A new case imported at a locked site is refused with the lock as a problem (found by the
journeys: the import page answered 500, the lock's ValidationError had no message_dict)."""

import pytest
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from monitoring import services
from registry.models import Patient
from tests import factories as f
from tests.exchange import legacy

pytestmark = pytest.mark.django_db


def test_a_locked_records_validation_error_is_keyed_like_any_other(kr01, monitor):
    services.lock_site(kr01, monitor)
    new = Patient(institution=kr01, sex="male", birth_year=1970)
    with pytest.raises(ValidationError) as refused:
        new.full_clean()
    assert list(refused.value.message_dict) == [NON_FIELD_ERRORS]
    assert "Site KR01 is locked" in refused.value.message_dict[NON_FIELD_ERRORS][0]


def test_an_import_of_a_new_case_at_a_locked_site_lists_the_lock(client, kr01, monitor):
    investigator = f.user("importer", sites=("KR01",))
    services.lock_site(kr01, monitor)
    client.force_login(investigator)
    patients = [legacy.PATIENTS[0]]
    upload = SimpleUploadedFile("patients.csv", legacy.csv_bytes("patients", patients))
    response = client.post(reverse("exchange:import"), {"files": [upload], "institution": kr01.pk})
    assert response.status_code == 400
    problems = [p.message for p in response.context["result"].problems]
    assert any("Site KR01 is locked" in p for p in problems), problems
    assert not Patient.objects.exists()


def test_the_api_refuses_a_new_case_at_a_locked_site_with_the_lock(kr01, monitor):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    investigator = f.user("api-importer", sites=("KR01",))
    services.lock_site(kr01, monitor)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=investigator).key}")
    new = {"institution": "KR01", "sex": "male", "birth_year": 1965}
    new.update(diagnosis_date="2016-02-01", blinatumomab_start_date="2017-06-01")
    response = api.post("/api/v1/patients/", new, format="json")
    assert response.status_code in (400, 403), response.status_code
    assert "Site KR01 is locked" in response.content.decode()
    assert not Patient.objects.exists()
