#!/usr/bin/env bash
# One command from a fresh checkout to a running demo:
#   venv + requirements -> migrate -> seed_demo (prints demo logins) -> runserver
#
#   bash scripts/demo.sh            # http://127.0.0.1:8000/
#   PORT=8080 bash scripts/demo.sh
#
# Uses the embedded SQLite database (no DATABASE_URL) and no broker (no REDIS_URL).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REPO_ROOT
cd "$REPO_ROOT"
# shellcheck source=scripts/_services.sh
. "$REPO_ROOT/scripts/_services.sh"

PORT="${PORT:-8000}"
case "$PORT" in
'' | *[!0-9]*) die "PORT must be a number, got '$PORT'" ;;
esac

# The demo always runs on SQLite without a broker, whatever the shell exports.
unset DATABASE_URL REDIS_URL
export DJANGO_DEBUG="${DJANGO_DEBUG:-1}"

ensure_venv

[ -f manage.py ] || die "manage.py not found in $REPO_ROOT"

# The Korean and English catalogues are compiled here (msgfmt, Debian's gettext), never committed.
command -v msgfmt >/dev/null 2>&1 || ensure_apt_packages gettext
log "python manage.py compilemessages"
python manage.py update_translations --compile-only --verbosity 0 ||
    warn "translations not compiled (is GNU gettext installed?): pages stay in English"

compile_python

log "python manage.py migrate"
python manage.py migrate --noinput

log "python manage.py seed_demo"
python manage.py seed_demo

log "starting the demo at http://127.0.0.1:$PORT/  (Ctrl-C to stop)"
exec python manage.py runserver "127.0.0.1:$PORT"
