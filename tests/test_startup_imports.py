"""What every web process, Celery worker and management command loads at start-up (settings,
apps, models, admin, URLs and every view they import, the Celery tasks, `manage.py check`) does not
import the numerical stack, nor ReportLab: each would otherwise pay ~3 s and ~150 MiB before
serving anything. The analysis imports it in the steps that need it, the case books ReportLab
when a book is drawn (issue #19)."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUMERICAL_STACK = (
    "pandas",
    "numpy",
    "scipy",
    "lifelines",
    "matplotlib",
    "openpyxl",
    "pyreadstat",
    "reportlab",
)

STARTUP = """
import os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
import django
django.setup()
from django.core.management import call_command
from django.urls import get_resolver
get_resolver().url_patterns
from config.celery import app
app.loader.import_default_modules()
call_command("check")
print("loaded:", *sorted(m for m in sys.modules if m.split(".")[0] in {stack!r}))
"""


def loaded_after(code: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("loaded:")]
    return line.split()[1:]


def test_start_up_imports_no_numerical_stack():
    code = STARTUP.format(stack=set(NUMERICAL_STACK))
    assert loaded_after(code) == []


def test_the_probe_sees_the_stack_when_a_start_up_module_imports_it():
    """The same probe reports pandas when it is loaded, so an empty list above is a finding."""
    code = STARTUP.format(stack=set(NUMERICAL_STACK)).replace(
        'call_command("check")', 'call_command("check"); import analysis.outputs'
    )
    loaded = loaded_after(code)
    assert {"pandas", "numpy", "scipy", "matplotlib"} <= {m.split(".")[0] for m in loaded}
