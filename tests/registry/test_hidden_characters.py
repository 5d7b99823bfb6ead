"""Invisible characters (NUL and other controls, the bidirectional controls that reorder how
text displays) are refused by every case record, so by the forms and the API as by the import
(tests/exchange/test_import_safety.py)."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from registry import forms
from registry.models import SubsequentTherapy, hidden_character_error
from tests import factories as f

pytestmark = pytest.mark.django_db

RLO = "Remove the invisible character U+202E (right-to-left override)."


@pytest.fixture
def patient():
    return f.patient(site=f.institution("KR01"))


def therapy(patient, regimen):
    return {"category": "other", "regimen": regimen, "start_date": "2017-06-01"}


def test_a_crf_form_refuses_a_right_to_left_override_in_a_text_field(patient):
    record = SubsequentTherapy(patient=patient)
    data = therapy(patient, "FLAG\u202e-Ida")
    form = forms.SubsequentTherapyForm(data, instance=record, patient=patient)
    assert not form.is_valid()
    assert form.errors["regimen"] == [RLO]
    assert not SubsequentTherapy.objects.exists()


def test_the_api_refuses_a_right_to_left_override(patient):
    client = APIClient()
    token = Token.objects.create(user=f.user("inv", sites=("KR01",)))
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    body = {"patient": patient.study_id, **therapy(patient, "FLAG\u202e-Ida")}
    response = client.post("/api/v1/subsequent-therapies/", body, format="json")
    assert response.status_code == 400
    assert response.json()["regimen"] == [RLO]
    assert not SubsequentTherapy.objects.exists()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Inotuzumab ozogamicin", None),
        ("line one\nline two\twith a tab", None),
        ("이노투주맙", None),
        ("a\x00b", "Null characters are not allowed."),
        ("a\u2066b", "Remove the invisible character U+2066 (left-to-right isolate)."),
        ("a\u200eb", "Remove the invisible character U+200E (left-to-right mark)."),
        ("a\x7fb", "Remove the invisible character U+007F (control character)."),
    ],
)
def test_which_characters_count_as_invisible(text, expected):
    assert hidden_character_error(text) == expected
