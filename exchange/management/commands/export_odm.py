"""manage.py export_odm [--output FILE] [--definition-only] [--institution CODE]"""

import sys

from django.core.management.base import BaseCommand, CommandError

from registry.models import Patient

from ... import odm


class Command(BaseCommand):
    help = (
        "Write the CDISC ODM 1.3.2 file: the study definition and the clinical data of every case "
        "(or one site's), in full (for the server's administrators)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o", help="file to write (default: standard output)")
        parser.add_argument("--definition-only", action="store_true", help="no clinical data")
        parser.add_argument("--institution", metavar="CODE", help="only this site's cases")

    def handle(self, output=None, definition_only=False, institution=None, **options):
        patients = None
        if not definition_only:
            patients = Patient.objects.all()
            if institution:
                patients = patients.filter(institution__code=institution)
                if not patients.exists():
                    raise CommandError(f"No cases at site {institution}.")
        if output:
            size = 0
            with open(output, "wb") as f:
                for chunk in odm.odm_chunks(patients):
                    size += f.write(chunk)
            self.stdout.write(f"Wrote {output} ({size} bytes).")
        else:
            for chunk in odm.odm_chunks(patients):
                sys.stdout.buffer.write(chunk)
