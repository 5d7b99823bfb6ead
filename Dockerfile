# Production image: gunicorn (web) and celery (worker) share it.
# Build: docker compose build      Run: docker compose up -d
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# pg_dump/pg_restore for manage.py backup_registry / restore_registry: Debian's client, at least
# as new as the postgres:15 service of docker-compose.yml (the commands check).
# fonts-dejavu-core and fonts-nanum: the case books' embedded fonts (Latin and Korean text).
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client fonts-dejavu-core fonts-nanum gettext \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first so code changes don't invalidate this layer.
COPY requirements.txt .
RUN pip install -r requirements.txt

# Run unprivileged; collectstatic (staticfiles/) and uploads (media/) need writable dirs.
RUN useradd --system --create-home --uid 10001 app \
    && mkdir -p /app/staticfiles /app/media \
    && chown app:app /app /app/staticfiles /app/media

COPY --chown=app:app . .
USER app
# The translation catalogues (locale/*.po) compiled into the image (.mo files are not committed).
RUN python manage.py update_translations --compile-only --verbosity 0
# The project's bytecode compiled into the image: with PYTHONDONTWRITEBYTECODE every gunicorn and
# Celery process would compile the source again at start-up (0.3 s of CPU each, issue #19).
RUN python -m compileall -q /app
# matplotlib's font list built once into the image (~/.cache/matplotlib of user app): otherwise
# each new container scans the fonts again on its first analysis run (issue #19).
RUN python -c "import matplotlib.font_manager"

EXPOSE 8000

CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "120", "--access-logfile", "-"]
