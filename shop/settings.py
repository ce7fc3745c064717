"""Settings, all from the environment (read through envconfig), with defaults that run the demo on a bare
machine. README.md's Configuration table lists every variable, its default and its meaning.

SHOP_ENV=production refuses to start without a real DJANGO_SECRET_KEY, with DJANGO_DEBUG on, or with a
development helper switched on (the sandbox's fault switches, the test hooks); it serves HTTPS only
unless SHOP_HTTPS=0, and `manage.py check --deploy` passes (tests/test_production.py).
"""

from __future__ import annotations

import os

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from devstack.runtime import VAR_DIR, local_secret, read_runtime
from envconfig import env_bool, env_choice, env_float, env_int, env_int_list, env_list, env_path, env_str
from jobkit.breaker import SERVICES
from jobkit.ratelimit import MAX_WAIT_SECONDS, MIN_RATE_PER_SECOND
from shop.schedule import beat_schedule

RUNTIME = read_runtime()
PRODUCTION = env_choice("SHOP_ENV", "development", ("development", "production")) == "production"
DEBUG = env_bool("DJANGO_DEBUG")

SECRET_KEY = env_str("DJANGO_SECRET_KEY")
# Test hooks (jobkit/crash.py) kill a worker or fail a step for good: never wanted in production.
_TEST_HOOKS = {"SHOP_CRASH_AT": env_str("SHOP_CRASH_AT"), "SHOP_FAIL_AT": env_str("SHOP_FAIL_AT")}
if PRODUCTION:
    # The bar of Django's deploy check (security.W009): 50 characters, at least 5 of them different.
    if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY.startswith("django-insecure"):
        raise ImproperlyConfigured(
            "SHOP_ENV=production needs DJANGO_SECRET_KEY (at least 50 random characters)."
        )
    if DEBUG:
        raise ImproperlyConfigured("DJANGO_DEBUG must be off when SHOP_ENV=production.")
    for _hook, _value in _TEST_HOOKS.items():
        if _value:
            raise ImproperlyConfigured(f"{_hook} is a test hook and must be unset when SHOP_ENV=production.")
elif not SECRET_KEY:
    SECRET_KEY = local_secret("django")

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
CSRF_FAILURE_VIEW = "shop.views.csrf_failure"
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
# Production is HTTPS only, unless SHOP_HTTPS=0 (docker-compose on plain HTTP): cookies only over HTTPS,
# plain HTTP redirected, and HSTS so browsers stop trying plain HTTP at all.
_https = env_bool("SHOP_HTTPS", True) and PRODUCTION
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = _https
# Off where the proxy in front redirects plain HTTP itself.
SECURE_SSL_REDIRECT = env_bool("SHOP_SSL_REDIRECT", True) and _https
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers and container health checks probe plain HTTP
# A year (what OWASP and the browsers' preload lists ask for). Browsers remember it that long, so try
# HTTPS out with a short one first (SHOP_HSTS_SECONDS=3600); 0 sends no HSTS header.
SECURE_HSTS_SECONDS = env_int("SHOP_HSTS_SECONDS", 31_536_000, minimum=0) if _https else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
# Preloading (security.W021) is the domain owner's commitment, made at hstspreload.org for the whole
# registrable domain: a copied settings file must not send `preload` on its owner's behalf.
SILENCED_SYSTEM_CHECKS = ["security.W021"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "ninja",  # serves the API docs' Swagger UI from its own static files, not from a CDN
    "jobkit",
    "apikit",
    "shop",
    "notifications",
    "billing",
    "shipping",
    "orders",
    "subscriptions",
    "devstack",  # for its `demo` management command
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "shop.context_processors.cart",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------------
SQLITE_PATH = VAR_DIR / "shop.sqlite3"
# Persistent connections: a web or worker process keeps its connection between requests and jobs instead of
# paying for a new one each time (about 14 ms of a checkout on PostgreSQL). Django's psycopg pool was the
# alternative; but each process here serves one request or job at a time (gunicorn sync workers, Celery
# prefork), so a pool would hold one connection per process anyway, plus a dependency and its threads.
# 60 s is cookiecutter-django's value. The health check replaces a connection the server dropped before a
# request uses it again; a worker's jobs do without it (their first query retries on a new connection:
# jobkit.tasks.skip_health_checks).
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{SQLITE_PATH}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, worker, beat) write the same file: WAL lets readers run beside the writer,
    # IMMEDIATE takes the write lock at BEGIN so two writers queue on busy_timeout instead of deadlocking.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;",
    }
    # A file (the test worker process opens it too), one per test session so two sessions never collide.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test_shop_{os.getpid()}.sqlite3")}
else:
    # Server-side binding and prepared statements: psycopg sends each statement's parameters apart from its
    # text, and prepares on the server a statement a connection runs a fifth time (psycopg's own default;
    # Django leaves preparing off unless OPTIONS sets a threshold), so the jobs' repeated statements are
    # parsed and planned once per connection. The server's log of the pipeline benchmark showed every
    # statement parsed and planned anew with binding alone (half of the server's logged time); with
    # preparing too, PostgreSQL's CPU per order fell from 15.4 to 9.2-10.2 ms (`make bench`, pipeline,
    # 2 cores).
    # Binding alone had measured 5.49 and 5.71 orders/s against 5.17 and 5.24 with client-side binding.
    # A transaction-pooling PgBouncer before 1.21 cannot carry prepared statements: there, set
    # DB_SERVER_SIDE_BINDING=0 (Django's client-side binding, nothing prepared).
    _server_side_binding = env_bool("DB_SERVER_SIDE_BINDING", True)
    DATABASES["default"]["OPTIONS"] = {
        **DATABASES["default"].get("OPTIONS", {}),
        "server_side_binding": _server_side_binding,
        "prepare_threshold": 5 if _server_side_binding else None,
    }
    # One test database per test session on a shared server too (a second session would drop the first's).
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Static and media --------------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on a missing root
MEDIA_ROOT = env_path("MEDIA_ROOT", VAR_DIR / "media")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
LOGIN_URL = "admin:login"

# --- Broker and Celery ----------------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", RUNTIME.get("redis_url", "redis://127.0.0.1:6379/0"))
CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_TRANSPORT = "jobkit.broker:Transport"  # kombu's Redis transport, one client per channel
# A message taken by a worker that then dies whole comes back after this many seconds (Redis semantics).
_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=1)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": _VISIBILITY_TIMEOUT,
    # How often a worker looks for such messages: every interval x throttle seconds (kombu: 10 x 10).
    "unacked_restore_interval": env_int("CELERY_UNACKED_RESTORE_INTERVAL", 10),
    "unacked_restore_throttle": env_int("CELERY_UNACKED_RESTORE_THROTTLE", 10),
    # The lock a worker holds while it restores such messages (a restore takes milliseconds). A worker
    # killed while holding it blocks every restore until it expires: kombu's 300 s would outlast a short
    # visibility timeout; no longer than the visibility timeout, a kill mid-restore delays nothing further.
    "unacked_mutex_expire": min(300, _VISIBILITY_TIMEOUT),
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 60, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 90, minimum=1)
# Celery's Django fixup closes the database connection around every job unless this is set, and then every
# this many jobs. jobkit.tasks.release_connections applies DB_CONN_MAX_AGE around each job instead, as
# Django does around each request; this only keeps the fixup's own count from cutting in first.
CELERY_DB_REUSE_MAX = 1_000_000
# Job retries: exponential backoff from this base (whole seconds), capped, with full jitter.
JOB_RETRY_BACKOFF_SECONDS = env_int("JOB_RETRY_BACKOFF_SECONDS", 2, minimum=1)
JOB_RETRY_BACKOFF_MAX_SECONDS = env_int("JOB_RETRY_BACKOFF_MAX_SECONDS", 300)
# The sweeper re-enqueues work that has shown no sign of life for this long (longer than any backoff).
SWEEP_STUCK_AFTER_SECONDS = env_int("SWEEP_STUCK_AFTER_SECONDS", 600)
# The recovery sweep runs once per slot of this many seconds, however many beats fire it.
SWEEP_INTERVAL_SECONDS = env_float("SWEEP_INTERVAL_SECONDS", 60)
# Payment reminders after a failed payment (seconds after it); the last one expires the order or
# cancels the subscription. The periodic job that sends due reminders runs every REMINDER_INTERVAL_SECONDS.
REMINDER_OFFSETS_SECONDS = env_int_list("REMINDER_OFFSETS_SECONDS", [86400, 172800, 259200])
REMINDER_INTERVAL_SECONDS = env_float("REMINDER_INTERVAL_SECONDS", 60)
# Daily maintenance keeps finished job timelines and used unique keys this long, API idempotency
# records this long (as Stripe keeps its keys: a day).
JOB_TIMELINE_RETENTION_DAYS = env_int("JOB_TIMELINE_RETENTION_DAYS", 30)
IDEMPOTENCY_RETENTION_HOURS = env_int("IDEMPOTENCY_RETENTION_HOURS", 24)
# Batch billing: due subscriptions per batch job (a keyset page). Each batch has costs of its own (the
# job, its staging statements, a breaker admission per call thread, its counters, the wait for its slowest
# answer), so fewer, larger batches bill for less: about 5% less CPU a subscription with 200 than with 100,
# and 0.83-0.94 of raw charges against 0.64-0.78 (`python -m benchmarks --only billing --billing-sizes
# 10000`, PostgreSQL, run alternately; docs/benchmark-history.md, "Billing at 8d3220b").
# At Stripe's default 25 calls/s shared by the demo's 2 worker processes, 200 calls take 16 s, within the
# 20 s a batch job starts calls in (`billing/payments.py` `send_attempts`): a batch needs one run of its job.
BILLING_BATCH_SIZE = env_int("BILLING_BATCH_SIZE", 200, minimum=1)
# A job whose service's circuit breaker is open is deferred (retries untouched) for at most this long.
JOB_DEFER_DEADLINE_SECONDS = env_int("JOB_DEFER_DEADLINE_SECONDS", 3600)
JOB_DEFER_JITTER_SECONDS = env_float("JOB_DEFER_JITTER_SECONDS", 2.0)
# One circuit breaker per outside service, state shared by every process through Redis.
_BREAKER_DEFAULTS = {
    "failure_threshold": env_int("BREAKER_FAILURE_THRESHOLD", 5, minimum=1),
    "window_seconds": env_float("BREAKER_WINDOW_SECONDS", 30),
    "cooldown_seconds": env_float("BREAKER_COOLDOWN_SECONDS", 15),
    "probe_timeout_seconds": env_float("BREAKER_PROBE_TIMEOUT_SECONDS", 30),
}
CIRCUIT_BREAKERS = {service: dict(_BREAKER_DEFAULTS) for service in SERVICES}  # the names: jobkit.breaker
# The breaker's sibling (jobkit/ratelimit.py): calls per second to a service, shared by every process.
# Stripe allows 25/s in test mode and 100/s in live mode (more if raised for the account); 0: no limiter.
GATEWAY_RATE_LIMIT_PER_SECOND = env_float("GATEWAY_RATE_LIMIT_PER_SECOND", 25, minimum=0)
RATE_LIMITS = {"payments": GATEWAY_RATE_LIMIT_PER_SECOND}
# Gateway calls one job keeps in flight when it has many to make (a billing batch), each a thread. The
# calls in flight needed to reach a rate are rate x latency: at 300 ms a call, 32 in each of 2 worker
# processes could make ~213 calls/s, twice Stripe's 100/s live-mode limit, so that the gaps around each
# batch (staging, waiting for its last answers) leave the run near the limit (`make bench`, limit: 83%
# of 100/s with 16, 89% with 32).
GATEWAY_CALLS_IN_FLIGHT = env_int("GATEWAY_CALLS_IN_FLIGHT", 32, minimum=1)
CELERY_WORKER_SEND_TASK_EVENTS = False
CELERY_TASK_SEND_SENT_EVENT = False
CELERY_BEAT_SCHEDULE = beat_schedule(
    sweep_interval=SWEEP_INTERVAL_SECONDS, reminder_interval=REMINDER_INTERVAL_SECONDS
)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_TIMEZONE = TIME_ZONE

# --- Outside services (default: the local sandbox) --------------------------------------------------------
SANDBOX_HOST = "127.0.0.1"
SANDBOX_PORT = env_int("SANDBOX_PORT", RUNTIME.get("sandbox_port", 12111))
SANDBOX_SMTP_PORT = env_int("SANDBOX_SMTP_PORT", RUNTIME.get("sandbox_smtp_port", 1025))
_local_sandbox = f"http://{SANDBOX_HOST}:{SANDBOX_PORT}"
# The sandbox's control API, behind the fault switches on /ops/. Empty: no sandbox, no switches. Never in
# production: a deployment that talks to a sandbox names it as its payments and carrier APIs instead.
_sandbox_url = env_str("SANDBOX_URL")
if PRODUCTION and _sandbox_url:
    raise ImproperlyConfigured(
        "SANDBOX_URL (the sandbox's fault switches) must be unset when SHOP_ENV=production; "
        "name a sandbox in STRIPE_API_BASE and CARRIER_API_BASE instead."
    )
SANDBOX_URL = "" if PRODUCTION else _sandbox_url or _local_sandbox
_sandbox_base = SANDBOX_URL or _local_sandbox  # the default home of the payments, carrier and mail APIs

_stripe_key_from_env = env_str("STRIPE_SECRET_KEY")
STRIPE_API_BASE = env_str("STRIPE_API_BASE") or (
    None if _stripe_key_from_env.startswith("sk_test_") else _sandbox_base
)
STRIPE_SECRET_KEY = _stripe_key_from_env or "sk_sandbox_local_demo"
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET") or f"whsec_{local_secret('stripe-webhook')}"
# Each outside call gives up after its timeout (a timeout is an outage for the breaker); each must end
# well before the task's soft time limit, so the job's retry policy decides, not the time limit.
STRIPE_TIMEOUT_SECONDS = env_float("STRIPE_TIMEOUT_SECONDS", 20)

CARRIER_API_BASE = env_str("CARRIER_API_BASE", f"{_sandbox_base}/carrier/v1")
CARRIER_API_KEY = env_str("CARRIER_API_KEY", "carrier-sandbox-key")
CARRIER_TIMEOUT_SECONDS = env_float("CARRIER_TIMEOUT_SECONDS", 10)

EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = env_str("EMAIL_HOST", SANDBOX_HOST)
EMAIL_PORT = env_int("EMAIL_PORT", SANDBOX_SMTP_PORT)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Job Shop <shop@example.com>")
for _name in ("STRIPE_TIMEOUT_SECONDS", "CARRIER_TIMEOUT_SECONDS", "EMAIL_TIMEOUT"):
    if not 0 < globals()[_name] < CELERY_TASK_SOFT_TIME_LIMIT:
        raise ImproperlyConfigured(
            f"{_name} must be more than 0 and less than CELERY_TASK_SOFT_TIME_LIMIT "
            f"({CELERY_TASK_SOFT_TIME_LIMIT} s), got {globals()[_name]}"
        )
# Trap A (kombu issue 337): on Redis a message sent with a countdown waits taken and unacknowledged in a
# worker; once the countdown passes the visibility timeout, Redis hands it out again, and again. Every
# countdown the shop sends must stay below it: a retry's backoff (its cap; a deferral behind a sender's
# email lease waits at most that long too), a deferral behind an open breaker (its cooldown) or the rate
# limiter (a turn at most MAX_WAIT_SECONDS + one interval at the slowest rate away; a 429: 1 s), each
# deferral plus its jitter. Delays of hours or days are rows with a due time, never countdowns.
_COUNTDOWNS = {
    "JOB_RETRY_BACKOFF_MAX_SECONDS": JOB_RETRY_BACKOFF_MAX_SECONDS,
    "BREAKER_COOLDOWN_SECONDS + JOB_DEFER_JITTER_SECONDS": max(
        breaker["cooldown_seconds"] for breaker in CIRCUIT_BREAKERS.values()
    )
    + JOB_DEFER_JITTER_SECONDS,
    "a rate-limiter deferral + JOB_DEFER_JITTER_SECONDS": MAX_WAIT_SECONDS
    + 1 / MIN_RATE_PER_SECOND
    + JOB_DEFER_JITTER_SECONDS,
}
_longest = max(_COUNTDOWNS, key=_COUNTDOWNS.__getitem__)
if _COUNTDOWNS[_longest] >= CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]:
    raise ImproperlyConfigured(
        f"CELERY_VISIBILITY_TIMEOUT ({CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout']} s) must be "
        f"longer than the longest countdown the shop sends, {_longest} ({_COUNTDOWNS[_longest]:g} s): "
        "on Redis a message with a longer countdown is delivered again once the visibility timeout passes"
    )

# --- Shop ------------------------------------------------------------------------------------------------
SHOP_MAX_LINE_QUANTITY = env_int("SHOP_MAX_LINE_QUANTITY", 100, minimum=1)
SHOP_MAX_ORDER_LINES = env_int("SHOP_MAX_ORDER_LINES", 50, minimum=1)
SHOP_BASE_URL = env_str("SHOP_BASE_URL", RUNTIME.get("web_url", "http://127.0.0.1:8000")).rstrip("/")
SHOP_VAT_RATE = env_float("SHOP_VAT_RATE", 0.20)
SHOP_SELLER = {
    "name": env_str("SHOP_SELLER_NAME", "Job Shop Ltd"),
    "address": env_str("SHOP_SELLER_ADDRESS", "1 Queue Street\n10115 Berlin\nGermany"),
    "vat_id": env_str("SHOP_SELLER_VAT_ID", "DE000000000"),
}
INVOICE_PDF_TEMPLATE = env_str("INVOICE_PDF_TEMPLATE", "billing/invoice.html")
SHOP_BENCHMARK_ENDPOINTS = env_bool("SHOP_BENCHMARK_ENDPOINTS") and not PRODUCTION
# The shop clock (jobkit/clock.py) may be moved forward by staff: demos and tests, never production.
CLOCK_CAN_ADVANCE = not PRODUCTION
# The chaos panel on /ops/ (shop/chaos_panel.py) starts fault campaigns on this machine: demos only.
CHAOS_PANEL = not PRODUCTION

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {
        "handlers": ["console"],
        "level": env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")),
    },
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},  # WeasyPrint's font subsetting logs every table at INFO
        "weasyprint": {"level": "WARNING"},  # and WeasyPrint every rendering step
        "stripe": {"level": "WARNING"},  # the SDK logs two INFO lines per API call
    },
}
