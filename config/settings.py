"""Railyard settings: one module, configured through the environment (12-factor).

With neither ``DATABASE_URL`` nor ``REDIS_URL`` set, Railyard runs on its embedded defaults: SQLite
under ``DATA_DIR`` and a Redis server the project starts itself (see ``config.embedded_redis``).
"""

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

_names_read: set[str] = {"DJANGO_SETTINGS_MODULE", "DEMO_ADMIN_PASSWORD"}


class _RecordingEnv(environ.Env):
    """Remembers every variable the settings read: credential references may never resolve one
    of them (config.credentials)."""

    def get_value(self, var, *args, **kwargs):
        _names_read.add(var)
        return super().get_value(var, *args, **kwargs)


env = _RecordingEnv()
# Every variable this module reads (filled as it runs), and the two read outside it.
ENVIRONMENT_NAMES_READ = _names_read
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)


def _path(name: str, default: str) -> Path:
    """A path from the environment; set but empty (``FEED_STORAGE_DIR=`` in a .env) counts as
    unset, not as the current directory."""
    return Path(env(name, default="") or default)


DATA_DIR = _path("DATA_DIR", str(BASE_DIR / "var")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _required_secret(name: str, dev_default: str) -> str:
    """A secret that production must set explicitly; development gets a fixed default."""
    value = env(name, default="")
    if value:
        return str(value)
    if DEBUG:
        return dev_default
    raise ImproperlyConfigured(f"{name} must be set when DEBUG is off.")


SECRET_KEY = _required_secret("SECRET_KEY", "railyard-development-secret-key-not-for-production")
# Comma-separated; the first key encrypts, every key decrypts (rotation).
FIELD_ENCRYPTION_KEY = _required_secret(
    "FIELD_ENCRYPTION_KEY", "railyard-development-field-key-not-for-production"
)

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "connectors",
    "integrations",
    "syncengine",
    "exports",
    "webhooks",
    "sftpgateway",
]

MIDDLEWARE = [
    # First: body size and NUL characters are refused before anything reads the request.
    "config.middleware.RequestLimitsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: turns a finished API update into 204 when the client sent Prefer: return=minimal.
    "config.api.prefer.PreferReturnMinimalMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
AUTH_USER_MODEL = "accounts.User"

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
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'railyard.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web, worker and beat processes read while one of them writes.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="")
EMBEDDED_REDIS = not REDIS_URL
if EMBEDDED_REDIS:
    from config.embedded_redis import ensure_running

    # Started here (no `make run` around it): stopped again when this process exits.
    REDIS_URL = ensure_running(DATA_DIR / "redis", stop_at_exit=True)

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="railyard"),
        # A Redis that accepts connections but does not answer must cost a request a second or
        # two, not redis-py's default of waiting forever: the callers fail open.
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2},
    }
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = _path("STATIC_ROOT", str(DATA_DIR / "static"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Static files (admin, Swagger UI) are served by the app itself through WhiteNoise.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_ROOT = DATA_DIR / "files"

SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)

# --- API --------------------------------------------------------------------------------------
# Budgets are count/second|minute|hour|day, counted exactly in Redis (accounts.throttling).
API_RATE_LIMIT = env("API_RATE_LIMIT", default="1200/minute")
API_AUTH_FAILURE_LIMIT_PER_ADDRESS = env("API_AUTH_FAILURE_LIMIT_PER_ADDRESS", default="20/minute")
API_AUTH_FAILURE_LIMIT_PER_KEY = env("API_AUTH_FAILURE_LIMIT_PER_KEY", default="100/hour")
# Reverse proxies in front of the web process that append to X-Forwarded-For (0: the peer's
# address is the client's; a higher count than the real one lets clients forge their address).
API_NUM_PROXIES = env.int("API_NUM_PROXIES", default=0)
# X-Forwarded-Proto: https marks a request as secure only behind a proxy that sets it; with none
# declared, a client could send the header itself.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if API_NUM_PROXIES > 0 else None
API_PAGE_SIZE = 20
# Request limits (config.middleware, config.api.parsers): a larger body is 413, deeper JSON 400.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=10 * 1024 * 1024)
API_MAX_JSON_DEPTH = env.int("API_MAX_JSON_DEPTH", default=32)
# Django's own cap on a body held in memory (form posts of the admin) is the same limit.
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES
API_MAX_PAGE_SIZE = 100

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "accounts.permissions.IsAccountMember",
        "accounts.permissions.HasApiKeyScope",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["accounts.throttling.ApiKeyRateThrottle"],
    "NUM_PROXIES": API_NUM_PROXIES,
    "DEFAULT_RENDERER_CLASSES": [
        "config.api.renderers.EnvelopeJSONRenderer",
        "config.api.renderers.EnvelopeBrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["config.api.parsers.JSONBodyParser"],
    "DEFAULT_PAGINATION_CLASS": "config.api.pagination.LimitOffsetEnvelopePagination",
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "config.api.sorting.SortFilter",
    ],
    "EXCEPTION_HANDLER": "config.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # ``format`` filters some lists (exports by file format); it does not pick a renderer.
    "URL_FORMAT_OVERRIDE": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Railyard API",
    "DESCRIPTION": (
        "Self-hosted integrations platform: SFTP feeds, connector syncs and scheduled exports. "
        'Every response is enveloped (`{"data": ...}`); errors are '
        '`{"error": {"code", "message", "details"}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "ApiKeyScopeEnum": "accounts.choices.ApiKeyScope",
        "ExportFormatEnum": "exports.choices.ExportFormat",
        "ExportFrequencyEnum": "exports.choices.ExportFrequency",
        "ExportStateEnum": "exports.choices.ExportState",
        "IntegrationStateEnum": "integrations.choices.IntegrationState",
        "IntegrationStatusEnum": "integrations.choices.IntegrationStatus",
        "ConnectionStatusEnum": "connectors.choices.ConnectionStatus",
        "WebhookDeliveryStatusEnum": "webhooks.choices.DeliveryStatus",
        "WebhookDeliveryTriggerEnum": "webhooks.choices.DeliveryTrigger",
        "JobKindEnum": "syncengine.choices.JobKind",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.api.schema.postprocess_envelopes",
    ],
}

# --- Celery -----------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="") or (
    REDIS_URL.replace("unix://", "redis+socket://", 1)
    if REDIS_URL.startswith("unix://")
    else REDIS_URL
)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=55 * 60)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=60 * 60)
CELERY_BEAT_SCHEDULE = {
    "schedules-tick": {
        "task": "syncengine.tasks.schedules_tick",
        "schedule": float(env.int("SCHEDULER_TICK_SECONDS", default=15)),
    },
    "sweep-jobs": {
        "task": "syncengine.tasks.jobs_sweep",
        "schedule": float(env.int("JOB_SWEEP_SECONDS", default=20)),
    },
    "prune-sftp-activity": {
        "task": "sftpgateway.tasks.activity_prune",
        "schedule": crontab(hour=3, minute=27),
    },
    "prune-events": {
        "task": "accounts.tasks.events_prune",
        "schedule": crontab(hour=3, minute=17),
    },
    "sweep-webhook-deliveries": {
        "task": "webhooks.tasks.webhook_deliveries_sweep",
        "schedule": float(env.int("WEBHOOK_SWEEP_SECONDS", default=30)),
    },
    "prune-webhook-deliveries": {
        "task": "webhooks.tasks.webhook_deliveries_prune",
        "schedule": crontab(hour=3, minute=37),
    },
    # The retention section below: each prune continues itself in batches until done.
    "prune-audit-entries": {
        "task": "accounts.tasks.audit_prune",
        "schedule": crontab(hour=3, minute=22),
    },
    "prune-feed-files": {
        "task": "syncengine.tasks.feed_files_prune",
        "schedule": crontab(hour=3, minute=42),
    },
    "prune-runs": {
        "task": "syncengine.tasks.runs_prune",
        "schedule": crontab(hour=3, minute=47),
    },
    "prune-export-runs": {
        "task": "exports.tasks.export_runs_prune",
        "schedule": crontab(hour=3, minute=52),
    },
    "prune-vehicle-versions": {
        "task": "syncengine.tasks.vehicle_versions_prune",
        "schedule": crontab(hour=3, minute=57),
    },
}

# --- retention --------------------------------------------------------------------------------
# Days each kind of stored thing is kept (config.retention); 0 keeps it forever. Beat starts each
# prune nightly; a prune task removes at most RETENTION_BATCH_SIZE rows (or stored files) and
# sends itself again while more remain. Never removed, however old: a file whose run is queued or
# running, the last applied file of each integration, the current version of each vehicle, runs
# in progress and the latest finished run of each integration, connection, export and import,
# pending webhook deliveries.
# Stored copies of received feed files; the file's row, counts and samples stay (purged).
FEED_FILE_RETENTION_DAYS = env.int("FEED_FILE_RETENTION_DAYS", default=30)
# Finished runs (syncs, file ingestions, exports, file imports) with their logs, their received
# file rows once purged, and the files of LOCAL exports.
JOB_RETENTION_DAYS = env.int("JOB_RETENTION_DAYS", default=90)
VEHICLE_VERSION_RETENTION_DAYS = env.int("VEHICLE_VERSION_RETENTION_DAYS", default=365)
AUDIT_RETENTION_DAYS = env.int("AUDIT_RETENTION_DAYS", default=365)
EVENT_RETENTION_DAYS = env.int("EVENT_RETENTION_DAYS", default=90)
RETENTION_BATCH_SIZE = env.int("RETENTION_BATCH_SIZE", default=1000)

# --- exports ----------------------------------------------------------------------------------
# LOCAL destinations write under EXPORT_LOCAL_DIR/<account id>/ and nowhere else.
EXPORT_LOCAL_DIR = _path("EXPORT_LOCAL_DIR", str(DATA_DIR / "exports"))
# A file larger than this is split into parts (an export's own maxFileSizeMb wins).
EXPORT_MAX_FILE_SIZE_MB = env.int("EXPORT_MAX_FILE_SIZE_MB", default=256)

# --- webhooks ---------------------------------------------------------------------------------
# Delivery rows (with their attempts) are kept this long, then pruned in bounded batches.
WEBHOOK_RETENTION_DAYS = env.int("WEBHOOK_RETENTION_DAYS", default=30)
# Seconds before a delivery attempt times out.
WEBHOOK_TIMEOUT_SECONDS = env.int("WEBHOOK_TIMEOUT_SECONDS", default=15)
# Endpoints may use plain http:// (https:// only otherwise).
WEBHOOK_ALLOW_HTTP = env.bool("WEBHOOK_ALLOW_HTTP", default=False)
# Drains sending to one endpoint at once; keep it below the webhooks worker's concurrency.
WEBHOOK_ENDPOINT_CONCURRENCY = env.int("WEBHOOK_ENDPOINT_CONCURRENCY", default=1)

# --- trust boundaries (see config.egress and config.credentials) -----------------------------
# Environment variables that connection credentials may name as ${NAME} (comma-separated, *
# wildcards). Variables Railyard itself reads never resolve, whatever the patterns say.
CREDENTIAL_ENV_ALLOW = env("CREDENTIAL_ENV_ALLOW", default="IOF_CONNECTOR_*,RAILYARD_CONNECTOR_*")
# Where tenants' connectors, exports and webhooks may connect: comma-separated CIDRs, addresses or
# host names (*.example.com), each optionally with :port. The most specific rule wins, deny on a
# tie. Without a rule, loopback, link-local, reserved ranges and Railyard's own database, Redis and
# broker are refused; private ranges are allowed.
EGRESS_ALLOW = env("EGRESS_ALLOW", default="")
EGRESS_DENY = env("EGRESS_DENY", default="")


def _egress_rules_check() -> None:
    from config.egress import parse_rules  # a typo in a rule fails at start, not at first use

    try:
        parse_rules(EGRESS_ALLOW, allow=True)
        parse_rules(EGRESS_DENY, allow=False)
    except ValueError as error:
        raise ImproperlyConfigured(str(error)) from None


_egress_rules_check()

# --- feeds ------------------------------------------------------------------------------------
# Received feed files are kept here (immutable copies; reprocessing reads them again), unless
# FEED_STORAGE_URL names a bucket (see the file storage section below).
FEED_STORAGE_DIR = _path("FEED_STORAGE_DIR", str(DATA_DIR / "feeds"))

# --- file storage -----------------------------------------------------------------------------
# Received feed files (storage "feeds") and the files of LOCAL export destinations ("exports")
# go through Django's storage API (config.storage). Without a URL each is a folder on this
# machine (FEED_STORAGE_DIR, EXPORT_LOCAL_DIR), which every gateway, worker and web process must
# then share; s3://bucket/prefix keeps them in an S3 (or S3-compatible) bucket instead, so the
# processes need share no file system. Both buckets use the AWS_S3_* settings below; without
# AWS_S3_ACCESS_KEY_ID, boto3 finds credentials itself (AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance or task role).
AWS_S3_ACCESS_KEY_ID = env("AWS_S3_ACCESS_KEY_ID", default="") or None
AWS_S3_SECRET_ACCESS_KEY = env("AWS_S3_SECRET_ACCESS_KEY", default="") or None
AWS_S3_REGION_NAME = env("AWS_S3_REGION_NAME", default="") or None
# Another S3-compatible service (MinIO, Ceph, R2, ...): its URL, and "path" addressing if it
# does not serve bucket names as host names.
AWS_S3_ENDPOINT_URL = env("AWS_S3_ENDPOINT_URL", default="") or None
AWS_S3_ADDRESSING_STYLE = env("AWS_S3_ADDRESSING_STYLE", default="") or None


def _file_storage(url_variable: str, *, folder_setting: str) -> dict[str, Any]:
    """The STORAGES entry a ``*_STORAGE_URL`` variable selects: the folder of
    ``folder_setting`` when unset, an S3 bucket (and key prefix) for ``s3://bucket/prefix``."""
    url = str(env(url_variable, default=""))
    if not url:
        return {"BACKEND": "config.storage.FolderStorage", "OPTIONS": {"setting": folder_setting}}
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ImproperlyConfigured(
            f"{url_variable} must be s3://bucket or s3://bucket/prefix, not {url!r}."
        )
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": parts.netloc,
            "location": parts.path.strip("/"),
            # Stored names are unique (feeds) or meant to replace (exports): no HEAD per write.
            "file_overwrite": True,
            # Reads through the storage's file object spool to disk beyond this, not to memory.
            "max_memory_size": 8 * 1024 * 1024,
        },
    }


STORAGES["feeds"] = _file_storage("FEED_STORAGE_URL", folder_setting="FEED_STORAGE_DIR")
STORAGES["exports"] = _file_storage("EXPORT_STORAGE_URL", folder_setting="EXPORT_LOCAL_DIR")

# --- sync jobs and schedules -----------------------------------------------------------------
# Records a connector read returns per batch; a batch is committed with its cursor, and a cancel
# takes effect between batches.
SYNC_BATCH_SIZE = env.int("SYNC_BATCH_SIZE", default=5000)
# The same for the bulk path (PostgreSQL tables into a PostgreSQL store, see syncengine.sync.bulk),
# whose batches cost far less per record.
SYNC_BULK_BATCH_SIZE = env.int("SYNC_BULK_BATCH_SIZE", default=50_000)
# Every run (syncs, feed files): attempts in all when its errors are retryable (timeouts, 5xx,
# 429, a lost database connection, a lost worker), waiting
# JOB_RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1) between them, at most the _MAX.
JOB_MAX_ATTEMPTS = env.int("JOB_MAX_ATTEMPTS", default=5)
JOB_RETRY_BACKOFF_SECONDS = env.int("JOB_RETRY_BACKOFF_SECONDS", default=30)
JOB_RETRY_BACKOFF_MAX_SECONDS = env.int("JOB_RETRY_BACKOFF_MAX_SECONDS", default=3600)
# A running run beats its heartbeat this often (from a thread). One silent for
# JOB_HEARTBEAT_TIMEOUT_SECONDS lost its worker: a re-delivered task or the sweep takes it over
# (at once when its worker process is known to be gone from this machine).
JOB_HEARTBEAT_SECONDS = env.int("JOB_HEARTBEAT_SECONDS", default=10)
JOB_HEARTBEAT_TIMEOUT_SECONDS = env.int("JOB_HEARTBEAT_TIMEOUT_SECONDS", default=60)
# The first run waiting in an integration's (or connection's) queue, due and free to start, whose
# task was sent this long ago (or never: the broker was down) is sent again by the sweep.
JOB_REDISPATCH_AFTER_SECONDS = env.int("JOB_REDISPATCH_AFTER_SECONDS", default=120)
# Consecutive failed runs after which an integration is paused (state inactive).
AUTO_PAUSE_AFTER_FAILURES = env.int("AUTO_PAUSE_AFTER_FAILURES", default=10)
# Import dependencies: first re-check delay (doubling, at most 10 minutes) and the longest wait.
SYNC_DEPENDENCY_RETRY_SECONDS = env.int("SYNC_DEPENDENCY_RETRY_SECONDS", default=30)
SYNC_DEPENDENCY_MAX_WAIT_SECONDS = env.int("SYNC_DEPENDENCY_MAX_WAIT_SECONDS", default=6 * 3600)
# Due schedules one tick claims per transaction.
SCHEDULER_BATCH_SIZE = env.int("SCHEDULER_BATCH_SIZE", default=500)

# --- SFTP gateway -----------------------------------------------------------------------------
SFTP_PUBLIC_HOST = env("SFTP_PUBLIC_HOST", default="localhost")
SFTP_PORT = env.int("SFTP_PORT", default=2222)
SFTP_ROOT_DIR = _path("SFTP_ROOT_DIR", str(DATA_DIR / "sftp"))
SFTP_MAX_FILE_SIZE = env.int("SFTP_MAX_FILE_SIZE", default=2 * 1024**3)
SFTP_MAX_SESSIONS_PER_USER = env.int("SFTP_MAX_SESSIONS_PER_USER", default=4)
SFTP_MAX_SESSIONS = env.int("SFTP_MAX_SESSIONS", default=100)
SFTP_IDLE_TIMEOUT_SECONDS = env.int("SFTP_IDLE_TIMEOUT_SECONDS", default=600)
# Before login, per source address: connections still logging in, and new connections a minute
# (token bucket, bursts of SFTP_CONNECTION_BURST_PER_ADDRESS). Beyond them a connection is closed
# at once (and scored by the defender).
SFTP_MAX_UNAUTHENTICATED_PER_ADDRESS = env.int("SFTP_MAX_UNAUTHENTICATED_PER_ADDRESS", default=10)
SFTP_CONNECTION_RATE_PER_ADDRESS = env.int("SFTP_CONNECTION_RATE_PER_ADDRESS", default=120)
SFTP_CONNECTION_BURST_PER_ADDRESS = env.int("SFTP_CONNECTION_BURST_PER_ADDRESS", default=20)
# The defender (modelled on SFTPGo's): points per event against the source address, counted over
# the observation window; at the threshold the address is banned, each later ban longer by the
# increment (percent), up to the maximum. Safelisted CIDRs are never scored, banned or throttled.
SFTP_DEFENDER_THRESHOLD = env.int("SFTP_DEFENDER_THRESHOLD", default=15)
SFTP_DEFENDER_SCORE_LOGIN_FAILED = env.int("SFTP_DEFENDER_SCORE_LOGIN_FAILED", default=2)
SFTP_DEFENDER_SCORE_UNKNOWN_USER = env.int("SFTP_DEFENDER_SCORE_UNKNOWN_USER", default=3)
SFTP_DEFENDER_SCORE_NO_LOGIN = env.int("SFTP_DEFENDER_SCORE_NO_LOGIN", default=1)
SFTP_DEFENDER_SCORE_LIMIT_EXCEEDED = env.int("SFTP_DEFENDER_SCORE_LIMIT_EXCEEDED", default=3)
SFTP_DEFENDER_OBSERVATION_WINDOW_SECONDS = env.int(
    "SFTP_DEFENDER_OBSERVATION_WINDOW_SECONDS", default=1800
)
SFTP_DEFENDER_BAN_TIME_SECONDS = env.int("SFTP_DEFENDER_BAN_TIME_SECONDS", default=1800)
SFTP_DEFENDER_BAN_TIME_INCREMENT_PERCENT = env.int(
    "SFTP_DEFENDER_BAN_TIME_INCREMENT_PERCENT", default=50
)
SFTP_DEFENDER_MAX_BAN_TIME_SECONDS = env.int("SFTP_DEFENDER_MAX_BAN_TIME_SECONDS", default=86400)
SFTP_DEFENDER_SAFELIST = env("SFTP_DEFENDER_SAFELIST", default="")
# Each failed login is answered after a delay growing with the address's points, capped.
SFTP_FAILURE_DELAY_SECONDS = env.float("SFTP_FAILURE_DELAY_SECONDS", default=0.5)
SFTP_FAILURE_DELAY_MAX_SECONDS = env.float("SFTP_FAILURE_DELAY_MAX_SECONDS", default=3.0)
# Also offer hmac-sha2-256/512 (encrypt-and-MAC, which ssh-audit warns about) for clients without
# encrypt-then-MAC or AES-GCM, such as libssh2 before 1.11 (curl and PHP on Debian 12).
SFTP_LEGACY_MACS = env.bool("SFTP_LEGACY_MACS", default=False)
# How often a live session re-checks that its credential is still valid (revocation latency).
SFTP_SESSION_RECHECK_SECONDS = env.float("SFTP_SESSION_RECHECK_SECONDS", default=2.0)
# Seconds from a connection's arrival to its login (key exchange included).
SFTP_LOGIN_GRACE_SECONDS = env.float("SFTP_LOGIN_GRACE_SECONDS", default=20.0)
SFTP_SHUTDOWN_GRACE_SECONDS = env.float("SFTP_SHUTDOWN_GRACE_SECONDS", default=60.0)
SFTP_HOST_KEY_PATH = _path("SFTP_HOST_KEY_PATH", str(DATA_DIR / "sftp_host_key"))
# Uploads cut off mid-transfer are kept here, outside every partner's root.
SFTP_PARTIAL_DIR = _path("SFTP_PARTIAL_DIR", str(SFTP_ROOT_DIR / ".partial"))
SFTP_ACTIVITY_RETENTION_DAYS = env.int("SFTP_ACTIVITY_RETENTION_DAYS", default=90)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    # httpx logs every request at INFO: too much at webhook delivery volume.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "httpx": {"level": "WARNING"}},
}
