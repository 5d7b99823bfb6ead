"""Backup and restore of the registry database (manage.py backup_registry / restore_registry).

PostgreSQL: `pg_dump --format=custom` of the whole database (every table: cases, their history
= the audit trail, users, monitoring, analysis runs) and `pg_restore` in one transaction, with
the credentials of DATABASE_URL (the password goes through PGPASSWORD, never the command line).
The client programs come from Debian's postgresql-client; their major version must be at least
the server's. SQLite (the demo): the same commands copy the file with SQLite's backup API.
"""

import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

from django.core.management.base import CommandError
from django.db import connections


def database(alias="default"):
    return connections[alias]


def pg_program(name) -> str:
    """pg_dump or pg_restore: from PG_BINDIR when set, else the PATH (Debian's pg_wrapper)."""
    bindir = os.environ.get("PG_BINDIR")
    path = str(Path(bindir) / name) if bindir else shutil.which(name)
    if not path or not Path(path).exists():
        raise CommandError(
            f"{name} not found: install Debian's postgresql-client (apt-get install "
            f"postgresql-client) or set PG_BINDIR to the directory that holds {name}."
        )
    return path


def program_major(program) -> tuple[int, str]:
    out = subprocess.run([program, "--version"], capture_output=True, text=True, check=True)
    match = re.search(r"(\d+)(?:\.(\d+))?", out.stdout)
    if not match:
        raise CommandError(f"Cannot read the version of {program}: {out.stdout!r}")
    return int(match.group(1)), out.stdout.strip()


def server_major(connection) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        return int(cursor.fetchone()[0]) // 10000


def check_client_version(program, connection) -> str:
    """The client must be at least as new as the server (pg_dump refuses newer servers)."""
    client, text = program_major(program)
    server = server_major(connection)
    if client < server:
        raise CommandError(
            f"{Path(program).name} {client} cannot handle a PostgreSQL {server} server: install "
            f"postgresql-client-{server} (or set PG_BINDIR to its bin directory)."
        )
    return f"{text} for server {server}"


def libpq_env(settings_dict) -> tuple[list[str], dict]:
    """Connection arguments and environment for the PostgreSQL client programs."""
    args = ["--dbname", settings_dict["NAME"]]
    if settings_dict.get("HOST"):
        args += ["--host", settings_dict["HOST"]]
    if settings_dict.get("PORT"):
        args += ["--port", str(settings_dict["PORT"])]
    if settings_dict.get("USER"):
        args += ["--username", settings_dict["USER"]]
    env = dict(os.environ)
    if settings_dict.get("PASSWORD"):
        env["PGPASSWORD"] = str(settings_dict["PASSWORD"])
    sslmode = (settings_dict.get("OPTIONS") or {}).get("sslmode")
    if sslmode:
        env["PGSSLMODE"] = sslmode
    return args, env


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run(args, env):
    result = subprocess.run(args, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise CommandError(f"{Path(args[0]).name} failed ({result.returncode}):\n{result.stderr}")
    return result


def backup(path: Path, alias="default") -> str:
    """Write the database to `path` (readable by its owner only); returns a summary line."""
    connection = database(alias)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    old_umask = os.umask(0o077)
    try:
        if connection.vendor == "postgresql":
            program = pg_program("pg_dump")
            version = check_client_version(program, connection)
            args, env = libpq_env(connection.settings_dict)
            run([program, "--format=custom", "--no-owner", "--no-privileges",
                 "--file", str(partial), *args], env)  # fmt: skip
        elif connection.vendor == "sqlite":
            version = f"SQLite {sqlite3.sqlite_version}"
            source = sqlite3.connect(connection.settings_dict["NAME"])
            target = sqlite3.connect(partial)
            with target:
                source.backup(target)
            source.close()
            target.close()
        else:
            raise CommandError(f"No backup for the {connection.vendor} database backend.")
        os.chmod(partial, 0o600)
        os.replace(partial, path)
    finally:
        os.umask(old_umask)
        if partial.exists():
            partial.unlink()
    return f"{path} ({path.stat().st_size} bytes, SHA-256 {sha256(path)}; {version})"


def table_names(connection) -> list[str]:
    with connection.cursor() as cursor:
        return connection.introspection.table_names(cursor)


def restore(path: Path, replace=False, alias="default") -> str:
    """Load a backup into the database; refuses a non-empty database unless `replace`."""
    connection = database(alias)
    path = Path(path)
    if not path.is_file():
        raise CommandError(f"No backup at {path}.")
    existing = table_names(connection)
    if existing and not replace:
        raise CommandError(
            f"The database {connection.settings_dict['NAME']} is not empty ({len(existing)} "
            "tables): restore into an empty database, or pass --replace to overwrite it."
        )
    if connection.vendor == "postgresql":
        program = pg_program("pg_restore")
        version = check_client_version(program, connection)
        args, env = libpq_env(connection.settings_dict)
        connection.close()
        options = ["--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction"]
        if replace:
            options += ["--clean", "--if-exists"]
        run([program, *options, *args, str(path)], env)
    elif connection.vendor == "sqlite":
        version = f"SQLite {sqlite3.sqlite_version}"
        connection.close()
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        target = sqlite3.connect(connection.settings_dict["NAME"])
        with target:
            source.backup(target)
        source.close()
        target.close()
    else:
        raise CommandError(f"No restore for the {connection.vendor} database backend.")
    restored = table_names(connection)
    return f"{len(restored)} tables from {path} ({version})"
