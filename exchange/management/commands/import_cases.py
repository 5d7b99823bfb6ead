"""manage.py import_cases PATH [--institution CODE] [--user USERNAME] [--check]
[--problems-csv FILE] [--max-rows N]"""

import sys
from dataclasses import replace
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from registry.models import Institution

from ...importer import Budget, Limits, import_tables, problems_csv, read_path


class Command(BaseCommand):
    help = (
        "Import legacy cases from the import template: a directory of CSV files or one .xlsx "
        "workbook. All rows or nothing: on any problem nothing is saved and every problem is "
        "listed as file/sheet, row, column: message."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="a directory of template CSV files, or an .xlsx")
        parser.add_argument(
            "--institution",
            metavar="CODE",
            help="the site of every row; without it each row needs an institution column",
        )
        parser.add_argument(
            "--user", metavar="USERNAME", help="who the audit trail names as the importer"
        )
        parser.add_argument(
            "--check", action="store_true", help="check every rule, then save nothing"
        )
        parser.add_argument(
            "--problems-csv",
            dest="problems_csv_path",
            metavar="FILE",
            help="also write the problems to FILE as CSV (file or sheet, row, column, problem)",
        )
        parser.add_argument(
            "--max-rows",
            type=int,
            metavar="N",
            help="data rows the import may hold, all files together (default: the upload "
            "limit, IMPORT_MAX_ROWS; 0: no limit, for a legacy registry). A directory of more "
            "rows than IMPORT_MAX_ROWS is read from disk as it is imported, not held in memory",
        )

    def handle(
        self,
        path,
        institution=None,
        user=None,
        check=False,
        problems_csv_path=None,
        max_rows=None,
        **options,
    ):
        site = None
        if institution:
            site = Institution.objects.filter(code=institution).first()
            if site is None:
                raise CommandError(f"No site with code {institution}.")
        importer = None
        if user:
            importer = get_user_model().objects.filter(username=user).first()
            if importer is None:
                raise CommandError(f"No user {user}.")
        problems = []
        limits = Limits.from_settings()
        if max_rows is not None:
            limits = replace(limits, rows=max_rows if max_rows > 0 else sys.maxsize)
        tables = read_path(path, problems, Budget(limits), stream=True)
        result = import_tables(
            tables, problems=problems, commit=not check, user=importer, institution=site
        )
        if problems_csv_path:
            Path(problems_csv_path).write_text(problems_csv(result.problems), encoding="utf-8")
        if not result.ok:
            for problem in result.problems:
                self.stderr.write(str(problem))
            raise CommandError(
                f"{len(result.problems)} problem(s): nothing was imported. Fix them and run again."
            )
        for source, n in result.imported.items():
            self.stdout.write(f"{source}: {n} row(s)")
        if check:
            self.stdout.write(
                self.style.SUCCESS(f"Check passed: {result.rows} row(s), none saved.")
            )
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Imported {result.rows} row(s); {len(result.study_ids)} case(s) registered: "
                    + registered_list(result.study_ids)
                )
            )


SHOWN_STUDY_IDS = 20  # a legacy registry registers 100,000 cases: not one line of them all


def registered_list(study_ids: list[str]) -> str:
    """The study IDs an import registered, in row order; the first SHOWN_STUDY_IDS and the
    last of a longer list."""
    if len(study_ids) <= SHOWN_STUDY_IDS + 1:
        return ", ".join(study_ids)
    more = len(study_ids) - SHOWN_STUDY_IDS - 1
    shown = ", ".join(study_ids[:SHOWN_STUDY_IDS])
    return f"{shown}, ... ({more:,} more), {study_ids[-1]}"
