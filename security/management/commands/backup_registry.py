"""manage.py backup_registry PATH: the whole registry database in one file (pg_dump)."""

from pathlib import Path

from django.core.management.base import BaseCommand

from security.backup import backup


class Command(BaseCommand):
    help = (
        "Write a backup of the registry database to PATH: pg_dump's custom format on "
        "PostgreSQL (DATABASE_URL's credentials), a copy of the file on SQLite."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path, help="The backup file to write (mode 0600).")
        parser.add_argument("--database", default="default", help="Database alias.")

    def handle(self, *args, path, database, **options):
        summary = backup(path, alias=database)
        self.stdout.write(self.style.SUCCESS(f"Backup written: {summary}"))
