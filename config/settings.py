"""Django settings for Mahnwesen. Everything that differs between machines comes from the
environment (see README.md, "Configuration"); the defaults run on one machine with SQLite."""

import datetime
import os
import re
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from .env import env_bool, env_int, env_list, env_networks, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("MAHNWESEN_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is not set (set DJANGO_DEBUG=true for development).")
    SECRET_KEY = "django-insecure-development-only-" + "k" * 40

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_filters",
    "anymail",
    "axes",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "webhooks",
    "orders",
    "payments",
    "dunning",
    "api",
    "backoffice",
    "demo",
]

MIDDLEWARE = [
    "config.proxies.TrustedProxyMiddleware",  # first: forwarded headers count only from a trusted proxy
    "api.middleware.ApiBodyLimitMiddleware",  # 413 for an oversized API body before anything reads it
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "api.middleware.ApiEnglishMiddleware",  # the API answers in English whatever the Accept-Language
    "django.middleware.common.CommonMiddleware",
    "backoffice.middleware.RejectNulMiddleware",
    "backoffice.middleware.SqliteIntegerOverflowMiddleware",  # 400, not 500, for a huge id on SQLite
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "backoffice.middleware.ContentSecurityPolicyMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a lockout into the lockout page
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
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
    )
}
_random_page_cost = env_str("DATABASE_RANDOM_PAGE_COST", "1.1")
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and _random_page_cost:
    # The planner's default (4) assumes spinning disks; with it, PostgreSQL prefers a bitmap scan over
    # all open orders (70-110 ms at a million orders) to the index-only scan of one level's range of
    # order_open_sent_date_idx (7 ms). 1.1 is the usual value for SSDs; empty keeps the server's.
    try:
        DATABASES["default"].setdefault("OPTIONS", {})["options"] = f"-c random_page_cost={float(_random_page_cost)}"
    except ValueError:
        raise ImproperlyConfigured(f"DATABASE_RANDOM_PAGE_COST must be a number, not {_random_page_cost!r}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, worker, beat) share the file: WAL lets readers go on while one
    # writes, the busy timeout makes a writer wait instead of failing, and IMMEDIATE takes the
    # write lock at the start of a transaction so two writers never deadlock on an upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "backoffice:open_payments"
LOGOUT_REDIRECT_URL = "login"

# --- Password reset by e-mail ---------------------------------------------------------------
# Off unless switched on (its pages answer 404): a reset link is as good as the password, so it is
# offered only where mail really goes to the staff's inboxes. When on, each address and each client
# address may ask this often per hour; beyond that nothing is sent and the answer stays the same.
PASSWORD_RESET_ENABLED = env_bool("DJANGO_PASSWORD_RESET", False)
PASSWORD_RESET_LIMIT_PER_EMAIL = env_int("PASSWORD_RESET_LIMIT_PER_EMAIL", 3)
PASSWORD_RESET_LIMIT_PER_CLIENT = env_int("PASSWORD_RESET_LIMIT_PER_CLIENT", 10)

# --- Cache (the password-reset counters) ----------------------------------------------------
# Redis shares the counters between all web processes; the default memory cache is per process,
# so with several gunicorn workers each counts on its own (a deploy check warns).
CACHE_URL = env_str("CACHE_URL")
if not CACHE_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
elif CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL,
                          "KEY_PREFIX": "mahnwesen"}}
else:
    raise ImproperlyConfigured(f"CACHE_URL must be a redis:// URL or empty, not {CACHE_URL!r}")

# --- Login throttling (django-axes) ---------------------------------------------------------
# Axes' backend comes first: it refuses a locked-out (username, client IP) before the password is
# even checked. It needs the request, so tests call client.login(request=HttpRequest(), ...).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = datetime.timedelta(hours=1)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]  # so a stranger elsewhere cannot lock a user out
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"  # answered with HTTP 429
# The client address is REMOTE_ADDR as config.proxies.TrustedProxyMiddleware leaves it: the peer, or,
# when the peer is a trusted proxy, the client it names in X-Forwarded-For (see the next section).
AXES_CLIENT_IP_CALLABLE = "config.proxies.client_ip"

# --- Reverse proxy ---------------------------------------------------------------------------
# The proxies (IP addresses or CIDR networks) whose X-Forwarded-For and X-Forwarded-Proto are believed;
# from any other peer those headers are dropped. None by default: reachable directly, nobody is trusted.
TRUSTED_PROXIES = env_networks("DJANGO_TRUSTED_PROXIES")
if env_bool("DJANGO_BEHIND_PROXY", False):
    # It trusted X-Forwarded-For from every client; silently dropping it would leave the proxy untrusted
    # (an https redirect loop, one lockout address for everyone), so it stops here with what to do.
    raise ImproperlyConfigured(
        "DJANGO_BEHIND_PROXY was replaced by DJANGO_TRUSTED_PROXIES: set it to the address(es) of your "
        "reverse proxy (comma-separated IPs or CIDRs, e.g. 172.18.0.1) and remove DJANGO_BEHIND_PROXY."
    )

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "de"
LANGUAGES = [("de", _("German")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "Europe/Berlin")
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Uploads (sales accounts' logos): read from disk when letters are rendered, never served by URL.
MEDIA_ROOT = VAR_DIR / "media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if env_bool("DJANGO_STATIC_MANIFEST", not DEBUG)
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- E-mail ---------------------------------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))  # for the filebased backend
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "mahnwesen@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Every ANYMAIL_* variable becomes a key of the ANYMAIL setting (ANYMAIL_POSTMARK_SERVER_TOKEN ->
# ANYMAIL["POSTMARK_SERVER_TOKEN"]), so any provider anymail supports is configured by environment.
ANYMAIL = {key.removeprefix("ANYMAIL_"): value for key, value in os.environ.items() if key.startswith("ANYMAIL_")}

# --- Celery ---------------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL or "filesystem://"
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# The queue tasks go to (a run's chunk tasks too) and workers take by default.
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}

# --- Dunning --------------------------------------------------------------------------------
# How often beat asks whether the automatic job is due; the job's own interval lives in the
# database (DunningAutomation.interval_minutes) so support staff change it without a restart.
DUNNING_TICK_SECONDS = env_int("DUNNING_TICK_SECONDS", 60)
DUNNING_BATCH_SIZE = env_int("DUNNING_BATCH_SIZE", 500)
DUNNING_LEASE_MINUTES = env_int("DUNNING_LEASE_MINUTES", 30)
DUNNING_SEND_RETRIES = env_int("DUNNING_SEND_RETRIES", 3)
DUNNING_RETRY_BACKOFF_SECONDS = float(env_str("DUNNING_RETRY_BACKOFF_SECONDS", "1.0"))
DUNNING_ASYNC_NOTIFY_THRESHOLD = env_int("DUNNING_ASYNC_NOTIFY_THRESHOLD", 300)
# "All letters as one PDF": more letters than this are rendered in the worker, with a progress page.
DUNNING_ASYNC_LETTERS_THRESHOLD = env_int("DUNNING_ASYNC_LETTERS_THRESHOLD", 50)
# Letters laid out in one WeasyPrint document, and the processes that lay out a large batch (dunning.letters).
DUNNING_LETTERS_PER_DOCUMENT = env_int("DUNNING_LETTERS_PER_DOCUMENT", 20)
DUNNING_LETTER_PROCESSES = env_int("DUNNING_LETTER_PROCESSES", os.cpu_count() or 1)
# Excel exports of more rows than this are written by the worker, with a progress page; kept this many days.
EXPORT_ASYNC_XLSX_ROWS = env_int("EXPORT_ASYNC_XLSX_ROWS", 20000)
EXPORT_JOBS_KEEP_DAYS = env_int("EXPORT_JOBS_KEEP_DAYS", 7, minimum=1)
# "All letters as one PDF": a batch and its file are deleted this many days after it was made.
LETTER_BATCHES_KEEP_DAYS = env_int("LETTER_BATCHES_KEEP_DAYS", 30, minimum=1)
# A reminder pending (in flight) longer than this has an unknown outcome; only then may staff settle it.
DUNNING_STALE_PENDING_MINUTES = env_int("DUNNING_STALE_PENDING_MINUTES", 15)
# Provider calls in flight at once per run (threads; each has its own provider connection).
DUNNING_SEND_CONCURRENCY = env_int("DUNNING_SEND_CONCURRENCY", 32)
# Messages per second to the provider, shared by every worker (Redis when REDIS_URL is set, else the
# database); empty: unlimited.
DUNNING_SEND_RATE = float(env_str("DUNNING_SEND_RATE", "") or 0) or None
# How often beat folds the deltas of the open orders' totals into their buckets (orders.open_totals).
OPEN_TOTALS_FOLD_SECONDS = env_int("OPEN_TOTALS_FOLD_SECONDS", 60)
# How often beat records the dashboard's snapshot of today (trend, DSO, reminder outcomes).
DASHBOARD_SNAPSHOT_SECONDS = env_int("DASHBOARD_SNAPSHOT_SECONDS", 3600)

# --- Webhooks (state out) and the API (orders in) -------------------------------------------
# Webhook URLs on private, loopback or link-local addresses are refused unless this is true (tests, a
# receiver on the same host). Timeouts are short: a slow receiver only delays its own deliveries.
WEBHOOK_ALLOW_PRIVATE = env_bool("WEBHOOK_ALLOW_PRIVATE", False)
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 5)
WEBHOOK_SWEEP_SECONDS = env_int("WEBHOOK_SWEEP_SECONDS", 10)
# Requests per API key (DRF rate syntax: 50/s, 3000/m); counted in the cache (CACHE_URL: Redis shares
# the count between web processes, the memory cache counts per process).
API_RATE_LIMIT = env_str("API_RATE_LIMIT", "50/s")
if not re.fullmatch(r"[1-9]\d*/(s|sec|second|m|min|minute|h|hour|d|day)", API_RATE_LIMIT):
    raise ImproperlyConfigured(f"API_RATE_LIMIT must look like 50/s, 3000/m or 10000/h, not {API_RATE_LIMIT!r}")
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 2 * 1024 * 1024)  # 1,000 orders are about 300 KB
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.auth.BearerKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["api.auth.KeyRateThrottle"],
    "DEFAULT_PARSER_CLASSES": ["api.auth.LimitedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "api.problems.problem_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Mahnwesen API",
    "DESCRIPTION": ("Orders in, dunning state out. Every request carries `Authorization: Bearer <key>` (an API key "
                    "of a sales account). Errors are RFC 9457 problem documents (`application/problem+json`), "
                    "in English."),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "OAS_VERSION": "3.1.0",  # plain JSON Schema: null is a type, so clients and tests validate with any validator
    # the bodies that refuse unknown fields say so (additionalProperties: false)
    # the events we POST, in the schema's `webhooks` (one name per webhooks.models.EventType)
    "WEBHOOKS": [f"api.webhook_schema.{name}" for name in ("REMINDER_SENT", "ORDER_PAID",
                                                           "ORDER_FLAGGED_FOR_CANCELLATION", "ORDER_CANCELLED",
                                                           "PAYMENT_UNMATCHED")],
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "api.schema.closed_request_bodies"],
}

# --- Security (production behind a TLS-terminating proxy) -----------------------------------
# X-Forwarded-Proto reaches Django only from a trusted proxy (TrustedProxyMiddleware removes it otherwise)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TRUSTED_PROXIES else None
# Django redirects http to https unless the proxy in front is declared to do it itself
# (DJANGO_HTTPS_REDIRECT_BY_PROXY=true, as .env.example ships: the documented deployment is a
# TLS-terminating proxy on the same host). Django's own redirect needs DJANGO_TRUSTED_PROXIES to see
# that a proxied request was https (else every page redirects to itself): a deploy check says so.
HTTPS_REDIRECT_BY_PROXY = env_bool("DJANGO_HTTPS_REDIRECT_BY_PROXY", False)
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG and not HTTPS_REDIRECT_BY_PROXY)
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# Deploy-check warnings silenced on purpose, each only where its reason holds (README "Deployment"):
SILENCED_SYSTEM_CHECKS = []
if HTTPS_REDIRECT_BY_PROXY and not SECURE_SSL_REDIRECT:
    # security.W008 "SECURE_SSL_REDIRECT is not True": the proxy redirects http to https itself.
    SILENCED_SYSTEM_CHECKS.append("security.W008")
if SECURE_HSTS_SECONDS and not SECURE_HSTS_PRELOAD:
    # security.W021 "SECURE_HSTS_PRELOAD is not True": preloading submits the whole domain, subdomains
    # included, to the browsers' built-in lists and takes months to undo; opt in with DJANGO_HSTS_PRELOAD.
    SILENCED_SYSTEM_CHECKS.append("security.W021")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # axes chats at INFO on every start and attempt; its warnings (failures, lockouts) still show
    # weasyprint logs every layout step at INFO: only its warnings (an image it could not load, ...)
    "loggers": {"axes": {"level": "WARNING"}, "weasyprint": {"level": "WARNING"}, "fontTools": {"level": "WARNING"},
                # mt-940 logs every field it matches at INFO (dozens of lines per entry) and every field
                # it cannot read at ERROR; the importer reports the latter itself, as one line
                "mt940": {"level": "CRITICAL"}},
}
