"""Concurrent use of the embedded SQLite database, run by tests/test_sqlite_embedded.py in a
subprocess whose DATABASE_URL names a migrated SQLite file (the suite's own database is
PostgreSQL). Each scenario drives the real views from threads (each thread has its own database
connection, as each request of a threaded server does) and prints its findings as JSON.

    DATABASE_URL=sqlite:////tmp/x.sqlite3 python -m tests.sqlite_scenarios crf_conflict
"""

import json
import os
import sys
import threading
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from django.core.files.uploadedfile import SimpleUploadedFile  # noqa: E402
from django.db import connections  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402

from exchange import importer  # noqa: E402
from registry import views  # noqa: E402
from registry.models import FollowUp  # noqa: E402
from tests import factories as f  # noqa: E402
from tests.exchange import legacy  # noqa: E402


def follow_up_post(record: FollowUp, **changes) -> dict:
    data = {
        "last_contact_date": record.last_contact_date.isoformat(),
        "vital_status": record.vital_status,
        "relapse_or_progression_date": "",
        "death_date": "",
        "death_cause": "",
        "death_cause_detail": "",
        "version": record.version,
    }
    return {**data, **changes}


def client_for(user) -> Client:
    client = Client(raise_request_exception=False)  # a 500 is a finding, not a crash
    client.force_login(user)
    return client


def in_thread(target):
    def run():
        try:
            target()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def crf_conflict() -> dict:
    """Two investigators save the same follow-up CRF at the same moment."""
    site = f.institution("KR01")
    patient = f.patient(site=site)
    record = f.followup(patient)
    clients = [client_for(f.user(f"inv{i}", sites=("KR01",))) for i in (1, 2)]
    url = reverse("registry:single_record", args=[patient.pk, "follow-up"])

    # Each save holds its transaction a moment after reading the record's version, so that the
    # two overlap: both have read before either writes.
    read_version = views.changes_since

    def slow_read(*args, **kwargs):
        changes = read_version(*args, **kwargs)
        time.sleep(0.5)
        return changes

    views.changes_since = slow_read
    start = threading.Barrier(2)
    results = [None, None]

    def save(i):
        day = record.last_contact_date.replace(day=10 + i)
        start.wait()
        response = clients[i].post(url, follow_up_post(record, last_contact_date=day.isoformat()))
        page = response.content.decode()
        results[i] = [response.status_code, "changed this record while you were editing" in page]

    threads = [in_thread(lambda i=i: save(i)) for i in (0, 1)]
    for thread in threads:
        thread.join(60)
    record.refresh_from_db()
    return {"results": results, "version": record.version}


def save_during_check() -> dict:
    """An investigator of KR02 saves a CRF while a long check-only import of KR01 runs."""
    kr01 = f.institution("KR01")
    other = f.patient(site=f.institution("KR02", "Korea University Ansan Hospital"))
    record = f.followup(other)
    importing = client_for(f.user("importer", sites=("KR01",)))
    saving = client_for(f.user("neighbour", sites=("KR02",)))

    data = {name: [] for name in legacy.FILES}
    for copy in range(12):
        for name, rows in legacy.files().items():
            for row in rows:
                row["site_case_number"] = f"C{copy:02d}-{row['site_case_number']}"
                data[name].append(row)
    uploads = [
        SimpleUploadedFile(f"{name}.csv", legacy.csv_bytes(name, rows), "text/csv")
        for name, rows in data.items()
    ]

    # Each case row of the import takes a moment longer, so the check lasts a few seconds. The
    # save starts once the import has written its first case (and so holds the write lock).
    pass_class = getattr(importer, "_Pass", None) or importer.CaseImport
    import_case = pass_class._import_case
    started = threading.Event()

    def slow_case(self, *args, **kwargs):
        ok = import_case(self, *args, **kwargs)
        started.set()
        time.sleep(0.1)
        return ok

    pass_class._import_case = slow_case
    outcome = {}

    def run_import():
        response = importing.post(
            reverse("exchange:import"),
            {"files": uploads, "institution": kr01.pk, "check_only": "on"},
        )
        outcome["import_status"] = response.status_code
        outcome["check_passed"] = "Check passed" in response.content.decode()

    check = in_thread(run_import)
    started.wait(60)
    url = reverse("registry:single_record", args=[other.pk, "follow-up"])
    day = record.last_contact_date.replace(day=20)

    def save():
        response = saving.post(url, follow_up_post(record, last_contact_date=day.isoformat()))
        outcome["save_status"] = response.status_code
        outcome["import_running_when_save_returned"] = check.is_alive()

    in_thread(save).join(120)
    check.join(300)
    record.refresh_from_db()
    outcome["saved_last_contact"] = record.last_contact_date.isoformat()
    outcome["expected_last_contact"] = day.isoformat()
    return outcome


SCENARIOS = {"crf_conflict": crf_conflict, "save_during_check": save_during_check}

if __name__ == "__main__":
    print(json.dumps(SCENARIOS[sys.argv[1]]()))
