"""Benchmark 3: pages at 10,000 and 100,000 patients: SQL queries per page and latency.

    bash scripts/with_services.sh .venv/bin/python bench/pages_bench.py [--patients 10000 100000]

In-process (django.test.Client, DEBUG off, the app's middleware; no network), logged in with
force_login as the demo users: the case list of `investigator` (KR01, about 6% of all cases;
default sort, sorted by best response and by cycles, a search), a case page, the analysis
dashboard of `statistician` (with a finished run of the same registry, made once with
`manage.py run_analysis`), and every admin change list as `admin` and as `monitor`. Each page is
requested --requests times after two warm-up requests; the number of SQL queries is counted on
the last request. The queries must be the same at every size (tests/test_query_counts.py
asserts this with django_assert_max_num_queries on two sizes); the latency is per request.
Two-factor authentication is switched off for the process (DJANGO_REQUIRE_2FA=0): the pages,
not the login flow, are measured.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

WORK = common.ROOT / "bench" / ".work"


def ensure_run(n: int):
    """A succeeded AnalysisRun whose files exist, so the dashboard shows a full run."""
    from analysis.models import AnalysisRun

    out = WORK / f"run_{n}"
    for run in AnalysisRun.objects.filter(status=AnalysisRun.SUCCEEDED):
        if (run.output_dir / "run.json").exists():
            return run
    started = time.perf_counter()
    common.run(
        [common.PYTHON, "manage.py", "run_analysis", "--out", str(out)],
        env=common.bench_env(n, PYTHONWARNINGS="ignore"),
    )
    print(f"   made the dashboard's run with run_analysis in {time.perf_counter() - started:.0f} s")
    return AnalysisRun.objects.filter(status=AnalysisRun.SUCCEEDED).latest("created_at")


def pages(n: int) -> list[tuple[str, str, str]]:
    """(label, user, url) of every page measured."""
    from django.contrib import admin

    from registry.models import Patient

    case = (
        Patient.objects.filter(institution__code="KR01", assessments__isnull=False)
        .order_by("study_id")
        .first()
    )
    out = [
        ("case list", "investigator", "/"),
        ("case list, by best response", "investigator", "/?sort=response"),
        ("case list, by cycles, page 10", "investigator", "/?sort=-cycles&page=10"),
        ("case list, search", "investigator", "/?q=KR01-00"),
        ("case page", "investigator", f"/cases/{case.pk}/"),
        ("analysis dashboard", "statistician", "/analysis/"),
    ]
    for model in admin.site._registry:
        meta = model._meta
        url = f"/admin/{meta.app_label}/{meta.model_name}/"
        out.append((f"admin {meta.app_label}.{meta.model_name}", "admin", url))
        if meta.app_label in ("registry", "monitoring"):
            out.append((f"admin {meta.app_label}.{meta.model_name} (monitor)", "monitor", url))
    out.append((f"admin registry.patient change form ({case.study_id})", "admin", ""))
    out[-1] = (out[-1][0], "admin", f"/admin/registry/patient/{case.pk}/change/")
    return out


def measure(n: int, requests: int, only: str = "") -> list[dict]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    ensure_run(n)
    clients = {}
    results = []
    for label, username, url in pages(n):
        if only and only not in label:
            continue
        if username not in clients:
            clients[username] = Client()
            clients[username].force_login(get_user_model().objects.get(username=username))
        client = clients[username]
        for _ in range(2):
            status = client.get(url).status_code
        if status != 200:
            results.append({"page": label, "url": url, "user": username, "status": status})
            print(f"  n={n:>6} {label:<52} HTTP {status} (skipped)", flush=True)
            continue
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            client.get(url)
            times.append(time.perf_counter() - started)
        with CaptureQueriesContext(connection) as queries:
            client.get(url)
        r = {
            "page": label,
            "url": url,
            "user": username,
            "queries": len(queries),
            "p50_ms": common.percentile(times, 50) * 1000,
            "p95_ms": common.percentile(times, 95) * 1000,
            "max_ms": max(times) * 1000,
        }
        results.append(r)
        print(
            f"  n={n:>6} {label:<52} {r['queries']:>3} queries  p50 {r['p50_ms']:7.1f} ms  "
            f"p95 {r['p95_ms']:7.1f} ms",
            flush=True,
        )
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--only", default="", help="only pages whose label contains this")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        os.environ["DJANGO_REQUIRE_2FA"] = "0"
        common.use_database(args.child)
        import json

        print("RESULT " + json.dumps(measure(args.child, args.requests, args.only)), flush=True)
        return
    common.header("Pages: SQL queries and latency (in-process client)")
    import json
    import subprocess

    by_size = {}
    for n in args.patients:
        common.prepare_database(n)
        proc = subprocess.run(
            [
                *(common.PYTHON, __file__, "--child", str(n), "--requests", str(args.requests)),
                *(("--only", args.only) if args.only else ()),
            ],
            cwd=common.ROOT,
            env=common.bench_env(n, DJANGO_REQUIRE_2FA="0"),
            stdout=subprocess.PIPE,
            text=True,
        )
        lines = proc.stdout.splitlines()
        for line in lines:
            if not line.startswith("RESULT "):
                print(line, flush=True)
        if proc.returncode:
            raise SystemExit(f"pages at n={n} failed")
        by_size[n] = json.loads(next(x for x in lines if x.startswith("RESULT "))[7:])
    if len(by_size) > 1:
        sizes = sorted(by_size)
        first = {r["page"]: r.get("queries") for r in by_size[sizes[0]]}
        grew = [
            f"{r['page']}: {first.get(r['page'])} -> {r.get('queries')}"
            for r in by_size[sizes[-1]]
            if r.get("queries") != first.get(r["page"])
        ]
        print(f"   queries that differ between n={sizes[0]} and n={sizes[-1]}: {grew or 'none'}")
    path = common.record("pages", {"sizes": by_size, "load_after": common.load()})
    print(f"   written: {path.relative_to(common.ROOT)}")


if __name__ == "__main__":
    main()
