"""manage.py export_cases DIR [--institution CODE]"""

from django.core.management.base import BaseCommand, CommandError

from registry.models import Institution, Patient

from ... import export


class Command(BaseCommand):
    help = (
        "Write every case (or one site's) into DIR in the import template's format: one CSV per "
        "record type, every field in full (for the server's administrators). `import_cases DIR` "
        "reads it back."
    )

    def add_arguments(self, parser):
        parser.add_argument("directory", help="directory to write (created when missing)")
        parser.add_argument("--institution", metavar="CODE", help="only this site's cases")

    def handle(self, directory, institution=None, **options):
        patients = Patient.objects.all()
        if institution:
            if not Institution.objects.filter(code=institution).exists():
                raise CommandError(f"No site with code {institution}.")
            patients = patients.filter(institution__code=institution)
        for code, name in export.shared_case_names(patients):
            self.stderr.write(
                f"Warning: several cases at {code} are named “{name}” (their site case number): "
                "their rows cannot be told apart on import. Give each its own site case number."
            )
        written = export.write_directory(directory, patients)
        for name, n in written.items():
            self.stdout.write(f"{name}.csv: {n} row(s)")
        cases = written["patients"]
        self.stdout.write(self.style.SUCCESS(f"Wrote {cases} case(s) to {directory}."))
