"""DATABASE_URL selects PostgreSQL, REDIS_URL selects the Celery broker."""

import os
import subprocess
import sys

import pytest
from django.db import connection

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def settings_in_subprocess(env_overrides, expression):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(env_overrides)
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; "
        f"django.setup(); from django.conf import settings as s; print({expression})"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_without_database_url_the_embedded_sqlite_file_is_used():
    assert settings_in_subprocess({}, "s.DATABASES['default']['ENGINE']") == (
        "django.db.backends.sqlite3"
    )


def test_database_url_selects_postgresql_through_psycopg3():
    url = "postgres://reg:pw@127.0.0.1:5999/registry"
    engine = settings_in_subprocess(
        {"DATABASE_URL": url}, "s.DATABASES['default']['ENGINE'], s.DATABASES['default']['PORT']"
    )
    assert engine == "django.db.backends.postgresql 5999"


def test_without_redis_url_tasks_run_in_process_and_with_it_redis_is_the_broker():
    assert settings_in_subprocess({}, "s.CELERY_TASK_ALWAYS_EAGER") == "True"
    assert (
        settings_in_subprocess(
            {"REDIS_URL": "redis://127.0.0.1:6399/0"},
            "s.CELERY_TASK_ALWAYS_EAGER, s.CELERY_BROKER_URL",
        )
        == "False redis://127.0.0.1:6399/0"
    )


def test_production_refuses_to_start_without_a_secret_key():
    with pytest.raises(subprocess.CalledProcessError) as exc:
        settings_in_subprocess({"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": ""}, "1")
    assert "DJANGO_SECRET_KEY must be set" in exc.value.stderr


@pytest.mark.skipif(not os.environ.get("DATABASE_URL"), reason="the test command sets it")
@pytest.mark.django_db
def test_the_suite_runs_on_postgresql_when_the_test_command_sets_database_url():
    assert connection.vendor == "postgresql"
    import psycopg

    assert psycopg.__version__.startswith("3.")
