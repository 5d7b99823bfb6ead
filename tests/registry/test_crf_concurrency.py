"""Two people editing the same CRF: the second save is refused and says what the first changed."""

import pytest
from django.test import Client

from registry.models import Baseline
from tests import factories as f
from tests.registry.test_crf_forms import form_data, url

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_investigators():
    first, second = Client(), Client()
    first.force_login(f.user("ana"))
    second.force_login(f.user("ben"))
    return first, second


def test_a_stale_edit_is_refused_with_the_other_users_changes(two_investigators):
    ana, ben = two_investigators
    p = f.patient()
    f.baseline(p)
    c = f.cycle(p)
    edit = url("record_edit", p.pk, "cycles", c.pk)
    ana_form = form_data(ana.get(edit).context["form"].instance, interruption_reason="")
    ben_form = form_data(ben.get(edit).context["form"].instance)
    assert ana_form["version"] == ben_form["version"] == "1"

    ana_form.update(interruption_days="2", interruption_reason="CRS", outcome="interrupted")
    assert ana.post(edit, ana_form).status_code == 302
    del ben_form["dexamethasone_premedication"]  # ben unticks premedication
    response = ben.post(edit, ben_form, follow=True)

    c.refresh_from_db()
    assert (c.version, c.interruption_days, c.dexamethasone_premedication) == (2, 2, True)
    message = str(list(response.context["messages"])[0])
    assert message.startswith("Not saved: ana changed this record while you were editing it.")
    assert "days of interruption: 2" in message
    assert "interruption reason: CRS" in message
    assert "how the cycle ended: Completed after interruption(s)" in message
    # the form now shows the saved record at its new version
    assert response.context["form"]["version"].value() == 2
    assert response.context["form"]["interruption_reason"].value() == "CRS"


def test_after_the_refusal_a_resubmit_on_the_new_version_saves(two_investigators):
    ana, ben = two_investigators
    p = f.patient()
    c = f.cycle(p)
    edit = url("record_edit", p.pk, "cycles", c.pk)
    ana.post(
        edit, form_data(c, interruption_days=1, interruption_reason="x", outcome="interrupted")
    )
    c.refresh_from_db()
    response = ben.post(edit, form_data(c, dexamethasone_premedication=False))
    assert response.status_code == 302
    c.refresh_from_db()
    assert (c.version, c.interruption_days, c.dexamethasone_premedication) == (3, 1, False)


def test_a_missing_or_forged_version_is_refused(two_investigators):
    ana, _ben = two_investigators
    p = f.patient()
    c = f.cycle(p)
    edit = url("record_edit", p.pk, "cycles", c.pk)
    # empty ("no record seen") or another number: a conflict, the form again; not a number:
    # not our form, a 400 (tests/registry/test_bad_posts.py)
    for version, status in ((None, 200), ("x", 400), ("7", 200)):
        response = ana.post(edit, form_data(c, version=version, interruption_reason="y"))
        assert response.status_code == status
    c.refresh_from_db()
    assert c.version == 1


def test_a_singleton_created_meanwhile_is_not_overwritten(two_investigators):
    ana, ben = two_investigators
    p = f.patient()
    baseline = ben.get(url("single_record", p.pk, "baseline")).context["form"]
    assert baseline["version"].value() is None
    f.baseline(p, ecog=2)  # ana's, saved first
    data = form_data(Baseline.objects.get(), ecog=0, version=None)
    response = ben.post(url("single_record", p.pk, "baseline"), data, follow=True)
    assert "Not saved" in str(list(response.context["messages"])[0])
    assert "ECOG performance status: 2" in str(list(response.context["messages"])[0])
    assert Baseline.objects.get().ecog == 2


def test_a_stale_removal_is_refused(two_investigators):
    ana, ben = two_investigators
    p = f.patient()
    c = f.cycle(p)
    edit = url("record_edit", p.pk, "cycles", c.pk)
    ana.post(
        edit, form_data(c, interruption_days=1, interruption_reason="x", outcome="interrupted")
    )
    response = ben.post(
        url("record_remove", p.pk, "cycles", c.pk), {"version": 1, "reason": "dup"}, follow=True
    )
    assert "Not saved: ana changed this record" in str(list(response.context["messages"])[0])
    assert p.cycles.exists()
