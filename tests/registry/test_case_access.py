"""Every registry URL, every method: another site's case or record is a 404."""

import itertools
import re
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.urls import URLPattern, get_resolver, reverse

from registry.access import may_change_case, patients_for, request_memberships
from registry.models import Membership
from tests import factories as f

pytestmark = pytest.mark.django_db


def registry_patterns():
    """(name, URLPattern) for every pattern of the 'registry' namespace."""
    resolver = get_resolver()
    for entry in resolver.url_patterns:
        if getattr(entry, "app_name", None) == "registry":
            for pattern in entry.url_patterns:
                assert isinstance(pattern, URLPattern)
                yield pattern.name, pattern


def urls_for(pattern, ids):
    """Every URL of a pattern: int parameters from `ids`, named choices all enumerated."""
    converters = pattern.pattern.converters
    options = []
    for name, converter in converters.items():
        if hasattr(converter, "values"):
            options.append([(name, value) for value in converter.values])
        else:
            options.append([(name, ids.get(name))])
    for combination in itertools.product(*options):
        kwargs = dict(combination)
        if "record_pk" in kwargs:
            kwargs["record_pk"] = ids["records"][kwargs["kind"]]
        yield reverse(f"registry:{pattern.name}", kwargs=kwargs)


@pytest.fixture
def foreign_case():
    """A full case at KR02, with one record of every kind."""
    p = f.patient(site=f.institution("KR02", "Korea University Ansan Hospital"))
    f.baseline(p)
    c = f.cycle(p)
    a = f.assessment(p, c)
    ae = f.adverse_event(p, c)
    f.transplant(p)
    t = p.subsequent_therapies.create(category="other", regimen="Inotuzumab", start_date=f.START)
    f.followup(p)
    records = {"cycles": c.pk, "assessments": a.pk, "adverse-events": ae.pk}
    records["subsequent-therapies"] = t.pk
    return {"pk": p.pk, "records": records, "patient": p}


def case_urls(foreign_case):
    for _name, pattern in registry_patterns():
        if "pk" in pattern.pattern.converters:
            yield from urls_for(pattern, foreign_case)


def test_the_walk_covers_every_case_url(foreign_case):
    names = {name for name, pattern in registry_patterns() if "pk" in pattern.pattern.converters}
    assert names == {
        "case",
        "derive_response",
        "crf_complete",
        "single_record",
        "record_new",
        "record_edit",
        "record_remove",
    }
    assert len(list(case_urls(foreign_case))) > 20


def test_another_sites_case_is_404_on_every_url_and_method(client, foreign_case):
    client.force_login(f.user("kr01-investigator"))
    p = foreign_case["patient"]
    before = (p.version, p.cycles.get().version, p.crf_statuses.count())
    for url in case_urls(foreign_case):
        assert client.get(url).status_code == 404, url
        posted = client.post(url, {"reason": "x", "change_reason": "x", "version": "1"})
        assert posted.status_code == 404, url
    p.refresh_from_db()
    assert before == (p.version, p.cycles.get().version, p.crf_statuses.count())


def test_a_statistician_has_no_case_access(client, foreign_case):
    client.force_login(f.user("stat", role=Membership.STATISTICIAN, sites=("KR01", "KR02")))
    for url in case_urls(foreign_case):
        assert client.get(url).status_code == 404, url
        assert client.post(url, {}).status_code == 404, url
    assert client.get(reverse("registry:register")).status_code == 404


def test_anonymous_is_sent_to_log_in_on_every_url(client, foreign_case):
    urls = [*case_urls(foreign_case), reverse("registry:case_list"), reverse("registry:register")]
    for url in urls:
        for method in (client.get, client.post):
            response = method(url)
            assert response.status_code == 302, url
            assert re.match(r"^/accounts/login/\?next=", response["Location"]), url


def test_own_case_with_another_cases_record_is_404(client, foreign_case):
    client.force_login(f.user("kr02-investigator", sites=("KR02",)))
    own = f.patient(site=f.institution("KR02"))
    for kind, record_pk in foreign_case["records"].items():
        for name in ("record_edit", "record_remove"):
            url = reverse(f"registry:{name}", args=[own.pk, kind, record_pk])
            assert client.get(url).status_code == 404, url
            assert client.post(url, {"reason": "x"}).status_code == 404, url
    # the same investigator reaches the records through their own case
    p = foreign_case["patient"]
    url = reverse("registry:record_edit", args=[p.pk, "cycles", foreign_case["records"]["cycles"]])
    assert client.get(url).status_code == 200


def test_the_monitor_of_a_site_reaches_its_cases(client, foreign_case):
    client.force_login(f.user("mon", role=Membership.MONITOR, sites=("KR02",)))
    assert client.get(reverse("registry:case", args=[foreign_case["pk"]])).status_code == 200


def test_registering_at_another_site_is_refused(client):
    kr02 = f.institution("KR02", "Korea University Ansan Hospital")
    client.force_login(f.user("inv"))
    response = client.post(
        reverse("registry:register"),
        {
            "institution": kr02.pk,
            "relapsed_refractory": "on",
            "bcp_all": "on",
            "ph_negative": "on",
            "cd19_positive": "on",
            "birth_year": 1970,
            "blinatumomab_start_date": "2017-03-06",
            "sex": "male",
            "diagnosis_date": "2016-01-01",
        },
    )
    assert response.status_code == 200
    assert "institution" in response.context["form"].errors
    assert not kr02.patients.exists()


def test_the_per_request_memberships_scope_cases_and_changes_as_the_queries_do():
    """case_of() scopes with the memberships read once per request (registry.access
    .request_memberships): the same cases, and the same right to change them, as the queries."""
    sites = [f.institution(code, code) for code in ("KR01", "KR02", "KR03")]
    cases = [f.patient(site=s) for s in sites for _ in range(2)]
    mixed = f.user("mixed", sites=("KR01",))
    Membership.objects.create(user=mixed, institution=sites[1], role=Membership.MONITOR)
    Membership.objects.create(user=mixed, institution=sites[2], role=Membership.STATISTICIAN)
    users = [
        mixed,
        f.user("inv", sites=("KR02",)),
        f.user("mon", role=Membership.MONITOR, sites=("KR01", "KR03")),
        f.user("stat", role=Membership.STATISTICIAN, sites=("KR01",)),
        f.user("nobody", sites=()),
        get_user_model().objects.create_superuser("root", password="pw-for-tests-1"),
        AnonymousUser(),
    ]
    for user in users:
        memberships = request_memberships(SimpleNamespace(user=user))
        for roles in [(Membership.INVESTIGATOR, Membership.MONITOR), (Membership.MONITOR,)]:
            expected = set(patients_for(user, roles))
            assert set(patients_for(user, roles, memberships=memberships)) == expected, user
        for case in cases:
            assert may_change_case(user, case, memberships) == may_change_case(user, case), (
                user,
                case,
            )
