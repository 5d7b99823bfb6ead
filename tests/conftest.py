"""Suite-wide test setup. The pure statistics tests (tests/analysis) also run without Django:
`pytest -p no:django tests/analysis`, so the Django fixtures below switch off then."""

import pytest


def _django_settings(request):
    if not request.config.pluginmanager.hasplugin("django"):
        return None
    return request.getfixturevalue("settings")


@pytest.fixture(autouse=True)
def _test_settings(request, tmp_path):
    settings = _django_settings(request)
    if settings is None:
        return
    settings.MEDIA_ROOT = tmp_path / "media"
    # Runs go through Celery (eager, below) inside the request, whatever the broker; the tests
    # of the background thread switch it on themselves.
    settings.ANALYSIS_IN_THREAD = False
    # PBKDF2's deliberate slowness costs seconds per test that logs in; tests don't need it.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _celery_in_process(request):
    """Run tasks in the test process; tests with a real worker switch this off themselves."""
    if not request.config.pluginmanager.hasplugin("django"):
        yield
        return
    from config.celery import app

    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


@pytest.fixture(autouse=True)
def _default_language(request):
    """Each test starts in the default language: Django's LocaleMiddleware activates a request's
    language in the thread that served it and leaves it there, so a Korean request in one test
    would otherwise translate what the next test reads outside a request (a run's error)."""
    if not request.config.pluginmanager.hasplugin("django"):
        yield
        return
    from django.utils import translation

    translation.deactivate()
    yield
    translation.deactivate()
