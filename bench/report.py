"""Markdown tables of the last results (bench/results/*.json), for docs/benchmarks.md.

.venv/bin/python bench/report.py > /tmp/tables.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def load(name):
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def machine(m):
    return (
        f"{m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, load average "
        f"{' / '.join(str(x) for x in m['load_avg_1_5_15'])} (1/5/15 min), {m['when_utc']} UTC"
    )


def la(values):
    return f"{values[0]:.2f}"


def seeds():
    rows = ["| patients | total | clear | generate | write | users | commit | printed |"]
    rows.append("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for n in (50, 10_000, 100_000):
        r = load(f"seed_{n}")
        if not r:
            continue
        rest = r["printed"].split(": clear", 1)[1]
        parts = dict(
            (p.split()[0], p.split()[1])
            for p in rest.replace("clear", "").split(",")
            if len(p.split()) >= 2
        )
        rows.append(
            f"| {n:,} | {r['total_s']:.1f} s | {r['clear_s']:.1f} | {r['generate_s']:.1f} | "
            f"{r['write_s']:.1f} | {parts.get('users', '—')} | {parts.get('commit', '—')} | "
            f"load {la(r['machine']['load_avg_1_5_15'])} |"
        )
    return "\n".join(rows)


def analysis():
    r = load("analysis")
    if not r:
        return ""
    out = [f"`{r['command']}` — {machine(r['machine'])}", ""]
    out.append(
        "| patients | build | paper stats | figures | full (build+stats+figures) | peak RSS full "
        "| bare stats | bare figures | bare total | peak RSS bare | full / bare "
        "| full / bare stats | load before→after |"
    )
    out.append("| ---: |" + " ---: |" * 12)
    for s in r["sizes"]:
        f, b = s["full"], s["bare"]
        out.append(
            f"| {s['patients']:,} | {s['build']['wall_s']:.2f} s ({s['build']['peak_rss_mib']:.0f}"
            f" MiB) | {s['paper']['wall_s']:.2f} s | {s['figures']['wall_s']:.2f} s | "
            f"**{f['wall_s']:.2f} s** ({f['build_s']:.2f} + {f['stats_s']:.2f} + "
            f"{f['figures_s']:.2f}) | {f['peak_rss_mib']:.0f} MiB | {b['stats_s']:.2f} s | "
            f"{b['figures_s']:.2f} s | {b['wall_s']:.2f} s | {b['peak_rss_mib']:.0f} MiB | "
            f"**{s['full_over_bare']:.2f}** | {s['full_over_bare_stats']:.2f} | "
            f"{la(s['load_before'])}→{la(s['load_after'])} |"
        )
    extra = [s for s in r["sizes"] if "beyond" in s or "command" in s]
    if extra:
        out += [
            "",
            "| patients | beyond (stats + landmark figures) | bare beyond | ratio | "
            "`run_analysis` end to end | its peak RSS |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for s in extra:
            be, bb, c = s.get("beyond"), s.get("bare_beyond"), s.get("command")
            out.append(
                f"| {s['patients']:,} | "
                + (
                    f"{be['wall_s']:.2f} s ({be['stats_s']:.2f} + {be['figures_s']:.2f})"
                    if be
                    else "—"
                )
                + " | "
                + (f"{bb['wall_s']:.2f} s" if bb else "—")
                + f" | {s.get('beyond_over_bare', float('nan')):.2f} | "
                + (f"{c['wall_s']:.2f} s | {c['peak_rss_mib']:.0f} MiB |" if c else "— | — |")
            )
    return "\n".join(out)


def pages():
    r = load("pages")
    if not r:
        return ""
    sizes = sorted(r["sizes"], key=int)
    out = [f"`{r['command']}` — {machine(r['machine'])}", ""]
    head = "| page | user |" + "".join(
        f" queries n={int(n):,} | p50 / p95 ms n={int(n):,} |" for n in sizes
    )
    out += [head, "| --- | --- |" + " ---: | ---: |" * len(sizes)]
    by = {n: {x["page"]: x for x in r["sizes"][n]} for n in sizes}
    for page in by[sizes[-1]]:
        row = f"| {page} | {by[sizes[-1]][page]['user']} |"
        for n in sizes:
            x = by[n].get(page, {})
            if "queries" in x:
                row += f" {x['queries']} | {x['p50_ms']:.0f} / {x['p95_ms']:.0f} |"
            else:
                row += f" HTTP {x.get('status', '—')} | — |"
        out.append(row)
    return "\n".join(out)


def exports():
    r = load("exports")
    if not r:
        return ""
    out = [f"`{r['command']}` — {machine(r['machine'])}", ""]
    out += [
        "| export | patients | time | of which build / write | peak RSS | size |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for fmt in ("csv", "xlsx", "sav", "dta", "odm"):
        for n in sorted(r["sizes"], key=int):
            x = r["sizes"][n].get(fmt)
            if not x:
                continue
            if "wall_s" not in x:
                out.append(f"| {fmt} | {int(n):,} | {x} | | | |")
                continue
            split = (
                f"{x['build_s']:.1f} / {x['write_s']:.1f} s" if "build_s" in x else "(one request)"
            )
            out.append(
                f"| {fmt} | {int(n):,} | {x['wall_s']:.1f} s | {split} | "
                f"{x['peak_rss_mib']:.0f} MiB | {x['bytes'] / 1e6:.1f} MB |"
            )
    return "\n".join(out)


def loads():
    out = []
    for path in sorted(RESULTS.glob("load_*.json")):
        r = json.loads(path.read_text())
        out += [f"`{r['command']}` — {machine(r['machine'])}; server `{r['server']}`", ""]
        out += [
            "| shape | view | req | req/s | saves/s | p50 | p95 | p99 | GET p95 | POST p95 "
            "| errors | POST ok | rows added | lost | load after |",
            "| --- | --- |" + " ---: |" * 13,
        ]
        for shape in ("paced", "saturated"):
            for view in ("app", "bare"):
                x = r.get(f"{shape}_{view}")
                if not x:
                    continue
                out.append(
                    f"| {shape} (think {x['think_s']:g} s) | {view} | {x['requests']} | "
                    f"{x['throughput_rps']:.1f} | {x['saves_per_s']:.1f} | {x['p50_ms']:.0f} ms | "
                    f"{x['p95_ms']:.0f} ms | {x['p99_ms']:.0f} ms | {x['get_p95_ms']:.0f} ms | "
                    f"{x['post_p95_ms']:.0f} ms | {x['errors']} | {x['successful_posts']} | "
                    f"{x['rows_added']} | {x['lost_writes']} | {la(x['load_after'])} |"
                )
            if f"{shape}_throughput_ratio" in r:
                out.append(
                    f"| {shape} | app / bare throughput | "
                    f"**{r[f'{shape}_throughput_ratio']:.2f}** |" + " |" * 12
                )
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    for title, part in (
        ("seed_demo", seeds()),
        ("analysis", analysis()),
        ("load", loads()),
        ("pages", pages()),
        ("exports", exports()),
    ):
        sys.stdout.write(f"\n### {title}\n\n{part}\n")
