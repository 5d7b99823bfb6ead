from django.core.management.base import BaseCommand, CommandError

from monitoring import checks
from registry.models import Institution


class Command(BaseCommand):
    help = "Run the edit checks for every site (or the sites given) and store the findings."

    def add_arguments(self, parser):
        parser.add_argument("--site", action="append", help="site code, e.g. KR01 (repeatable)")

    def handle(self, *args, site=None, **options):
        sites = Institution.objects.all()
        if site:
            sites = sites.filter(code__in=site)
            missing = set(site) - set(sites.values_list("code", flat=True))
            if missing:
                raise CommandError(f"Unknown site(s): {', '.join(sorted(missing))}")
        for s in sites:
            run = checks.run(s)
            self.stdout.write(
                f"{s.code}: {run.findings_n} finding(s), {run.queries_closed_n} query(ies) closed"
            )
