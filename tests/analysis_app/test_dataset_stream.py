"""analysis_dataset.csv streamed a chunk of patients at a time equals the CSV of the whole frame,
and the dashboard serves it to analysts only, as a streaming download."""

from io import StringIO

import pandas as pd
import pytest
from django.core.management import call_command
from django.http import StreamingHttpResponse
from django.urls import reverse

from analysis.dataset import VARIABLES, iter_dataset_csv, load_registry
from registry.models import Membership, Patient
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo():
    call_command("seed_demo", patients=57, seed=361, allow_production=True, stdout=StringIO())


@pytest.mark.parametrize("chunk_size", [1, 7, 56, 57, 1000])
def test_streamed_csv_equals_the_whole_frames_csv(demo, chunk_size):
    whole = load_registry().dataset.to_csv(index=False)
    chunks = list(iter_dataset_csv(chunk_size=chunk_size))
    assert "".join(chunks) == whole
    # the header, then ceil(57 / chunk_size) chunks of rows
    assert len(chunks) == 1 + -(-57 // chunk_size)


def test_streamed_csv_of_a_subset_keeps_study_id_order(demo):
    subset = Patient.objects.filter(institution__code__in=["KR03", "KR01"])
    frame = pd.read_csv(StringIO("".join(iter_dataset_csv(subset, chunk_size=4))))
    expected = sorted(subset.values_list("study_id", flat=True))
    assert frame["study_id"].tolist() == expected
    assert frame.columns.tolist() == list(VARIABLES)


def test_an_empty_registry_streams_the_header_only():
    assert "".join(iter_dataset_csv()) == ",".join(VARIABLES) + "\n"


def test_statistician_downloads_the_current_dataset_as_a_stream(demo, client):
    client.force_login(f.user("stat", role=Membership.STATISTICIAN))
    response = client.get(reverse("analysis:dataset_csv"))
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Disposition"] == 'attachment; filename="analysis_dataset.csv"'
    body = b"".join(response.streaming_content).decode()
    assert body == load_registry().dataset.to_csv(index=False)


def test_an_investigator_may_not_download_the_registry_wide_dataset(demo, client):
    client.force_login(f.user("inv"))
    assert client.get(reverse("analysis:dataset_csv")).status_code == 403
