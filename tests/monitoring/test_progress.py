"""The per-site progress page: counts, and who sees which sites."""

import pytest

from monitoring import checks, services
from registry.models import FollowUp
from tests import factories as f

from .conftest import PASSWORD, complete_all, full_case, url

pytestmark = pytest.mark.django_db


def progress(client):
    response = client.get(url("monitoring:progress"))
    assert response.status_code == 200
    return {r["site"].code: r for r in response.context["rows"]}, response.context["total"]


def test_the_progress_page_counts_each_site(client, kr01, kr02, monitor, investigator, superuser):
    signed, locked, open_one, started = (full_case(kr01) for _ in range(4))
    f.patient(site=kr01)  # registered, nothing entered
    full_case(kr02)
    complete_all(signed, investigator)
    complete_all(locked, investigator)
    services.verify(signed, "cycles", monitor)
    services.verify(signed, "baseline", monitor)
    services.sign_case(signed, investigator, PASSWORD)
    services.lock_case(locked, monitor)
    q = services.open_query(open_one, "cycles", "Dose?", monitor, record=open_one.cycles.get())
    services.answer_query(q, investigator, "As per protocol")
    services.open_query(open_one, "baseline", "ECOG?", monitor, record=open_one.baseline)
    FollowUp.objects.filter(patient=started).update(vital_status="")
    checks.run(kr01, monitor)

    client.force_login(superuser)
    rows, total = progress(client)
    kr01_row = rows["KR01"]
    assert kr01_row["cases"] == 5 and kr01_row["crfs"] == 30
    assert kr01_row["crfs_complete"] == 12 and kr01_row["cases_complete"] == 2
    assert (kr01_row["open_queries"], kr01_row["answered_queries"]) == (2, 1)
    assert kr01_row["crfs_verified"] == 2
    assert kr01_row["cases_locked"] == 1 and kr01_row["cases_signed"] == 1
    # the bare case misses three records; the other one a vital status
    assert kr01_row["findings"] == 4 and kr01_row["last_run"].findings_n == 4
    assert rows["KR02"]["cases"] == 1 and rows["KR02"]["crfs_complete"] == 0
    assert total["cases"] == 6 and total["open_queries"] == 2
    page = client.get(url("monitoring:progress")).content.decode()
    assert 'data-site="KR01"' in page and 'data-col="cases_signed">1<' in page


def test_monitors_see_their_sites_and_investigators_do_not_see_the_page(
    client, kr01, kr02, monitor, investigator
):
    full_case(kr01), full_case(kr02)
    client.force_login(monitor)
    rows, _total = progress(client)
    assert list(rows) == ["KR01"]
    assert client.get(url("monitoring:site", "KR02")).status_code == 404
    assert client.get(url("monitoring:site", "KR01")).status_code == 200
    client.force_login(investigator)
    assert client.get(url("monitoring:progress")).status_code == 403
    assert client.get(url("monitoring:site", "KR01")).status_code == 404


def test_staff_without_a_site_see_every_site(client, kr01, kr02):
    staff = f.user("coordinator", sites=())
    staff.is_staff = True
    staff.save()
    client.force_login(staff)
    rows, _total = progress(client)
    assert set(rows) == {"KR01", "KR02"}
    assert client.get(url("monitoring:site", "KR01")).status_code == 404  # counts only


def test_the_monitoring_pages_render(client, case, monitor, investigator):
    client.force_login(monitor)
    pick = client.get(url("monitoring:query_new", case.pk))
    assert pick.status_code == 200 and f"?record=cycle:{case.cycles.get().pk}" in (
        pick.content.decode()
    )
    form = client.get(url("monitoring:query_new", case.pk) + f"?record=patient:{case.pk}")
    assert form.status_code == 200 and "birth year" in form.content.decode()
    crf_level = client.get(url("monitoring:query_new", case.pk) + "?crf=transplant")
    assert crf_level.status_code == 200
    client.post(
        url("monitoring:query_new", case.pk) + "?crf=transplant",
        {"field_name": "", "message": "Was there a transplant?"},
    )
    assert services.unresolved_queries(patient=case, crf="transplant").count() == 1
    page = client.get(url("registry:case", case.pk)).content.decode()
    assert 'id="monitor-actions"' in page
    client.force_login(investigator)
    page = client.get(url("registry:case", case.pk)).content.decode()
    assert 'id="monitor-actions"' not in page and "Was there a transplant?" in page
    listing = client.get(url("registry:case_list")).content.decode()
    assert url("monitoring:progress") not in listing  # no monitoring link for investigators
