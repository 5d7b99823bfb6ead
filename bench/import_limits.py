"""Bulk import under hostile and large uploads: peak memory and time of the server process.

Runs the demo as `scripts/demo.sh` serves it (`manage.py runserver`, the embedded SQLite file,
DEBUG on), one fresh server per upload on a copy of a seeded demo database, logs in as
`investigator` (KR01) and posts one upload to /exchange/import/:

- `zip_bomb`: a small zip holding one data.csv of 60 MB (rows of patients.csv, all the same);
- `csv_50mb`: a plain data.csv of 50 MB (distinct rows of patients.csv);

  (not named like a template file, so that code which reads them whole then refuses them and
  the request ends; named patients.csv, each of their rows would also be checked: hours);
- `rows_2000`: the import template with 1,998 clean rows (333 cases, every file), check only;
- `rows_2000_busy`: the same while a second user (`investigator2`, KR02) logs in and saves a
  follow-up CRF in a loop: their statuses and longest wait are reported with the import's;
- `rows_2000_import`, `rows_2000_import_busy`: the same upload imported (not only checked),
  alone and with the second user.

Peak memory is the server's VmHWM (reset through /proc/<pid>/clear_refs before the upload), so it
is the peak of that request; "before" is VmRSS just before it. `--repo` runs another checkout
(e.g. the code before a change: `git archive main | tar -x -C /tmp/before`). SQLite only: no
services needed.

    .venv/bin/python bench/import_limits.py                      # this checkout
    .venv/bin/python bench/import_limits.py --repo /tmp/before --label before
"""

from __future__ import annotations

import argparse
import csv
import html
import http.client
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

PASSWORD = "blina-demo-2026"
CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
MIB = 1024 * 1024
PATIENT_HEADER = [
    "site_case_number",
    "sex",
    "birth_year",
    "diagnosis_date",
    "blinatumomab_start_date",
    "ecog",
    "salvage_phase",
    "prior_therapies_n",
    "relapse_site",
    "marrow_blasts_pct",
    "cyto_dx_done",
    "cyto_start_done",
]


def patient_row(case_number: str) -> list[str]:
    values = ["female", "1972", "2015-11-02", "2017-03-06", "1", "1", "1", "marrow", "60"]
    return [case_number, *values, "no", "no"]


def patients_csv(path: Path, target_bytes: int, distinct: bool) -> int:
    """patients.csv of about target_bytes: rows of one valid case, numbered or all the same."""
    rows = 0
    with path.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(PATIENT_HEADER)
        while out.tell() < target_bytes:
            number = f"BIG-{rows:07d}" if distinct else "BOMB-0000001"
            writer.writerow(patient_row(number))
            rows += 1
    return rows


def make_zip_bomb(folder: Path) -> Path:
    inner = folder / "data.csv"
    patients_csv(inner, 60 * 1000 * 1000, distinct=False)
    path = folder / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.write(inner, "data.csv")
    inner.unlink()
    return path


def make_csv_50mb(folder: Path) -> Path:
    path = folder / "data.csv"
    patients_csv(path, 50 * 1000 * 1000, distinct=True)
    return path


def make_rows(folder: Path, rows: int) -> tuple[Path, int]:
    """The test suite's three-case legacy registry (18 rows), copied under new case numbers up to
    `rows` rows, as the template zip."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from tests.exchange import legacy

    data = {name: [] for name in legacy.FILES}
    n = copy = 0
    while n + legacy.row_count() <= rows:
        for name, records in legacy.files().items():
            for record in records:
                record["site_case_number"] = f"R{copy:04d}-{record['site_case_number']}"
                data[name].append(record)
                n += 1
        copy += 1
    path = folder / f"rows_{rows}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, records in data.items():
            archive.writestr(f"{name}.csv", legacy.csv_bytes(name, records))
    return path, n


# --- the server ---------------------------------------------------------------------------------


def seeded_database(repo: Path, work: Path) -> Path:
    path = work / "demo_template.sqlite3"
    if not path.exists():
        env = server_env(path)
        for command in (["migrate", "--no-input", "-v", "0"], ["seed_demo"]):
            subprocess.run(
                [common.PYTHON, "manage.py", *command],
                cwd=repo,
                env=env,
                check=True,
                capture_output=True,
            )
    return path


def server_env(database: Path) -> dict:
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(
        DATABASE_URL=f"sqlite:///{database}",
        DJANGO_DEBUG="1",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


class Server:
    def __init__(self, repo: Path, database: Path, port: int, log):
        self.port = port
        self.proc = subprocess.Popen(
            [common.PYTHON, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=repo,
            env=server_env(database),
            stdout=log,
            stderr=log,
        )
        for _ in range(300):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/accounts/login/")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise SystemExit("runserver did not answer")

    def status(self) -> dict:
        values = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
        return values

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server so far (fields 14 and 15 of /proc/<pid>/stat)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def reset_peak(self):
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Client:
    def __init__(self, port: int):
        self.port = port
        self.cookies: dict[str, str] = {}

    def request(self, method, path, body=None, content_type=None, timeout=600):
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if isinstance(body, dict):
            body = urlencode(body, doseq=True)
            content_type = "application/x-www-form-urlencoded"
        if content_type:
            headers["Content-Type"] = content_type
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        for key, value in response.getheaders():
            if key.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response.status, response.getheader("Location", ""), data.decode("utf-8", "replace")

    def token(self, path) -> str:
        _status, _, page = self.request("GET", path)
        return CSRF_RE.search(page).group(1)

    def login(self, username) -> int:
        token = self.token("/accounts/login/")
        form = {"csrfmiddlewaretoken": token, "username": username, "password": PASSWORD}
        status, _, _ = self.request("POST", "/accounts/login/", form)
        return status

    def upload(self, path: Path, fields: dict) -> tuple[int, str]:
        token = self.token("/exchange/import/")
        boundary = "----bench-import-boundary-7d1f"
        parts = []
        for key, value in {"csrfmiddlewaretoken": token, **fields}.items():
            disposition = f'Content-Disposition: form-data; name="{key}"'
            parts.append(f"--{boundary}\r\n{disposition}\r\n\r\n{value}\r\n".encode())
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
            + path.read_bytes()
            + b"\r\n"
        )
        parts.append(f"--{boundary}--\r\n".encode())
        status, _, page = self.request(
            "POST",
            "/exchange/import/",
            b"".join(parts),
            content_type=f"multipart/form-data; boundary={boundary}",
        )
        return status, page


FIELD_RE = re.compile(r"<(input|select|textarea)\b([^>]*)>(.*?</\1>)?", re.S)
ATTR_RE = re.compile(r'([\w-]+)(?:="([^"]*)")?')


def form_values(page: str) -> dict:
    """The values a browser would post back from the CRF form on the page."""
    form = page[page.find('<form method="post"') :]
    values = {}
    for tag, attrs_text, inner in FIELD_RE.findall(form):
        attrs = dict(ATTR_RE.findall(attrs_text))
        name = attrs.get("name")
        if not name:
            continue
        if tag == "select":
            chosen = re.search(r'<option value="([^"]*)"[^>]*selected', inner or "")
            values[name] = html.unescape(chosen.group(1)) if chosen else ""
        elif tag == "textarea":
            values[name] = html.unescape(re.sub(r"</textarea>$", "", inner or ""))
        elif attrs.get("type") == "checkbox":
            if "checked" in attrs_text:
                values[name] = attrs.get("value") or "on"
        elif attrs.get("type") not in ("submit", "button", "file"):
            values[name] = html.unescape(attrs.get("value", ""))
    return values


class Neighbour(threading.Thread):
    """Another investigator working while the import runs: log in, save their follow-up."""

    def __init__(self, port, case_id):
        super().__init__(daemon=True)
        self.port, self.case_id = port, case_id
        self.done = threading.Event()
        self.results: list[tuple[str, int, float]] = []

    def run(self):
        path = f"/cases/{self.case_id}/follow-up/"
        while not self.done.is_set():
            client = Client(self.port)
            t0 = time.perf_counter()
            status = client.login("investigator2")
            self.results.append(("login", status, time.perf_counter() - t0))
            if status != 302:
                continue
            _s, _l, page = client.request("GET", path)
            values = form_values(page)
            values["change_reason"] = "bench"
            t0 = time.perf_counter()
            status, location, _ = client.request("POST", path, values)
            self.results.append(("save", status, time.perf_counter() - t0))
            time.sleep(0.2)

    def summary(self) -> dict:
        out = {}
        for kind in ("login", "save"):
            rows = [r for r in self.results if r[0] == kind]
            out[kind] = {
                "attempts": len(rows),
                "ok": sum(1 for r in rows if r[1] == 302),
                "errors_5xx": sum(1 for r in rows if r[1] >= 500),
                "max_wait_s": round(max((r[2] for r in rows), default=0), 2),
            }
        return out


def site_case(database: Path, code: str) -> int:
    with sqlite3.connect(database) as db:
        return db.execute(
            "SELECT p.id FROM registry_patient p JOIN registry_institution i "
            "ON i.id = p.institution_id JOIN registry_followup f ON f.patient_id = p.id "
            "WHERE i.code = ? ORDER BY p.id LIMIT 1",
            (code,),
        ).fetchone()[0]


def site_pk(database: Path, code: str) -> int:
    with sqlite3.connect(database) as db:
        return db.execute("SELECT id FROM registry_institution WHERE code = ?", (code,)).fetchone()[
            0
        ]


def outcome(page: str) -> str:
    """The import page's verdict: the result alert, or the form's error."""
    for pattern in (
        r'id="import-result"[^>]*>(.*?)</div>',
        r'class="[^"]*invalid-feedback[^"]*"[^>]*>(.*?)</',
        r'class="[^"]*alert-danger[^"]*"[^>]*>(.*?)</div>',
    ):
        found = re.search(pattern, page, re.S)
        if found:
            text = html.unescape(re.sub(r"<[^>]+>", " ", found.group(1)))
            first = re.search(r"<tbody>\s*<tr>(.*?)</tr>", page, re.S)
            if first:
                text += " | " + html.unescape(re.sub(r"<[^>]+>", " ", first.group(1)))
            return " ".join(text.split())[:300]
    return ""


def measure(repo, template_db, work, port, name, path, fields, neighbour=False) -> dict:
    database = work / f"{name}.sqlite3"
    shutil.copy(template_db, database)
    log = (work / f"{name}.log").open("w")
    server = Server(repo, database, port, log)
    try:
        client = Client(port)
        assert client.login("investigator") == 302
        client.request("GET", "/exchange/import/")
        before = server.status()["VmRSS"]
        server.reset_peak()
        other = None
        if neighbour:
            other = Neighbour(port, site_case(database, "KR02"))
        cpu0 = server.cpu_seconds()
        t0 = time.perf_counter()
        if other:
            other.start()
        status, page = client.upload(path, {"institution": site_pk(database, "KR01"), **fields})
        seconds = time.perf_counter() - t0
        if other:
            other.done.set()
            other.join(60)
        cpu = server.cpu_seconds() - cpu0  # with the second user's requests, when there is one
        after = server.status()
        result = {
            "upload": name,
            "file_bytes": path.stat().st_size,
            "status": status,
            "seconds": round(seconds, 2),
            "server_cpu_s": round(cpu, 2),
            "rss_before_mib": round(before),
            "peak_rss_mib": round(after["VmHWM"]),
            "outcome": outcome(page),
        }
        if other:
            result["neighbour"] = other.summary()
        return result
    finally:
        server.stop()
        log.close()


ALL = [
    "zip_bomb",
    "csv_50mb",
    "rows_2000",
    "rows_2000_busy",
    "rows_2000_import",
    "rows_2000_import_busy",
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=common.ROOT, help="checkout to serve")
    parser.add_argument("--label", default="after", help="name of this run in the results")
    parser.add_argument("--port", type=int, default=8163)
    parser.add_argument(
        "--only",
        nargs="*",
        default=ALL,
        help="uploads to run",
    )
    args = parser.parse_args()
    repo = args.repo.resolve()
    work = Path(tempfile.mkdtemp(prefix="import_limits_"))
    try:
        common.header(f"import limits: {repo} ({args.label})")
        template_db = seeded_database(repo, work)
        rows_zip = None

        def rows():
            nonlocal rows_zip
            rows_zip = rows_zip or make_rows(work, 2000)[0]
            return rows_zip

        check, commit = {"check_only": "on"}, {}
        uploads = {  # name: (file, form fields, a second user working meanwhile)
            "zip_bomb": (lambda: make_zip_bomb(work), {}, False),
            "csv_50mb": (lambda: make_csv_50mb(work), {}, False),
            "rows_2000": (rows, check, False),
            "rows_2000_busy": (rows, check, True),
            "rows_2000_import": (rows, commit, False),
            "rows_2000_import_busy": (rows, commit, True),
        }
        results = []
        for name in args.only:
            make, fields, busy = uploads[name]
            path = make()
            result = measure(repo, template_db, work, args.port, name, path, fields, busy)
            if name == "zip_bomb":
                with zipfile.ZipFile(path) as archive:
                    result["unzipped_bytes"] = sum(i.file_size for i in archive.infolist())
            print(json.dumps(result), flush=True)
            results.append(result)
            if path != rows_zip:
                path.unlink()
        name = "_".join([f"import_limits_{args.label}", *([] if args.only == ALL else args.only)])
        common.record(name, {"repo": str(repo), "results": results})
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
