"""The codebook: built from the model fields and from the analysis dataset's VARIABLES."""

import csv
import io

import pytest

from analysis.dataset import VARIABLES
from exchange import codebook
from registry.models import ResponseAssessment
from tests import factories as f


def rows():
    return list(csv.DictReader(io.StringIO(codebook.codebook_csv())))


def test_the_codebook_csv_gives_anc_with_its_unit_and_the_cr_cri_boundary():
    anc = next(r for r in rows() if r["variable"] == "anc_10e9_per_l")
    assert anc["label"] == "Absolute neutrophil count (×10^9/L)"
    assert anc["unit"] == "×10^9/L"
    assert anc["type"].startswith("decimal")
    assert "Recovered when above 1.0; exactly 1.0 counts as not recovered (CRi)." in anc["rule"]
    assert "At least 0." in anc["rule"]
    assert anc["crf"] == "Response assessments"
    assert anc["template_column"] == "response_assessments.csv:anc_10e9_per_l"


def test_labels_come_from_the_model_fields():
    by_name = {(r["source"], r["variable"]): r for r in rows()}
    for field in ResponseAssessment._meta.fields:
        if field.name in ("id", "patient", "created_at", "updated_at", "version"):
            continue
        row = by_name[("registry.ResponseAssessment", field.name)]
        assert row["label"].lower() == str(field.verbose_name).lower()
    response = by_name[("registry.ResponseAssessment", "response")]
    assert "CRi = CR with incomplete blood count recovery (CRi)" in response["allowed_values"]
    assert "derive_response" in response["rule"] and "blasts < 5%" in response["rule"]
    grade = by_name[("registry.AdverseEvent", "grade")]
    assert "grade5_iff_fatal" in grade["rule"]
    term = by_name[("registry.AdverseEvent", "ctcae_term")]
    assert (
        "Febrile neutropenia = Blood and lymphatic system disorders; grades 3, 4, 5"
        in (term["allowed_values"])
    )


def test_analysis_variables_carry_the_labels_the_spss_and_stata_exports_use():
    dataset = [r for r in rows() if r["source"] == "analysis.dataset.VARIABLES"]
    assert [r["variable"] for r in dataset] == list(VARIABLES)
    for row in dataset:
        label, value_labels = VARIABLES[row["variable"]]
        assert row["label"] == label
        if value_labels:
            assert row["allowed_values"] == "; ".join(
                f"{code} = {text}" for code, text in value_labels.items()
            )
    efs = next(r for r in dataset if r["variable"] == "efs_cause")
    assert "2 = Death without relapse" in efs["allowed_values"]


@pytest.mark.django_db
def test_the_codebook_page_and_csv_download(client):
    client.force_login(f.user("stat", role="statistician", sites=("KR01",)))
    page = client.get("/exchange/codebook/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "anc_10e9_per_l" in html and "Analysis dataset" in html
    download = client.get("/exchange/codebook.csv")
    assert download.status_code == 200
    assert download["Content-Disposition"] == 'attachment; filename="codebook.csv"'
    assert download.content.decode() == codebook.codebook_csv()


@pytest.mark.django_db
def test_the_data_exchange_page_links_everything(client):
    client.force_login(f.user("inv", sites=("KR01",)))
    page = client.get("/exchange/").content.decode()
    for url in [
        "/exchange/import/",
        "/exchange/template/",
        "/exchange/import_template.zip",
        "/exchange/import_template.xlsx",
        "/exchange/codebook/",
        "/exchange/codebook.csv",
        "/exchange/odm.xml",
        "/exchange/api-token/",
        "/api/v1/",
        "/api/docs/",
        "/api/schema/",
    ]:
        assert f'href="{url}' in page, url
    assert client.get("/exchange/", follow=False).status_code == 200
    client.logout()
    assert client.get("/exchange/codebook/").status_code == 302  # login first
