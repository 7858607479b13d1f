"""Settings of the test suite (pytest's DJANGO_SETTINGS_MODULE, see pyproject.toml): the real
settings, plus what only tests want. The production settings themselves are tested as they are, in
a subprocess with a production-like environment (tests/config/test_production_settings.py)."""

import os

TEST_SECRET_KEY = "test-only-not-secret-" + "t" * 43

# config.settings refuses to start without DJANGO_SECRET_KEY while DEBUG is off, as tests run.
# (Processes a test starts inherit it; the production-settings tests start theirs without it.)
os.environ.setdefault("DJANGO_SECRET_KEY", TEST_SECRET_KEY)

from .settings import *  # noqa: E402, F403
from .settings import STORAGES  # noqa: E402

SECRET_KEY = TEST_SECRET_KEY

# Sign-ins and users in fixtures cost microseconds instead of a deliberately slow hash each.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The test client and the live server speak plain http (production redirects it to https).
SECURE_SSL_REDIRECT = False

# Tasks run in the test's own process; tests/integration/ starts a real worker where that matters.
CELERY_TASK_ALWAYS_EAGER = True

# Retries of a failed send happen at once instead of after a growing pause.
DUNNING_RETRY_BACKOFF_SECONDS = 0

# Hashed static file names need `collectstatic` (done in the Docker build), never run for tests.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
