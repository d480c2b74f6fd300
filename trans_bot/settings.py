"""Settings, read from the environment (see ``.env.example`` for every variable).

Every knob has a default that runs the embedded demo: SQLite, a filesystem broker and a
file cache, so a newcomer needs no PostgreSQL or Redis. Point ``DATABASE_URL``,
``CELERY_BROKER_URL`` and ``CACHE_URL`` at PostgreSQL and Redis and the same code runs on
them. ``DJANGO_ENV=production`` switches on the deploy hardening and refuses an insecure
secret key.
"""

import os
import re
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Parallel tests (pytest-xdist, `make test`): worker gwN uses the Redis database N above the
# configured one and a VAR_DIR of its own, so workers never share a key, a queue or a file;
# the processes a test starts inherit the rewritten environment (and are not rewritten again).
_test_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _test_worker.startswith("gw") and os.environ.get("TEST_WORKER_ISOLATED") != _test_worker:
    os.environ["TEST_WORKER_ISOLATED"] = _test_worker
    for _name in ("CACHE_URL", "CELERY_BROKER_URL"):
        _match = re.fullmatch(r"(rediss?://[^/]+)/(\d+)", os.environ.get(_name, ""))
        if _match:
            os.environ[_name] = f"{_match[1]}/{int(_match[2]) + int(_test_worker[2:])}"
    if os.environ.get("VAR_DIR"):
        os.environ["VAR_DIR"] = os.path.join(os.environ["VAR_DIR"], _test_worker)

DJANGO_ENV = env.str("DJANGO_ENV", default="development")
PRODUCTION = DJANGO_ENV == "production"
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))

# --- Core -----------------------------------------------------------------------------

_DEV_SECRET_KEY = "django-insecure-dev-only-key-never-use-in-production-0123456789"
SECRET_KEY = env.str("SECRET_KEY", default="" if PRODUCTION else _DEV_SECRET_KEY)
if PRODUCTION and (
    len(SECRET_KEY) < 50
    or len(set(SECRET_KEY)) < 5
    or SECRET_KEY.startswith("django-insecure")
):
    raise ImproperlyConfigured(
        "SECRET_KEY is missing or insecure: production needs a random key of at least "
        "50 characters (python -c 'import secrets; print(secrets.token_urlsafe(64))')."
    )

DEBUG = env.bool("DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=[] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]"]
)
# Origins of the customer frontend (a single-page app on its own origin), e.g.
# https://app.example.com: browsers let them call /api/ with the user's cookies. Empty: none.
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_ALLOW_CREDENTIALS = True
CORS_URLS_REGEX = r"^/api/"
CORS_EXPOSE_HEADERS = ["Retry-After", "X-Request-ID"]
# The frontend's origins are trusted for CSRF too: its sign-in POSTs carry them in Origin.
CSRF_TRUSTED_ORIGINS = list(dict.fromkeys(env.list("CSRF_TRUSTED_ORIGINS", default=[]) + CORS_ALLOWED_ORIGINS))
# The public address of this back office, used in links inside alerts and e-mails.
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework.authtoken",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our static files: /api/docs/ works offline
    "django_celery_beat",
    "waffle",
    "trans_bot",
    "audit",
    "accounts",
    "ops",
    "billing",
    "usage",
    "regions",
    "customers",
    "growth",
    "compliance",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.RequestContextMiddleware",
    # Whose rows PostgreSQL shows this request (row-level security): its caller's, else none.
    "core.tenant_scope.TenantScopeMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    # PostgreSQL, Redis or the broker down: a 503 in the API's error shape, never a 500 page.
    "core.middleware.OutageMiddleware",
    "regions.middleware.RegionRoutingMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "trans_bot.urls"
WSGI_APPLICATION = "trans_bot.wsgi.application"

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
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------

DATABASES = {
    "default": env.db_url(
        "DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'trans_bot.sqlite3'}"
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # Web, worker and beat share one file: wait for the write lock instead of failing,
    # and take it at the start of a transaction so read-then-write never deadlocks.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    )
else:
    # Django's backend plus the tenant scope that row-level security reads (core.tenant_scope).
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"]["ENGINE"] = "core.postgresql"
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
    # A database host that does not answer fails the request (503) instead of hanging it.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5)
    )
    # No JIT: our queries run in well under a millisecond, but the planner's estimates for the
    # small catalogue tables (rarely analysed) push the summary and entitlement queries past
    # the JIT threshold, and compiling cost ~20 ms a request (bench/RESULTS.md).
    if not env.bool("DATABASE_JIT", default=False):
        _pg_options = DATABASES["default"]["OPTIONS"]
        _pg_options["options"] = f"{_pg_options.get('options', '')} -c jit=off".strip()
# The role that owns the tables and runs migrations (``migrate`` and ``flush`` connect as it);
# DATABASE_URL's role then owns nothing (see "Database roles and row-level security" in the
# README, and ``manage.py db_roles``). Unset: the same role does both (the demo).
DATABASE_OWNER = env.db_url("DATABASE_MIGRATE_URL") if env.str("DATABASE_MIGRATE_URL", default="") else None
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ----------------------------------------------------------------------------

CACHES = {"default": env.cache_url("CACHE_URL", default=f"filecache://{VAR_DIR / 'cache'}")}
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    # Django's, keeping one Redis client per connection pool instead of one per call.
    CACHES["default"]["BACKEND"] = "core.cache.RedisCache"
    # Every cache call has a deadline: a Redis that hangs costs a request this long, not forever.
    _cache_timeout = env.float("CACHE_TIMEOUT_SECONDS", default=2.0)
    CACHES["default"].setdefault("OPTIONS", {}).update(
        {"socket_connect_timeout": _cache_timeout, "socket_timeout": _cache_timeout}
    )

# --- Celery ---------------------------------------------------------------------------

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # The folders below are the whole address; naming a host keeps kombu from warning
    # "No hostname was supplied" on every connection.
    CELERY_BROKER_URL = "filesystem://localhost/"
    _queue_dir = VAR_DIR / "broker"
    for _folder in ("queue", "control"):
        (_queue_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "queue"),
        "data_folder_out": str(_queue_dir / "queue"),
        "control_folder": str(_queue_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# What a task prints (the console e-mail backend of the demo) is logged as INFO, not WARNING.
CELERY_WORKER_REDIRECT_STDOUTS_LEVEL = "INFO"

# Workers outlive broker restarts: the consumer that survives losing the broker with a task
# in flight (see its docstring), reconnecting at start-up and for as long as it takes.
CELERY_WORKER_CONSUMER = "trans_bot.celery:BrokerRestartSafeConsumer"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# A task running when the broker goes away finishes (its effects are idempotent) rather than
# being cancelled; said explicitly, as Celery asks.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# Publishing while the broker is down gives up after about a second (the row stays for its sweep).
CELERY_BROKER_CONNECTION_TIMEOUT = 2
# --- Auth, i18n, static ---------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Failed sign-ins through the API allowed per username and per client address in each
# window; beyond them, sign-ins are refused (429) until the window ends.
LOGIN_FAILURES_PER_USERNAME = env.int("LOGIN_FAILURES_PER_USERNAME", default=5)
LOGIN_FAILURES_PER_IP = env.int("LOGIN_FAILURES_PER_IP", default=20)
LOGIN_FAILURE_WINDOW_SECONDS = env.int("LOGIN_FAILURE_WINDOW_SECONDS", default=900)
# An address a username signed in from is "known" this long: its failures for that username
# are counted apart, and the username's lock does not hold it (accounts.throttles).
LOGIN_KNOWN_ADDRESS_DAYS = env.int("LOGIN_KNOWN_ADDRESS_DAYS", default=30)
# Password reset e-mails asked for, per client address and per e-mail address, in each window
# (accounts.throttles.password_reset_counted); beyond them the request is a 429.
PASSWORD_RESET_PER_IP = env.int("PASSWORD_RESET_PER_IP", default=10)
PASSWORD_RESET_PER_EMAIL = env.int("PASSWORD_RESET_PER_EMAIL", default=3)
PASSWORD_RESET_WINDOW_SECONDS = env.int("PASSWORD_RESET_WINDOW_SECONDS", default=3600)
# The account pages' sign-in (customers app); the admin keeps its own.
LOGIN_URL = "customers:login"
LOGIN_REDIRECT_URL = "customers:usage"
LOGOUT_REDIRECT_URL = "customers:login"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))

# --- E-mail ---------------------------------------------------------------------------

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
# Seconds an SMTP connect or answer may take: a mail server that accepts and never answers
# fails the delivery (retried later) instead of holding a worker for ever.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Trans Bot <ops@transbot.local>")
# Where alerts for the ops team are e-mailed.
OPS_EMAILS = env.list("OPS_EMAILS", default=["ops@transbot.local"])

# --- Security (production) ------------------------------------------------------------

if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
SILENCED_SYSTEM_CHECKS = env.list("SILENCED_SYSTEM_CHECKS", default=[])

# Behind a proxy, the client address is the first X-Forwarded-For hop; only trust it
# when a proxy we run sets it.
TRUST_X_FORWARDED_FOR = env.bool("TRUST_X_FORWARDED_FOR", default=False)

# --- API ------------------------------------------------------------------------------

REST_FRAMEWORK: dict[str, Any] = {
    # Token first: DRF answers an anonymous call with the first class's WWW-Authenticate
    # challenge, so every unauthenticated call is 401 (Session has none, which gave 403).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # Every body goes through core.json_input: NUL, lone surrogates, deep nesting, huge numbers are 400s.
    "DEFAULT_PARSER_CLASSES": ["core.parsers.CheckedJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.errors.api_exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "usage_ingest": env.str("USAGE_INGEST_RATE", default="6000/min"),
        # The public pricing calculator (GET /api/v1/plans/quote/), per client address.
        "quote": env.str("QUOTE_RATE", default="60/min"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append(
        "rest_framework.renderers.BrowsableAPIRenderer"
    )
# Failed API-key attempts allowed per client address in each window; beyond them, every
# API-key call from that address is refused (429) until the window ends.
API_KEY_FAILURES_PER_IP = env.int("API_KEY_FAILURES_PER_IP", default=20)
API_KEY_FAILURE_WINDOW_SECONDS = env.int("API_KEY_FAILURE_WINDOW_SECONDS", default=300)
SPECTACULAR_SETTINGS = {
    "TITLE": "Trans Bot back office API",
    "DESCRIPTION": "Usage against plan limits, plans, upgrades, region status.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Self-hosted Swagger UI and ReDoc (pinned by drf-spectacular-sidecar), never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Regions --------------------------------------------------------------------------

# The region this deployment serves (a Region slug, see the regions admin).
REGION_NAME = env.str("REGION_NAME", default="primary")
# Paths the routing middleware acts on (writes 307 to the active region, 503 when none
# is healthy), and paths it never touches whatever region is active. Manual failover is
# exempt: it is needed exactly when the active region is down (no 503, no 307 to it).
REGIONS_ROUTED_PREFIXES = env.list("REGIONS_ROUTED_PREFIXES", default=["/api/"])
REGIONS_ROUTING_EXEMPT = env.list(
    "REGIONS_ROUTING_EXEMPT",
    default=["/healthz", "/admin/", "/api/v1/billing/stripe/webhook/", "/api/v1/regions/failover/"],
)
# The plan's recovery time objective: a game day whose failover takes longer fails.
REGIONS_RTO_TARGET_SECONDS = env.int("REGIONS_RTO_TARGET_SECONDS", default=900)

# --- Usage ----------------------------------------------------------------------------

# A feature is at "warning" from this share of its included quantity (and "exceeded" above 100 %).
USAGE_WARNING_PERCENT = env.int("USAGE_WARNING_PERCENT", default=80)
# Hours after a period closes during which late events for it are still accepted.
USAGE_GRACE_HOURS = env.int("USAGE_GRACE_HOURS", default=24)
# How far ahead of the server clock an event's occurred_at may be (clock skew).
USAGE_MAX_FUTURE_SECONDS = env.int("USAGE_MAX_FUTURE_SECONDS", default=300)
# Events per ingestion request, and the largest quantity one event may carry.
USAGE_MAX_BATCH = env.int("USAGE_MAX_BATCH", default=1000)
USAGE_MAX_QUANTITY = env.int("USAGE_MAX_QUANTITY", default=1_000_000)
# Largest ingestion request body in bytes; larger bodies get 413 before being read.
USAGE_MAX_BODY_BYTES = env.int("USAGE_MAX_BODY_BYTES", default=1_048_576)
# Counters with new threshold crossings the monitor commits per transaction (one insert each of
# crossings, tasks, alerts and audit records per batch; a crash loses at most one batch).
USAGE_MONITOR_BATCH = env.int("USAGE_MONITOR_BATCH", default=1000)
# Usage events (PostgreSQL: monthly partitions). Partitions made ahead of this month by beat;
# months kept besides the current one before a partition is exported and dropped (0 = keep
# everything, else at least 2); where the exports (CSV.gz + JSON manifest) go.
USAGE_EVENT_PARTITIONS_AHEAD = env.int("USAGE_EVENT_PARTITIONS_AHEAD", default=2)
USAGE_EVENT_RETENTION_MONTHS = env.int("USAGE_EVENT_RETENTION_MONTHS", default=13)
USAGE_EVENT_EXPORT_DIR = Path(env.str("USAGE_EVENT_EXPORT_DIR", default=str(VAR_DIR / "exports")))

# --- Notifications (Slack) ------------------------------------------------------------

# Incoming-webhook URL; empty means Slack is off (the admin says so).
SLACK_WEBHOOK_URL = env.str("SLACK_WEBHOOK_URL", default="")
# Per-kind webhook overrides, longest dotted prefix wins, e.g.
# "usage=https://hooks.slack.com/...,region.failover=https://hooks.slack.com/..."
# (an incoming webhook posts to one channel, so a channel override is a webhook URL).
# Seconds a Slack post may take before it counts as failed (retried later).
SLACK_TIMEOUT_SECONDS = env.int("SLACK_TIMEOUT_SECONDS", default=10)
SLACK_KIND_WEBHOOKS = {
    k.strip(): v.strip()
    for k, v in env.dict("SLACK_KIND_WEBHOOKS", default={}).items()
    if k.strip() and v.strip()
}
# Failed deliveries retry with exponential backoff (base * 2^(attempt-1), capped) and
# give up after NOTIFY_GIVE_UP_AFTER seconds: the alert is marked failed and an ops task opened.
NOTIFY_RETRY_BASE_SECONDS = env.int("NOTIFY_RETRY_BASE_SECONDS", default=30)
NOTIFY_RETRY_MAX_SECONDS = env.int("NOTIFY_RETRY_MAX_SECONDS", default=3600)
NOTIFY_GIVE_UP_AFTER = env.int("NOTIFY_GIVE_UP_AFTER", default=24 * 3600)
# A claimed ("sending") alert whose worker died is handed back after this many seconds.
NOTIFY_SENDING_TIMEOUT = env.int("NOTIFY_SENDING_TIMEOUT", default=300)
# Storm damping: more than THRESHOLD alerts of one kind in one WINDOW are folded into a
# single summary sent at the end of the window.
NOTIFY_STORM_THRESHOLD = env.int("NOTIFY_STORM_THRESHOLD", default=10)
NOTIFY_STORM_WINDOW_SECONDS = env.int("NOTIFY_STORM_WINDOW_SECONDS", default=60)

# --- Stripe ---------------------------------------------------------------------------

STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
# Tests and the Stripe CLI's local mode point the SDK elsewhere; empty = api.stripe.com.
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
STRIPE_API_VERSION = env.str("STRIPE_API_VERSION", default="2025-03-31.basil")
STRIPE_LIVE_BILLING = env.bool("STRIPE_LIVE_BILLING", default=False)
# Retries inside the SDK (same idempotency key) before our own backoff takes over.
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)
# Seconds one Stripe request may take (the SDK's own default is 80).
STRIPE_TIMEOUT_SECONDS = env.int("STRIPE_TIMEOUT_SECONDS", default=15)
# Webhook signatures older than this many seconds are refused (Stripe's default: 300).
STRIPE_WEBHOOK_TOLERANCE = env.int("STRIPE_WEBHOOK_TOLERANCE", default=300)
# Where Checkout and the Billing Portal send the customer back to (default: the account's plans page).
# A stored event not processed this long after it arrived, or after its next try was due,
# lost its task: the webhook sweep queues it again.
STRIPE_WEBHOOK_SWEEP_AFTER_SECONDS = env.int("STRIPE_WEBHOOK_SWEEP_AFTER_SECONDS", default=300)
BILLING_RETURN_URL = env.str("BILLING_RETURN_URL", default="") or SITE_URL + "/account/plans/"
# Overage reports that fail transiently retry with backoff (base * 2^(n-1), capped) and
# give up after BILLING_REPORT_MAX_ATTEMPTS (an ops task then says so).
BILLING_RETRY_BASE_SECONDS = env.int("BILLING_RETRY_BASE_SECONDS", default=60)
BILLING_RETRY_MAX_SECONDS = env.int("BILLING_RETRY_MAX_SECONDS", default=3600)
BILLING_REPORT_MAX_ATTEMPTS = env.int("BILLING_REPORT_MAX_ATTEMPTS", default=10)
# A report claimed by a worker that died (or crashed before recording Stripe's answer) is
# sent again, with the same identifier, after this many seconds.
BILLING_SENDING_TIMEOUT = env.int("BILLING_SENDING_TIMEOUT", default=300)
# Closed periods are still reported for this many days (late events within the usage grace
# window); keep it well inside Stripe's 35-day meter-event window.
BILLING_CLOSED_PERIOD_LOOKBACK_DAYS = env.int("BILLING_CLOSED_PERIOD_LOOKBACK_DAYS", default=3)

# --- Logging --------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "health_check": {"level": "ERROR"},
        # Django's own console handler would print each of its records a second time, next to
        # the root's; and a 4xx is the client's, already in the access log (runserver's
        # django.server, gunicorn's): django.request logs the 5xx, with their tracebacks.
        "django": {"handlers": [], "level": "INFO"},
        "django.request": {"level": "ERROR"},
    },
}
