"""An analysis runs on the registry as it is while sites enter data: a case registered a moment
ago has no baseline yet (found by the journeys: every run after a registration failed with
"boolean value of NA is ambiguous" in Table 1's ECOG bands)."""

from io import StringIO

import pytest
from django.core.management import call_command

from analysis import tables
from analysis.dataset import load_registry
from registry.models import Institution, Patient
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_and_a_new_registration(settings):
    settings.DEBUG = True
    call_command("seed_demo", patients=20, stdout=StringIO())
    return f.patient(site=Institution.objects.get(code="KR01"))  # registered, nothing else yet


def test_table1_counts_the_case_without_a_baseline_as_missing(demo_and_a_new_registration):
    df = load_registry().dataset
    assert df["ecog"].isna().sum() == 1
    table = tables.table1(df)
    ecog = table[table["characteristic"] == "ECOG performance status"]
    assert set(ecog["denominator"]) == {Patient.objects.count() - 1}


def test_an_analysis_run_succeeds(demo_and_a_new_registration, tmp_path):
    call_command("run_analysis", "--out", str(tmp_path), stdout=StringIO())
    assert (tmp_path / "table1.csv").exists()
