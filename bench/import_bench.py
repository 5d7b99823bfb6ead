"""`manage.py import_cases` of a whole legacy registry on PostgreSQL: time and peak memory.

    bash scripts/with_services.sh .venv/bin/python bench/import_bench.py --patients 10000

The registry of `seed_demo --patients N` (database bench_<N>, as every benchmark) is written as
the import template's CSV files (one per record type, columns from exchange.spec; each case keyed
by its site and its study ID as the site's own case number) into a temporary directory. Then, in
an empty database `bench_import_<N>` (migrated, holding the 16 demo sites and the importing
user), `manage.py import_cases DIR --max-rows 0 --user bench_importer` runs in a fresh process,
first with `--check` (everything checked, nothing saved), then for real. Each run's wall time,
CPU time (user + system) and peak RSS (the process's own getrusage, printed by the child) are
reported; the last line printed is the import's {"patients", "rows", "seconds", "rows_per_s",
"peak_mib"}, also kept in bench/results/import_<N>.json with the check's figures and the load.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

USER = "bench_importer"


def export(directory: Path) -> dict[str, int]:
    """The registry (this process's database) as the import template's CSV files, streamed."""
    from exchange import spec
    from exchange.export import cell_text  # as export_cases writes a value
    from registry.models import Patient

    counts = {}
    for rt in spec.RECORD_TYPES:
        paths = []
        for column in rt.columns:
            if column.name == spec.INSTITUTION:
                paths.append(
                    "institution__code" if rt.key == "patient" else "patient__institution__code"
                )
            elif column.name == spec.STUDY_ID:
                paths.append(None)  # new cases in the empty registry: named by case number
            elif column.name == spec.SITE_CASE_NUMBER:
                paths.append("study_id" if rt.key == "patient" else "patient__study_id")
            elif rt.key == "patient" and column.model is not Patient:
                paths.append(f"baseline__{column.field}")
            elif column.field == "cycle":
                paths.append("cycle__number")
            else:
                paths.append(column.field)
        wanted = [p for p in paths if p]
        queryset = rt.model.objects.order_by("pk").values_list(*wanted)
        n = 0
        with (directory / rt.filename).open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(rt.column_names)
            for values in queryset.iterator(chunk_size=5000):
                values = iter(values)
                writer.writerow([cell_text(next(values)) if p else "" for p in paths])
                n += 1
        counts[rt.name] = n
    return counts


def clamp_to_validators() -> int:
    """seed_demo writes without the forms' validators, and its generator can pass a field's
    limit (at 100,000 patients, seed 361: one peripheral blast count over 2,000,000/µL, which the
    import rightly refuses). Such values are set to the limit in the source registry, so that
    the import can commit; returns how many were."""
    from django.core.validators import MaxValueValidator, MinValueValidator

    from exchange import spec

    changed = 0
    for model in spec.CASE_MODELS:
        for field in model._meta.concrete_fields:
            for v in field.validators:
                if isinstance(v, MaxValueValidator | MinValueValidator):
                    op = "gt" if isinstance(v, MaxValueValidator) else "lt"
                    past = model.objects.filter(**{f"{field.name}__{op}": v.limit_value})
                    changed += past.update(**{field.name: v.limit_value})
    return changed


def child(args) -> None:
    """Run the command in this fresh process; print its wall time and peak RSS as JSON."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from django.core.management import CommandError, call_command

    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = usage.ru_utime + usage.ru_stime
    started = time.perf_counter()
    extra = ["--check"] if args.check else []
    problems = 0
    profile = os.environ.get("IMPORT_BENCH_PROFILE")  # a file for cProfile's statistics
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        call_command("import_cases", args.child, "--max-rows", "0", "--user", USER, *extra)
    except CommandError as e:  # every row was still checked and stored, then rolled back
        problems = int(str(e).split()[0])
    seconds = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - cpu_before
    result = {"seconds": round(seconds, 1), "cpu_s": round(cpu, 1), "problems": problems}
    print(json.dumps({**result, "peak_mib": round(usage.ru_maxrss / 1024, 1)}))


def empty_registry(n: int) -> dict:
    """bench_import_<n>: dropped, created, migrated, with the demo sites and the importer."""
    name = f"bench_import_{n}"
    common._psql(f'DROP DATABASE IF EXISTS "{name}"')
    common._psql(f'CREATE DATABASE "{name}"')
    env = common.bench_env(n)
    env["DATABASE_URL"] = common.url_for(n).rsplit("/", 1)[0] + f"/{name}"
    common.run([common.PYTHON, "manage.py", "migrate", "--no-input", "-v", "0"], env=env)
    script = (
        "import django; django.setup()\n"
        "from django.contrib.auth import get_user_model\n"
        "from registry import demo\n"
        "from registry.models import Institution\n"
        "for code, site in demo.INSTITUTIONS: Institution.objects.create(code=code, name=site)\n"
        f"get_user_model().objects.create_user({USER!r}, password=None, is_superuser=True)\n"
    )
    common.run([common.PYTHON, "-c", script], env=env)
    return env


def run_import(directory: Path, env: dict, check: bool) -> dict:
    command = [common.PYTHON, __file__, "--child", str(directory)]
    if check:
        command.append("--check")
    load = common.load()
    proc = subprocess.run(command, cwd=common.ROOT, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.stderr.write(proc.stdout[-5000:] + proc.stderr[-5000:])
        raise SystemExit(f"import failed ({proc.returncode})")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**result, "load_avg_before": [round(x, 2) for x in load]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=10000)
    parser.add_argument("--no-check", action="store_true", help="skip the --check run")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--check", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    n = args.patients
    common.header(f"import_cases of {n:,} patients")
    common.use_database(n)
    with tempfile.TemporaryDirectory(prefix="import_bench_") as tmp:
        directory = Path(tmp)
        clamped = clamp_to_validators()
        print(f"   values set to their field's limit in the source registry: {clamped}")
        started = time.perf_counter()
        counts = export(directory)
        rows = sum(counts.values())
        size = sum(p.stat().st_size for p in directory.iterdir())
        print(
            f"   template CSVs: {rows:,} rows, {size / 1e6:,.0f} MB, written in "
            f"{time.perf_counter() - started:.1f} s: {counts}",
            flush=True,
        )
        checked = None
        if not args.no_check:
            env = empty_registry(n)
            checked = run_import(directory, env, check=True)
            print(f"   --check: {checked}", flush=True)
        env = empty_registry(n)
        imported = run_import(directory, env, check=False)
        print(f"   import: {imported}", flush=True)
    common.record(
        f"import_{n}",
        {
            "rows": counts,
            "csv_mb": round(size / 1e6, 1),
            "clamped_values": clamped,
            "check": checked,
            "import": imported,
        },
    )
    seconds = imported["seconds"]
    print(
        json.dumps(
            {
                "patients": n,
                "rows": rows,
                "seconds": seconds,
                "rows_per_s": round(rows / seconds),
                "peak_mib": imported["peak_mib"],
            }
        )
    )


if __name__ == "__main__":
    main()
