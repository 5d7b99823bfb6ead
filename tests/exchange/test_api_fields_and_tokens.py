"""The API refuses fields it would otherwise drop silently (unknown or read-only), and API
tokens expire and are revoked when the password changes."""

from datetime import timedelta

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from registry.models import Patient
from tests import factories as f

pytestmark = pytest.mark.django_db

API = "/api/v1"
PASSWORD = "pw-for-tests-1"  # tests.factories.user
NEW_PASSWORD = "a-new-passphrase-2026"


@pytest.fixture
def case():
    f.institution("KR02", "Korea University Ansan Hospital")
    p = f.patient(site=f.institution("KR01"))
    f.baseline(p)
    cycle = f.cycle(p)
    return p, cycle


@pytest.fixture
def investigator(case):
    user = f.user("inv", sites=("KR01",))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def unchanged(record, version):
    record.refresh_from_db()
    return record.version == version and record.history.count() == 1


def test_a_read_only_institution_is_refused_by_name_and_nothing_changes(case, investigator):
    patient, _cycle = case
    version = patient.version
    response = investigator.patch(
        f"{API}/patients/{patient.study_id}/",
        {"institution": "KR02", "version": version},
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {"institution": ["This field is read-only: it cannot be set here."]}
    assert unchanged(patient, version)
    assert patient.institution.code == "KR01"


@pytest.mark.parametrize(
    "resource, key, body, refused",
    [
        ("patients", "study_id", {"study_id": "KR01-999"}, "study_id"),
        ("patients", "study_id", {"age_at_start": 20}, "age_at_start"),
        ("patients", "study_id", {"sex": "male", "colour": "red"}, "colour"),
        ("baselines", "study_id", {"cyto_start_risk": "high"}, "cyto_start_risk"),
        ("cycles", "id", {"id": 999, "interruption_days": 1}, "id"),
        ("cycles", "id", {"interuption_days": 1}, "interuption_days"),  # misspelt
    ],
)
def test_unknown_and_read_only_fields_are_a_400_without_a_write(
    case, investigator, resource, key, body, refused
):
    patient, cycle = case
    record = {"patients": patient, "baselines": patient.baseline, "cycles": cycle}[resource]
    address = patient.study_id if key == "study_id" else record.pk
    version = record.version
    response = investigator.patch(
        f"{API}/{resource}/{address}/", {**body, "version": version}, format="json"
    )
    assert response.status_code == 400
    assert list(response.json()) == [refused]
    assert unchanged(record, version)


def test_creating_with_a_read_only_field_is_refused_and_saves_nothing(case, investigator):
    body = {
        "institution": "KR01",
        "study_id": "KR01-777",
        "sex": "male",
        "birth_year": 1965,
        "diagnosis_date": "2016-02-01",
        "blinatumomab_start_date": "2017-06-01",
    }
    response = investigator.post(f"{API}/patients/", body, format="json")
    assert response.status_code == 400 and list(response.json()) == ["study_id"]
    assert Patient.objects.count() == 1
    del body["study_id"]
    assert investigator.post(f"{API}/patients/", body, format="json").status_code == 201


def test_writable_fields_still_save_and_bump_the_version(case, investigator):
    patient, _cycle = case
    response = investigator.patch(
        f"{API}/patients/{patient.study_id}/",
        {"sex": "male", "version": patient.version},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["version"] == patient.version + 1


# --- Token expiry --------------------------------------------------------------------------------


def token_client(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def age(token, days):
    Token.objects.filter(pk=token.pk).update(created=timezone.now() - timedelta(days=days))


def test_a_token_expires_after_30_days_with_a_clear_401(case, settings):
    assert settings.API_TOKEN_TTL_DAYS == 30
    token = Token.objects.create(user=f.user("inv", sites=("KR01",)))
    age(token, 29)
    assert token_client(token).get(f"{API}/patients/").status_code == 200
    age(token, 30)
    response = token_client(token).get(f"{API}/patients/")
    assert response.status_code == 401
    assert (
        "expired" in response.json()["detail"]
        and "/exchange/api-token/" in (response.json()["detail"])
    )
    settings.API_TOKEN_TTL_DAYS = 60
    assert token_client(token).get(f"{API}/patients/").status_code == 200


def test_the_password_endpoint_replaces_an_expired_token(case):
    user = f.user("inv", sites=("KR01",))
    old = Token.objects.create(user=user)
    credentials = {"username": "inv", "password": PASSWORD}
    same = APIClient().post(f"{API}/auth/token/", credentials).json()
    assert same["token"] == old.key and same["expires"].startswith(
        (old.created + timedelta(days=30)).date().isoformat()
    )
    age(old, 31)
    renewed = APIClient().post(f"{API}/auth/token/", credentials).json()["token"]
    assert renewed != old.key and list(Token.objects.values_list("key", flat=True)) == [renewed]
    assert token_client(Token.objects.get()).get(f"{API}/patients/").status_code == 200


def test_the_token_page_shows_the_expiry(client, case):
    user = f.user("inv", sites=("KR01",))
    client.force_login(user)
    client.post("/exchange/api-token/", {"action": "create"})
    token = Token.objects.get(user=user)
    page = client.get("/exchange/api-token/")
    assert page.context["expires"] == token.created + timedelta(days=30)
    assert "Valid until" in page.content.decode()
    age(token, 31)
    assert "Expired on" in client.get("/exchange/api-token/").content.decode()


# --- Revoked by a password change ----------------------------------------------------------------


def has_token(user):
    return Token.objects.filter(user=user).exists()


def test_set_password_and_save_revokes_the_users_tokens(case):
    user = f.user("inv", sites=("KR01",))
    other = f.user("inv2", sites=("KR01",))
    Token.objects.create(user=user), Token.objects.create(user=other)
    user.first_name = "Ji-woo"
    user.save()  # not a password change
    assert has_token(user)
    user.set_password(NEW_PASSWORD)
    user.save()
    assert not has_token(user) and has_token(other)


def test_the_password_change_page_revokes_the_token(case):
    user = f.user("staff", sites=("KR01",))
    user.is_staff = True
    user.save()
    token = Token.objects.create(user=user)
    client = Client()
    client.force_login(user)
    response = client.post(
        "/admin/password_change/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302, response.content.decode()[:500]
    assert not has_token(user)
    assert token_client(token).get(f"{API}/patients/").status_code == 401


def test_an_administrator_setting_a_password_revokes_the_users_token(case):
    user = f.user("inv", sites=("KR01",))
    Token.objects.create(user=user)
    admin = get_user_model().objects.create_superuser("root", password=PASSWORD)
    client = Client()
    client.force_login(admin)
    response = client.post(
        f"/admin/auth/user/{user.pk}/password/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )
    assert response.status_code == 302, response.content.decode()[:500]
    assert not has_token(user)


def test_logging_in_and_a_hash_upgrade_keep_the_token(case, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher"]
    user = f.user("inv", sites=("KR01",))
    Token.objects.create(user=user)
    # a new preferred hasher: the next log-in re-hashes the same password
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    ]
    assert authenticate(username="inv", password=PASSWORD) == user
    user.refresh_from_db()
    assert user.password.startswith("md5$")
    assert Client().login(username="inv", password=PASSWORD)
    assert has_token(user)
