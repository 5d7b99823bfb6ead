"""The case list and the case page: what an investigator sees, and what it costs in queries."""

import pytest
from django.urls import reverse

from registry import rules
from registry.models import CrfStatus, Membership
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def investigator(client):
    user = f.user("inv")
    client.force_login(user)
    return user


def full_case(site=None, response_labs=None):
    p = f.patient(site=site)
    f.baseline(p)
    c = f.cycle(p)
    f.assessment(p, c, **(response_labs or {}))
    f.adverse_event(p, c)
    return p


def test_login_page_and_landing_on_the_case_list(client):
    f.user("inv")
    assert client.get("/").status_code == 302
    page = client.get(reverse("login"))
    assert b'name="username"' in page.content
    response = client.post(
        reverse("login"), {"username": "inv", "password": "pw-for-tests-1"}, follow=True
    )
    assert response.request["PATH_INFO"] == "/"
    assert b"Cases at KR01" in response.content
    response = client.post(reverse("logout"), follow=True)
    assert b'name="username"' in response.content


def test_case_list_shows_cycles_derived_best_response_and_crf_statuses(client, investigator):
    p = full_case(response_labs={"anc_10e9_per_l": "0.8"})  # CRi
    f.cycle(p, 2)
    CrfStatus.objects.create(patient=p, crf=CrfStatus.BASELINE, status=CrfStatus.COMPLETE)
    page = client.get("/")
    row = page.context["page"][0]
    assert (row.study_id, row.n_cycles, row.best_response) == ("KR01-001", 2, rules.CRI)
    statuses = {s.crf: s.status for s in row.crfs}
    assert statuses == {
        "baseline": "complete",
        "cycles": "in_progress",
        "assessments": "in_progress",
        "adverse_events": "in_progress",
        "transplant": "not_started",
        "follow_up": "not_started",
    }
    assert b"CRi" in page.content and b"Not started" in page.content


def test_best_response_is_the_best_ever_reached_and_empty_without_assessment(client, investigator):
    p = full_case(response_labs={"marrow_blasts_pct": "40"})  # NR
    c2 = f.cycle(p, 2)
    f.assessment(p, c2)  # CR
    f.patient()  # no assessment
    rows = {r.study_id: r.best_response for r in client.get("/").context["page"]}
    assert rows == {"KR01-001": rules.CR, "KR01-002": ""}


def test_case_list_sorts_searches_and_paginates(client, investigator):
    for _ in range(27):
        f.patient()
    f.cycle(f.patient(), 1)  # KR01-028 has the most cycles
    page = client.get("/", {"sort": "-cycles"}).context["page"]
    assert page[0].study_id == "KR01-028"
    assert page.paginator.num_pages == 2 and len(page) == 25
    page2 = client.get("/", {"sort": "study_id", "page": 2}).context["page"]
    assert [p.study_id for p in page2] == ["KR01-026", "KR01-027", "KR01-028"]
    found = client.get("/", {"q": "-02"}).context["page"]
    assert {p.study_id for p in found} == {f"KR01-0{n:02d}" for n in range(20, 29)}
    assert client.get("/", {"sort": "nonsense"}).status_code == 200


def test_site_switcher_for_an_investigator_of_several_sites(client):
    kr02 = f.institution("KR02", "Korea University Ansan Hospital")
    kr03 = f.institution("KR03", "Seoul St. Mary's Hospital")
    f.patient(site=kr02)
    f.patient(site=kr03)
    f.patient()  # KR01: not theirs
    client.force_login(f.user("inv2", sites=("KR02", "KR03")))
    first = client.get("/")
    assert [p.study_id for p in first.context["page"]] == ["KR02-001"]
    assert b'id="site-switcher"' in first.content
    other = client.get("/", {"site": "KR03"})
    assert [p.study_id for p in other.context["page"]] == ["KR03-001"]
    assert client.get("/", {"site": "KR01"}).context["site"].code == "KR03"  # remembered, not KR01


def test_statistician_has_no_case_access_and_lands_on_the_analyses(client):
    p = f.patient()
    client.force_login(f.user("stat", role=Membership.STATISTICIAN))
    page = client.get("/")
    assert (page.status_code, page["Location"]) == (302, reverse("analysis:dashboard"))
    assert client.get(reverse("registry:case", args=[p.pk])).status_code == 404


def test_a_user_without_any_role_is_told_they_have_no_case_access(client):
    f.patient()
    client.force_login(f.user("nobody", sites=()))
    page = client.get("/")
    assert page.context["site"] is None
    assert b"KR01-001" not in page.content and b"no case access" in page.content


def test_case_list_queries_do_not_grow_with_the_number_of_cases(
    client, investigator, django_assert_max_num_queries
):
    def make(n):
        for _ in range(n):
            p = full_case()
            CrfStatus.objects.create(
                patient=p,
                crf=CrfStatus.BASELINE,
                status="complete",
                marked_complete_by=investigator,
            )

    make(2)
    client.get("/")  # the first visit stores the chosen site in the session
    # 9 for the page; the session is not rewritten within a minute of its last save
    with django_assert_max_num_queries(9) as few:
        assert len(client.get("/").context["page"]) == 2
    make(20)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(client.get("/").context["page"]) == 22


def test_case_page_shows_the_timeline_and_every_crf_one_click_away(client, investigator):
    p = full_case()
    f.transplant(p)
    f.followup(p)
    page = client.get(reverse("registry:case", args=[p.pk]))
    labels = [e[2] for e in page.context["timeline"]]
    assert labels == [
        "Diagnosis",
        "Start",
        "Baseline",
        "Cycle",
        "AE",
        "Assessment",
        "SCT",
        "Follow-up",
    ]
    for slug in ("registration", "baseline", "transplant", "follow-up"):
        assert reverse("registry:single_record", args=[p.pk, slug]).encode() in page.content
    for slug in ("cycles", "assessments", "adverse-events", "subsequent-therapies"):
        assert reverse("registry:record_new", args=[p.pk, slug]).encode() in page.content
    cycle = p.cycles.get()
    assert reverse("registry:record_edit", args=[p.pk, "cycles", cycle.pk]).encode() in page.content
