"""Hostile and random input (hypothesis) to every CRF form, the REST API and the bulk import:
out-of-range numbers, wrong types, huge strings, HTML and SQL fragments, impossible dates.

Whatever arrives: no answer is a 500; what is refused saves nothing (every registry table is
unchanged, history included); what is saved passes full_clean(); and nothing typed in comes back
as live HTML (an injected <script> or onerror= never appears unescaped in a page)."""

import contextlib
import copy
import json
from datetime import date, timedelta

import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token

from registry import views
from registry.models import AdverseEvent, Cycle, ResponseAssessment, SubsequentTherapy
from tests import factories as f

from .conftest import full_case, make_user
from .test_faults import crf_post, snapshot

pytestmark = pytest.mark.django_db

EXAMPLES = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # the same examples on every run: a failure is reproducible in CI
)

# Markers that would be live HTML if echoed unescaped.
XSS = [
    '<script>alert("xss")</script>',
    '"><img src=x onerror=alert(1)>',
    "<svg/onload=alert(1)>",
    "javascript:alert(1)",
]
LIVE = ["<script>alert", "<img src=x onerror", "<svg/onload"]
SQL = ["'; DROP TABLE registry_patient; --", "1 OR 1=1", "1'; SELECT pg_sleep(5); --", '"']
ODD = [
    "",
    " ",
    "\x00",
    "\ufeff",
    "NaN",
    "-Infinity",
    "1e309",
    "-1",
    "0",
    "9" * 40,
    "1,5",
    "０１２",
    "%s%n",
    "{{ 7*7 }}",
    "../../etc/passwd",
    "true",
    "null",
]
IMPOSSIBLE_DATES = ["2017-02-30", "2017-13-01", "0000-00-00", "9999-12-31", "1899-12-31", "17-3-6"]
IMPOSSIBLE_DATES += ["2017-03-06T25:00", "31/12/2016", str(date.today() + timedelta(days=1))]

TEXT = st.one_of(
    st.sampled_from(XSS + SQL + ODD + IMPOSSIBLE_DATES),
    st.text(max_size=30),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)).map(date.isoformat),
    st.sampled_from(["A" * 5000, "<b>" * 2000 + XSS[0]]),
)
# JSON adds wrong types: numbers for text, lists, objects, booleans, null.
JSON_VALUE = st.one_of(
    TEXT,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.lists(st.sampled_from(XSS + ODD), max_size=3),
    st.dictionaries(st.sampled_from(["a", "id", "__proto__"]), st.sampled_from(XSS), max_size=2),
)


@contextlib.contextmanager
def rolled_back():
    """Each example starts from the same registry: its writes are undone afterwards (the views'
    own transactions nest inside as savepoints)."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def assert_escaped(response):
    text = response.content.decode("utf-8", "replace")
    for marker in LIVE:
        assert marker not in text, f"unescaped {marker!r} in {response.request['PATH_INFO']}"


def assert_all_records_valid():
    for model in apps.get_app_config("registry").get_models():
        if model.__name__.startswith("Historical"):
            continue
        for obj in model.objects.all():
            obj.full_clean()


@pytest.fixture
def case(db):
    kr01 = f.institution("KR01")
    patient, records = full_case(kr01)
    client = Client()
    client.force_login(make_user("inv", sites={"KR01": {"investigator"}}))
    return patient, client


def new_record(patient, slug):
    """A valid unsaved record of a repeating kind, as the 'new' form would be filled in."""
    c1 = patient.cycles.get(number=1)
    start = patient.blinatumomab_start_date
    return {
        "cycles": lambda: Cycle(
            patient=patient,
            number=2,
            start_date=start + timedelta(days=42),
            end_date=start + timedelta(days=69),
            outcome=Cycle.COMPLETED,
            **Cycle.planned_doses(2),
        ),
        "assessments": lambda: ResponseAssessment(
            patient=patient,
            cycle=c1,
            assessment_date=c1.end_date + timedelta(days=5),
            marrow_blasts_pct="3",
            anc_10e9_per_l="2.1",
            platelets_10e9_per_l="150",
        ),
        "adverse-events": lambda: AdverseEvent(
            patient=patient,
            cycle=c1,
            ctcae_term="Cytokine release syndrome",
            grade=2,
            onset_date=start + timedelta(days=3),
            resolution_date=start + timedelta(days=5),
            attribution="possible",
            action_taken="none",
            outcome="recovered",
        ),
        "subsequent-therapies": lambda: SubsequentTherapy(
            patient=patient,
            category="other",
            regimen="Ponatinib",
            start_date=start + timedelta(120),
        ),
    }[slug]()


def crf_target(patient, slug):
    kind = views.KINDS[slug]
    if kind.many:
        record = new_record(patient, slug)
        url = reverse("registry:record_new", args=[patient.pk, slug])
    else:
        kind.record(patient).refresh_from_db()
        record = kind.record(patient)
        url = reverse("registry:single_record", args=[patient.pk, slug])
    return url, crf_post(patient, slug, record)


@pytest.mark.parametrize("slug", list(views.KINDS))
def test_the_crf_fuzzing_starts_from_values_that_save(case, slug):
    patient, client = case
    url, valid = crf_target(patient, slug)
    response = client.post(url, valid)
    assert response.status_code == 302, response.context["form"].errors


def test_the_import_fuzzing_starts_from_files_that_import(case):
    from tests.exchange import legacy

    _patient, client = case
    uploads = [
        SimpleUploadedFile(f"{n}.csv", legacy.csv_bytes(n, r), "text/csv")
        for n, r in legacy.FILES.items()
    ]
    site = f.institution("KR01").pk
    response = client.post(reverse("exchange:import"), {"files": uploads, "institution": site})
    assert response.status_code == 200, response.content.decode()[-3000:]


@EXAMPLES
@given(data=st.data())
def test_every_crf_form_refuses_hostile_input_cleanly(case, data):
    with rolled_back():
        patient, client = case
        slug = data.draw(st.sampled_from(list(views.KINDS)), label="CRF")
        url, valid = crf_target(patient, slug)
        fields = sorted(k for k in valid if k != "version")
        changes = data.draw(
            st.dictionaries(st.sampled_from(fields), TEXT, min_size=1, max_size=4), label="values"
        )
        before = snapshot()
        response = client.post(url, {**valid, **changes})
        assert response.status_code in (200, 302), response.status_code
        event(f"{slug}: {response.status_code}")
        assert_escaped(response)
        if response.status_code == 200:  # the form again, with its errors: nothing saved
            assert snapshot() == before
        assert_all_records_valid()
        page = client.get(reverse("registry:case", args=[patient.pk]))
        assert page.status_code == 200
        assert_escaped(page)


@EXAMPLES
@given(data=st.data())
def test_registration_refuses_hostile_input_cleanly(case, data):
    with rolled_back():
        _patient, client = case
        valid = {
            "institution": str(f.institution("KR01").pk),
            "relapsed_refractory": "on",
            "bcp_all": "on",
            "ph_negative": "on",
            "cd19_positive": "on",
            "sex": "female",
            "birth_year": "1975",
            "diagnosis_date": "2016-02-01",
            "blinatumomab_start_date": "2017-03-06",
            "site_case_number": "H-1",
        }
        changes = data.draw(st.dictionaries(st.sampled_from(sorted(valid)), TEXT, min_size=1))
        before = snapshot()
        response = client.post(reverse("registry:register"), {**valid, **changes})
        assert response.status_code in (200, 302)
        assert_escaped(response)
        if response.status_code == 200:
            assert snapshot() == before
        assert_all_records_valid()
        listing = client.get(
            reverse("registry:case_list"), {"q": changes.get("site_case_number", "")}
        )
        assert listing.status_code == 200
        assert_escaped(listing)


@EXAMPLES
@given(params=st.dictionaries(st.sampled_from(["marrow_blasts_pct", "anc_10e9_per_l",
    "platelets_10e9_per_l", "emd_status", "q", "sort", "page", "site"]), TEXT))  # fmt: skip
def test_query_strings_never_crash_the_pages(case, params):
    with rolled_back():
        patient, client = case
        for url in (
            reverse("registry:derive_response", args=[patient.pk]),
            reverse("registry:case_list"),
        ):
            response = client.get(url, params)
            assert response.status_code == 200, (url, params)
            assert_escaped(response)


# --- The REST API ----------------------------------------------------------------------------

API = "/api/v1"
# resource -> (how a record is addressed, fields that are the API's own bookkeeping)
RESOURCES = {
    "patients": "study_id",
    "baselines": "study_id",
    "cycles": "id",
    "response-assessments": "id",
    "adverse-events": "id",
    "transplants": "study_id",
    "subsequent-therapies": "id",
    "follow-ups": "study_id",
}


@pytest.fixture
def api(case):
    patient, _client = case
    user = make_user("api-inv", sites={"KR01": {"investigator"}})
    client = Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return patient, client


def api_record(client, resource, patient):
    listing = client.get(f"{API}/{resource}/", {"patient": patient.study_id}).json()
    rows = listing["results"] if isinstance(listing, dict) and "results" in listing else listing
    return rows[0]


@EXAMPLES
@given(data=st.data())
def test_the_api_refuses_hostile_json_cleanly(api, data):
    with rolled_back():
        patient, client = api
        resource = data.draw(st.sampled_from(sorted(RESOURCES)), label="resource")
        record = api_record(client, resource, patient)
        writable = sorted(
            k for k in record if k not in ("id", "study_id", "version", "age_at_start")
        )
        changes = data.draw(
            st.dictionaries(st.sampled_from(writable), JSON_VALUE, min_size=1, max_size=4),
            label="values",
        )
        key = record[RESOURCES[resource]] if RESOURCES[resource] == "id" else patient.study_id
        method = data.draw(st.sampled_from(["patch", "post"]), label="method")
        before = snapshot()
        if method == "patch":
            body = {**changes, "version": record["version"], "change_reason": "fuzz"}
            response = client.patch(
                f"{API}/{resource}/{key}/", json.dumps(body), content_type="application/json"
            )
        else:
            body = {k: v for k, v in record.items() if k not in ("id", "version")}
            body.update(changes)
            response = client.post(
                f"{API}/{resource}/", json.dumps(body), content_type="application/json"
            )
        assert response.status_code < 500, response.content[:500]
        event(f"{method} {resource}: {response.status_code}")
        assert response["Content-Type"].startswith("application/json")
        assert response["X-Content-Type-Options"] == "nosniff"
        if response.status_code >= 300:
            assert snapshot() == before, response.content[:500]
        assert_all_records_valid()
        # the browsable API renders what is stored as text, never as markup
        page = client.get(f"{API}/{resource}/", HTTP_ACCEPT="text/html")
        assert page.status_code == 200
        assert_escaped(page)


@EXAMPLES
@given(raw=st.binary(max_size=2000), suffix=st.sampled_from([".csv", ".xlsx", ".zip", ".txt"]))
def test_the_import_survives_arbitrary_files(case, raw, suffix):
    with rolled_back():
        _patient, client = case
        before = snapshot()
        upload = SimpleUploadedFile(f"patients{suffix}", raw)
        site = f.institution("KR01").pk
        response = client.post(reverse("exchange:import"), {"files": [upload], "institution": site})
        assert response.status_code in (200, 400)
        assert_escaped(response)
        assert snapshot() == before or response.status_code == 200
        assert_all_records_valid()


@EXAMPLES
@given(data=st.data())
def test_the_import_refuses_hostile_cells_cleanly(case, data):
    with rolled_back():
        from tests.exchange import legacy

        _patient, client = case
        files = copy.deepcopy(legacy.FILES)
        name = data.draw(st.sampled_from(sorted(files)), label="file")
        rows = files[name]
        row = rows[data.draw(st.integers(0, len(rows) - 1), label="row")]
        columns = legacy.columns_of(name)
        for column, value in data.draw(
            st.dictionaries(st.sampled_from(columns), TEXT, min_size=1, max_size=3), label="cells"
        ).items():
            row[column] = value
        uploads = [
            SimpleUploadedFile(f"{n}.csv", legacy.csv_bytes(n, r), "text/csv")
            for n, r in files.items()
        ]
        before = snapshot()
        site = f.institution("KR01").pk
        response = client.post(reverse("exchange:import"), {"files": uploads, "institution": site})
        assert response.status_code in (200, 400)
        event(f"import: {response.status_code}")
        assert_escaped(response)
        if response.status_code == 400:  # all or nothing
            assert snapshot() == before
        assert_all_records_valid()
