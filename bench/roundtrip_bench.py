"""Benchmark: export_cases, then import_cases into an empty registry, and the datasets compared.

    bash scripts/with_services.sh .venv/bin/python bench/roundtrip_bench.py \
        [--patients 10000 100000] [--export-only 100000] [--import-timeout 3600]

For each size n (the seed_demo registry in bench_<n>, as the other scripts):

  dataset     sha256 of GET-equivalent analysis_dataset.csv (analysis.dataset.iter_dataset_csv)
  export      `manage.py export_cases DIR` in a fresh process: wall time, peak RSS, files
  import      a new empty database bench_rt_<n> (migrated, the 16 demo sites, no case), then
              `manage.py import_cases DIR --max-rows 0` in a fresh process (streamed from
              the files): wall time, peak RSS
  compare     the dataset of bench_rt_<n>, and its export, against those of bench_<n>: equal
              bytes (sha256)

Sizes given to --export-only are exported (time and memory) without the import. Sizes given to
--jobs run each background export (exchange.jobs.build, what the Celery task runs) for `admin`
(whole registry): the template zip, the ODM file and the dataset's workbook, with the process's
RSS and the job's progress sampled every 5 s. Each step runs in its own subprocess so ru_maxrss is
its own.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

STEPS = ["dataset", "export", "import", "sites", "template", "odm", "dataset_xlsx"]
JOB_KINDS = ["template", "odm", "dataset_xlsx"]


def run_job(kind: str, directory: Path) -> dict:
    """One background export as the worker builds it, its RSS and progress sampled."""
    import threading

    from django.conf import settings
    from django.contrib.auth import get_user_model

    from exchange import jobs
    from exchange.models import ExportJob

    settings.MEDIA_ROOT = directory
    user = get_user_model().objects.get(username="admin")
    job = ExportJob.objects.create(kind=kind, requested_by=user, scope="registry")
    samples, finished = [], threading.Event()
    started = time.perf_counter()

    def sample():
        while not finished.wait(5):
            status = Path("/proc/self/status").read_text().splitlines()
            rss = next(x for x in status if x.startswith("VmRSS")).split()[1]
            done, total = ExportJob.objects.filter(pk=job.pk).values_list("done", "total")[0]
            samples.append([round(time.perf_counter() - started), int(rss) // 1024, done, total])

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    job = jobs.build(job)
    finished.set()
    thread.join()
    return {
        "status": job.status,
        "error": job.error[:300],
        "bytes": job.size_bytes,
        "done": job.done,
        "total": job.total,
        "samples_s_rss_mib_done_total": samples,
    }


def child(step: str, directory: Path) -> dict:
    import django

    django.setup()
    import hashlib
    import io

    from django.core.management import call_command

    result = {"rss_before_mib": common.peak_rss_mib()}
    started = time.perf_counter()
    if step == "dataset":
        from analysis.dataset import iter_dataset_csv

        digest = hashlib.sha256()
        for chunk in iter_dataset_csv():
            digest.update(chunk.encode())
        result["sha256"] = digest.hexdigest()
    elif step == "export":
        out = io.StringIO()
        call_command("export_cases", str(directory), stdout=out, stderr=out)
        result["printed"] = out.getvalue().splitlines()
        result["files"] = {p.name: p.stat().st_size for p in sorted(directory.glob("*.csv"))}
        result["peak_rss_export_mib"] = common.peak_rss_mib()  # before the files are hashed
        digest = hashlib.sha256()
        for p in sorted(directory.glob("*.csv")):
            with p.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
        result["sha256"] = digest.hexdigest()
    elif step == "import":
        out = io.StringIO()
        # --max-rows 0: the command's streamed path (a directory beyond IMPORT_MAX_ROWS is read
        # from disk twice, not held); raising IMPORT_MAX_ROWS instead would hold every row.
        call_command("import_cases", str(directory), max_rows=0, stdout=out, stderr=out)
        result["printed"] = [line[:300] for line in out.getvalue().splitlines()]
    elif step in JOB_KINDS:
        result.update(run_job(step, directory))
    elif step == "sites":  # the empty registry: the demo's 16 sites, no case
        from registry.management.commands.seed_demo import Command

        Command().ensure_institutions()
    result["wall_s"] = time.perf_counter() - started
    result["peak_rss_mib"] = common.peak_rss_mib()
    return result


def run_child(database_n, step: str, directory: Path, timeout: float, url=None, **env) -> dict:
    environment = common.bench_env(database_n, **env)
    if url:
        environment["DATABASE_URL"] = url
    try:
        proc = subprocess.run(
            [common.PYTHON, __file__, "--child", step, "--dir", str(directory)],
            cwd=common.ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"timeout_s": timeout}
    if proc.returncode:
        sys.stderr.write(proc.stderr[-3000:])
        return {"failed": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def empty_registry(n: int) -> str:
    """A fresh database bench_rt_<n>: migrated, the demo's sites, no case. Returns its URL."""
    from urllib.parse import urlsplit, urlunsplit

    name = f"bench_rt_{n}"
    common._psql(f'DROP DATABASE IF EXISTS "{name}"')
    common._psql(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(common.base_url())._replace(path=f"/{name}"))
    env = common.bench_env(n)
    env["DATABASE_URL"] = url
    common.run([common.PYTHON, "manage.py", "migrate", "--no-input", "-v", "0"], env=env)
    return url


def show(label, r):
    if "wall_s" not in r:
        print(f"    {label:<8} {r}", flush=True)
        return
    print(
        f"    {label:<8} {r['wall_s']:8.1f} s  peak RSS {r['peak_rss_mib']:6.0f} MiB "
        f"(after imports {r['rss_before_mib']:.0f}); load {common.load()[0]:.2f}",
        flush=True,
    )


def trip(n: int, export_only: bool, timeout: float) -> dict:
    common.prepare_database(n)
    result = {"load_before": common.load()}
    work = Path(tempfile.mkdtemp(prefix=f"roundtrip_{n}_"))
    try:
        first, second = work / "first", work / "second"
        print(f"  n={n:,}", flush=True)
        result["export"] = run_child(n, "export", first, timeout)
        show("export", result["export"])
        if export_only:
            return result
        result["dataset"] = run_child(n, "dataset", first, timeout)
        show("dataset", result["dataset"])
        url = empty_registry(n)
        result["sites"] = run_child(n, "sites", first, timeout, url=url)
        result["import"] = run_child(n, "import", first, timeout, url=url)
        show("import", result["import"])
        if "wall_s" not in result["import"]:
            return result
        result["dataset_after"] = run_child(n, "dataset", first, timeout, url=url)
        result["export_after"] = run_child(n, "export", second, timeout, url=url)
        same_dataset = result["dataset_after"].get("sha256") == result["dataset"].get("sha256")
        same_export = result["export_after"].get("sha256") == result["export"].get("sha256")
        result["same_dataset"], result["same_export"] = same_dataset, same_export
        print(
            f"    dataset after the trip: {'identical' if same_dataset else 'DIFFERS'} "
            f"(sha256 {result['dataset'].get('sha256', '')[:16]}…); export again: "
            f"{'identical' if same_export else 'DIFFERS'}",
            flush=True,
        )
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, nargs="*", default=[10_000])
    parser.add_argument("--export-only", type=int, nargs="*", default=[100_000])
    parser.add_argument("--jobs", type=int, nargs="*", default=[])
    parser.add_argument("--record", default="roundtrip", help="bench/results/<RECORD>.json")
    parser.add_argument("--import-timeout", type=float, default=3600, help="per step (s)")
    parser.add_argument("--child", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.dir)))
        return
    common.header("Round trip: export_cases, import_cases into an empty registry, datasets")
    results = {}
    for n in args.export_only:
        results[f"export_{n}"] = trip(n, True, args.import_timeout)
    for n in args.patients:
        results[f"trip_{n}"] = trip(n, False, args.import_timeout)
    for n in args.jobs:
        common.prepare_database(n)
        print(f"  background exports, n={n:,}", flush=True)
        for kind in JOB_KINDS:
            with tempfile.TemporaryDirectory() as media:
                r = run_child(n, kind, Path(media), args.import_timeout)
            results[f"job_{kind}_{n}"] = r
            show(kind[:8], r)
    path = common.record(args.record, {"sizes": results})
    print(f"   written: {path.relative_to(common.ROOT)}")


if __name__ == "__main__":
    main()
