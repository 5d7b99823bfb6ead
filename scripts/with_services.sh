#!/usr/bin/env bash
# Run any command against the same private PostgreSQL and Redis that the test suite uses,
# started on free loopback ports and stopped afterwards. Used by the benchmarks:
#
#   bash scripts/with_services.sh python bench/analysis_bench.py --patients 10000
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REPO_ROOT
cd "$REPO_ROOT"
# shellcheck source=scripts/_services.sh
. "$REPO_ROOT/scripts/_services.sh"
trap 'stop_services' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
[ "${SKIP_APT:-0}" = 1 ] || ensure_apt_packages postgresql redis-server
ensure_venv
compile_python
start_services
log "DATABASE_URL=$DATABASE_URL"
rc=0
"$@" </dev/null || rc=$?
exit "$rc"
