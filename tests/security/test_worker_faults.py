"""A Celery worker killed in the middle of an analysis run: the run ends failed, never stuck as
running. These tests start a real `celery -A config worker` against REDIS_URL and the test
database (committed data: transactional tests), slow the run down with ANALYSIS_TEST_DELAY_S
(honoured by analysis.runs only when set) and kill -9 the worker mid-run."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse

from analysis.models import AnalysisRun
from analysis.outputs import default_parameters
from analysis.tasks import run_analysis_task

from .conftest import make_user

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.skipif(
        not os.environ.get("REDIS_URL"),
        reason="needs a Redis broker in REDIS_URL (bash scripts/test.sh starts one and sets it)",
    ),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def registry_data(settings):
    if connection.vendor != "postgresql":
        pytest.skip("the worker process must share the test database: run with DATABASE_URL")
    settings.DEBUG = True
    call_command("seed_demo", "--patients", "30", stdout=open(os.devnull, "w"))
    settings.DEBUG = False


@pytest.fixture
def real_broker():
    """Send tasks to Redis (the suite's conftest makes them run in-process)."""
    from config.celery import app

    saved = (app.conf.task_always_eager, app.conf.broker_url)
    app.conf.task_always_eager = False
    app.conf.broker_url = os.environ["REDIS_URL"]
    app._pool = None
    yield app
    app.conf.task_always_eager, app.conf.broker_url = saved
    app._pool = None


def worker_database_url():
    db = settings.DATABASES["default"]
    user, password = quote(db["USER"], safe=""), quote(db["PASSWORD"], safe="")
    return f"postgres://{user}:{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


class Worker:
    """`celery -A config worker` on its own queue, in its own process group."""

    def __init__(self, tmp_path, delay_s):
        self.queue = f"faults-{uuid.uuid4().hex[:8]}"
        self.log_path = tmp_path / f"{self.queue}.log"
        env = dict(os.environ)
        env.update(
            DATABASE_URL=worker_database_url(),
            ANALYSIS_TEST_DELAY_S=str(delay_s),
            DJANGO_MEDIA_ROOT=str(tmp_path / "media"),
            DJANGO_SETTINGS_MODULE="config.settings",
            PYTHONUNBUFFERED="1",
        )
        args = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", self.queue]
        args += ["-n", f"{self.queue}@%h", "-c", "1", "-P", "prefork", "-l", "INFO"]
        args += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text()[-4000:]

    def children(self) -> list[int]:
        """The pool processes (children of the main worker process)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                found.append(int(stat.parent.name))
        return found

    def kill_all(self):
        """kill -9 the worker and its pool processes at once (no chance to clean up)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.log.close()


def wait_for(predicate, timeout, worker, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if worker.process.poll() is not None:
            pytest.fail(f"the worker exited while waiting for {what}:\n{worker.output()}")
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}:\n{worker.output()}")


def status_of(run):
    run.refresh_from_db()
    return run.status


def start_run_on(worker, real_broker):
    run = AnalysisRun.objects.create(parameters=default_parameters())
    run_analysis_task.apply_async(args=[str(run.pk)], queue=worker.queue)
    wait_for(
        lambda: status_of(run) == AnalysisRun.RUNNING and run.progress_pct >= 10,
        120,
        worker,
        "the run to start",
    )
    return run


def test_a_worker_killed_mid_run_leaves_the_run_failed_not_running(
    registry_data, real_broker, tmp_path, settings
):
    worker = Worker(tmp_path, delay_s=120)
    try:
        run = start_run_on(worker, real_broker)
        worker.kill_all()
        time.sleep(1)
        assert status_of(run) == AnalysisRun.RUNNING  # nobody told the database
    finally:
        worker.kill_all()
    # The reaper needs no Celery: a run without a heartbeat for the threshold is failed, and the
    # status endpoint the run page polls applies it.
    settings.ANALYSIS_STALE_AFTER_SECONDS = 1
    time.sleep(1.2)
    client = Client()
    client.force_login(make_user("stat", sites={"KR01": {"statistician"}}))
    status = client.get(reverse("analysis:run_status", args=[run.pk])).json()
    assert status["status"] == "failed" and status["finished"] is True
    assert "worker lost" in status["error"]
    run.refresh_from_db()
    assert run.finished_at is not None


def test_a_pool_process_killed_mid_run_fails_the_run_at_once(registry_data, real_broker, tmp_path):
    worker = Worker(tmp_path, delay_s=120)
    try:
        run = start_run_on(worker, real_broker)
        children = worker.children()
        assert len(children) == 1, worker.output()
        os.kill(children[0], signal.SIGKILL)  # what the kernel's OOM killer does
        # the worker's main process sees the lost child and fails the run (analysis.tasks)
        wait_for(lambda: status_of(run) == AnalysisRun.FAILED, 60, worker, "the run to fail")
        assert "worker was lost" in run.error, run.error
        assert worker.process.poll() is None  # the worker itself carries on
    finally:
        worker.kill_all()


def test_a_run_in_a_real_worker_succeeds_with_its_figures_drawn_in_worker_processes(
    registry_data, real_broker, tmp_path
):
    """Celery's prefork pool processes are daemonic; the run's figure workers start anyway."""
    worker = Worker(tmp_path, delay_s=0)
    try:
        run = AnalysisRun.objects.create(parameters=default_parameters())
        run_analysis_task.apply_async(args=[str(run.pk)], queue=worker.queue)
        wait_for(
            lambda: status_of(run) in (AnalysisRun.SUCCEEDED, AnalysisRun.FAILED),
            180,
            worker,
            "the run to end",
        )
        assert run.status == AnalysisRun.SUCCEEDED, run.error
        figures = [f for f in os.listdir(run.output_dir) if f.endswith((".png", ".svg"))]
        # the paper's six KM figures, four landmark ones, Figure 1, the forest and swimmer plots
        assert len(figures) == 2 * (6 + 4 + 3)
        if len(os.sched_getaffinity(0)) > 1:
            workers = min(len(os.sched_getaffinity(0)) - 1, 6 + 4)
            drawing = f"figures in {workers} worker process{'es' if workers > 1 else ''} and this"
            assert drawing in worker.output(), worker.output()
            assert "Figures drawn in this process" not in worker.output()
    finally:
        worker.kill_all()
