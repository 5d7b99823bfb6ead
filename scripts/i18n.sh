#!/usr/bin/env bash
# Update the translation catalogues from the sources, then compile them (README "Languages").
#
#   bash scripts/i18n.sh              # makemessages (en, ko) + compilemessages
#   bash scripts/i18n.sh --compile-only
#
# Needs GNU gettext (xgettext, msgmerge, msgfmt): installed from Debian's `gettext` package
# when missing (SKIP_APT=1 skips the check).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REPO_ROOT
cd "$REPO_ROOT"
# shellcheck source=scripts/_services.sh
. "$REPO_ROOT/scripts/_services.sh"

if [ "${SKIP_APT:-0}" != 1 ]; then
    ensure_apt_packages gettext
fi
ensure_venv
log "python manage.py update_translations $*"
python manage.py update_translations "$@"
