"""The pages' SQL queries do not grow with the size of the registry.

Each page is requested on the demo registry at two sizes (seed_demo, same seed); the number of
queries at the larger size must not exceed the number at the smaller one (pytest-django's
django_assert_max_num_queries), and stays under a fixed ceiling. bench/pages_bench.py measures
the same pages at 10,000 and 100,000 patients, with their latency.
"""

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analysis.models import AnalysisRun
from analysis.outputs import default_parameters
from analysis.runs import execute
from tests import factories as f

pytestmark = pytest.mark.django_db

SMALL, LARGE = 40, 160
CEILING = 60  # queries per page, whatever the size (the case page of a small case: ~50)


def seed(n):
    call_command("seed_demo", patients=n, seed=361, allow_production=True, stdout=StringIO())


@pytest.fixture
def fixed_case():
    """A case outside the demo sites, so it is the same at both sizes, and its investigator."""
    site = f.institution("ZZ01", "Query-count site")
    p = f.patient(site=site)
    f.baseline(p)
    c = f.cycle(p)
    f.assessment(p, c)
    f.adverse_event(p, c)
    f.followup(p)
    user = f.user("zz-investigator", sites=("ZZ01",))
    return p, user


def admin_pages():
    return [
        f"/admin/{m._meta.app_label}/{m._meta.model_name}/"
        for m in admin.site._registry
        if m._meta.app_label in ("registry", "monitoring")
    ]


def pages(case):
    """(label, username, url): the case list, a case page, the dashboard, the change lists."""
    out = [
        ("case list", "investigator", "/"),
        ("case list by best response", "investigator", "/?sort=response"),
        ("case list by cycles", "investigator", "/?sort=-cycles"),
        ("case list search", "investigator", "/?q=KR01"),
        ("case page", "zz-investigator", f"/cases/{case.pk}/"),
        ("new assessment form", "zz-investigator", f"/cases/{case.pk}/assessments/new/"),
        ("new adverse event form", "zz-investigator", f"/cases/{case.pk}/adverse-events/new/"),
        ("analysis dashboard", "statistician", "/analysis/"),
        ("patient change form", "admin", f"/admin/registry/patient/{case.pk}/change/"),
    ]
    for url in admin_pages():
        out.append((f"admin {url}", "admin", url))
        out.append((f"admin {url} as monitor", "monitor", url))
    return out


def count_queries(client, url):
    client.get(url)  # the first visit may store things in the session
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(queries)


def test_page_queries_do_not_grow_with_the_registry(
    client, settings, tmp_path, fixed_case, django_assert_max_num_queries
):
    settings.REQUIRE_2FA = False  # the pages are measured, not the login flow
    case, _ = fixed_case
    User = get_user_model()
    seed(SMALL)
    run = AnalysisRun.objects.create(
        parameters=default_parameters(), output_path=str(tmp_path / "run")
    )
    assert execute(run).status == AnalysisRun.SUCCEEDED

    small = {}
    for label, username, url in pages(case):
        client.force_login(User.objects.get(username=username))
        small[label] = count_queries(client, url)
        assert small[label] <= CEILING, (label, small[label])

    seed(LARGE)
    for label, username, url in pages(case):
        client.force_login(User.objects.get(username=username))
        client.get(url)
        with django_assert_max_num_queries(small[label], info=label):
            assert client.get(url).status_code == 200


# --- The CRF data-entry round trip (bench/load_bench.py) -----------------------------------------

# GET: session, user, the user's memberships (two-factor check and navigation), the case, its CRF
# status, its cycles. POST: the same first five, the chosen cycle, the lock check (full_clean), the
# cycle's existence (model validation), the lock check again (save), the record, its history row,
# whether the CRF is verified and whether the case is signed (monitoring), and the savepoint around
# the save.
CRF_GET_QUERIES = 6
CRF_POST_QUERIES = {"assessments": 15, "adverse-events": 15}


def crf_values(kind, cycle):
    if kind == "assessments":
        return {
            "cycle": cycle.pk,
            "assessment_date": str(cycle.start_date + timedelta(days=30)),
            "marrow_blasts_pct": "2.0",
            "anc_10e9_per_l": "1.50",
            "platelets_10e9_per_l": "120.0",
            "emd_status": "none",
            "mrd_status": "not_done",
        }
    return {
        "cycle": cycle.pk,
        "ctcae_term": "Anemia",
        "grade": "2",
        "onset_date": str(cycle.start_date + timedelta(days=5)),
        "attribution": "possible",
        "action_taken": "none",
        "outcome": "recovering",
    }


@pytest.mark.parametrize("kind", ["assessments", "adverse-events"])
def test_a_crf_form_and_its_save_take_a_fixed_number_of_queries(
    client, settings, fixed_case, kind, django_assert_max_num_queries
):
    settings.REQUIRE_2FA = True  # as in production: the two-factor middleware asks too
    case, user = fixed_case
    client.force_login(user)
    url = f"/cases/{case.pk}/{kind}/new/"
    assert client.get(url).status_code == 200  # the first visit may fill per-process caches
    with django_assert_max_num_queries(CRF_GET_QUERIES, info=f"GET {kind}"):
        page = client.get(url)
    assert page.status_code == 200 and b'name="version"' in page.content
    values = {"version": "", **crf_values(kind, case.cycles.get())}
    with django_assert_max_num_queries(CRF_POST_QUERIES[kind], info=f"POST {kind}"):
        saved = client.post(url, values)
    assert saved.status_code == 302, saved.context["form"].errors if saved.context else saved
