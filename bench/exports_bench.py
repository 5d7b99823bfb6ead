"""Benchmark 4: exports at 10,000 and 100,000 patients: time and peak memory per format.

    bash scripts/with_services.sh .venv/bin/python bench/exports_bench.py [--patients 10000 100000]

Each export runs in a fresh subprocess (so its ru_maxrss peak is its own), from the database:

  csv-stream                          GET /analysis/dataset.csv as `statistician`, in-process
                                      client: analysis.dataset.iter_dataset_csv streams the
                                      dataset 2,000 patients at a time (memory flat in n)
  dataset.csv / .xlsx / .sav / .dta   analysis.dataset.load_registry() then
                                      analysis.outputs.write_dataset_as(): the analysis dataset
                                      of a run, as write_run writes it (build and write timed apart)
  odm.xml                             GET /exchange/odm.xml as `admin` (all cases), in-process
                                      client: exchange.odm.odm_chunks streams 500 cases at a time

Streamed bodies are written to a file chunk by chunk, as a browser saves a download, so the peak
memory is the server's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

EXPORTS = ["csv-stream", "csv", "xlsx", "sav", "dta", "odm"]
STREAMED = {
    "csv-stream": ("statistician", "/analysis/dataset.csv"),
    "odm": ("admin", "/exchange/odm.xml"),
}


def child(fmt: str, out: Path) -> dict:
    import django

    django.setup()
    from analysis import outputs
    from analysis.dataset import load_registry

    result = {"rss_before_mib": common.peak_rss_mib()}
    started = time.perf_counter()
    if fmt in STREAMED:
        from django.contrib.auth import get_user_model
        from django.test import Client

        username, url = STREAMED[fmt]
        client = Client()
        client.force_login(get_user_model().objects.get(username=username))
        response = client.get(url)
        size = 0
        with open(out / "download", "wb") as f:
            for chunk in response if response.streaming else [response.content]:
                size += f.write(chunk)
        result.update(status=response.status_code, streaming=response.streaming, bytes=size)
    else:
        snapshot = load_registry()
        result["build_s"] = time.perf_counter() - started
        name = outputs.write_dataset_as(snapshot.dataset, out, fmt)
        result["write_s"] = time.perf_counter() - started - result["build_s"]
        result["bytes"] = (out / name).stat().st_size
    result["wall_s"] = time.perf_counter() - started
    result["peak_rss_mib"] = common.peak_rss_mib()
    return result


def run_child(n: int, fmt: str, timeout: float) -> dict:
    with tempfile.TemporaryDirectory() as out:
        try:
            proc = subprocess.run(
                [common.PYTHON, __file__, "--child", fmt, "--out", out],
                cwd=common.ROOT,
                env=common.bench_env(n, DJANGO_REQUIRE_2FA="0"),
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--formats", nargs="+", default=EXPORTS, choices=EXPORTS)
    parser.add_argument("--timeout", type=float, default=900, help="per export (s)")
    parser.add_argument("--child", choices=EXPORTS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.out)))
        return
    common.header("Exports: time and peak memory per format")
    results = {}
    for n in args.patients:
        common.prepare_database(n)
        results[n] = {}
        for fmt in args.formats:
            r = run_child(n, fmt, args.timeout)
            results[n][fmt] = r
            if "wall_s" not in r:
                print(f"  n={n:>6} {fmt:<5} {r}", flush=True)
                continue
            split = (
                f"(build {r['build_s']:.1f} + write {r['write_s']:.1f})"
                if "build_s" in r
                else f"(HTTP {r['status']}, streaming {r['streaming']})"
            )
            print(
                f"  n={n:>6} {fmt:<5} {r['wall_s']:7.1f} s {split:<26} peak RSS "
                f"{r['peak_rss_mib']:6.0f} MiB (after imports {r['rss_before_mib']:.0f}), "
                f"{r['bytes'] / 1e6:.1f} MB; load {common.load()[0]:.2f}",
                flush=True,
            )
    path = common.record("exports", {"sizes": results})
    print(f"   written: {path.relative_to(common.ROOT)}")


if __name__ == "__main__":
    main()
