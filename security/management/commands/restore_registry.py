"""manage.py restore_registry PATH: load a backup_registry file into the registry database."""

from pathlib import Path

from django.core.management.base import BaseCommand

from security.backup import restore


class Command(BaseCommand):
    help = (
        "Restore a backup made by backup_registry into the database of DATABASE_URL (pg_restore "
        "in one transaction). The database must be empty unless --replace is given."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path, help="A file written by backup_registry.")
        parser.add_argument(
            "--replace",
            action="store_true",
            help="Drop and replace the objects of a non-empty database (pg_restore --clean).",
        )
        parser.add_argument("--database", default="default", help="Database alias.")

    def handle(self, *args, path, replace, database, **options):
        summary = restore(path, replace=replace, alias=database)
        self.stdout.write(self.style.SUCCESS(f"Restored {summary}"))
