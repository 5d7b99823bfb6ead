"""Benchmark 2: data entry under load through the real forms, beside a bare ModelForm view.

    bash scripts/with_services.sh .venv/bin/python bench/load_bench.py [--patients 100000]

Starts gunicorn (as docker-compose: 3 sync workers; --workers/--threads/--conn-max-age to vary)
on the size-n database with bench/settings.py, creates 50 investigators `bench_inv_NN` with an
investigator membership at one demo site each (round robin over the 16 sites), logs them in
(login latency reported apart), then lets them enter data for `--duration` seconds: each user
picks a living case of its site, GETs the new response assessment or adverse event form, parses
the csrf token and the hidden `version`, POSTs a valid record and expects the redirect to the
case page. Any other answer is an error. Afterwards the rows added to registry_responseassessment
and registry_adverseevent must equal the successful POSTs (no lost writes).

Two load shapes, each against the app's CRF views and against /bench/bare/... (bench/urls.py):
  paced      every user thinks --think seconds (uniform 0.5x-1.5x) before each request: 50
             people typing at once before a data cut-off (the p95 < 100 ms target)
  saturated  no think time: the server's throughput (the >= half of bare target)
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

PASSWORD = "bench-load-2026"
CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
VERSION_RE = re.compile(r'<input[^>]*name="version"[^>]*>')
VALUE_RE = re.compile(r'value="([^"]*)"')
AE_TERMS = [("Anemia", 2), ("Fever", 1), ("Headache", 1), ("Nausea", 2), ("Fatigue", 2)]


def setup_users(n_users: int) -> dict[str, list[tuple[int, int, str]]]:
    """bench_inv_NN investigators and, per user, the living cases of its site with a cycle."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from registry import ctcae
    from registry.models import Cycle, Institution, Membership

    for term, grade in AE_TERMS:
        assert ctcae.get(term) and grade in ctcae.get(term).grades, term
    User = get_user_model()
    sites = list(Institution.objects.order_by("code"))
    hashed = make_password(PASSWORD)
    cases: dict[str, list] = {}
    per_site: dict[int, list] = {}
    for site in sites:
        cycles = (
            Cycle.objects.filter(
                number=1,
                patient__institution=site,
                patient__followup__death_date__isnull=True,
            )
            .order_by("patient_id")
            .values_list("patient_id", "id", "start_date")[:200]
        )
        per_site[site.pk] = [(p, c, str(d)) for p, c, d in cycles]
    for i in range(n_users):
        username = f"bench_inv_{i + 1:02d}"
        user, _ = User.objects.update_or_create(username=username, defaults={"password": hashed})
        site = sites[i % len(sites)]
        Membership.objects.filter(user=user).exclude(institution=site).delete()
        Membership.objects.update_or_create(
            user=user, institution=site, defaults={"role": Membership.INVESTIGATOR}
        )
        cases[username] = per_site[site.pk]
    return cases


def count_rows() -> int:
    from registry.models import AdverseEvent, ResponseAssessment

    return ResponseAssessment.objects.count() + AdverseEvent.objects.count()


class Client:
    """One investigator: a cookie jar over http.client, a new connection per request when the
    server closes it (sync workers do)."""

    def __init__(self, port: int):
        self.port = port
        self.cookies: dict[str, str] = {}
        self.conn = None

    def request(self, method, path, body=None):
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if body is not None:
            body = urlencode(body)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        for key, value in response.getheaders():
            if key.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
        if response.getheader("Connection", "").lower() == "close" or response.will_close:
            self.conn.close()
            self.conn = None
        return response.status, response.getheader("Location", ""), data.decode()

    def login(self, username):
        status, _, page = self.request("GET", "/accounts/login/")
        token = CSRF_RE.search(page).group(1)
        form = {"csrfmiddlewaretoken": token, "username": username, "password": PASSWORD}
        status, location, _ = self.request("POST", "/accounts/login/", form)
        if status != 302:
            raise RuntimeError(f"login of {username} failed: HTTP {status}")


def record_values(kind, cycle_id, cycle_start, rng):
    start = time_from_iso(cycle_start)
    if kind == "assessments":
        return {
            "cycle": cycle_id,
            "assessment_date": str(start + timedelta(days=rng.randint(28, 42))),
            "marrow_blasts_pct": f"{rng.uniform(0, 60):.1f}",
            "anc_10e9_per_l": f"{rng.uniform(0.2, 4):.2f}",
            "platelets_10e9_per_l": f"{rng.uniform(10, 250):.1f}",
            "emd_status": "none",
            "mrd_status": "not_done",
            "mrd_level": "",
        }
    term, grade = rng.choice(AE_TERMS)
    return {
        "cycle": cycle_id,
        "ctcae_term": term,
        "other_specify": "",
        "grade": grade,
        "onset_date": str(start + timedelta(days=rng.randint(1, 20))),
        "resolution_date": "",
        "attribution": "possible",
        "action_taken": "none",
        "outcome": "recovering",
    }


def time_from_iso(text):
    from datetime import date

    return date.fromisoformat(text)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency = {"get_form": [], "post_save": []}
        self.saved = 0
        self.errors: dict[str, int] = {}

    def add(self, kind, seconds):
        with self.lock:
            self.latency[kind].append(seconds)

    def error(self, what):
        with self.lock:
            self.errors[what] = self.errors.get(what, 0) + 1


def user_loop(client, cases, prefix, think, deadline, stats, seed):
    rng = random.Random(seed)
    while time.monotonic() < deadline:
        patient, cycle, start = rng.choice(cases)
        kind = rng.choice(["assessments", "adverse-events"])
        path = f"{prefix}/{patient}/{kind}/new/"
        if think:
            time.sleep(think * rng.uniform(0.5, 1.5))
        t0 = time.perf_counter()
        try:
            status, _, page = client.request("GET", path)
        except Exception as exc:  # noqa: BLE001 - every failure is counted
            stats.error(f"GET {type(exc).__name__}")
            continue
        stats.add("get_form", time.perf_counter() - t0)
        token = CSRF_RE.search(page)
        version = VERSION_RE.search(page)
        if status != 200 or token is None or (prefix == "/cases" and version is None):
            stats.error(f"GET HTTP {status}")
            continue
        form = {"csrfmiddlewaretoken": token.group(1)}
        if version is not None:
            found = VALUE_RE.search(version.group(0))
            form["version"] = found.group(1) if found else ""
        form.update(record_values(kind, cycle, start, rng))
        if think:
            time.sleep(think * rng.uniform(0.5, 1.5))
        t0 = time.perf_counter()
        try:
            status, location, page = client.request("POST", path, form)
        except Exception as exc:  # noqa: BLE001
            stats.error(f"POST {type(exc).__name__}")
            continue
        stats.add("post_save", time.perf_counter() - t0)
        if status == 302 and "/login" not in location:
            with stats.lock:
                stats.saved += 1
        else:
            stats.error(f"POST HTTP {status}")


def start_server(n, port, workers, threads, conn_max_age, log):
    env = common.bench_env(
        n,
        DJANGO_SETTINGS_MODULE="bench.settings",
        BENCH_BASE_SETTINGS=os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings"),
        DB_CONN_MAX_AGE=conn_max_age,
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
    )
    command = [
        str(Path(common.PYTHON).parent / "gunicorn"),
        "config.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--timeout",
        "120",
        "--backlog",
        "2048",
    ]
    if threads > 1:
        command += ["--threads", str(threads), "--worker-class", "gthread"]
    server = subprocess.Popen(command, cwd=common.ROOT, env=env, stdout=log, stderr=log)
    for _ in range(300):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/accounts/login/")
            if conn.getresponse().status == 200:
                return server, command
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit("gunicorn did not answer")


def run_load(port, cases, prefix, think, duration, n_users):
    stats = Stats()
    clients, logins = [], []
    for username in cases:
        client = Client(port)
        t0 = time.perf_counter()
        client.login(username)
        logins.append(time.perf_counter() - t0)
        clients.append((client, cases[username]))
    rows_before = count_rows()
    deadline = time.monotonic() + duration
    threads = [
        threading.Thread(
            target=user_loop,
            args=(client, user_cases, prefix, think, deadline, stats, i),
            daemon=True,
        )
        for i, (client, user_cases) in enumerate(clients[:n_users])
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    rows_added = count_rows() - rows_before
    every = stats.latency["get_form"] + stats.latency["post_save"]
    ms = 1000
    result = {
        "prefix": prefix,
        "think_s": think,
        "duration_s": round(elapsed, 1),
        "users": len(threads),
        "requests": len(every),
        "throughput_rps": len(every) / elapsed,
        "saves_per_s": stats.saved / elapsed,
        "p50_ms": common.percentile(every, 50) * ms,
        "p95_ms": common.percentile(every, 95) * ms,
        "p99_ms": common.percentile(every, 99) * ms,
        "get_p95_ms": common.percentile(stats.latency["get_form"], 95) * ms,
        "post_p95_ms": common.percentile(stats.latency["post_save"], 95) * ms,
        "errors": sum(stats.errors.values()),
        "error_kinds": stats.errors,
        "successful_posts": stats.saved,
        "rows_added": rows_added,
        "lost_writes": stats.saved - rows_added,
        "login_p50_ms": common.percentile(logins, 50) * ms,
        "login_max_ms": max(logins) * ms,
        "load_after": common.load(),
    }
    return result


def show(label, r):
    print(
        f"  {label:<16} {r['requests']:>6} req in {r['duration_s']:.0f} s = "
        f"{r['throughput_rps']:6.1f} req/s ({r['saves_per_s']:.1f} saves/s); "
        f"p50 {r['p50_ms']:.0f} / p95 {r['p95_ms']:.0f} / p99 {r['p99_ms']:.0f} ms "
        f"(GET p95 {r['get_p95_ms']:.0f}, POST p95 {r['post_p95_ms']:.0f}); errors "
        f"{r['errors']} {r['error_kinds'] or ''}; POST ok {r['successful_posts']}, rows "
        f"+{r['rows_added']} (lost {r['lost_writes']}); login p50 {r['login_p50_ms']:.0f} ms; "
        f"load {r['load_after'][0]:.2f}",
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--think", type=float, default=2.0, help="paced: mean think time (s)")
    parser.add_argument("--shapes", nargs="+", default=["paced", "saturated"])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--conn-max-age", type=int, default=60, help="DB_CONN_MAX_AGE (s)")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    common.header("Data entry under load: CRF forms vs bare ModelForm view (gunicorn)")
    common.use_database(args.patients)
    cases = setup_users(args.users)
    port = args.port or int(common.run([common.PYTHON, "-c", FREE_PORT]).strip())
    log_path = common.RESULTS / "gunicorn.log"
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    results = {"patients": args.patients, "workers": args.workers, "threads": args.threads}
    with open(log_path, "w") as log:
        server, command = start_server(
            args.patients, port, args.workers, args.threads, args.conn_max_age, log
        )
        results["server"] = " ".join(command[1:]) + f" (DB_CONN_MAX_AGE={args.conn_max_age})"
        print(f"   server: {results['server']}", flush=True)
        try:
            for shape in args.shapes:
                think = args.think if shape == "paced" else 0.0
                for label, prefix in (("app", "/cases"), ("bare", "/bench/bare")):
                    r = run_load(port, cases, prefix, think, args.duration, args.users)
                    results[f"{shape}_{label}"] = r
                    show(f"{shape} {label}", r)
                app, bare = results[f"{shape}_app"], results[f"{shape}_bare"]
                ratio = app["throughput_rps"] / bare["throughput_rps"]
                results[f"{shape}_throughput_ratio"] = ratio
                print(f"  {shape}: app/bare throughput = {ratio:.2f}", flush=True)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    name = f"load_{args.patients}"
    if (args.workers, args.threads, args.conn_max_age) != (3, 1, 60):
        name += f"_w{args.workers}t{args.threads}c{args.conn_max_age}"
    path = common.record(name, results)
    print(f"   written: {path.relative_to(common.ROOT)}")


FREE_PORT = (
    "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
)

if __name__ == "__main__":
    main()
