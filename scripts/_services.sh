# shellcheck shell=bash
# Helpers shared by scripts/demo.sh and scripts/test.sh.  Source it; don't run it.
#
#   ensure_venv            create .venv (if missing) and pip install -r requirements.txt
#                          (skipped when the hash stored in .venv is unchanged)
#   ensure_apt_packages P… install missing Debian packages (apt-get as root, else sudo)
#   start_services         private PostgreSQL + Redis on free 127.0.0.1 high ports;
#                          exports DATABASE_URL and REDIS_URL
#   stop_services          stop both and remove their temp dir (safe to call twice)
#
# Nothing here uses absolute paths into the checkout: REPO_ROOT is derived
# from this file's location.

REPO_ROOT="${REPO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
VENV_DIR="${VENV_DIR:-$REPO_ROOT/.venv}"

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# ---------------------------------------------------------------- Debian packages
_APT_UPDATED=0

pkg_installed() {
    command -v dpkg-query >/dev/null 2>&1 || return 1
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# ensure_apt_packages PKG...  -> installs the ones dpkg says are missing.
ensure_apt_packages() {
    local missing=() p
    if ! command -v dpkg-query >/dev/null 2>&1; then
        warn "not a Debian system (no dpkg); cannot check/install: $*"
        return 0
    fi
    for p in "$@"; do
        pkg_installed "$p" || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0

    local sudo=()
    if ! is_root; then
        if command -v sudo >/dev/null 2>&1; then
            log "missing Debian packages: ${missing[*]} (installing with sudo)"
            sudo=(sudo)
        else
            die "missing Debian packages: ${missing[*]} — install them as root: apt-get install -y ${missing[*]}"
        fi
    else
        log "installing Debian packages: ${missing[*]}"
    fi
    if [ "$_APT_UPDATED" -eq 0 ]; then
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 ||
            die "apt-get update failed"
        _APT_UPDATED=1
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
        die "apt-get install ${missing[*]} failed"
}

# ---------------------------------------------------------------- Python venv
_pick_python() {
    local c
    for c in "${PYTHON:-}" python3.11 python3; do
        [ -n "$c" ] || continue
        if command -v "$c" >/dev/null 2>&1; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}

_sha256() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$@" | awk '{print $1}'
    else
        shasum -a 256 "$@" | awk '{print $1}'
    fi
}

ensure_venv() {
    local py vpy="$VENV_DIR/bin/python"
    # A .venv copied from elsewhere / whose interpreter vanished is rebuilt.
    if [ -e "$VENV_DIR" ] && ! "$vpy" -c 'import sys' >/dev/null 2>&1; then
        log "existing $VENV_DIR is broken; recreating it"
        rm -rf "$VENV_DIR"
    fi
    if [ ! -x "$vpy" ]; then
        py="$(_pick_python)" || {
            ensure_apt_packages python3 python3-venv
            py="$(_pick_python)" || die "no python3 found"
        }
        # Debian splits ensurepip (needed by `-m venv`) into python3-venv.
        if ! "$py" -c 'import ensurepip, venv' >/dev/null 2>&1; then
            local ver
            ver="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
            ensure_apt_packages python3-venv "python${ver}-venv"
        fi
        log "creating virtualenv $VENV_DIR ($("$py" --version 2>&1))"
        "$py" -m venv "$VENV_DIR" || die "python -m venv failed"
    fi

    local req="$REPO_ROOT/requirements.txt" stamp="$VENV_DIR/.requirements.sha256" want
    [ -f "$req" ] || die "requirements.txt not found in $REPO_ROOT"
    want="$(_sha256 "$req") $("$vpy" -c 'import sys; print(sys.version)' | head -n1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        log "requirements unchanged; skipping pip install"
    else
        log "pip install -r requirements.txt (first run can take a few minutes)"
        "$vpy" -m pip install --disable-pip-version-check -q --upgrade pip >&2 ||
            warn "could not upgrade pip; continuing"
        "$vpy" -m pip install --disable-pip-version-check -q -r "$req" >&2 ||
            die "pip install -r requirements.txt failed"
        printf '%s\n' "$want" >"$stamp"
    fi
    export VIRTUAL_ENV="$VENV_DIR"
    export PATH="$VENV_DIR/bin:$PATH"
    hash -r
}

# compile_python: the project's modules compiled to bytecode once. Where PYTHONDONTWRITEBYTECODE
# is set (the Dockerfile, this CI machine) Python never writes .pyc files, so every process
# compiled the project's source again at start-up: 0.3 s of `manage.py check`'s 1.0 s (issue #19).
# A .pyc older than its source is ignored, so a stale one costs nothing but the compile.
compile_python() {
    log "python -m compileall (the project's modules)"
    local init dirs=()
    for init in "$REPO_ROOT"/*/__init__.py; do # the project's packages, nothing installed
        dirs+=("$(dirname "$init")")
    done
    python -m compileall -q -j 0 "$REPO_ROOT/manage.py" "${dirs[@]}" >/dev/null ||
        warn "compileall failed: processes compile at start-up"
}

# ---------------------------------------------------------------- service helpers
# free_port START: first port >= START that nobody listens on / has bound.
free_port() {
    local py="$VENV_DIR/bin/python"
    [ -x "$py" ] || py="$(_pick_python)" || return 1
    "$py" - "$1" <<'EOF'
import socket, sys
p = int(sys.argv[1])
while p < 65000:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        p += 1
        continue
    finally:
        s.close()
    print(p)
    break
else:
    sys.exit(1)
EOF
}

_pg_bindir() {
    local d
    if [ -n "${PG_BINDIR:-}" ]; then
        echo "$PG_BINDIR"
        return
    fi
    # highest installed Debian major version
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
    if [ -n "$d" ] && [ -x "$d/initdb" ]; then
        echo "$d"
        return
    fi
    d="$(command -v initdb 2>/dev/null)" && dirname "$d" && return
    return 1
}

# Run a command as the service user (postgres/redis) when we are root.
_as() {
    local user="$1"
    shift
    if is_root && [ -n "$user" ]; then
        runuser -u "$user" -- "$@"
    else
        "$@"
    fi
}

# Stop servers left behind by an earlier run that was SIGKILLed.
_reap_stale_runtime_dirs() {
    local d owner
    for d in "${TMPDIR:-/tmp}"/registry-test.*; do
        [ -d "$d" ] && [ -f "$d/owner.pid" ] || continue
        [ -O "$d" ] || is_root || continue # not ours to clean
        owner="$(cat "$d/owner.pid" 2>/dev/null)"
        if [ -n "$owner" ] && kill -0 "$owner" 2>/dev/null; then
            continue # another run is alive and owns it
        fi
        log "cleaning up stale test services in $d"
        RT_DIR="$d" _stop_in_dir
    done
}

# ---------------------------------------------------------------- start/stop
PG_USER_NAME="${TEST_PG_USER:-registry}"
PG_PASSWORD="${TEST_PG_PASSWORD:-registry}"
PG_DB_NAME="${TEST_PG_DB:-registry}"

start_services() {
    local bindir pg_os_user="" redis_os_user=""
    bindir="$(_pg_bindir)" || die "PostgreSQL server binaries not found (apt-get install postgresql)"
    command -v redis-server >/dev/null 2>&1 || die "redis-server not found (apt-get install redis-server)"

    if is_root; then
        id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user"
        pg_os_user=postgres
        if id redis >/dev/null 2>&1; then redis_os_user=redis; else redis_os_user=postgres; fi
    fi

    _reap_stale_runtime_dirs

    RT_DIR="$(mktemp -d "${TMPDIR:-/tmp}/registry-test.XXXXXX")"
    export RT_DIR
    echo "$$" >"$RT_DIR/owner.pid"
    chmod 755 "$RT_DIR" # service users must be able to enter it
    mkdir -p "$RT_DIR/pg" "$RT_DIR/pgsock" "$RT_DIR/redis"
    if is_root; then
        chown "$pg_os_user:" "$RT_DIR/pg" "$RT_DIR/pgsock"
        chown "$redis_os_user:" "$RT_DIR/redis"
    fi
    chmod 700 "$RT_DIR/pg"

    # Sessions starting at the same moment (a test run beside a benchmark) would pick the same
    # free ports: the choice and the servers' start are serialised by a lock on a shared file,
    # released once both listen. The servers do not inherit the lock's descriptor.
    # The file is opened read-only (flock needs no more), so sessions of other users share it.
    local lock_fd lock_file="${TMPDIR:-/tmp}/registry-services.lock"
    [ -e "$lock_file" ] || (umask 0 && : >"$lock_file") 2>/dev/null || true
    if exec {lock_fd}<"$lock_file"; then
        flock -w 300 "$lock_fd" ||
            warn "no lock on $lock_file within 300 s (another session starting?); going on"
    else
        warn "cannot open $lock_file: ports chosen without it"
        exec {lock_fd}</dev/null # a descriptor all the same, for the redirections below
    fi

    # ---- PostgreSQL
    PG_PORT="$(free_port "${TEST_PG_PORT:-55432}")" || die "no free port for PostgreSQL"
    log "starting private PostgreSQL ($(basename "$(dirname "$bindir")")) on 127.0.0.1:$PG_PORT${pg_os_user:+ as $pg_os_user}"
    _as "$pg_os_user" "$bindir/initdb" -D "$RT_DIR/pg/data" -U postgres -E UTF8 \
        --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 \
        >"$RT_DIR/initdb.log" 2>&1 || {
        cat "$RT_DIR/initdb.log" >&2
        die "initdb failed"
    }
    # Throwaway cluster: trade durability for speed.
    _as "$pg_os_user" "$bindir/pg_ctl" -D "$RT_DIR/pg/data" -l "$RT_DIR/pg/server.log" -w -t 60 \
        -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $RT_DIR/pgsock -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100" \
        start >/dev/null {lock_fd}>&- || {
        cat "$RT_DIR/pg/server.log" >&2 2>/dev/null
        die "PostgreSQL failed to start"
    }
    echo "$bindir" >"$RT_DIR/pg_bindir"
    echo "$pg_os_user" >"$RT_DIR/pg_os_user"

    _as "$pg_os_user" "$bindir/psql" -h "$RT_DIR/pgsock" -p "$PG_PORT" -U postgres -d postgres \
        -v ON_ERROR_STOP=1 -q >/dev/null <<SQL || die "could not create role/database"
CREATE ROLE "$PG_USER_NAME" LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
CREATE DATABASE "$PG_DB_NAME" OWNER "$PG_USER_NAME";
SQL

    # ---- Redis
    REDIS_PORT="$(free_port "${TEST_REDIS_PORT:-56379}")" || die "no free port for Redis"
    log "starting private Redis on 127.0.0.1:$REDIS_PORT${redis_os_user:+ as $redis_os_user}"
    _as "$redis_os_user" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" \
        --save '' --appendonly no --daemonize yes \
        --dir "$RT_DIR/redis" --pidfile "$RT_DIR/redis/redis.pid" \
        --logfile "$RT_DIR/redis/redis.log" >/dev/null {lock_fd}>&- ||
        die "redis-server failed to start"
    echo "$REDIS_PORT" >"$RT_DIR/redis_port"
    local i
    for i in $(seq 1 50); do
        [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && break
        [ "$i" -eq 50 ] && {
            cat "$RT_DIR/redis/redis.log" >&2 2>/dev/null
            die "Redis did not answer PING"
        }
        sleep 0.1
    done
    flock -u "$lock_fd" 2>/dev/null || true
    exec {lock_fd}<&-

    export PG_PORT REDIS_PORT
    export DATABASE_URL="postgres://$PG_USER_NAME:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB_NAME"
    export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
}

# Stops whatever runs out of $RT_DIR and removes it.
_stop_in_dir() {
    local d="$RT_DIR" bindir pg_user port pid i
    [ -n "$d" ] && [ -d "$d" ] || return 0
    if [ -f "$d/pg/data/postmaster.pid" ]; then
        bindir="$(cat "$d/pg_bindir" 2>/dev/null || _pg_bindir)"
        pg_user="$(cat "$d/pg_os_user" 2>/dev/null)"
        _as "$pg_user" "$bindir/pg_ctl" -D "$d/pg/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
            _as "$pg_user" "$bindir/pg_ctl" -D "$d/pg/data" -m immediate -w -t 10 stop >/dev/null 2>&1 ||
            true
    fi
    if [ -f "$d/redis/redis.pid" ]; then
        pid="$(cat "$d/redis/redis.pid" 2>/dev/null)"
        port="$(cat "$d/redis_port" 2>/dev/null)"
        if [ -n "$port" ]; then
            redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
        fi
        for i in $(seq 1 50); do
            [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill -9 "$pid" 2>/dev/null || true
        fi
    fi
    rm -rf "$d" 2>/dev/null || true
}

stop_services() {
    [ -n "${RT_DIR:-}" ] && [ -d "$RT_DIR" ] || return 0
    log "stopping private PostgreSQL and Redis"
    _stop_in_dir
    RT_DIR=""
}
