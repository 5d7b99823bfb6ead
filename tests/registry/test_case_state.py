"""One definition of a case's state (registry.models.CaseState): the case page, the case list and
/monitoring/ say the same thing about the same case. A lock never makes a case complete."""

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from monitoring import services
from registry.models import CrfStatus, Membership, Patient
from tests import factories as f
from tests.monitoring.conftest import complete_all, full_case

pytestmark = pytest.mark.django_db


@pytest.fixture
def investigator():
    return f.user("inv")


@pytest.fixture
def monitor():
    user = f.user("mon", role=Membership.MONITOR)
    user.is_staff = True
    user.save()
    return user


def mark_complete(patient, crf, user):
    status, _ = CrfStatus.objects.get_or_create(patient=patient, crf=crf)
    status.marked_complete_at = status.first_completed_at = timezone.now()
    status.marked_complete_by = user
    status.refresh_status()
    status.save()


def badges(html) -> list[str]:
    """The case-state badges' texts, in order."""
    return re.findall(r'class="badge [^"]*case-\w+"[^>]*>([^<]+)</span>', html)


def what_each_page_says(client, patient, investigator, monitor):
    client.force_login(investigator)
    case_page = client.get(reverse("registry:case", args=[patient.pk])).content.decode()
    state_html = re.search(r'id="case-state">(.*?)</span>\s*<a', case_page, re.S).group(1)
    case_list = client.get("/").content.decode()
    row = re.search(rf'<tr data-study-id="{patient.study_id}">(.*?)</tr>', case_list, re.S)
    client.force_login(monitor)
    progress = client.get(reverse("monitoring:progress")).context["rows"][0]
    return {
        "case page": badges(state_html),
        "case list": badges(row.group(1)),
        "monitoring": (progress["cases_complete"], progress["cases_locked"]),
    }


def test_a_locked_case_with_one_crf_complete_is_locked_not_complete_everywhere(
    client, investigator, monitor
):
    case = full_case()
    mark_complete(case, CrfStatus.BASELINE, investigator)
    services.lock_case(case, monitor)
    said = what_each_page_says(client, case, investigator, monitor)
    assert said == {
        "case page": ["Locked", "1 of 6 CRFs complete"],
        "case list": ["Locked", "1 of 6 CRFs complete"],
        "monitoring": (0, 1),
    }


def test_a_case_with_every_crf_complete_is_complete_everywhere_locked_or_not(
    client, investigator, monitor
):
    case = full_case()
    complete_all(case, investigator)
    said = what_each_page_says(client, case, investigator, monitor)
    assert said == {
        "case page": ["Case complete"],
        "case list": ["Case complete"],
        "monitoring": (1, 0),
    }
    services.lock_case(case, monitor)
    said = what_each_page_says(client, case, investigator, monitor)
    assert said == {
        "case page": ["Locked", "Case complete"],
        "case list": ["Locked", "Case complete"],
        "monitoring": (1, 1),
    }


def test_an_open_query_makes_a_complete_case_incomplete_everywhere(client, investigator, monitor):
    case = full_case()
    complete_all(case, investigator)
    services.open_query(case, CrfStatus.CYCLES, "Dose on day 8?", monitor)
    said = what_each_page_says(client, case, investigator, monitor)
    assert said == {
        "case page": ["6 of 6 CRFs complete, 1 open query"],
        "case list": ["6 of 6 CRFs complete, 1 open query"],
        "monitoring": (0, 0),
    }


def test_the_loaded_and_the_queried_definitions_agree(investigator, monitor):
    """CrfStatus.case_state() (pages) and complete_cases()/locked_cases() (counts) on cases in
    every combination of completeness, queries and locks."""
    untouched = full_case()
    one_crf = full_case()
    mark_complete(one_crf, CrfStatus.BASELINE, investigator)
    complete = full_case()
    complete_all(complete, investigator)
    queried = full_case()
    complete_all(queried, investigator)
    services.open_query(queried, CrfStatus.BASELINE, "Source?", monitor)
    locked_incomplete = full_case()
    mark_complete(locked_incomplete, CrfStatus.CYCLES, investigator)
    services.lock_case(locked_incomplete, monitor)
    locked_complete = full_case()
    complete_all(locked_complete, investigator)
    services.lock_case(locked_complete, monitor)

    cases = Patient.objects.all()
    states = {p.study_id: CrfStatus.case_state(CrfStatus.for_patient(p)) for p in cases}
    by_state = {
        "complete": {sid for sid, s in states.items() if s.is_complete},
        "locked": {sid for sid, s in states.items() if s.locked},
    }
    by_query = {
        "complete": set(CrfStatus.complete_cases(cases).values_list("study_id", flat=True)),
        "locked": set(CrfStatus.locked_cases(cases).values_list("study_id", flat=True)),
    }
    assert (
        by_state
        == by_query
        == {
            "complete": {complete.study_id, locked_complete.study_id},
            "locked": {locked_incomplete.study_id, locked_complete.study_id},
        }
    )
    assert untouched.study_id not in by_state["complete"] | by_state["locked"]
    assert states[one_crf.study_id].complete == 1
    assert services.case_is_complete(locked_incomplete) is False
