"""The case's change history as investigators and monitors read it: every saved change once, with
who, old, new and reason, whichever way the record was created, and a whole-case action as one
entry."""

from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command
from django.urls import reverse

from monitoring import services
from monitoring.models import QueryEvent
from registry.history import HISTORY_MODELS, case_history
from registry.models import Baseline, CrfStatus, Patient
from tests import factories as f
from tests.registry.test_crf_forms import form_data

pytestmark = pytest.mark.django_db

PLATELETS = "platelets (×10^9/L)"
RESPONSE = "response (derived)"
CR, CRI = "Complete remission (CR)", "CR with incomplete blood count recovery (CRi)"


def url(name, *args):
    return reverse(f"registry:{name}", args=args)


@pytest.fixture
def investigator(client):
    user = f.user("inv")
    client.force_login(user)
    return user


def oldest_first(history, field):
    return [(c.user, c.old, c.new, c.reason) for c in reversed(history) if c.field == field]


def test_an_assessment_changed_three_times_keeps_its_pages_and_every_change(client, investigator):
    p = f.patient()
    f.baseline(p)
    a = f.assessment(p, f.cycle(p))  # platelets 140: CR
    edit = url("record_edit", p.pk, "assessments", a.pk)
    for platelets in ("150", "90", "120"):
        a.refresh_from_db()
        assert client.post(edit, form_data(a, platelets_10e9_per_l=platelets)).status_code == 302
    # From the second change on, the derived (non-editable) response is compared too: was a 500.
    assert client.get(url("case", p.pk)).status_code == 200
    page = client.get(edit)
    assert page.status_code == 200
    history = page.context["history"]
    assert oldest_first(history, PLATELETS) == [
        ("inv", "140.0", "150.0", ""),
        ("inv", "150.0", "90.0", ""),
        ("inv", "90.0", "120.0", ""),
    ]
    assert oldest_first(history, RESPONSE) == [("inv", CR, CRI, ""), ("inv", CRI, CR, "")]


def test_a_baseline_changed_twice_shows_the_derived_cytogenetic_risk_change(client, investigator):
    p = f.patient()
    b = f.baseline(p)  # 2 abnormalities at start: standard risk
    edit = url("single_record", p.pk, "baseline")
    for abnormalities in ("5", "3"):
        b.refresh_from_db()
        data = form_data(b, cyto_start_abnormalities_n=abnormalities)
        assert client.post(edit, data).status_code == 302
    assert client.get(url("case", p.pk)).status_code == 200
    history = client.get(edit).context["history"]
    risk = str(Baseline._meta.get_field("cyto_start_risk").verbose_name)
    assert [(c.old, c.new) for c in reversed(history) if c.field == risk] == [
        ("standard", "high"),
        ("high", "standard"),
    ]


def test_every_demo_record_has_its_creation_in_the_history():
    call_command("seed_demo", patients=6, allow_production=True, stdout=StringIO())
    for model in HISTORY_MODELS:
        records = set(model.objects.values_list("pk", flat=True))
        created = set(model.history.filter(history_type="+").values_list("id", flat=True))
        assert records <= created, model.__name__
    assert Patient.objects.count() == 6


def test_the_first_change_to_a_demo_record_shows_old_and_new(client):
    call_command("seed_demo", patients=3, allow_production=True, stdout=StringIO())
    p = Patient.objects.order_by("pk").first()
    user = f.user("inv", sites=(p.institution.code,))
    client.force_login(user)
    a = p.assessments.order_by("pk").first()
    before = str(a.platelets_10e9_per_l)
    a_edit = url("record_edit", p.pk, "assessments", a.pk)
    assert client.post(a_edit, form_data(a, platelets_10e9_per_l="321")).status_code == 302
    history = client.get(a_edit).context["history"]
    assert oldest_first(history, PLATELETS) == [("inv", before, "321.0", "")]
    assert history[-1].new == "created" and history[-1].reason == "demo data (seed_demo)"


def test_a_query_answered_by_changing_a_demo_record_names_old_and_new(client):
    call_command("seed_demo", patients=3, allow_production=True, stdout=StringIO())
    p = Patient.objects.order_by("pk").first()
    monitor = f.user("mon", role="monitor", sites=(p.institution.code,))
    cycle = p.cycles.order_by("number").first()
    query = services.open_query(
        p, "cycles", "Interruption?", monitor, record=cycle, field_name="interruption_days"
    )
    client.force_login(f.user("inv", sites=(p.institution.code,)))
    data = form_data(cycle, interruption_days=cycle.interruption_days + 3)
    data["change_reason"] = "notes"  # an open query asks for one
    data["interruption_reason"] = data.get("interruption_reason") or "CRS"
    data["outcome"] = "interrupted"
    edit = url("record_edit", p.pk, "cycles", cycle.pk)
    response = client.post(edit, data)
    assert response.status_code == 302, response.context["form"].errors
    change = query.events.get(action=QueryEvent.DATA_CHANGED)
    days = cycle.interruption_days
    assert change.message.startswith(f"days of interruption: {days} → {days + 3}")


def test_a_case_lock_is_one_entry_in_the_case_history(client):
    p = f.patient()
    f.baseline(p)
    f.cycle(p)
    monitor = f.user("mon", role="monitor")
    CrfStatus.objects.create(patient=p, crf=CrfStatus.BASELINE, status=CrfStatus.COMPLETE)
    services.lock_case(p, monitor, "database lock")
    locks = [c for c in case_history(p) if c.new == "Locked"]
    assert len(locks) == 1
    lock = locks[0]
    assert (lock.user, lock.field, lock.reason) == ("mon", "status", "case locked")
    assert lock.record.startswith("6 CRFs (registration and baseline, ")
    services.unlock_case(p, monitor, "late data")
    unlocks = [c for c in case_history(p) if c.reason == "case unlocked: late data"]
    assert len(unlocks) == 1
    assert (unlocks[0].old, unlocks[0].new) == ("Locked", "In progress, Not started")


def test_records_without_history_get_their_creation_row_from_the_migration():
    from importlib import import_module

    backfill = import_module("registry.migrations.0004_creation_history").backfill
    p = f.patient()
    b = f.baseline(p)
    for model, pk in ((Baseline, b.pk), (Patient, p.pk)):
        rows = model.history.filter(id=pk)
        rows._raw_delete(rows.db)  # the audit trail refuses deletes through the ORM
    backfill(apps, None)
    backfill(apps, None)  # a second run adds nothing
    rows = list(Baseline.history.filter(id=b.pk))
    assert [(r.history_type, r.ecog) for r in rows] == [("+", b.ecog)]
    assert Patient.history.filter(id=p.pk).count() == 1
