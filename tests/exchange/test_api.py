"""The REST API: token auth, the web forms' permissions and rules, pagination, OpenAPI."""

import json

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from registry.models import AdverseEvent, CrfStatus, Cycle, Patient
from tests import factories as f

pytestmark = pytest.mark.django_db

API = "/api/v1"


def client_for(user):
    client = APIClient()
    token = Token.objects.create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def sites():
    return f.institution("KR01"), f.institution("KR02", "Korea University Ansan Hospital")


@pytest.fixture
def cases(sites):
    kr01, kr02 = sites
    own = f.patient(site=kr01, site_case_number="H-17")
    f.baseline(own)
    c1 = f.cycle(own)
    f.assessment(own, c1)
    foreign = f.patient(site=kr02, site_case_number="K-3")
    f.baseline(foreign)
    f.cycle(foreign)
    return own, foreign


@pytest.fixture
def investigator(sites):
    return client_for(f.user("inv", sites=("KR01",)))


@pytest.fixture
def statistician(sites):
    return client_for(f.user("stat", role="statistician", sites=("KR01",)))


@pytest.fixture
def monitor(sites):
    return client_for(f.user("mon", role="monitor", sites=("KR02",)))


NEW_PATIENT = {
    "institution": "KR01",
    "sex": "male",
    "birth_year": 1965,
    "diagnosis_date": "2016-02-01",
    "blinatumomab_start_date": "2017-06-01",
}


def test_without_a_token_the_api_answers_401(cases):
    response = APIClient().get(f"{API}/patients/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert APIClient().post(f"{API}/patients/", NEW_PATIENT, format="json").status_code == 401


def test_a_token_can_be_obtained_with_username_and_password(sites):
    f.user("inv", sites=("KR01",))
    response = APIClient().post(
        f"{API}/auth/token/", {"username": "inv", "password": "pw-for-tests-1"}
    )
    assert response.status_code == 200 and response.json()["token"]


def test_a_statistician_reads_every_site_de_identified(cases, statistician):
    own, foreign = cases
    response = statistician.get(f"{API}/patients/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert {p["study_id"] for p in body["results"]} == {own.study_id, foreign.study_id}
    row = next(p for p in body["results"] if p["study_id"] == foreign.study_id)
    assert "birth_date" not in row and "site_case_number" not in row
    assert row["age_at_start"] == foreign.age_at_start and row["birth_year"] == 1972
    cycles = statistician.get(f"{API}/cycles/", {"patient": foreign.study_id}).json()
    assert cycles["count"] == 1 and cycles["results"][0]["number"] == 1
    one = statistician.get(f"{API}/baselines/{foreign.study_id}/")
    assert one.status_code == 200 and one.json()["cyto_start_risk"] == "standard"


def test_a_statistician_cannot_write(cases, statistician):
    own, _foreign = cases
    assert statistician.post(f"{API}/patients/", NEW_PATIENT, format="json").status_code == 403
    patch = statistician.patch(
        f"{API}/patients/{own.study_id}/", {"sex": "male", "version": own.version}, format="json"
    )
    assert patch.status_code == 403
    assert Patient.objects.count() == 2


def test_a_monitor_reads_own_sites_in_full_and_cannot_write(cases, monitor):
    own, foreign = cases
    body = monitor.get(f"{API}/patients/").json()
    assert [p["study_id"] for p in body["results"]] == [foreign.study_id]
    assert body["results"][0]["site_case_number"] == "K-3"
    assert monitor.get(f"{API}/patients/{own.study_id}/").status_code == 404
    new_cycle = {"patient": foreign.study_id, "number": 2, "start_date": "2017-05-01"}
    assert monitor.post(f"{API}/cycles/", new_cycle, format="json").status_code == 403


def test_an_investigator_registers_a_case_at_their_own_site(cases, investigator):
    response = investigator.post(f"{API}/patients/", NEW_PATIENT, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["study_id"] == "KR01-002"
    patient = Patient.objects.get(study_id="KR01-002")
    history = patient.history.get()
    assert history.history_user.username == "inv"
    foreign = dict(NEW_PATIENT, institution="KR02")
    response = investigator.post(f"{API}/patients/", foreign, format="json")
    assert response.status_code == 400 and "institution" in response.json()


def test_an_investigator_adds_records_within_their_site(cases, investigator):
    own, _foreign = cases
    cycle = {
        "patient": own.study_id,
        "number": 2,
        "start_date": "2017-04-17",
        "end_date": "2017-05-14",
        "starting_dose_ug_per_day": 28,
        "outcome": "completed",
    }
    response = investigator.post(f"{API}/cycles/", cycle, format="json")
    assert response.status_code == 201, response.json()
    event = {
        "patient": own.study_id,
        "cycle_number": 2,
        "ctcae_term": "Febrile neutropenia",
        "grade": 3,
        "onset_date": "2017-04-20",
        "attribution": "possible",
        "outcome": "recovered",
    }
    response = investigator.post(f"{API}/adverse-events/", event, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["cycle_number"] == 2
    assert AdverseEvent.objects.get().cycle == Cycle.objects.get(patient=own, number=2)


def test_a_rule_violation_is_a_400_with_field_errors(cases, investigator):
    own, _foreign = cases
    event = {
        "patient": own.study_id,
        "ctcae_term": "Febrile neutropenia",
        "grade": 2,
        "onset_date": "2017-03-10",
        "attribution": "possible",
        "outcome": "recovered",
    }
    response = investigator.post(f"{API}/adverse-events/", event, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "grade": [
            "CTCAE v4.03 defines Febrile neutropenia only at grade(s) 3, 4, 5; grade 2 does "
            "not exist."
        ]
    }
    # A cross-record rule: cycle 3 before cycle 2.
    cycle = {
        "patient": own.study_id,
        "number": 3,
        "start_date": "2017-06-01",
        "end_date": "2017-06-28",
        "starting_dose_ug_per_day": 28,
        "outcome": "completed",
    }
    response = investigator.post(f"{API}/cycles/", cycle, format="json")
    assert response.status_code == 400
    assert response.json() == {"number": ["Enter cycle 2 first."]}
    # An unknown cycle number of the case.
    event.update(grade=3, cycle_number=7)
    response = investigator.post(f"{API}/adverse-events/", event, format="json")
    assert response.status_code == 400 and "cycle_number" in response.json()
    assert AdverseEvent.objects.count() == 0


def test_a_foreign_case_is_a_404(cases, investigator):
    own, foreign = cases
    assert investigator.get(f"{API}/patients/{foreign.study_id}/").status_code == 404
    assert investigator.get(f"{API}/baselines/{foreign.study_id}/").status_code == 404
    foreign_cycle = foreign.cycles.get()
    assert investigator.get(f"{API}/cycles/{foreign_cycle.pk}/").status_code == 404
    patch = investigator.patch(
        f"{API}/cycles/{foreign_cycle.pk}/", {"interruption_days": 1, "version": 1}, format="json"
    )
    assert patch.status_code == 404
    listed = investigator.get(f"{API}/patients/").json()
    assert [p["study_id"] for p in listed["results"]] == [own.study_id]
    # Naming a foreign case in a new record is refused like an unknown one.
    followup = {"patient": foreign.study_id, "last_contact_date": "2018-01-01"}
    followup["vital_status"] = "alive"
    response = investigator.post(f"{API}/follow-ups/", followup, format="json")
    assert response.status_code == 400 and "patient" in response.json()


def test_updates_need_the_version_read_and_refuse_a_stale_one(cases, investigator):
    own, _foreign = cases
    url = f"{API}/patients/{own.study_id}/"
    read = investigator.get(url).json()
    assert investigator.patch(url, {"sex": "male"}, format="json").status_code == 400
    ok = investigator.patch(url, {"sex": "male", "version": read["version"]}, format="json")
    assert ok.status_code == 200, ok.json()
    assert ok.json()["version"] == read["version"] + 1
    stale = investigator.patch(url, {"sex": "female", "version": read["version"]}, format="json")
    assert stale.status_code == 409
    own.refresh_from_db()
    assert own.sex == "male"


def test_a_complete_crf_needs_a_reason_and_a_locked_one_refuses(cases, investigator):
    own, _foreign = cases
    status = CrfStatus.objects.create(patient=own, crf=CrfStatus.CYCLES, status=CrfStatus.COMPLETE)
    status.first_completed_at = timezone.now()
    status.save()
    cycle = own.cycles.get()
    url = f"{API}/cycles/{cycle.pk}/"
    change = {"interruption_days": 1, "interruption_reason": "Fever", "version": cycle.version}
    response = investigator.patch(url, change, format="json")
    assert response.status_code == 400 and "change_reason" in response.json()
    change["change_reason"] = "Source document review"
    response = investigator.patch(url, change, format="json")
    assert response.status_code == 200, response.json()
    assert cycle.history.latest().history_change_reason == "Source document review"
    status.status = CrfStatus.LOCKED
    status.save()
    change.update(version=response.json()["version"], interruption_days=2)
    assert investigator.patch(url, change, format="json").status_code == 403


def test_lists_are_paginated(sites, statistician):
    for _ in range(3):
        f.patient(site=sites[0])
    body = statistician.get(f"{API}/patients/", {"page_size": 2}).json()
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]


def test_the_openapi_schema_lists_the_paths(client, sites):
    assert client.get("/api/schema/", {"format": "json"}).status_code in (401, 403)
    client.force_login(f.user("inv", sites=("KR01",)))
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    for path in [
        "/api/v1/patients/",
        "/api/v1/patients/{study_id}/",
        "/api/v1/cycles/",
        "/api/v1/response-assessments/",
        "/api/v1/adverse-events/",
        "/api/v1/baselines/{study_id}/",
        "/api/v1/transplants/{study_id}/",
        "/api/v1/subsequent-therapies/",
        "/api/v1/follow-ups/{study_id}/",
    ]:
        assert path in schema["paths"], path
    assert "tokenAuth" in schema["components"]["securitySchemes"]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"<script>" not in docs.content  # no inline script (CSP)
    assert client.get("/api/docs/", {"script": ""}).status_code == 200


def test_a_user_manages_their_own_token_in_the_browser(client, sites):
    user = f.user("inv", sites=("KR01",))
    client.force_login(user)
    client.post("/exchange/api-token/", {"action": "create"})
    token = Token.objects.get(user=user)
    assert token.key in client.get("/exchange/api-token/").content.decode()
    client.post("/exchange/api-token/", {"action": "revoke"})
    assert not Token.objects.filter(user=user).exists()
