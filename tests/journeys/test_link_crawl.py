"""Every role clicks through everything it is offered, on a demo registry people have worked on.

The demo registry is first edited by a short, fixed run of the journeys' own actions (records
changed, added and removed, CRFs complete and verified, a query answered, a case signed, a case and
a site locked, a patient registered, rows imported, an analysis run). Then for each demo login
(investigator, investigator2, monitor, statistician, admin) a breadth-first crawl starts at the
page the log-in lands on and follows every same-site link and every form it is offered:

- links and GET forms (search, site switcher, filters: submitted as rendered) must answer without
  a 5xx, and never with a refusal (403, 404, 405, a log-in page, or a redirect back with an error
  message) for a link the page offered;
- a POST form (a button) is submitted as rendered inside a savepoint that is rolled back, so the
  registry does not change: it must not be a 5xx nor a refusal (403/404/405): a button a role
  cannot use must not be shown to it.

The crawl is bounded (pages per role, instances of one URL shape) and skips logging out and
starting analysis runs (the journeys start one).
"""

from __future__ import annotations

import re
from collections import Counter, deque
from urllib.parse import urlencode

import pytest
from django.db import transaction
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from registry.models import Patient

from . import model as m
from .browser import Person
from .test_stateful_journeys import MY_SITES, RegistryJourneys

ROLES = ["investigator", "investigator2", "monitor", "statistician", "admin"]
MAX_PAGES_PER_ROLE = 220
MAX_PER_SHAPE = 3  # e.g. three record pages of each kind, three admin change forms per model
SKIP = re.compile(
    r"^/(static|media)/|/logout/|^/accounts/login/|^/admin/login/"
    r"|^/analysis/runs/$"  # starts a run: seconds each; the journeys start one
    r"|^/admin/jsi18n/"
)
REFUSED = {403: "refused (403)", 404: "not found (404)", 405: "method not allowed (405)"}


def shape(url: str) -> str:
    """A URL with its IDs and query values blanked: /cases/N/cycles/N/?page=."""
    path, _, query = url.partition("?")
    path = re.sub(r"/\d+", "/N", path)
    path = re.sub(r"/[0-9a-f]{8}-[0-9a-f-]{27}", "/UUID", path)
    keys = sorted(k.split("=")[0] for k in query.split("&") if k)
    return path + ("?" + "&".join(keys) if keys else "")


def crawl(role: str) -> tuple[list[str], int, str]:
    """Crawl as `role`; returns (problems, pages visited, the page the log-in lands on)."""
    person = Person(role)
    person.client.raise_request_exception = False  # a 500 is a finding, not the end
    landing = person.log_in()
    problems = []
    queue = deque([(landing, "the log-in")])
    seen_urls, seen_forms = set(), set()
    shapes = Counter()
    visited, landed = 0, landing
    pressed = [0]
    while queue and visited < MAX_PAGES_PER_ROLE:
        url, found_on = queue.popleft()
        if url in seen_urls:
            continue
        seen_urls.add(url)
        if shapes[shape(url)] >= MAX_PER_SHAPE:
            continue
        shapes[shape(url)] += 1
        page, hops, final = person.get(url), 0, url
        while page.status in (301, 302, 303) and page.location and hops < 5:
            target = page.location
            if re.match(r"^/(accounts|admin)/login/", target):
                problems.append(f"{role}: GET {url} (link on {found_on}) -> a log-in page")
                break
            if not target.startswith("/"):
                break
            page, hops, final = person.get(target), hops + 1, target
        if not visited:
            landed = final
        visited += 1
        if page.status >= 500 or page.status in REFUSED:
            why = REFUSED.get(page.status, f"server error {page.status}")
            problems.append(f"{role}: GET {url} (link on {found_on}) -> {why}")
            continue
        refusals = page.alert_texts("alert-danger") if hops else []
        if refusals:  # offered, but it only leads back with an error ("... is locked")
            problems.append(f"{role}: GET {url} (link on {found_on}) -> back with: {refusals[0]}")
        if "html" not in page.content_type:
            continue
        for link in page.links:
            href = link.href
            if href.startswith("/") and not SKIP.search(href) and href not in seen_urls:
                queue.append((href, url))
        for form in page.forms:
            action = form.action
            if not action.startswith("/") or SKIP.search(action) or not form.submittable:
                continue
            key = (form.method, shape(action), tuple(sorted(form.names)))
            if key in seen_forms:
                continue
            seen_forms.add(key)
            if form.method == "get":
                data = {k: v for k, v in form.data().items() if isinstance(v, str)}
                query = urlencode(sorted(data.items()))
                base = action.split("?")[0]
                queue.append((f"{base}?{query}" if query else base, url))
                continue
            pressed[0] += 1
            problem = try_button(person, form)
            if problem:
                problems.append(f"{role}: '{form.text()}' on {url} -> POST {action}: {problem}")
    PRESSED[role] = pressed[0]
    return problems, visited, landed


PRESSED = Counter()  # role -> buttons pressed (and undone), for the printed summary


def try_button(person: Person, form) -> str | None:
    """Press a rendered button, then undo whatever it did (a savepoint rolled back)."""
    with transaction.atomic():
        response = person.submit(form)
        transaction.set_rollback(True)
    if response.status >= 500:
        return f"server error {response.status}"
    return REFUSED.get(response.status)


# --- The edited demo registry ---------------------------------------------------------------


class KeptJourney(RegistryJourneys):
    """The journeys' actions, with the changes kept for the crawl."""

    def teardown(self):
        self._journey.__exit__(None, None, None)


def edit_the_demo_registry() -> list[str]:
    """A fixed run of the journeys' actions (Hypothesis draws the simplest values, so the run
    is the same every time). Returns what went wrong, for the report: the journeys' own test
    fails on those; the crawl goes on with the registry as it is."""
    problems = []

    @settings(
        max_examples=1,
        phases=[Phase.generate],
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def run(data):
        problems.clear()
        j = KeptJourney()
        try:
            cases = list(j.the_demo_cases().values)
            j.the_demo_records()
            site = {c: j.monitoring.site_of[c] for c in cases}
            kr01 = [c for c in cases if site[c] == "KR01"]
            kr03 = [c for c in cases if site[c] == "KR03"]
            first, second = kr01[0], kr01[1]

            def records_of(case, kind):
                model = m.KINDS[kind].model
                return list(model.objects.filter(patient_id=case).values_list("pk", flat=True))

            def ref(case, kind, pk):
                return m.RecordRef(case, kind, pk)

            steps = [
                lambda: j.investigator_fills_in_a_one_record_crf(first, "follow-up", data),
                lambda: j.investigator_adds_a_record(first, "subsequent-therapies", data),
                lambda: j.investigator_changes_a_record(
                    ref(first, "adverse-events", records_of(first, "adverse-events")[0]), data
                ),
                lambda: j.investigator_removes_a_record(
                    ref(first, "adverse-events", records_of(first, "adverse-events")[-1]), data
                ),
                lambda: j.investigator_marks_crfs_complete(first, "every CRF"),
                lambda: j.monitor_verifies_a_crf(first, data),
                lambda: j.investigator_signs_the_case(first, data),
                lambda: j.monitor_opens_a_query(second, data),
                lambda: j.the_query_thread_goes_on(second, data),
                lambda: j.monitor_locks_or_unlocks_the_case(kr03[0], data),
                lambda: j.investigator_registers_a_patient("investigator2", data),
                lambda: j.investigator_imports_rows("investigator", data),
                lambda: j.monitor_runs_the_edit_checks("KR01", data),
                lambda: j.monitor_locks_or_unlocks_a_site("KR02", data),
                lambda: j.statistician_starts_an_analysis(data),
            ]
            for number, step in enumerate(steps, 1):
                try:
                    with transaction.atomic():
                        step()
                except Exception as e:  # noqa: BLE001 - reported, and the crawl goes on
                    problems.append(f"editing step {number}: {type(e).__name__}: {e}"[:500])
                    j.before = m.snapshot()
        finally:
            j.teardown()

    run()
    assert Patient.objects.filter(institution__code__in=MY_SITES).count() >= 5
    return problems


@pytest.fixture
def edited_demo(demo_registry):
    return edit_the_demo_registry()


@pytest.mark.django_db
def test_every_link_and_button_offered_to_each_role_works(edited_demo):
    found, visits, landings = [], {}, {}
    for role in ROLES:
        problems, visited, landings[role] = crawl(role)
        found += problems
        visits[role] = visited
    # A statistician opens no case: the log-in lands on the analyses.
    if not landings["statistician"].startswith("/analysis/"):
        found.append(f"statistician: the log-in lands on {landings['statistician']}")
    print(f"crawl: pages visited per role {visits}; buttons pressed {dict(PRESSED)}")
    if edited_demo:
        print("while editing the demo registry:\n  " + "\n  ".join(edited_demo))
    print(f"{len(found)} problems:\n" + "\n".join(found))
    assert not found, f"{len(found)} problems:\n" + "\n".join(found)
    for role, n in visits.items():
        assert n >= 10, f"{role}'s crawl reached only {n} pages"
