"""Shared helpers of the benchmark scripts: one PostgreSQL database per registry size, the
machine's description, peak memory, percentiles and the printed/recorded result.

Each size n lives in its own database `bench_<n>` on the server named by DATABASE_URL (run the
scripts under `bash scripts/with_services.sh`), created, migrated and filled with
`manage.py seed_demo --patients n` the first time a script asks for it; later scripts reuse it.
"""

from __future__ import annotations

import json
import os
import platform
import re
import resource
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PYTHON = sys.executable
SEED = 361  # seed_demo's default


def base_url() -> str:
    url = os.environ.get("BENCH_BASE_DATABASE_URL") or os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit(
            "The benchmarks run on PostgreSQL: run them under "
            "`bash scripts/with_services.sh .venv/bin/python bench/<script>.py ...`."
        )
    return url


def url_for(n: int) -> str:
    parts = urlsplit(base_url())
    return urlunsplit(parts._replace(path=f"/bench_{n}"))


def bench_env(n: int, **extra) -> dict:
    """Environment of a subprocess working on the size-n database (DEBUG off: no query log)."""
    env = dict(os.environ)
    env.setdefault("BENCH_BASE_DATABASE_URL", base_url())
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    env.update(
        DATABASE_URL=url_for(n),
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=env.get("DJANGO_SECRET_KEY", "bench-only-secret-key-0123456789abcdef"),
        DJANGO_SECURE_SSL_REDIRECT="0",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost,testserver",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def use_database(n: int) -> None:
    """Point this process at the size-n database (seeding it if needed), then django.setup()."""
    prepare_database(n)
    os.environ.update(bench_env(n))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _psql(sql: str, dbname: str = "") -> str:
    import psycopg

    parts = urlsplit(base_url())
    url = urlunsplit(parts._replace(path=f"/{dbname}")) if dbname else base_url()
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql)
        return cur.fetchone()[0] if cur.description else ""


def prepare_database(n: int, seed_value: int = SEED) -> dict | None:
    """Create, migrate and seed bench_<n> unless it already holds the n-patient registry.

    Returns seed_demo's time split when it ran (also kept in bench/results/seed_<n>.json).
    """
    name = f"bench_{n}"
    exists = _psql(f"SELECT count(*) FROM pg_database WHERE datname = '{name}'")
    if not exists:
        _psql(f'CREATE DATABASE "{name}"')
    env = bench_env(n)
    try:
        have = _psql("SELECT count(*) FROM registry_patient", name)
    except Exception:
        have = -1
    run([PYTHON, "manage.py", "migrate", "--no-input", "-v", "0"], env=env)
    if have == n and (RESULTS / f"seed_{n}.json").exists():
        return None
    return seed(n, seed_value=seed_value)


def seed(n: int, seed_value: int = SEED) -> dict:
    """Run seed_demo on bench_<n>, print and record its own time split."""
    env = bench_env(n)
    command = [PYTHON, "manage.py", "seed_demo", "--patients", str(n), "--seed", str(seed_value)]
    command.append("--allow-production")
    started = time.perf_counter()
    out = run(command, env=env)
    wall = time.perf_counter() - started
    line = next(x for x in out.splitlines() if x.startswith("Demo registry"))
    numbers = dict(
        re.findall(r"(in|clear|generate|write) ([0-9.]+) s", line.replace("s: clear", "s, clear"))
    )
    result = {
        "patients": n,
        "command": f"python manage.py seed_demo --patients {n} --seed {seed_value}",
        "printed": line,
        "total_s": float(numbers.get("in", "nan")),
        "clear_s": float(numbers.get("clear", "nan")),
        "generate_s": float(numbers.get("generate", "nan")),
        "write_s": float(numbers.get("write", "nan")),
        "process_wall_s": round(wall, 2),
        "machine": machine(),
    }
    print(f"seed_demo n={n}: {line} (process wall {wall:.1f} s)", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"seed_{n}.json").write_text(json.dumps(result, indent=2))
    return result


def run(command, env=None, check=True) -> str:
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if check and proc.returncode:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"failed ({proc.returncode}): {shlex.join(command)}")
    return proc.stdout


def load() -> tuple[float, float, float]:
    return os.getloadavg()


def machine() -> dict:
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    cpu = ""
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "load_avg_1_5_15": [round(x, 2) for x in load()],
        "python": platform.python_version(),
        "when_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
    }


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values, q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def command_line() -> str:
    return shlex.join(["python", *[str(a) for a in sys.argv]])


def record(name: str, result: dict) -> Path:
    """Write bench/results/<name>.json (with the machine and the command) and return the path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"command": command_line(), "machine": machine(), **result}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    return path


def header(title: str) -> None:
    m = machine()
    print(f"== {title}")
    print(f"   command: {command_line()}")
    print(
        f"   machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, "
        f"load {m['load_avg_1_5_15']}, Python {m['python']}, {m['when_utc']} UTC",
        flush=True,
    )
