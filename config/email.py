"""E-mail settings from the environment.

EMAIL_URL (one variable) or the EMAIL_* variables; without either, messages go to the console
while debugging (the demo needs no mail server) and to SMTP on localhost:25 in production.

    EMAIL_URL=smtp://user:password@mail.example.org:587/?tls=1     STARTTLS
    EMAIL_URL=smtps://user:password@mail.example.org:465            TLS from the start
    EMAIL_URL=console://     EMAIL_URL=locmem://     EMAIL_URL=dummy://
    EMAIL_URL=file:///var/tmp/registry-mail                          one file per message

The separate variables: EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD,
EMAIL_USE_TLS, EMAIL_USE_SSL, EMAIL_TIMEOUT; EMAIL_BACKEND names any backend. EMAIL_HOST set means
SMTP. DEFAULT_FROM_EMAIL is the sender in every case.
"""

from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BACKENDS = {
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
    "smtps": "django.core.mail.backends.smtp.EmailBackend",
    "console": "django.core.mail.backends.console.EmailBackend",
    "locmem": "django.core.mail.backends.locmem.EmailBackend",
    "dummy": "django.core.mail.backends.dummy.EmailBackend",
    "file": "django.core.mail.backends.filebased.EmailBackend",
}
TRUE = {"1", "true", "yes", "on"}


def _flag(value) -> bool:
    return str(value).strip().lower() in TRUE


def email_settings(env, debug) -> dict:
    """The Django EMAIL_* settings for this environment (a mapping like os.environ)."""
    found = {
        "DEFAULT_FROM_EMAIL": env.get("DEFAULT_FROM_EMAIL", "registry@localhost"),
        "EMAIL_TIMEOUT": int(env.get("EMAIL_TIMEOUT", "10")),
    }
    url = env.get("EMAIL_URL", "").strip()
    if url:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in BACKENDS:
            raise ImproperlyConfigured(
                f"EMAIL_URL: unknown scheme {scheme!r} ({url.split(':')[0]})"
            )
        found["EMAIL_BACKEND"] = BACKENDS[scheme]
        if scheme == "file":
            found["EMAIL_FILE_PATH"] = unquote(parts.path) or "/tmp/registry-mail"
        if scheme in ("smtp", "smtps"):
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            ssl = scheme == "smtps" or _flag(query.get("ssl", "0"))
            found.update(
                EMAIL_HOST=parts.hostname or "localhost",
                EMAIL_PORT=parts.port or (465 if ssl else 25),
                EMAIL_HOST_USER=unquote(parts.username or ""),
                EMAIL_HOST_PASSWORD=unquote(parts.password or ""),
                EMAIL_USE_SSL=ssl,
                EMAIL_USE_TLS=not ssl and _flag(query.get("tls", "0")),
            )
        return found
    if env.get("EMAIL_BACKEND"):
        found["EMAIL_BACKEND"] = env["EMAIL_BACKEND"]
    elif env.get("EMAIL_HOST") or not debug:
        found["EMAIL_BACKEND"] = BACKENDS["smtp"]
    else:
        found["EMAIL_BACKEND"] = BACKENDS["console"]
    ssl = _flag(env.get("EMAIL_USE_SSL", "0"))
    found.update(
        EMAIL_HOST=env.get("EMAIL_HOST", "localhost"),
        EMAIL_PORT=int(env.get("EMAIL_PORT", "465" if ssl else "25")),
        EMAIL_HOST_USER=env.get("EMAIL_HOST_USER", ""),
        EMAIL_HOST_PASSWORD=env.get("EMAIL_HOST_PASSWORD", ""),
        EMAIL_USE_SSL=ssl,
        EMAIL_USE_TLS=_flag(env.get("EMAIL_USE_TLS", "0")),
    )
    return found
