"""Benchmark: the case-book archive of the largest site, at 100,000 patients: time and memory.

    bash scripts/with_services.sh .venv/bin/python bench/casebook_archive.py [--patients 100000]

The registry is seed_demo's (bench/common.py: database bench_<n>, seeded the first time). A fresh
subprocess runs what the Celery worker runs for "Build the archive" (casebook.tasks.
build_site_archive_task, applied in-process) for the site with the most cases, and samples its
resident memory (VmRSS) every second together with the number of case books written, so the
figures show whether memory stays flat while the archive grows. Writes
bench/results/casebook_archive_<n>.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(media: str) -> dict:
    import django

    django.setup()
    from django.conf import settings
    from django.db.models import Count

    from casebook import archive as site_archive
    from casebook.models import SiteArchive
    from casebook.tasks import build_site_archive_task
    from registry.models import Institution

    settings.MEDIA_ROOT = Path(media)
    site = Institution.objects.annotate(n=Count("patients")).order_by("-n", "code").first()
    done = {"n": 0}
    render = site_archive.pdf.case_pdf

    def counted(patient):
        done["n"] += 1
        return render(patient)

    site_archive.pdf.case_pdf = counted
    samples, stop = [], threading.Event()
    started = time.perf_counter()

    def sample():
        while not stop.wait(1.0):
            samples.append(
                (round(time.perf_counter() - started, 1), done["n"], round(rss_mib(), 1))
            )

    rss_before = rss_mib()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    archive = SiteArchive.objects.create(institution=site)
    build_site_archive_task.apply(args=[str(archive.pk)])
    wall = time.perf_counter() - started
    stop.set()
    sampler.join()
    archive.refresh_from_db()
    n = archive.cases_done

    def rss_at(fraction):
        wanted = n * fraction
        return next((s[2] for s in samples if s[1] >= wanted), samples[-1][2] if samples else None)

    return {
        "site": site.code,
        "site_cases": site.n,
        "status": archive.status,
        "error": archive.error,
        "cases_done": n,
        "wall_s": round(wall, 1),
        "cases_per_s": round(n / wall, 1) if wall else None,
        "zip_mib": round((archive.size_bytes or 0) / 2**20, 1),
        "rss_before_mib": round(rss_before, 1),
        "rss_at_10pct_mib": rss_at(0.1),
        "rss_at_50pct_mib": rss_at(0.5),
        "rss_at_90pct_mib": rss_at(0.9),
        "rss_last_mib": samples[-1][2] if samples else None,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "samples": samples[:: max(1, len(samples) // 60)],  # about 60 of them
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--media", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.media)))
        return
    n = args.patients
    common.prepare_database(n)
    import tempfile

    with tempfile.TemporaryDirectory() as media:
        command = [common.PYTHON, __file__, "--child", "--media", media]
        proc = subprocess.run(
            command, cwd=common.ROOT, env=common.bench_env(n), capture_output=True, text=True
        )
    if proc.returncode:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(proc.returncode)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(
        patients=n,
        command=f"bash scripts/with_services.sh .venv/bin/python bench/casebook_archive.py "
        f"--patients {n}",
        machine=common.machine(),
        load_after=common.load(),
    )
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    (common.RESULTS / f"casebook_archive_{n}.json").write_text(json.dumps(result, indent=2))
    shown = {k: v for k, v in result.items() if k not in ("samples", "machine")}
    print(json.dumps(shown, indent=2))


if __name__ == "__main__":
    main()
