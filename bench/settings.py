"""Settings of the load benchmark's server: the app's settings with bench/urls.py as URLconf.

Only bench/load_bench.py uses it (gunicorn ... with DJANGO_SETTINGS_MODULE=bench.settings); the
app's own URLconf never contains the bare baseline view.
"""

import importlib
import os

_base = importlib.import_module(os.environ.get("BENCH_BASE_SETTINGS", "config.settings"))
globals().update({k: v for k, v in vars(_base).items() if k.isupper()})

ROOT_URLCONF = "bench.urls"
