"""The Korean catalogue is complete for the sources as they are: makemessages (through
`manage.py update_translations`, as the README says) is run on a copy of the project, so a
string marked for translation anywhere and not translated in locale/ko fails here, named."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from .catalogue import problems, read_po

REPO = Path(settings.BASE_DIR)
# What the copy leaves out: environments, generated output, caches (never read by makemessages).
NOT_COPIED = shutil.ignore_patterns(
    ".git",
    ".venv",
    "venv",
    "node_modules",
    "test-artifacts",
    "test-results",
    "media",
    "staticfiles",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "*.sqlite3*",
    "*.mo",
)


def gettext_tools():
    missing = [t for t in ("xgettext", "msgmerge", "msgfmt") if shutil.which(t) is None]
    if missing:
        pytest.fail(
            f"GNU gettext is missing ({', '.join(missing)}): install Debian's gettext package "
            "(scripts/test.sh does)."
        )


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    """locale/ as `manage.py update_translations --no-compile` leaves it for today's sources."""
    gettext_tools()
    copy = tmp_path_factory.mktemp("project") / "repo"
    shutil.copytree(REPO, copy, ignore=NOT_COPIED)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run(
        [sys.executable, "manage.py", "update_translations", "--no-compile"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return copy / "locale"


def test_every_korean_message_is_translated_and_none_is_fuzzy(regenerated):
    catalogues = sorted((regenerated / "ko" / "LC_MESSAGES").glob("*.po"))
    assert [c.name for c in catalogues][:1] == ["django.po"]
    found = [p for catalogue in catalogues for p in problems(catalogue)]
    assert found == [], f"{len(found)} Korean messages to translate:\n" + "\n".join(found)


def test_the_catalogue_holds_the_messages_of_models_rules_navigation_and_emails(regenerated):
    ids = {m.msgid for m in read_po(regenerated / "ko" / "LC_MESSAGES" / "django.po")}
    expected = {
        "Burkitt leukaemia/lymphoma is excluded from the study.",  # registry.rules
        "Give the date of death.",  # FollowUp.clean()
        "Register a patient",  # the navigation
        "Query open",  # a CRF status badge
        "Query #%(n)s opened on %(case)s",  # an e-mail subject
        "Missing required value",  # an edit check
    }
    assert expected <= ids


def test_the_committed_korean_catalogue_compiles_with_matching_placeholders():
    gettext_tools()
    for catalogue in sorted((REPO / "locale" / "ko" / "LC_MESSAGES").glob("*.po")):
        result = subprocess.run(
            ["msgfmt", "--check", "-o", os.devnull, str(catalogue)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
