"""Benchmark 1: the analysis run at 50, 10,000 and 100,000 patients on PostgreSQL.

    bash scripts/with_services.sh .venv/bin/python bench/analysis_bench.py \\
        [--patients 50 10000 100000] [--repeat 1] [--beyond-max 10000] [--command-max 10000]

For each size it seeds `bench_<n>` with seed_demo (once), then runs every phase in a fresh
subprocess, so each phase's peak memory (ru_maxrss) is its own:

  build    analysis.dataset.load_registry(): the per-patient frame from the database
  paper    analysis.outputs.paper_tables(): Tables 1-3, flow, KM tables, medians, log-rank, Cox
  figures  analysis.outputs.draw_figures(): the six Kaplan-Meier figures (PNG + SVG)
  bare     the same statistics and figures with bare pandas + lifelines (bench/bare_stats.py)
  full     build + paper + figures in one run: the paper's analysis end to end (as write_run:
           the figures drawn in worker processes while the tables are computed)
  beyond   analysis.outputs.beyond_tables() + draw_landmark_figures() (landmark, time-varying
           Cox, cumulative incidence, response rates) beside bare_stats' beyond_statistics()
  command  `manage.py run_analysis --out DIR`: the whole run as users start it (interpreter
           start, imports, every output file including the dataset's xlsx/sav/dta, report)

Targets: full at 100,000 <= 2 x bare; the 50-patient run under 2 s end to end.
"""

from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

PHASES = ["build", "paper", "figures", "bare", "full", "beyond", "bare_beyond"]


def phase(name: str, frame_path: Path, out_dir: Path) -> dict:
    """Run one phase in this process; returns wall seconds and memory (MiB)."""
    import django

    warnings.simplefilter("ignore")  # lifelines' convergence warnings on the synthetic data
    django.setup()  # the snapshot pickles analysis.dataset.RegistrySnapshot, a Django module
    import matplotlib  # noqa: F401  (imports are not part of the timing)

    from analysis import outputs
    from analysis.dataset import load_registry
    from bench import bare_stats

    parameters = outputs.default_parameters()
    snapshot = None
    if name not in ("build", "full"):
        with open(frame_path, "rb") as handle:
            snapshot = pickle.load(handle)
    result = {"rss_before_mib": common.peak_rss_mib()}
    started = time.perf_counter()

    def lap(key):
        result[key] = (
            time.perf_counter() - started - sum(v for k, v in result.items() if k.endswith("_s"))
        )

    if name == "build":
        snapshot = load_registry()
        lap("build_s")
        with open(frame_path, "wb") as handle:
            pickle.dump(snapshot, handle)
    elif name == "paper":
        outputs.paper_tables(snapshot, parameters)
    elif name == "figures":
        outputs.draw_figures(snapshot.dataset, out_dir)
    elif name == "bare":
        bare_stats.paper_statistics(snapshot.dataset, snapshot.adverse_events)
        lap("stats_s")
        bare_stats.paper_figures(snapshot.dataset, out_dir)
        lap("figures_s")
    elif name == "full":
        # As write_run does it: the figures are drawn in worker processes while this one
        # computes the tables; figures_s is the wait for them after the tables are done.
        snapshot = load_registry()
        lap("build_s")
        drawing = outputs.Drawing(outputs.paper_figure_specs(snapshot.dataset), out_dir)
        outputs.paper_tables(snapshot, parameters)
        lap("stats_s")
        drawing.wait()
        lap("figures_s")
    elif name == "beyond":
        outputs.beyond_tables(snapshot, parameters)
        lap("stats_s")
        outputs.draw_landmark_figures(snapshot.dataset, out_dir, parameters["landmark_days"])
        lap("figures_s")
    elif name == "bare_beyond":
        bare_stats.beyond_statistics(snapshot.dataset)
        lap("stats_s")
        bare_stats.landmark_figures(snapshot.dataset, out_dir)
        lap("figures_s")
    result["wall_s"] = time.perf_counter() - started
    result["peak_rss_mib"] = common.peak_rss_mib()
    result["patients"] = len(snapshot.dataset)
    return result


def run_phase(n: int, name: str, frame_path: Path) -> dict:
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run(
            [common.PYTHON, __file__, "--phase", name, "--frame", str(frame_path), "--out", out],
            cwd=common.ROOT,
            env=common.bench_env(n),
            capture_output=True,
            text=True,
        )
    if proc.returncode:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"phase {name} failed at n={n}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_command(n: int) -> dict:
    """`manage.py run_analysis` wall time (interpreter start to exit) and its peak memory."""
    with tempfile.TemporaryDirectory() as out:
        code = (
            "import resource, subprocess, sys, time, json; t = time.perf_counter(); "
            "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "w = time.perf_counter() - t; sys.stderr.write(p.stderr); "
            "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
            "print(json.dumps({'rc': p.returncode, 'wall_s': w, 'peak_rss_mib': "
            "u.ru_maxrss / 1024, 'cpu_s': u.ru_utime + u.ru_stime}))"
        )
        proc = subprocess.run(
            [common.PYTHON, "-c", code, common.PYTHON, "manage.py", "run_analysis", "--out", out],
            cwd=common.ROOT,
            env=common.bench_env(n, PYTHONWARNINGS="ignore"),
            capture_output=True,
            text=True,
        )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["rc"]:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"run_analysis failed at n={n}")
    # What part of it is the interpreter start and the imports alone (outputs: the whole stack).
    started = time.perf_counter()
    common.run(
        [
            common.PYTHON,
            "-c",
            "import django; django.setup(); import analysis.outputs",
        ],
        env=common.bench_env(n),
    )
    result["imports_s"] = time.perf_counter() - started
    return result


def show(n, name, r, note=""):
    parts = ", ".join(
        f"{k[:-2]} {v:.2f}" for k, v in r.items() if k.endswith("_s") and k != "wall_s"
    )
    print(
        f"  n={n:>6} {name:<11} {r['wall_s']:8.2f} s{f' ({parts})' if parts else ''}   "
        f"peak RSS {r['peak_rss_mib']:6.0f} MiB (after imports {r['rss_before_mib']:.0f}) {note}",
        flush=True,
    )


def bench(n: int, repeat: int, phases: list[str], command: bool) -> dict:
    common.prepare_database(n)
    results = {"patients": n, "load_before": common.load()}
    with tempfile.TemporaryDirectory() as tmp:
        frame = Path(tmp) / "snapshot.pickle"
        for name in phases:
            runs = [run_phase(n, name, frame) for _ in range(repeat)]
            results[name] = min(runs, key=lambda r: r["wall_s"])
            show(n, name, results[name])
    if command:
        runs = [run_command(n) for _ in range(repeat)]
        results["command"] = min(runs, key=lambda r: r["wall_s"])
        print(
            f"  n={n:>6} {'command':<11} {results['command']['wall_s']:8.2f} s "
            f"(CPU {results['command']['cpu_s']:.2f} s, the run and its workers)   peak RSS "
            f"{results['command']['peak_rss_mib']:6.0f} MiB (manage.py run_analysis: process "
            f"start, imports, every file; process start + imports alone "
            f"{results['command']['imports_s']:.2f} s)",
            flush=True,
        )
    if "full" in results and "bare" in results:
        results["full_over_bare"] = results["full"]["wall_s"] / results["bare"]["wall_s"]
        results["full_over_bare_stats"] = results["full"]["wall_s"] / results["bare"]["stats_s"]
        print(
            f"  n={n:>6} full / bare (stats + figures) = {results['full_over_bare']:.2f}; "
            f"full / bare statistics alone = {results['full_over_bare_stats']:.2f}",
            flush=True,
        )
    if "beyond" in results and "bare_beyond" in results:
        ratio = results["beyond"]["wall_s"] / results["bare_beyond"]["wall_s"]
        results["beyond_over_bare"] = ratio
        print(f"  n={n:>6} beyond / bare beyond = {ratio:.2f}", flush=True)
    results["load_after"] = common.load()
    print(f"  n={n:>6} load average {results['load_before']} -> {results['load_after']}")
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, nargs="+", default=[50, 10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs per phase")
    parser.add_argument(
        "--beyond-max",
        type=int,
        default=10_000,
        help="run the beyond-the-paper phases only up to this size (lifelines' time-varying Cox "
        "takes minutes at 100,000); 0 = never",
    )
    parser.add_argument(
        "--command-max",
        type=int,
        default=10_000,
        help="time manage.py run_analysis only up to this size (it includes beyond and the "
        "dataset's xlsx); 0 = never",
    )
    parser.add_argument(
        "--phases",
        nargs="*",
        choices=PHASES,
        help="only these phases (none given: only the command, e.g. `--phases --command-max "
        "100000` times manage.py run_analysis alone)",
    )
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--frame", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:  # child process
        print(json.dumps(phase(args.phase, args.frame, args.out)))
        return
    common.header("Analysis run: dataset build + statistics + figures vs bare pandas/lifelines")
    results = [
        bench(
            n,
            args.repeat,
            args.phases
            if args.phases is not None
            else (PHASES if n <= args.beyond_max else PHASES[:5]),
            n <= args.command_max,
        )
        for n in args.patients
    ]
    # A run of some phases keeps its own file (bench/results/analysis_command_100000.json).
    name = "analysis"
    if args.phases is not None:
        name += f"_{'_'.join(args.phases) or 'command'}_" + "_".join(map(str, args.patients))
    path = common.record(name, {"sizes": results})
    print(f"   written: {path.relative_to(common.ROOT)}")


if __name__ == "__main__":
    main()
