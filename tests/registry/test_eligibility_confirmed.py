"""The investigator confirms each eligibility criterion: no box comes ticked, and the paper's
"relapsed or refractory" criterion is asked and enforced like the others, in every way in."""

import csv
import io
import re

import pytest
from django.urls import reverse

from exchange import codebook, spec
from registry.models import Patient
from tests import factories as f
from tests.exchange import legacy
from tests.exchange.test_import import run_command

pytestmark = pytest.mark.django_db

INCLUSION = ["relapsed_refractory", "bcp_all", "ph_negative", "cd19_positive"]


@pytest.fixture
def investigator(client):
    user = f.user("inv")
    client.force_login(user)
    return user


def checkboxes(html) -> dict[str, bool]:
    """name -> ticked, for every checkbox of the page."""
    boxes = re.findall(r'<input\b[^>]*type="checkbox"[^>]*>', html)
    return {re.search(r'name="(\w+)"', b).group(1): " checked" in b for b in boxes}


def test_the_registration_form_comes_with_no_eligibility_box_ticked(client, investigator):
    page = client.get(reverse("registry:register")).content.decode()
    assert checkboxes(page) == {name: False for name in [*INCLUSION, "burkitt"]}
    assert "Relapsed or refractory disease" in page


def test_the_form_as_it_comes_is_refused_with_every_inclusion_criterion(client, investigator):
    data = {
        "institution": f.institution().pk,
        "version": "",
        "sex": "female",
        "birth_year": "1972",
        "diagnosis_date": "2015-11-02",
        "blinatumomab_start_date": "2017-03-06",
    }  # what the browser posts when no box is ticked
    response = client.post(reverse("registry:register"), data)
    assert response.status_code == 200 and not Patient.objects.exists()
    failed = [field for field, _reason in response.context["failures"]]
    assert failed == INCLUSION
    errors = response.context["form"].errors
    assert errors["relapsed_refractory"] == [
        "Not eligible: The study includes relapsed or refractory ALL only."
    ]


def test_an_unticked_relapsed_refractory_box_alone_refuses_registration(client, investigator):
    data = {
        "institution": f.institution().pk,
        "version": "",
        **{name: "on" for name in INCLUSION if name != "relapsed_refractory"},
        "sex": "female",
        "birth_year": "1972",
        "diagnosis_date": "2015-11-02",
        "blinatumomab_start_date": "2017-03-06",
    }
    response = client.post(reverse("registry:register"), data)
    assert [field for field, _ in response.context["failures"]] == ["relapsed_refractory"]
    page = response.content.decode()
    # Said in the summary (linking the box) and under the box: not a third time in another alert.
    assert page.count("relapsed or refractory ALL only") == 2
    assert "Not registered: this patient is not eligible for the study" in page
    data["relapsed_refractory"] = "on"
    assert client.post(reverse("registry:register"), data).status_code == 302
    assert Patient.objects.get().relapsed_refractory is True


def test_a_registered_case_shows_its_confirmed_criteria_ticked(client, investigator):
    p = f.patient()
    page = client.get(reverse("registry:single_record", args=[p.pk, "registration"]))
    assert checkboxes(page.content.decode()) == {
        **{name: True for name in INCLUSION},
        "burkitt": False,
    }


def test_the_import_template_and_codebook_carry_the_criterion():
    assert "relapsed_refractory" in spec.BY_NAME["patients"].column_names
    rows = {r["variable"]: r for r in csv.DictReader(io.StringIO(codebook.codebook_csv()))}
    row = rows["relapsed_refractory"]
    assert row["label"].lower() == "relapsed or refractory disease"
    assert "patient_eligible" in row["rule"]


def test_an_import_row_without_relapsed_or_refractory_disease_is_refused(tmp_path):
    f.institution("KR01")
    patients = legacy.files()["patients"]
    patients[0]["relapsed_refractory"] = "no"
    path = legacy.write_csv_dir(tmp_path / "bad", legacy.files(patients=patients))
    ok, _out, err = run_command(path, "--institution", "KR01")
    assert not ok and not Patient.objects.exists()
    assert (
        "patients.csv, row 2, column relapsed_refractory: Not eligible: The study includes "
        "relapsed or refractory ALL only." in err
    )


def test_the_api_refuses_a_patient_without_relapsed_or_refractory_disease(investigator):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(investigator)
    body = {
        "institution": "KR01",
        "sex": "male",
        "birth_year": 1970,
        "diagnosis_date": "2016-01-01",
        "blinatumomab_start_date": "2017-03-06",
        "relapsed_refractory": False,
    }
    response = api.post("/api/v1/patients/", body, format="json")
    assert response.status_code == 400
    assert "relapsed or refractory ALL only" in str(response.json()["relapsed_refractory"])
    accepted = api.post("/api/v1/patients/", {**body, "relapsed_refractory": True}, format="json")
    assert accepted.status_code == 201
    assert Patient.objects.get().relapsed_refractory is True


@pytest.mark.parametrize(
    "birth_year, message",
    [
        ("2999", "Birth year is in the future."),  # also too young: two messages on one field
        ("99999999999999999999", "Ensure this value is less than or equal to"),
    ],
)
def test_an_impossible_birth_year_is_a_field_error_not_a_crash(
    client, investigator, birth_year, message
):
    data = {
        "institution": f.institution().pk,
        **{name: "on" for name in INCLUSION},
        "sex": "female",
        "birth_year": birth_year,
        "diagnosis_date": "2015-11-02",
        "blinatumomab_start_date": "2017-03-06",
    }
    response = client.post(reverse("registry:register"), data)
    assert response.status_code == 200 and not Patient.objects.exists()
    assert message in response.context["form"].errors["birth_year"][0]
