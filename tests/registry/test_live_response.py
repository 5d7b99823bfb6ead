"""The live response box's endpoint: a category only for values the form would accept.

The endpoint checks each value with its model field's own clean() (the validators the form's
save runs), so an invalid value gives no category, only why: blasts 150% is not 'PD'."""

import json

import pytest
from django.urls import reverse

from registry.models import ResponseAssessment
from tests import factories as f

pytestmark = pytest.mark.django_db

VALID = {"marrow_blasts_pct": "2", "anc_10e9_per_l": "2", "platelets_10e9_per_l": "200"}


@pytest.fixture
def case(client):
    client.force_login(f.user("inv"))
    p = f.patient()
    f.baseline(p)  # marrow blasts 81% at baseline
    return p


def live(client, case, **values):
    response = client.get(reverse("registry:derive_response", args=[case.pk]), values)
    assert response.status_code == 200
    return response.json()


def form_errors(client, case, **values):
    """The errors the assessment form gives the same values on save."""
    c = case.cycles.first() or f.cycle(case)
    data = {"cycle": c.pk, "assessment_date": "2017-04-04", "emd_status": "none", **values}
    data["version"] = ""  # a new record
    data["mrd_status"] = "not_done"
    response = client.post(reverse("registry:record_new", args=[case.pk, "assessments"]), data)
    assert response.status_code == 200  # refused, the form again
    return response.context["form"].errors


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"marrow_blasts_pct": "150"}, "marrow_blasts_pct"),  # was shown as PD
        ({"anc_10e9_per_l": "-1"}, "anc_10e9_per_l"),  # was shown as CRi
        ({"platelets_10e9_per_l": "3000.5"}, "platelets_10e9_per_l"),
        ({"marrow_blasts_pct": "2.25"}, "marrow_blasts_pct"),  # one decimal place
        ({"anc_10e9_per_l": "12345.6"}, "anc_10e9_per_l"),  # six digits, two of them decimals
    ],
)
def test_an_invalid_value_gets_no_category_and_the_forms_own_message(client, case, changes, field):
    values = {**VALID, **changes}
    answer = live(client, case, **values)
    assert (answer["response"], answer["label"]) == ("", "")
    assert list(answer["errors"]) == [field]
    # the form's own messages (the form stops at the first failing check, the field runs all)
    assert set(form_errors(client, case, **values)[field]) <= set(answer["errors"][field])
    assert answer["message"].startswith("No response while a value is invalid. ")
    assert answer["errors"][field][0] in answer["message"]
    assert not ResponseAssessment.objects.exists()


def test_the_paper_examples_of_the_issue_say_why(client, case):
    blasts = live(client, case, **{**VALID, "marrow_blasts_pct": "150"})
    assert blasts["message"] == (
        "No response while a value is invalid. "
        "Bone marrow blasts (%): Ensure this value is less than or equal to 100."
    )
    anc = live(client, case, **{**VALID, "anc_10e9_per_l": "-1"})
    assert anc["message"] == (
        "No response while a value is invalid. "
        "Absolute neutrophil count (×10^9/L): Ensure this value is greater than or equal to 0."
    )


def test_every_invalid_value_is_listed(client, case):
    answer = live(client, case, marrow_blasts_pct="abc", anc_10e9_per_l="-1", emd_status="gone")
    assert answer["response"] == ""
    assert answer["errors"] == {
        "marrow_blasts_pct": ["“abc” value must be a decimal number."],
        "anc_10e9_per_l": ["Ensure this value is greater than or equal to 0."],
        "emd_status": ["Value 'gone' is not a valid choice."],
    }


@pytest.mark.parametrize("boundary", ["0", "100"])
def test_values_on_the_fields_limits_still_get_a_category(client, case, boundary):
    answer = live(client, case, **{**VALID, "marrow_blasts_pct": boundary})
    assert answer["response"] == {"0": "CR", "100": "NR"}[boundary]
    assert answer["errors"] == {} and answer["message"] == ""


def test_a_typed_value_comes_back_inert(client, case):
    typed = '<script>alert("x")</script>&'
    response = client.get(
        reverse("registry:derive_response", args=[case.pk]), {"marrow_blasts_pct": typed}
    )
    assert b"<" not in response.content and b">" not in response.content
    assert b"&" not in response.content
    assert f"“{typed}” value must be a decimal number." in json.loads(response.content)["message"]
