"""The embedded SQLite database (the demo's) under concurrent use: two saves of one CRF, and a
save during a long check-only import. The suite's database is PostgreSQL, so each scenario runs
in a subprocess on a migrated SQLite file (tests/sqlite_scenarios.py) through the real views."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def sqlite_env(path: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(
        DATABASE_URL=f"sqlite:///{path}",
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_DEBUG="1",
        DJANGO_REQUIRE_2FA="0",
        DJANGO_ALLOWED_HOSTS="testserver",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def migrated(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "migrated.sqlite3"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=sqlite_env(path),
        check=True,
        capture_output=True,
        timeout=600,
    )
    return path


def run_scenario(name, migrated, tmp_path, **env) -> dict:
    database = tmp_path / "registry.sqlite3"
    shutil.copy(migrated, database)
    proc = subprocess.run(
        [sys.executable, "-m", "tests.sqlite_scenarios", name],
        cwd=ROOT,
        env=sqlite_env(database, **env),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_two_saves_of_one_crf_on_sqlite_queue_and_the_second_gets_the_conflict(migrated, tmp_path):
    found = run_scenario("crf_conflict", migrated, tmp_path)
    statuses = sorted(status for status, _conflict in found["results"])
    assert statuses == [200, 302]  # one saved (redirect), one shown the form again; no 500
    conflict_pages = [conflict for status, conflict in found["results"] if status == 200]
    assert conflict_pages == [True]
    assert found["version"] == 2  # saved once


def test_a_save_during_a_long_check_only_import_on_sqlite_goes_through(migrated, tmp_path):
    found = run_scenario("save_during_check", migrated, tmp_path, IMPORT_CHECK_CHUNK_ROWS="20")
    assert found["save_status"] == 302
    assert found["saved_last_contact"] == found["expected_last_contact"]
    # It did not wait for the whole import: the check was still running when the save returned.
    assert found["import_running_when_save_returned"] is True
    assert (found["import_status"], found["check_passed"]) == (200, True)
