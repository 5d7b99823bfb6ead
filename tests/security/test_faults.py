"""Faults: a database error in the middle of a CRF save rolls the whole save back, and with the
job service (Redis) down data entry keeps working while starting an analysis says so plainly."""

import contextlib
import socket
import time
from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.test import Client
from django.urls import reverse

from analysis.models import AnalysisRun
from analysis.outputs import default_parameters
from analysis.tasks import run_analysis_task
from registry import views
from registry.models import CrfStatus, Cycle, FollowUp, Patient, SubsequentTherapy
from tests import factories as f

from .conftest import full_case, make_user

WRITES = ("INSERT", "UPDATE", "DELETE")


def form_data(form) -> dict:
    """What a browser posts for an unbound form: every field with its current value."""
    data = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if isinstance(value, bool) or field.widget.input_type == "checkbox":
            if value:
                data[name] = "on"
            continue
        if value is None:
            value = ""
        if hasattr(value, "pk"):
            value = value.pk
        data[name] = str(value)
    return data


def crf_post(patient, kind_slug, record=None, **changes):
    kind = views.KINDS[kind_slug]
    record = record if record is not None else kind.record(patient)
    form = kind.form(instance=record, patient=patient, needs_reason=False)
    return {**form_data(form), **changes}


class FailOnWrite:
    """A connection.execute_wrapper that raises on the n-th write statement (1-based)."""

    def __init__(self, n):
        self.n, self.seen, self.failed_sql = n, 0, None

    def __call__(self, execute, sql, params, many, context):
        if sql.lstrip().upper().startswith(WRITES):
            self.seen += 1
            if self.seen == self.n:
                self.failed_sql = sql
                raise OperationalError("injected: the database went away mid-save")
        return execute(sql, params, many, context)


def snapshot():
    """Every case table and its history, row by row."""
    from django.apps import apps

    rows = {}
    for model in apps.get_app_config("registry").get_models():
        rows[model._meta.db_table] = sorted(
            tuple(str(v) for v in r) for r in model.objects.values_list()
        )
    return rows


SAVES = {
    # name: (url, data) built from the case; each writes the record, then its history (and the
    # CRF status / monitoring facts), so failing the 2nd write leaves a 1st one to roll back
    "edit a cycle": lambda p: (
        reverse("registry:record_edit", args=[p.pk, "cycles", p.cycles.get().pk]),
        crf_post(p, "cycles", p.cycles.get(), interruption_days="3", interruption_reason="CRS"),
    ),
    "add a subsequent therapy": lambda p: (
        reverse("registry:record_new", args=[p.pk, "subsequent-therapies"]),
        crf_post(
            p,
            "subsequent-therapies",
            SubsequentTherapy(patient=p),
            category="salvage_chemotherapy",
            regimen="FLAG-Ida",
            start_date=str(f.START + timedelta(days=60)),
        ),
    ),
    "edit the follow-up": lambda p: (
        reverse("registry:single_record", args=[p.pk, "follow-up"]),
        crf_post(p, "follow-up", p.followup, last_contact_date=str(f.START + timedelta(days=250))),
    ),
    "remove a cycle's therapy": lambda p: (
        reverse(
            "registry:record_remove",
            args=[p.pk, "subsequent-therapies", p.subsequent_therapies.get().pk],
        ),
        {"version": p.subsequent_therapies.get().version, "reason": "entered twice"},
    ),
    "mark a CRF complete": lambda p: (
        reverse("registry:crf_complete", args=[p.pk, CrfStatus.FOLLOW_UP]),
        {},
    ),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("save", list(SAVES))
def test_a_database_error_on_the_second_write_rolls_back_the_first(save):
    make_user("inv", sites={"KR01": {"investigator"}})
    patient, _records = full_case(f.institution("KR01"))
    client = Client(raise_request_exception=False)
    client.force_login(make_user("inv2", sites={"KR01": {"investigator"}}))
    url, data = SAVES[save](patient)
    before = snapshot()
    failing = FailOnWrite(2)
    with connection.execute_wrapper(failing):
        response = client.post(url, data)
    assert failing.failed_sql is not None, "the save made fewer than two writes"
    assert response.status_code == 500
    assert snapshot() == before, f"{save}: a write survived the failed save"
    # the same save without the fault goes through: the fault hit a real save
    response = client.post(url, data)
    assert response.status_code == 302, response.content[:2000]
    assert snapshot() != before


@pytest.mark.django_db(transaction=True)
def test_a_failed_registration_leaves_no_patient_and_no_study_id_used():
    kr01 = f.institution("KR01")
    client = Client(raise_request_exception=False)
    client.force_login(make_user("inv", sites={"KR01": {"investigator"}}))
    data = {
        "institution": kr01.pk,
        "relapsed_refractory": "on",
        "bcp_all": "on",
        "ph_negative": "on",
        "cd19_positive": "on",
        "sex": "male",
        "birth_year": "1970",
        "diagnosis_date": "2016-01-01",
        "blinatumomab_start_date": "2017-03-06",
    }
    with connection.execute_wrapper(FailOnWrite(2)):
        assert client.post(reverse("registry:register"), data).status_code == 500
    assert not Patient.objects.exists() and not Patient.history.exists()
    response = client.post(reverse("registry:register"), data)
    assert response.status_code == 302
    assert Patient.objects.get().study_id == "KR01-001"


# --- Redis down ------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


@contextlib.contextmanager
def broker_at(url):
    """Point the Celery app at `url` (not eager), with fresh connection pools."""
    from config.celery import app

    saved = (app.conf.broker_url, app.conf.task_always_eager)

    def reset_pools():
        app._pool = None
        with contextlib.suppress(AttributeError, KeyError):
            app.__dict__["amqp"]._producer_pool = None

    app.conf.broker_url, app.conf.task_always_eager = url, False
    reset_pools()
    try:
        yield app
    finally:
        app.conf.broker_url, app.conf.task_always_eager = saved
        reset_pools()


RUN_FORM = {
    "test": "fisher",
    "age_years": 55,
    "months_from_diagnosis": 12,
    "marrow_blasts_pct": 50,
    "dexamethasone_mg": 80,
}


@pytest.mark.django_db
def test_with_redis_down_data_entry_works_and_an_analysis_fails_fast_and_plainly():
    patient, _ = full_case(f.institution("KR01"))
    investigator = Client()
    investigator.force_login(make_user("inv", sites={"KR01": {"investigator"}}))
    statistician = Client()
    statistician.force_login(make_user("stat", sites={"KR01": {"statistician"}}))
    with broker_at(f"redis://127.0.0.1:{closed_port()}/0"):
        # data entry does not need the job service
        url = reverse("registry:single_record", args=[patient.pk, "follow-up"])
        data = crf_post(patient, "follow-up", last_contact_date=str(f.START + timedelta(days=300)))
        assert investigator.post(url, data).status_code == 302
        assert FollowUp.objects.get().last_contact_date == f.START + timedelta(days=300)
        # starting an analysis says the job service is unavailable, within seconds
        started = time.monotonic()
        response = statistician.post(reverse("analysis:start_run"), RUN_FORM, follow=True)
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert b"The job service is unavailable" in response.content
    assert elapsed < 4, f"starting a run with Redis down took {elapsed:.1f} s"
    run = AnalysisRun.objects.get()
    assert run.status == AnalysisRun.FAILED and "job service is unavailable" in run.error
    assert Cycle.objects.count() == 1  # nothing else touched


@pytest.mark.django_db
def test_a_run_delivered_again_after_it_failed_is_not_run_twice():
    run = AnalysisRun.objects.create(
        parameters=default_parameters(), status=AnalysisRun.FAILED, error="worker lost"
    )
    run_analysis_task.delay(str(run.pk))  # in-process here, as a redelivery would run it
    run.refresh_from_db()
    assert run.status == AnalysisRun.FAILED and run.started_at is None
