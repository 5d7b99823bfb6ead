"""Settings for the blinatumomab registry.

Everything that differs between a laptop and a deployment comes from the environment:
DJANGO_DEBUG, DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS, DATABASE_URL, REDIS_URL.
Without DATABASE_URL the app uses an embedded SQLite file; without REDIS_URL Celery tasks
run in-process, so the demo needs no services.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name, default):
    return os.environ.get(name, str(default)).strip().lower() in {
        "1",
        "true",
        "yes",
        "on",
    }


DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off.")
    SECRET_KEY = "dev-only-insecure-key-do-not-deploy"
ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")
    if h.strip()
]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]
# A refused form post gets the site's styled 403 page that says why (templates/403.html).
CSRF_FAILURE_VIEW = "registry.views.csrf_failure"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "crispy_forms",
    "crispy_bootstrap5",
    "simple_history",
    "registry",
    "monitoring",
    "analysis",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "exchange",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After LocaleMiddleware: a logged-in user's saved language wins over the browser's.
    "notifications.language.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "registry.context_processors.navigation",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        # Persistent connections: opening a PostgreSQL connection (SCRAM) per request was the
        # largest cost of a CRF save under load (docs/benchmarks.md §2). 0 closes each one.
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded database as a web app needs it: WAL lets pages read while someone writes;
    # a writer waits up to 20 s for the lock instead of failing at once ("database is locked");
    # IMMEDIATE takes the write lock when a transaction starts, so two saves of one CRF queue
    # (the second then sees the new version and gets the conflict message) instead of both
    # reading and one failing when it tries to write.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": int(os.environ.get("SQLITE_BUSY_TIMEOUT_SECONDS", "20")),
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Languages (README "Languages"): English by default, Korean for the 16 Korean sites. A user's
# choice is kept in their profile (notifications.language); without one the browser's
# Accept-Language decides (LocaleMiddleware). One project catalogue under locale/.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("ko", "한국어")]
LOCALE_PATHS = [BASE_DIR / "locale"]
# Dates are ISO YYYY-MM-DD in both languages (config/formats/<lang>/formats.py).
FORMAT_MODULE_PATH = ["config.formats"]
TIME_ZONE = os.environ.get("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_ROOT = Path(os.environ.get("DJANGO_MEDIA_ROOT", BASE_DIR / "media"))
MEDIA_URL = "media/"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# REST API (exchange/api.py): token auth first, so a request without credentials gets a 401.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "exchange.tokens.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "exchange.pagination.Pagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
# An API token is valid this many days from its creation (exchange/tokens.py).
API_TOKEN_TTL_DAYS = int(os.environ.get("DJANGO_API_TOKEN_TTL_DAYS", "30"))
SPECTACULAR_SETTINGS = {
    "TITLE": "Blinatumomab R/R ALL registry API",
    "DESCRIPTION": "Case data by study ID. Token authentication: `Authorization: Token <key>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# Celery: a real broker when REDIS_URL is set, otherwise tasks run in the calling process.
REDIS_URL = os.environ.get("REDIS_URL", "")
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
# Without a broker an analysis run goes on in a thread of the web process (analysis.background),
# so starting one returns at once and its page shows the progress.
ANALYSIS_IN_THREAD = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1

if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# --- Security and operations (README "Security and operations"; tests/security) ---------------
# Added to the lists above rather than written into them, so that the order that matters stays
# visible here: CSP on every response, the second factor right after authentication, and
# django-axes last (it turns a refused login into the lockout page).


def _insert_after(items, anchor, *new):
    at = items.index(anchor) + 1 if anchor in items else len(items)
    items[at:at] = [n for n in new if n not in items]


INSTALLED_APPS += [
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "csp",
    "security",
]
_insert_after(
    MIDDLEWARE, "whitenoise.middleware.WhiteNoiseMiddleware", "csp.middleware.CSPMiddleware"
)
_insert_after(
    MIDDLEWARE,
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "security.middleware.RequireTwoFactorMiddleware",
)
_insert_after(MIDDLEWARE, MIDDLEWARE[-1], "axes.middleware.AxesMiddleware")

# Log-in throttling: 5 failures for one username from one address lock that pair for 30 minutes,
# and 20 failures from one address over any usernames lock the address (security/backends.py).
AUTHENTICATION_BACKENDS = [
    "security.backends.LoginAttemptsBackend",  # django-axes; must come first
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("DJANGO_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("DJANGO_LOGIN_COOLOFF_MINUTES", "30")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_HANDLER = "security.backends.UsernameAndAddressHandler"
LOGIN_ADDRESS_FAILURE_LIMIT = int(os.environ.get("DJANGO_LOGIN_ADDRESS_FAILURE_LIMIT", "20"))
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
if os.environ.get("DJANGO_TRUSTED_PROXY_COUNT"):  # the client address is in X-Forwarded-For
    AXES_IPWARE_PROXY_COUNT = int(os.environ["DJANGO_TRUSTED_PROXY_COUNT"])
    AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]

# Sessions end after 30 minutes without a request (each request restarts the clock). The session
# row is rewritten only when its expiry would move by more than a minute (security/sessions.py),
# not on every request as SESSION_SAVE_EVERY_REQUEST would.
SESSION_COOKIE_AGE = int(os.environ.get("DJANGO_SESSION_IDLE_MINUTES", "30")) * 60
SESSION_SAVE_EVERY_REQUEST = False
SESSION_ENGINE = "security.sessions"
_insert_after(
    MIDDLEWARE,
    "django.contrib.sessions.middleware.SessionMiddleware",
    "security.sessions.IdleTimeoutMiddleware",
)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Two-factor authentication (django-otp TOTP) for monitors, staff and superusers
# (registry.access.requires_two_factor). On whenever DEBUG is off; the demo (DEBUG on) runs
# without it unless DJANGO_REQUIRE_2FA=1.
REQUIRE_2FA = env_bool("DJANGO_REQUIRE_2FA", not DEBUG)
OTP_SELF_ENROLMENT = env_bool("DJANGO_OTP_SELF_ENROLMENT", True)  # else admins create devices
OTP_TOTP_ISSUER = "Blinatumomab registry"

# Content Security Policy (django-csp): scripts and styles from this site's static files only;
# no inline scripts anywhere (templates put data in json_script / data-* attributes).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

# API schema and Swagger UI: for logged-in users only.
SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"] = ["rest_framework.permissions.IsAuthenticated"]

# Celery with the broker down: publishing gives up within about two seconds, so starting an
# analysis says "the job service is unavailable" instead of hanging the request.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True  # the worker itself waits for Redis
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": 2,
    "socket_timeout": 10,
    "max_retries": 1,
}
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 0.5,
}
# An analysis run whose worker sent no heartbeat for this long is marked failed (a killed
# worker sends nothing): analysis.models.AnalysisRun.fail_stale_runs.
ANALYSIS_STALE_AFTER_SECONDS = int(os.environ.get("ANALYSIS_STALE_AFTER_SECONDS", "900"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {
        "handlers": ["console"],
        "level": os.environ.get("DJANGO_LOG_LEVEL", "WARNING"),
    },
}

# --- Bulk import limits (README "Bulk import"; exchange/importer.py) ---------------------------
# An upload larger than IMPORT_MAX_UPLOAD_BYTES is refused before its body is read; files above
# FILE_UPLOAD_MAX_MEMORY_SIZE go to a temporary file, not memory. Archives (.zip, .xlsx) are
# refused before unpacking when their declared size passes IMPORT_MAX_UNZIPPED_BYTES or a member
# compresses more than IMPORT_MAX_COMPRESSION_RATIO to 1, and their bytes are counted while they
# are read. Reading stops after IMPORT_MAX_ROWS data rows. The check runs in transactions of
# whole cases, each closed after IMPORT_CHECK_CHUNK_ROWS rows or IMPORT_CHECK_CHUNK_SECONDS,
# so it never holds the write lock for long.
IMPORT_MAX_UPLOAD_BYTES = int(os.environ.get("IMPORT_MAX_UPLOAD_BYTES", "10000000"))
IMPORT_MAX_UNZIPPED_BYTES = int(os.environ.get("IMPORT_MAX_UNZIPPED_BYTES", "20000000"))
IMPORT_MAX_ROWS = int(os.environ.get("IMPORT_MAX_ROWS", "2000"))
IMPORT_MAX_COMPRESSION_RATIO = int(os.environ.get("IMPORT_MAX_COMPRESSION_RATIO", "100"))
IMPORT_MAX_ARCHIVE_MEMBERS = int(os.environ.get("IMPORT_MAX_ARCHIVE_MEMBERS", "200"))
IMPORT_CHECK_CHUNK_ROWS = int(os.environ.get("IMPORT_CHECK_CHUNK_ROWS", "500"))
IMPORT_CHECK_CHUNK_SECONDS = float(os.environ.get("IMPORT_CHECK_CHUNK_SECONDS", "1.0"))
FILE_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = int(2.5 * 1024 * 1024)  # the form fields besides files

# --- Case books and e-mail (casebook/, notifications/; README "Case books and e-mail") ---------
INSTALLED_APPS += ["casebook", "notifications"]
# Folders searched for the case books' TrueType fonts (DejaVu Sans; Nanum Gothic for Korean).
CASEBOOK_FONT_DIRS = [
    d
    for d in os.environ.get(
        "CASEBOOK_FONT_DIRS", "/usr/share/fonts/truetype:/usr/share/fonts:/usr/local/share/fonts"
    ).split(":")
    if d
]
# A site archive whose worker sent no heartbeat for this long is shown as failed.
CASEBOOK_ARCHIVE_STALE_AFTER_SECONDS = int(
    os.environ.get("CASEBOOK_ARCHIVE_STALE_AFTER_SECONDS", "900")
)

# Background exports (exchange.models.ExportJob): a job without a heartbeat for this long is shown
# as failed; downloads that read more cases than EXPORT_SYNC_MAX_CASES are sent to a background
# job instead of answering within the request (gunicorn's timeout).
EXPORT_STALE_AFTER_SECONDS = int(os.environ.get("EXPORT_STALE_AFTER_SECONDS", "900"))
EXPORT_SYNC_MAX_CASES = int(os.environ.get("EXPORT_SYNC_MAX_CASES", "10000"))

# E-mail (config/email.py): EMAIL_URL or EMAIL_*; the console without them while debugging.
from celery.schedules import crontab  # noqa: E402

from config.email import email_settings  # noqa: E402

globals().update(email_settings(os.environ, DEBUG))
SERVER_EMAIL = DEFAULT_FROM_EMAIL  # noqa: F821 - set just above
# Links in e-mails are absolute: the address people reach the registry at.
SITE_URL = os.environ.get("DJANGO_SITE_URL", "http://127.0.0.1:8000").rstrip("/")
# Investigators are reminded of a case whose follow-up is older than this (daily digest).
FOLLOW_UP_OVERDUE_MONTHS = int(os.environ.get("FOLLOW_UP_OVERDUE_MONTHS", "6"))
# The daily digest at DIGEST_HOUR o'clock in TIME_ZONE (Celery beat: `celery -A config beat`,
# docker-compose's `beat` service; notifications.tasks.send_daily_digests).
DIGEST_HOUR = int(os.environ.get("DIGEST_HOUR", "6"))
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE = {
    "daily-digest": {
        "task": "notifications.tasks.send_daily_digests",
        "schedule": crontab(hour=DIGEST_HOUR, minute=0),
    }
}
# Password reset (/accounts/password_reset/): requests per client address, and per e-mail
# address, in PASSWORD_RESET_WINDOW_MINUTES (notifications.throttle).
PASSWORD_RESET_ADDRESS_LIMIT = int(os.environ.get("PASSWORD_RESET_ADDRESS_LIMIT", "5"))
PASSWORD_RESET_EMAIL_LIMIT = int(os.environ.get("PASSWORD_RESET_EMAIL_LIMIT", "3"))
PASSWORD_RESET_WINDOW_MINUTES = int(os.environ.get("PASSWORD_RESET_WINDOW_MINUTES", "60"))
PASSWORD_RESET_TIMEOUT = 60 * 60 * 2  # a reset link works for two hours
