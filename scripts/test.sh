#!/usr/bin/env bash
# Run the whole test suite: lint, then pytest against a private PostgreSQL and
# Redis that this script starts on free 127.0.0.1 high ports and always stops.
#
#   bash scripts/test.sh                 # everything (defaults from pytest.ini)
#   bash scripts/test.sh -k audit -x     # extra args go straight to pytest
#
# Env knobs: SKIP_LINT=1 (skip ruff), SKIP_APT=1 (don't check Debian packages),
#            TEST_PG_PORT / TEST_REDIS_PORT (first port to try; 55432 / 56379),
#            BROWSER_FULL_WALK=1 (the browser journeys also walk every remaining page).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REPO_ROOT
cd "$REPO_ROOT"
# shellcheck source=scripts/_services.sh
. "$REPO_ROOT/scripts/_services.sh"

APT_PACKAGES=(postgresql postgresql-client redis-server r-base-core r-cran-survival chromium fonts-dejavu-core fonts-nanum poppler-utils gettext)

trap 'stop_services' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# 1. system packages (no-op when all present)
if [ "${SKIP_APT:-0}" != 1 ]; then
    log "checking Debian packages"
    ensure_apt_packages "${APT_PACKAGES[@]}"
fi

# 2. virtualenv + requirements
ensure_venv

# 2b. test-only JavaScript (axe-core for the browser tests' accessibility checks), pinned in
#     package-lock.json, into node_modules/ (git-ignored). npm ci runs only when node_modules does
#     not match the lock, so a second run needs no network.
ensure_node_modules() {
    local lock="$REPO_ROOT/package-lock.json" stamp="$REPO_ROOT/node_modules/.package-lock.sha256"
    local want
    want="$(_sha256 "$lock")"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
        [ -f "$REPO_ROOT/node_modules/axe-core/axe.min.js" ]; then
        log "node_modules matches package-lock.json; skipping npm ci"
        return 0
    fi
    if ! command -v npm >/dev/null 2>&1; then
        [ "${SKIP_APT:-0}" != 1 ] || die "npm is missing (Debian package npm) and SKIP_APT=1"
        ensure_apt_packages npm
    fi
    log "npm ci (axe-core for the browser tests)"
    (cd "$REPO_ROOT" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error) >&2 || die "npm ci failed"
    printf '%s\n' "$want" >"$stamp"
}
ensure_node_modules

# 3. lint first: it is fast
if [ "${SKIP_LINT:-0}" != 1 ]; then
    log "ruff check ."
    ruff check .
    log "ruff format --check ."
    ruff format --check .
fi

# 3b. the compiled translation catalogues (git-ignored .mo files) from locale/*.po
log "python manage.py compilemessages"
python manage.py update_translations --compile-only --verbosity 0 ||
    warn "translations not compiled (is GNU gettext installed?): the Korean tests will fail"

compile_python

# 4. services
start_services
export CHROMIUM_PATH="${CHROMIUM_PATH:-$(command -v chromium || echo /usr/bin/chromium)}"
log "DATABASE_URL=$DATABASE_URL"
log "REDIS_URL=$REDIS_URL  CHROMIUM_PATH=$CHROMIUM_PATH"

# 5. tests
log "python -m pytest $*"
rc=0
python -m pytest "$@" </dev/null || rc=$?
if [ "$rc" -eq 5 ]; then
    printf 'ERROR: pytest collected no tests (exit 5) — treated as failure\n' >&2
    rc=1
fi
log "pytest exit code: $rc"
exit "$rc"
