"""The compiled catalogues the Korean tests read: scripts/test.sh builds them; a run of pytest on
its own rebuilds any that is older than its .po (GNU msgfmt), so these tests never read a stale
one."""

import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings


@pytest.fixture(scope="session", autouse=True)
def compiled_catalogues():
    stale = []
    for locale in settings.LOCALE_PATHS:
        for po in Path(locale).glob("*/LC_MESSAGES/*.po"):
            mo = po.with_suffix(".mo")
            if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
                stale.append((po, mo))
    if stale and shutil.which("msgfmt") is None:
        pytest.fail("GNU gettext (msgfmt) is needed to compile locale/: Debian's gettext package")
    for po, mo in stale:
        subprocess.run(["msgfmt", "--check-format", "-o", str(mo), str(po)], check=True)
    if stale:
        from django.utils.translation import trans_real

        trans_real._translations.clear()  # read the new .mo files
        trans_real._active = type(trans_real._active)()
