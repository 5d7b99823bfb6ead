#!/usr/bin/env bash
# Every benchmark in one go, against one private PostgreSQL + Redis (scripts/with_services.sh):
#
#   bash bench/run_all.sh            # about 30-40 minutes on 2 idle cores
#
# Each script prints its figures with the command and the machine (cores, memory, load
# average) and writes bench/results/<name>.json; docs/benchmarks.md records a run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec bash scripts/with_services.sh bash -c '
    set -euo pipefail
    py=.venv/bin/python
    $py bench/analysis_bench.py --patients 50 10000 100000 --command-max 100000
    $py bench/vs_r.py --patients 10000
    $py bench/vs_r.py --patients 100000
    $py bench/pages_bench.py --patients 10000 100000
    $py bench/exports_bench.py --patients 10000 100000
    $py bench/load_bench.py --patients 100000
'
