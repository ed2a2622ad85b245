"""Settings shared by every environment; local, test and production change only what differs."""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS
from django.utils.csp import CSP

from config.celery_queues import task_queues, task_routes

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()
# A .env file is optional; real deployments set the environment directly.
env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = True
USE_TZ = True
SITE_NAME = env("DJANGO_SITE_NAME", default="Device Portal")


# "transaction" when PostgreSQL is reached through a pooler in transaction mode (PgBouncer's
# pool_mode=transaction): consecutive transactions of one connection may then run on different server
# sessions, so nothing may rely on session state (README, "PgBouncer").
DATABASE_POOLER = env("DATABASE_POOLER", default="")
if DATABASE_POOLER not in ("", "transaction"):
    raise ImproperlyConfigured(f"DATABASE_POOLER must be empty or 'transaction', not {DATABASE_POOLER!r}")


def database_settings(config):
    """What every environment adds to its DATABASE_URL: persistent connections without a health
    check before each request, and on PostgreSQL server-side binding unless behind a transaction pooler."""
    config["ATOMIC_REQUESTS"] = False
    config["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    # Off by default, as in Django: a check is a SELECT 1 before every request's and task's first
    # query, a tenth of the device API's web CPU. A connection broken meanwhile (PostgreSQL restarted)
    # fails one request and is then replaced.
    config["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=False)
    if config["ENGINE"].endswith("postgresql"):
        pooled = DATABASE_POOLER == "transaction"
        # Parameters travel apart from the SQL text, and psycopg prepares a statement the fifth time
        # a connection runs it (Django leaves preparing off unless told): PostgreSQL then stops
        # parsing and planning the device API's hot statements on every call, two thirds of its
        # work for a device's authentication. A pooler in transaction mode before PgBouncer 1.21
        # cannot keep prepared statements: both off there unless DATABASE_SERVER_SIDE_BINDING says otherwise.
        binding = env.bool("DATABASE_SERVER_SIDE_BINDING", default=not pooled)
        config.setdefault("OPTIONS", {})["server_side_binding"] = binding
        config["OPTIONS"]["prepare_threshold"] = 5 if binding else None
        # QuerySet.iterator() declares a cursor that lives in the server session between fetches,
        # outside any transaction in autocommit: behind a transaction pooler the next fetch may
        # reach another session. Without it psycopg receives the whole result at once (the large
        # CSV exports then hold their rows in memory while they stream).
        config["DISABLE_SERVER_SIDE_CURSORS"] = pooled
    return config


# A streaming replica of the primary for the read-only pages (portal/replica.py): reads go there
# while it lags at most DATABASE_REPLICA_MAX_LAG seconds, and a client that wrote reads from the
# primary for DATABASE_REPLICA_PIN_SECONDS (so that the page after a form shows what it did).
DATABASE_REPLICA_URL = env("DATABASE_REPLICA_URL", default="")
DATABASE_REPLICA_MAX_LAG = env.float("DATABASE_REPLICA_MAX_LAG", default=5.0)
DATABASE_REPLICA_PIN_SECONDS = env.int("DATABASE_REPLICA_PIN_SECONDS", default=10)
DATABASE_ROUTERS = ["portal.replica.ReplicaRouter"]
# The pages (URL names) whose reads may come from the replica: read-only on GET, where a few
# seconds' staleness is harmless. The CSV exports stream after the request's routing has ended.
DATABASE_REPLICA_PAGES = [
    "organization-overview",
    "organization-devices",
    "space-dashboard",
    "device-detail",
    "device-commands",
    "audit-log",
]


def with_replica(databases):
    """`databases` and, when DATABASE_REPLICA_URL is set, the "replica" alias: the primary's
    settings, giving up a connection within 2 s (an unreachable replica falls back to the primary),
    and in tests a mirror of the primary's test database rather than one of its own."""
    if DATABASE_REPLICA_URL:
        replica = database_settings(env.db_url_config(DATABASE_REPLICA_URL))
        replica.setdefault("OPTIONS", {})["connect_timeout"] = 2
        replica["TEST"] = {"MIRROR": DEFAULT_DB_ALIAS}
        databases["replica"] = replica
    return databases


# Without DATABASE_URL the portal runs on an embedded SQLite file, so a fresh machine needs nothing running.
DATABASES = with_replica(
    {"default": database_settings(env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"))}
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

DJANGO_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
]
THIRD_PARTY_APPS = [
    # Second factors: authenticator apps (TOTP), recovery codes (static tokens) and passkeys.
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "django_otp_webauthn",
    "crispy_forms",
    "crispy_bootstrap5",
    "formtools",
    "django_htmx",
]
LOCAL_APPS = [
    "accounts",
    "vendors",
    "spaces",
    "devices",
    "alerts",
    "apitokens",
    "releaserequests",
    "webhooks",
]
INSTALLED_APPS = DJANGO_APPS + THIRD_PARTY_APPS + LOCAL_APPS

AUTH_USER_MODEL = "accounts.User"
# Passwords, and passkeys for signing in without one.
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "django_otp_webauthn.backends.WebAuthnBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Outside every layer that may touch PostgreSQL or Redis, so that it can run them all again.
    "portal.unavailable.ServiceUnavailableMiddleware",
    # Whether a request's reads may come from the replica (portal/replica.py); not used without one.
    "portal.replica.ReplicaReadsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "accounts.security_middleware.AccountSecurityMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

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
                "django.template.context_processors.csp",
            ],
        },
    }
]

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
MEDIA_ROOT = env.path("DJANGO_MEDIA_ROOT", default=BASE_DIR / "media")

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# Redis is the cache (rate limits, sessions) and the Celery broker when REDIS_URL is set.
# Without it the cache lives in the database, which is still shared by every process.
REDIS_URL = env("REDIS_URL", default="")
# Seconds to wait for Redis to accept a connection and to answer a command. A Redis that stops
# answering (rather than refusing) must fail over to the degraded path, not hang a request.
REDIS_CONNECT_TIMEOUT = env.float("REDIS_CONNECT_TIMEOUT", default=1.0)
REDIS_SOCKET_TIMEOUT = env.float("REDIS_SOCKET_TIMEOUT", default=2.0)


def redis_cache(location, **extra):
    """The cache on Redis at `location`, failing within the timeouts above when Redis does not answer."""
    options = {"socket_connect_timeout": REDIS_CONNECT_TIMEOUT, "socket_timeout": REDIS_SOCKET_TIMEOUT}
    return {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": location,
        "OPTIONS": options,
    } | extra


# Sessions live in the database (accounts.UserSession: also the list of a person's sessions) and the
# cache holds a copy of each (Django's cached_db), so a Redis restart signs nobody out;
# portal.sessions reads them from the database while Redis is down.
SESSION_ENGINE = "portal.sessions"
if REDIS_URL:
    CACHES = {"default": redis_cache(REDIS_URL)}
else:
    # Rate-limit counters live here too: the default of 300 entries would cull them under load.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "portal_cache",
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    }

# Celery: the database is the source of truth, the broker only a doorbell, so no result backend.
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 300
CELERY_TASK_TIME_LIMIT = 360
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A broker that is down or silent must not hang a web request: give up quickly, the sweeper re-sends later.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
    "socket_timeout": REDIS_SOCKET_TIMEOUT,
}
CELERY_BEAT_SCHEDULE: dict = {}
CELERY_TIMEZONE = TIME_ZONE

# E-mail (invitations, password resets) goes to the console unless production configures SMTP.
MAILERS = {
    "default": {"BACKEND": env("DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")}
}
DEFAULT_FROM_EMAIL = env("DJANGO_DEFAULT_FROM_EMAIL", default="Device Portal <noreply@portal.example>")

# Security headers that hold in every environment; production adds HTTPS-only ones.
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
    "base-uri": [CSP.SELF],
    "object-src": [CSP.NONE],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # A QR label's link carries a claim code in its path: no log line keeps it (portal/logging.py).
    "filters": {"label_payloads": {"()": "portal.logging.RedactLabelPayloads"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "server": {"()": "django.utils.log.ServerFormatter", "format": "[{server_time}] {message}", "style": "{"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["label_payloads"]},
        # Django's own handler of the development server's request lines, with the filter.
        "server": {"class": "logging.StreamHandler", "formatter": "server", "filters": ["label_payloads"]},
    },
    "loggers": {
        "django.request": {"filters": ["label_payloads"]},
        "django.server": {"handlers": ["server"], "level": "INFO", "propagate": False},
    },
    "root": {"handlers": ["console"], "level": env("DJANGO_LOG_LEVEL", default="INFO")},
}

# Domain settings.
CLAIM_FAILURE_LIMIT = 10
CLAIM_FAILURE_WINDOW = 15 * 60
# Failed claims of all the members of one organization together (an owner cannot multiply the
# guesses at a claim code by inviting more members).
CLAIM_FAILURE_LIMIT_PER_ORGANIZATION = env.int("CLAIM_FAILURE_LIMIT_PER_ORGANIZATION", default=30)
# The key of the claim codes' HMAC (vendors/claim_codes.py); empty: derived from SECRET_KEY. Set it
# before rotating SECRET_KEY, or every claim code already printed stops matching.
CLAIM_CODE_SECRET = env("DJANGO_CLAIM_CODE_SECRET", default="")
# The portal's address as printed in QR labels' links (portal/links.py): the codes' downloads,
# import_identities and seed_demo --list. Empty: a download uses the address vendor staff reached
# the portal at, and the command line prints the admin path without one.
PORTAL_ORIGIN = env("DJANGO_PORTAL_ORIGIN", default="http://127.0.0.1:8000")
ALLOW_DEMO_DATA = True
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_QUEUE", default="portal")

# Second factors (accounts/two_factor.py). Passkeys are bound to OTP_WEBAUTHN_RP_ID (the portal's
# domain: changing it later orphans every passkey) and accepted from OTP_WEBAUTHN_ALLOWED_ORIGINS.
OTP_TOTP_ISSUER = SITE_NAME
# Wrong codes are limited by the portal's own counters (accounts/throttle.py), as passwords are.
OTP_TOTP_THROTTLE_FACTOR = 0
OTP_WEBAUTHN_RP_NAME = SITE_NAME
OTP_WEBAUTHN_RP_ID = env("DJANGO_WEBAUTHN_RP_ID", default="localhost")
OTP_WEBAUTHN_ALLOWED_ORIGINS = env.list("DJANGO_WEBAUTHN_ORIGINS", default=["http://localhost:8000"])
# Vendor staff and superusers reach the admin only with a second factor.
ADMIN_TWO_FACTOR_REQUIRED = env.bool("DJANGO_ADMIN_TWO_FACTOR_REQUIRED", default=True)
# Wrong authentication and recovery codes, per account and per address, as for passwords.
TWO_FACTOR_FAILURE_LIMIT_PER_ACCOUNT = env.int("TWO_FACTOR_FAILURE_LIMIT_PER_ACCOUNT", default=5)
TWO_FACTOR_FAILURE_LIMIT_PER_ADDRESS = env.int("TWO_FACTOR_FAILURE_LIMIT_PER_ADDRESS", default=30)
# Sign-in attempts are limited per account and per client address (accounts/throttle.py).
SIGN_IN_FAILURE_LIMIT_PER_ACCOUNT = env.int("SIGN_IN_FAILURE_LIMIT_PER_ACCOUNT", default=5)
SIGN_IN_FAILURE_LIMIT_PER_ADDRESS = env.int("SIGN_IN_FAILURE_LIMIT_PER_ADDRESS", default=30)
SIGN_IN_FAILURE_WINDOW = env.int("SIGN_IN_FAILURE_WINDOW", default=15 * 60)
# Reverse proxies in front of the app that append to X-Forwarded-For (0: use REMOTE_ADDR).
TRUSTED_PROXY_COUNT = env.int("DJANGO_TRUSTED_PROXY_COUNT", default=0)
PASSWORD_RESET_TIMEOUT = 60 * 60 * 24
# Device activation API (devices/activation.py): rate limits per minute, and the periodic
# sweeper (re-sends operations a lost broker message left assigning) and cleanup.
ACTIVATION_RATE_PER_ADDRESS = env.int("ACTIVATION_RATE_PER_ADDRESS", default=30)
ACTIVATION_RATE_PER_IDENTITY = env.int("ACTIVATION_RATE_PER_IDENTITY", default=5)
# Customer API requests per minute and token (apitokens/authentication.py).
ORG_API_RATE_PER_TOKEN = env.int("ORG_API_RATE_PER_TOKEN", default=600)
# Devices that may wait for their answer (?wait=N) at once in one web process; beyond it they get
# 202 and poll. Each holds a thread: keep it a few under the threads per worker (the README's
# gunicorn runs 16) so that pages keep answering during an activation storm.
ACTIVATION_WAITERS_PER_PROCESS = env.int("ACTIVATION_WAITERS_PER_PROCESS", default=12)
CELERY_BEAT_SCHEDULE |= {
    "resend-stuck-activations": {"task": "devices.tasks.resend_stuck_activations_task", "schedule": 15.0},
    "delete-finished-activations": {"task": "devices.tasks.delete_finished_activations_task", "schedule": 3600.0},
}
# On the embedded SQLite default, write transactions start with BEGIN IMMEDIATE: a deferred one
# that reads before writing fails at once with "database is locked" when devices activate together.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"].setdefault("OPTIONS", {})["transaction_mode"] = "IMMEDIATE"
# Serial-list imports (vendors/imports.py). The web process and the workers must share
# MEDIA_ROOT: uploads wait there for the validation task.
IMPORT_MAX_ROWS = env.int("IMPORT_MAX_ROWS", default=5_000_000)
IMPORT_DECISION_DAYS = env.int("IMPORT_DECISION_DAYS", default=7)
# Generated claim codes wait this long, encrypted, for their one download (vendors/code_issues.py).
CLAIM_CODE_DOWNLOAD_HOURS = env.int("CLAIM_CODE_DOWNLOAD_HOURS", default=72)
# Largest serial-list file, refused before a worker reads it (5 million rows take about 200 MB).
IMPORT_MAX_UPLOAD_BYTES = env.int("IMPORT_MAX_UPLOAD_BYTES", default=1024**3)
CELERY_BEAT_SCHEDULE["vendors-sweep-imports"] = {"task": "vendors.tasks.sweep_imports", "schedule": 600.0}
# Invitations whose e-mail never went out (the broker lost the task, or its worker died) are sent again.
CELERY_BEAT_SCHEDULE["resend-unsent-invitations"] = {
    "task": "accounts.tasks.resend_unsent_invitations_task",
    "schedule": 120.0,
}
CELERY_BEAT_SCHEDULE["clear-expired-sessions"] = {"task": "accounts.tasks.clear_expired_sessions", "schedule": 86400.0}

# Periodic device housekeeping.
CELERY_BEAT_SCHEDULE |= {
    "expire-commands": {"task": "devices.tasks.expire_commands", "schedule": 60.0},
    "record-connectivity-changes": {"task": "devices.tasks.record_connectivity_changes", "schedule": 60.0},
    "maintain-heartbeat-partitions": {"task": "devices.tasks.maintain_heartbeat_partitions", "schedule": 3600.0},
    "roll-up-heartbeats": {"task": "devices.tasks.roll_up_heartbeats", "schedule": 60.0},
    "sweep-release-requests": {"task": "releaserequests.tasks.sweep_requests", "schedule": 300.0},
}
# Telemetry storage: raw heartbeats are kept this many days (on PostgreSQL in daily partitions,
# created this many days ahead and dropped whole once past the retention: a row lives 30 to 31
# days); the charts' rollups longer, per minute for the 24-hour chart, per hour and per day for the
# longer ranges (devices/rollups.py), each interval rolled up this many seconds after it closes, so that
# heartbeats still in the batched writer's hands are in.
HEARTBEAT_RETENTION_DAYS = env.int("HEARTBEAT_RETENTION_DAYS", default=30)
HEARTBEAT_PARTITIONS_AHEAD_DAYS = env.int("HEARTBEAT_PARTITIONS_AHEAD_DAYS", default=7)
ROLLUP_MINUTE_RETENTION_HOURS = env.int("ROLLUP_MINUTE_RETENTION_HOURS", default=48)
ROLLUP_RETENTION_DAYS = env.int("ROLLUP_RETENTION_DAYS", default=400)
ROLLUP_DELAY_SECONDS = env.int("ROLLUP_DELAY_SECONDS", default=90)
# Offline alert e-mails (alerts/sending.py): at most one per member every this many seconds.
ALERT_EMAIL_INTERVAL = env.int("ALERT_EMAIL_INTERVAL", default=15 * 60)
# Celery's Django fixup closes the database connection before and after every task unless
# DB_REUSE_MAX is set, so each task paid a new PostgreSQL connection (a backend fork and
# authentication: most of the worker's CPU). Keep it for 500 tasks per process; config/celery_app.py
# still retires broken or old connections before each task, as Django does per request.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=500)

# A queue per kind of work (config/celery_queues.py): activations, imports, e-mail, telemetry and
# webhook deliveries each have theirs, and a worker started without -Q consumes them all.
CELERY_TASK_QUEUES = task_queues(CELERY_TASK_DEFAULT_QUEUE)
CELERY_TASK_ROUTES = task_routes(CELERY_TASK_DEFAULT_QUEUE)
# Heartbeat intake (devices/heartbeat_intake.py): with Redis on PostgreSQL, heartbeats are appended
# to a Redis stream and written in batches by a task on the telemetry queue, started by beat every
# second; a task that beat sent and no worker took within a few seconds expires, as the next one
# does its work. Without it, each heartbeat is written directly.
HEARTBEAT_BATCHING = env.bool(
    "HEARTBEAT_BATCHING", default=bool(REDIS_URL) and DATABASES["default"]["ENGINE"].endswith("postgresql")
)
CELERY_BEAT_SCHEDULE["devices-write-buffered-heartbeats"] = {
    "task": "devices.tasks.write_buffered_heartbeats_task",
    "schedule": 1.0,
    "options": {"expires": 5},
}
CELERY_BEAT_SCHEDULE["webhooks-wake-due-endpoints"] = {"task": "webhooks.tasks.wake_due_endpoints", "schedule": 15.0}
CELERY_BEAT_SCHEDULE["webhooks-purge-old-events"] = {"task": "webhooks.tasks.purge_old_events", "schedule": 3600.0}
# Webhook targets on loopback, private, link-local and other non-public addresses are refused (a
# webhook must not reach into the portal's own network) unless this is on: for a test receiver on
# the developer's machine, or a portal whose customers live on one private network.
WEBHOOK_ALLOW_PRIVATE_TARGETS = env.bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", default=False)
# The key webhook secrets are encrypted with at rest (webhooks/secrets.py); empty: derived from
# SECRET_KEY. Set it before rotating SECRET_KEY, or every endpoint's secret must be rolled.
WEBHOOK_SECRET_KEY = env("DJANGO_WEBHOOK_SECRET_KEY", default="")
# Plain-http webhook URLs: only the developer's machine and the tests allow them (local.py, test.py).
WEBHOOK_ALLOW_HTTP = False
