"""Django settings for aigw, read only from environment variables.

Every variable is documented in `.env.example`. With nothing set, aigw runs on its embedded
default: SQLite in `var/`, in-process counters, the built-in mock provider, DEBUG off.
Parsing is strict (django-environ): `DEBUG=yes` is an error, not a silent False.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()


def _strict_bool(name: str, default: bool) -> bool:
    """Return the boolean variable `name`; only `true`/`false`/`1`/`0` (any case) are accepted.

    Raises:
        django.core.exceptions.ImproperlyConfigured: for any other value.
    """
    from django.core.exceptions import ImproperlyConfigured

    raw = env.str(name, default="")
    if raw == "":
        return default
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


# Where the embedded default keeps its database and generated secret key.
DATA_DIR = Path(env.str("AIGW_DATA_DIR", default="") or BASE_DIR / "var")


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once and kept in DATA_DIR."""
    value = env.str("SECRET_KEY", default="")
    if value:
        return value
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = _strict_bool("DEBUG", False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Reverse proxies (IP addresses or CIDRs) whose X-Forwarded-For is believed when finding the
# client's address (core.client_address); empty: nobody's, the TCP peer is the client.
AIGW_TRUSTED_PROXIES = [p.strip() for p in env.list("AIGW_TRUSTED_PROXIES", default=[]) if p.strip()]


def _check_trusted_proxies(values: list[str]) -> None:
    from ipaddress import ip_network

    from django.core.exceptions import ImproperlyConfigured

    for value in values:
        try:
            ip_network(value, strict=False)
        except ValueError:
            raise ImproperlyConfigured(
                f"AIGW_TRUSTED_PROXIES: {value!r} is not an IP address or CIDR network"
            ) from None


_check_trusted_proxies(AIGW_TRUSTED_PROXIES)

# Fail instead of falling back when PostgreSQL or Redis is configured but unreachable (CI).
AIGW_REQUIRE_SERVICES = _strict_bool("AIGW_REQUIRE_SERVICES", False)

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "template_partials",
    "django_htmx",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "axes",
    "csp",
    "core",
    "gateway",
    "keys",
    "quotas",
    "usage",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "core.middleware.ApiBodySizeMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "core.audit.AuditMiddleware",
    # Last: turns a locked-out sign-in into the login page with the lockout message.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

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
                "core.context_processors.permissions",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'aigw.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    # The live-server tests share the test database with a separate server process, so the
    # SQLite test database must be a file, not the in-memory default.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-aigw.sqlite3")}
    # How long a write waits for another process's lock before it fails ("database is locked").
    SQLITE_TIMEOUT_SECONDS = env.float("AIGW_SQLITE_TIMEOUT_SECONDS", default=20.0)
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": SQLITE_TIMEOUT_SECONDS, "transaction_mode": "IMMEDIATE"}
    )
# Connections are kept (the data plane's writer and loaders run outside Django's request cycle
# and close stale ones themselves with close_old_connections()).
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis holds the counters shared by every gateway process. Unset: in-process counters.
# One server (redis://, rediss://, unix://), a Redis Cluster (redis+cluster://host:port,…) or a
# Sentinel-managed primary (redis+sentinel://host:port,…/service[/db]); core/redis.py reads it,
# and refuses a URL it cannot use at start-up.
REDIS_URL = env.str("REDIS_URL", default="")
AIGW_REDIS_PREFIX = env.str("AIGW_REDIS_PREFIX", default="aigw")

# Celery: Redis is the broker in production; the embedded default uses kombu's SQLAlchemy
# transport on a SQLite file in DATA_DIR, so `celery worker --beat` runs with no services.
# CELERY_BROKER_URL unset: REDIS_URL's server, or its Sentinels in kombu's form
# (sentinel://host:port;sentinel://host:port/db); a Redis Cluster cannot be a broker.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if REDIS_URL:
    from core.redis import celery_broker, parse_redis_url

    parse_redis_url(REDIS_URL)
    if not CELERY_BROKER_URL:
        CELERY_BROKER_URL, CELERY_BROKER_TRANSPORT_OPTIONS = celery_broker(REDIS_URL)
CELERY_BROKER_URL = CELERY_BROKER_URL or f"sqla+sqlite:///{DATA_DIR / 'celery.sqlite3'}"
# kombu's sentinel:// broker needs the name of the primary the Sentinels monitor.
if env.str("AIGW_CELERY_SENTINEL_MASTER", default=""):
    CELERY_BROKER_TRANSPORT_OPTIONS = {"master_name": env.str("AIGW_CELERY_SENTINEL_MASTER")}
CELERY_TASK_IGNORE_RESULT = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
# The embedded default also runs the periodic jobs inside the server process (no worker needed).
AIGW_IN_PROCESS_JOBS = _strict_bool("AIGW_IN_PROCESS_JOBS", not REDIS_URL)
AIGW_IN_PROCESS_JOBS_INTERVAL_SECONDS = env.float("AIGW_IN_PROCESS_JOBS_INTERVAL_SECONDS", default=60.0)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "keys.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "COERCE_DECIMAL_TO_STRING": False,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # One handler turns the services' ApplicationError family into responses (core.errors).
    "EXCEPTION_HANDLER": "core.api_errors.api_exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "aigw management API",
    "DESCRIPTION": "Gateways, API keys, limits and usage of aigw. Authenticate with a personal API token "
    "(`Authorization: Bearer aigwp_…`, from `manage.py create_api_token USER`) or the console session.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the sidecar package, served from static/ (no CDN).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.schema.add_common_error_responses",
    ],
    # One enum per choice set, whichever serializer (snake_case or Vercel's camelCase) uses it.
    "ENUM_NAME_OVERRIDES": {
        "RefreshPeriodEnum": "quotas.models.RefreshPeriod",
        "LimitModeEnum": "quotas.models.LimitMode",
        "ApiKeyStatusEnum": "keys.models.ApiKeyStatus",
    },
}

# Provider credentials are encrypted with Fernet keys derived from this value (SECRET_KEY if unset).
# Several comma-separated values rotate keys: the first encrypts, all decrypt.
AIGW_ENCRYPTION_KEYS = [k for k in env.list("AIGW_ENCRYPTION_KEYS", default=[]) if k] or [SECRET_KEY]

# Management API: largest request body (bytes); larger ones are refused with 413.
AIGW_API_MAX_BODY_BYTES = env.int("AIGW_API_MAX_BODY_BYTES", default=1024 * 1024)

# Data plane.
AIGW_MAX_BODY_BYTES = env.int("AIGW_MAX_BODY_BYTES", default=4 * 1024 * 1024)
AIGW_UPSTREAM_TIMEOUT_SECONDS = env.float("AIGW_UPSTREAM_TIMEOUT_SECONDS", default=600.0)
# Usage events a data plane process keeps in memory while the database is away (about 1.3 KB
# each); past that they wait only in its spool file and are read back from it.
AIGW_USAGE_MAX_QUEUED_EVENTS = env.int("AIGW_USAGE_MAX_QUEUED_EVENTS", default=20_000)
AIGW_UPSTREAM_CONNECT_TIMEOUT_SECONDS = env.float("AIGW_UPSTREAM_CONNECT_TIMEOUT_SECONDS", default=10.0)
# How TPM estimates a prompt before it is forwarded (corrected with the real usage after):
# "o200k" counts it with OpenAI's tokenizer (about 70-140 MB per process, loaded when a key with
# a TPM limit first sends); "characters" guesses from its length as OpenAI's own rate limiter does
# (ASCII characters / 4, one token per other character), with no tokenizer in memory.
AIGW_TPM_ESTIMATE = env.str("AIGW_TPM_ESTIMATE", default="o200k")
if AIGW_TPM_ESTIMATE not in ("o200k", "characters"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"AIGW_TPM_ESTIMATE must be o200k or characters, not {AIGW_TPM_ESTIMATE!r}")
# A client address that sends more than this many requests with an unknown or missing API key
# within the window (seconds, from its first such request) gets 429 until the window ends.
AIGW_INVALID_KEY_LIMIT = env.int("AIGW_INVALID_KEY_LIMIT", default=20)
AIGW_INVALID_KEY_WINDOW_SECONDS = env.int("AIGW_INVALID_KEY_WINDOW_SECONDS", default=60)
# Refusals (401, 403, 404, 429…) of one API key, or of one client address without a known key,
# with one error code, recorded one usage event each per UTC minute and process; the rest of
# that minute is one aggregate usage event counting them (`usage.refusals`). 0: aggregate all.
AIGW_REFUSAL_EVENTS_PER_MINUTE = env.int("AIGW_REFUSAL_EVENTS_PER_MINUTE", default=60)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Sign-in throttling (django-axes): after AIGW_LOGIN_FAILURE_LIMIT failed sign-ins in a row, the
# pair of that username and that client address is locked for AIGW_LOGIN_LOCKOUT_MINUTES. The
# same username from another address, and other usernames from this one, can still sign in, so
# nobody can lock an admin out from elsewhere. Unlock early with `manage.py axes_reset_username`.
AIGW_LOGIN_FAILURE_LIMIT = env.int("AIGW_LOGIN_FAILURE_LIMIT", default=5)
AIGW_LOGIN_LOCKOUT_MINUTES = env.int("AIGW_LOGIN_LOCKOUT_MINUTES", default=15)
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked pair before any password check
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = AIGW_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=AIGW_LOGIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "core.client_address.request_client_address"
AXES_LOCKOUT_CALLABLE = "core.middleware.sign_in_locked_out"
AXES_RESET_ON_SUCCESS = True
# Attempts while locked are refused unchecked and do not extend the lock: it ends when stated.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_VERBOSE = False

# Hardening (SPEC §9). Always: a Content-Security-Policy that lets pages load only our own
# static files (no inline script or style, no eval; django-csp), X-Frame-Options DENY, nosniff.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],  # Pico's and Swagger UI's icons are data: SVGs in their CSS
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Behind TLS (AIGW_HTTPS=true): cookies only over HTTPS, HSTS for a year, plain HTTP redirected
# (except the probes of load balancers and Prometheus). The scheme comes from X-Forwarded-Proto
# only when AIGW_TRUSTED_PROXIES names the proxies that terminate TLS.
AIGW_HTTPS = _strict_bool("AIGW_HTTPS", False)
if AIGW_HTTPS:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 365 * 24 * 60 * 60
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    if AIGW_TRUSTED_PROXIES:
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "gateway-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default="") or DATA_DIR / "staticfiles")
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# The embedded default serves static files straight from static/ with no collectstatic step.
WHITENOISE_USE_FINDERS = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # One line per upstream call is noise on the hot path (and would name upstream URLs).
    # django-axes logs every successful sign-in's reset of failures at INFO: noise, kept for warnings.
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

# Usage: raw usage events older than this many days are purged by the `usage.purge_usage_events`
# job (their hourly rollups are kept for dashboards). 0 keeps them forever. At least 35, since the
# limits read the current month's raw events.
AIGW_USAGE_RETENTION_DAYS = env.int("AIGW_USAGE_RETENTION_DAYS", default=0)
if 0 < AIGW_USAGE_RETENTION_DAYS < 35:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("AIGW_USAGE_RETENTION_DAYS must be 0 (keep forever) or at least 35 days")
