"""Bring the project's catalogues up to date with the sources, then compile them (README
"Languages"): `python manage.py update_translations`.

One catalogue per language under locale/ (settings.LOCALE_PATHS): `django.po` for Python code and
templates, `djangojs.po` for the pages' scripts (static/js). Runs Django's makemessages (GNU
gettext's xgettext and msgmerge: Debian's `gettext` package) over the project's own sources only,
then compilemessages (msgfmt) into the git-ignored .mo files. A new or changed message arrives in
locale/ko/LC_MESSAGES/django.po with an empty or fuzzy msgstr: translate it there, run this again;
tests/i18n/test_catalogue.py fails while any is left.
"""

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

# What makemessages must not read: virtualenvs, installed and vendored code, generated output,
# tests and tooling (their strings are never shown to users).
IGNORE = [
    ".venv",
    "venv",
    "env",
    "node_modules",
    "test-artifacts",
    "test-results",
    "tests",
    "bench",
    "scripts",
    "docs",
    "media",
    "staticfiles",
    "static/vendor",
    "locale",
]
MAKEMESSAGES_OPTIONS = {
    "ignore_patterns": IGNORE,
    "no_obsolete": True,
    "add_location": "file",  # file names without line numbers: fewer changes in the diffs
    # One line per message: Korean msgstrs were kept unwrapped by hand (msgcat --no-wrap), and
    # msgmerge re-wrapped the whole catalogue at every update, burying the change in the diff.
    "no_wrap": True,
}


def catalogue_languages() -> list[str]:
    return [code for code, _name in settings.LANGUAGES]


class Command(BaseCommand):
    help = "Update the locale/ catalogues from the sources (makemessages) and compile them."

    def add_arguments(self, parser):
        parser.add_argument("--no-compile", action="store_true", help="update the .po files only")
        parser.add_argument(
            "--compile-only", action="store_true", help="compile the .po files only"
        )

    def handle(self, *args, no_compile=False, compile_only=False, verbosity=1, **options):
        languages = catalogue_languages()
        if not compile_only:
            for domain in ("django", "djangojs"):
                call_command(
                    "makemessages",
                    locale=languages,
                    domain=domain,
                    verbosity=verbosity,
                    **MAKEMESSAGES_OPTIONS,
                )
        if not no_compile:
            call_command(
                "compilemessages",
                locale=languages,
                ignore_patterns=IGNORE[:-1],
                verbosity=verbosity,
            )
