"""backup_registry / restore_registry: a backup restored into an empty database holds every record
and every audit (history) entry: the same rows in every table, values included."""

import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from analysis.models import AnalysisRun
from registry.models import Cycle, Patient
from tests import factories as f

from .conftest import full_case, make_user, totp_device

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db(transaction=True)


def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("pg_dump/pg_restore need PostgreSQL: run with DATABASE_URL (scripts/test.sh)")


def url_for(name):
    db = settings.DATABASES["default"]
    user, password = quote(db["USER"], safe=""), quote(db["PASSWORD"], safe="")
    return f"postgres://{user}:{password}@{db['HOST']}:{db['PORT']}/{name}"


def libpq(name):
    return psycopg.connect(url_for(name).replace("postgres://", "postgresql://"), autocommit=True)


def rows_per_table(name) -> dict:
    """Every table and view of the public schema: its rows, sorted, as text."""
    with libpq(name) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
                " ORDER BY table_name"
            )
        ]
        return {
            table: sorted(
                tuple(str(v) for v in row) for row in conn.execute(f'SELECT * FROM "{table}"')
            )
            for table in tables
        }


@pytest.fixture
def registry():
    """Cases at two sites with history (creations, edits with reasons, a removal), monitoring
    records, an analysis run, users with TOTP devices."""
    postgres_only()
    make_user("inv", sites={"KR01": {"investigator", "pi"}})
    monitor = make_user("mon", staff=True, sites={"KR01": {"monitor"}})
    totp_device(monitor)
    home, _ = full_case(f.institution("KR01"))
    full_case(f.institution("KR02", "Korea University Ansan Hospital"))
    cycle = home.cycles.get()
    cycle.interruption_days, cycle.interruption_reason = 2, "CRS"
    cycle._change_reason = "source document checked"
    cycle.save()
    therapy = home.subsequent_therapies.get()
    therapy._change_reason = "entered twice"
    therapy.delete()
    f.cycle(home, number=2)
    AnalysisRun.objects.create(status=AnalysisRun.FAILED, error="worker lost")
    try:
        from monitoring import services

        services.open_query(home, "baseline", "Source document?", monitor)
    except ImportError:
        pass
    return home


@pytest.fixture
def empty_database():
    name = f"restore_{uuid.uuid4().hex[:10]}"
    with libpq(settings.DATABASES["default"]["NAME"]) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield name
    with libpq(settings.DATABASES["default"]["NAME"]) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def manage(*args, database_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env["DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_backup_restored_into_an_empty_database_has_every_record_and_audit_entry(
    registry, empty_database, tmp_path
):
    source = settings.DATABASES["default"]["NAME"]
    backup = tmp_path / "registry.dump"
    call_command("backup_registry", str(backup), stdout=open(os.devnull, "w"))
    assert backup.stat().st_size > 0 and (backup.stat().st_mode & 0o077) == 0  # owner only

    restored = manage("restore_registry", str(backup), database_url=url_for(empty_database))
    assert restored.returncode == 0, restored.stderr
    assert "Restored" in restored.stdout

    before, after = rows_per_table(source), rows_per_table(empty_database)
    assert set(before) == set(after)
    assert {t: len(r) for t, r in before.items()} == {t: len(r) for t, r in after.items()}
    assert before == after  # every value of every row
    # and the audit trail is really in there: creations, the edit with its reason, the removal
    history = after["registry_historicalcycle"] + after["registry_historicalsubsequenttherapy"]
    assert any("source document checked" in row for row in history)
    assert any("entered twice" in row for row in history)
    assert len(after["registry_historicalpatient"]) == Patient.history.count() == 2
    assert sorted(r[0] for r in Cycle.objects.values_list("interruption_reason")) == ["", "", "CRS"]


def test_the_restored_database_serves_the_app(registry, empty_database, tmp_path):
    backup = tmp_path / "registry.dump"
    call_command("backup_registry", str(backup), stdout=open(os.devnull, "w"))
    url = url_for(empty_database)
    assert manage("restore_registry", str(backup), database_url=url).returncode == 0
    code = (
        "import django; django.setup(); from registry.models import Patient; "
        "print(sorted(Patient.objects.values_list('study_id', flat=True)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
    )
    assert result.stdout.strip() == "['KR01-001', 'KR02-001']", result.stderr
    migrations = manage("migrate", "--check", database_url=url)
    assert migrations.returncode == 0, migrations.stdout + migrations.stderr


def test_restore_refuses_a_database_that_is_not_empty(registry, tmp_path):
    backup = tmp_path / "registry.dump"
    call_command("backup_registry", str(backup), stdout=open(os.devnull, "w"))
    with pytest.raises(CommandError, match="not empty"):
        call_command("restore_registry", str(backup))


def test_the_client_programs_match_the_server_version():
    postgres_only()
    from security.backup import check_client_version, pg_program, server_major

    for program in ("pg_dump", "pg_restore"):
        text = check_client_version(pg_program(program), connection)
        assert f"for server {server_major(connection)}" in text


def test_backup_and_restore_of_the_demo_sqlite_file(tmp_path):
    """The demo's SQLite database: the same commands copy the file."""
    db = tmp_path / "demo.sqlite3"
    env_url = f"sqlite:///{db}"
    assert manage("migrate", "--noinput", database_url=env_url).returncode == 0
    code = (
        "import django; django.setup(); from registry.models import Institution; "
        "Institution.objects.create(code='KR09', name='Test')"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": env_url, "DJANGO_SETTINGS_MODULE": "config.settings"},
        check=True,
    )
    backup = tmp_path / "demo.backup"
    made = manage("backup_registry", str(backup), database_url=env_url)
    assert made.returncode == 0, made.stderr
    copy = tmp_path / "restored.sqlite3"
    done = manage("restore_registry", str(backup), database_url=f"sqlite:///{copy}")
    assert done.returncode == 0, done.stderr
    rows = sqlite3.connect(copy).execute("SELECT code FROM registry_institution").fetchall()
    assert rows == [("KR09",)]
