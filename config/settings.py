"""Earshot settings: one module, read from the environment (see .env.example)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from config.business_hours import business_calendar_parse

BASE_DIR = Path(__file__).resolve().parent.parent


def envstr(name: str, default: str = "") -> str:
    """The variable's value; an empty one (`KEY=` in .env) counts as unset."""
    return os.getenv(name, "").strip() or default


def envbool(name: str, default: str = "False") -> bool:
    return envstr(name, default).lower() in {"1", "true", "yes", "on"}


def envint(name: str, default: str) -> int:
    return int(envstr(name, default))


def envfloat(name: str, default: str) -> float:
    return float(envstr(name, default))


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in envstr(name, default).split(",") if item.strip()]


DEBUG = envbool("DEBUG", "False")
# Development conveniences (a throwaway SECRET_KEY) only when explicitly asked for.
DEVELOPMENT = envbool("EARSHOT_DEVELOPMENT", "False") or DEBUG

SECRET_KEY = envstr("SECRET_KEY")
if not SECRET_KEY:
    if not DEVELOPMENT:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment (see .env.example); "
            "only development (EARSHOT_DEVELOPMENT=1) runs with a throwaway key."
        )
    SECRET_KEY = "earshot-development-only-key-never-use-in-production"
# Earlier SECRET_KEYs, still accepted (sessions, and reading credentials until
# `manage.py rotate_credentials` has re-encrypted them): how SECRET_KEY is rotated.
SECRET_KEY_FALLBACKS = envlist("SECRET_KEY_FALLBACKS")

# Credentials at rest (config/encryption.py): django-fernet-encrypted-fields derives its
# Fernet keys from SECRET_KEY and these (its SALT_KEY). The first encrypts; all decrypt.
SALT_KEY = envlist("FIELD_ENCRYPTION_KEYS")
if not SALT_KEY:
    if not DEVELOPMENT:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS is not set. Set it in the environment (see .env.example): "
            "source and brand credentials are encrypted with it. Only development "
            "(EARSHOT_DEVELOPMENT=1) runs with a throwaway key."
        )
    SALT_KEY = ["earshot-development-only-field-key"]

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "config.admin.EarshotAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "axes",
    "csp",
    "auditlog",
    "listening",
    "responses",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication: the audit log records the signed-in user as each change's actor.
    "config.audit.AuditActorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
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
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "responses.context_processors.roles",
            ],
        },
    },
]

DATABASE_URL = envstr("DATABASE_URL")
if not DATABASE_URL:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set. `make run` and `make test` set it (or start an embedded "
        "PostgreSQL under ./var/); otherwise export e.g. postgres://postgres@127.0.0.1:5432/earshot."
    )
# Connections are reused for a minute, and checked before reuse: after a PostgreSQL restart a
# worker gets a fresh connection instead of failing a task on the dead one.
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "responses:queue"
LOGOUT_REDIRECT_URL = "login"

# Login throttling (django-axes): after LOGIN_FAILURE_LIMIT failed logins for one username
# from one address, that pair is refused until LOGIN_COOLOFF_MINUTES pass without another try.
AUTHENTICATION_BACKENDS = [
    "config.security.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
    # The admin role holds every permission of Django's admin (config/roles.py).
    "config.roles.AdminRoleBackend",
]
AXES_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", "5")
AXES_COOLOFF_TIME = timedelta(minutes=envint("LOGIN_COOLOFF_MINUTES", "15"))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "config.security.lockout_response"
AXES_CLIENT_IP_CALLABLE = "config.security.client_ip_address"
# How many proxies in front of Earshot append to X-Forwarded-For (0: none, use the connection).
TRUSTED_PROXY_COUNT = envint("TRUSTED_PROXY_COUNT", "0")

LANGUAGE_CODE = "en-us"
TIME_ZONE = envstr("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEVELOPMENT
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- HTTPS and browser hardening (`manage.py check --deploy` is clean in production) -----
# Cookies over HTTPS only, HSTS and the redirect to HTTPS: on unless in development.
SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", "False" if DEVELOPMENT else "True")
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", "0" if DEVELOPMENT else "31536000")
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", str(not DEVELOPMENT))
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", str(not DEVELOPMENT))
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", str(not DEVELOPMENT))
# Health probes come over plain HTTP from inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# Behind a TLS-terminating proxy: the header it sets to "https" (and strips from clients),
# e.g. X-Forwarded-Proto. Without it, SECURE_SSL_REDIRECT would redirect every request forever.
_proxy_ssl_header = envstr("SECURE_PROXY_SSL_HEADER")
if _proxy_ssl_header:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https")
# No inline script or style anywhere (templates load static files): only Earshot's own files
# run. Pico's icons are data: images.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- Celery (worker + beat) on Redis -------------------------------------------------
REDIS_URL = envstr("REDIS_URL")
if not REDIS_URL:
    raise ImproperlyConfigured(
        "REDIS_URL is not set. `make run` and `make test` set it (or start an embedded "
        "Redis under ./var/); otherwise export e.g. redis://127.0.0.1:6379/0."
    )
CELERY_BROKER_URL = REDIS_URL
# Separate deployments (or a test run beside `make run`) sharing one Redis use separate queues.
CELERY_TASK_DEFAULT_QUEUE = envstr("CELERY_QUEUE", "earshot")
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = envint("CELERY_TASK_SOFT_TIME_LIMIT", "60")
CELERY_TASK_TIME_LIMIT = envint("CELERY_TASK_TIME_LIMIT", "90")
# A pool child grown past this many MB resident is replaced by a fresh fork once its task
# ends (0: never). The fresh child shares the main process's pages again: a worker's memory
# stays near its start-up size however many mentions it ingests (bench/worker_memory.py).
CELERY_WORKER_MAX_MEMORY_PER_CHILD = envint("WORKER_MAX_MEMORY_PER_CHILD_MB", "100") * 1024 or None
# Above the longest task, so a task acknowledged late is not redelivered while still running.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    "dispatch-due-polls": {
        "task": "listening.tasks.dispatch_due_polls",
        "schedule": envfloat("POLL_DISPATCH_EVERY_SECONDS", "5"),
    },
    "release-expired-claims": {
        "task": "responses.tasks.release_expired_claims",
        "schedule": 30.0,
    },
    "resume-stalled-replies": {
        "task": "responses.tasks.resume_stalled_replies",
        "schedule": 60.0,
    },
    "dispatch-brand-account-reads": {
        "task": "responses.tasks.dispatch_brand_account_reads",
        "schedule": envfloat("POLL_DISPATCH_EVERY_SECONDS", "5"),
    },
    "check-alerts": {
        "task": "responses.tasks.check_alerts",
        "schedule": envfloat("ALERT_CHECK_EVERY_SECONDS", "60"),
    },
    # Failed alert deliveries are tried again from here, and any whose task was lost.
    "dispatch-alert-deliveries": {
        "task": "responses.tasks.dispatch_alert_deliveries",
        "schedule": 30.0,
    },
    # Closed mentions older than MENTION_RETENTION_DAYS go, their counts kept; daily 04:00 UTC.
    "remove-expired-mentions": {
        "task": "listening.tasks.remove_expired_mentions",
        "schedule": crontab(minute="0", hour="4"),
    },
    # Audit entries older than AUDIT_RETENTION_DAYS go, daily at 03:30 UTC.
    "delete-expired-audit-entries": {
        "task": "responses.tasks.delete_expired_audit_entries",
        "schedule": crontab(minute="30", hour="3"),
    },
    # Last week's digest, Mondays at 07:00 UTC (`manage.py send_digest` sends it by hand).
    "send-weekly-digest": {
        "task": "responses.tasks.send_weekly_digest",
        "schedule": crontab(minute="0", hour="7", day_of_week="mon"),
    },
}

# --- Listening ------------------------------------------------------------------------
# Any X-API-v2-compatible server (the simulator, a proxy) can stand in for X; empty = real X.
X_API_BASE_URL = envstr("X_API_BASE_URL")
# App-only token for search, and user-context OAuth 1.0a keys for posting replies. A brand's
# own credentials (Brand.x_* fields) take precedence over these defaults.
X_BEARER_TOKEN = envstr("X_BEARER_TOKEN")
X_CONSUMER_KEY = envstr("X_CONSUMER_KEY")
X_CONSUMER_SECRET = envstr("X_CONSUMER_SECRET")
X_ACCESS_TOKEN = envstr("X_ACCESS_TOKEN")
X_ACCESS_TOKEN_SECRET = envstr("X_ACCESS_TOKEN_SECRET")
X_REQUEST_TIMEOUT_SECONDS = envfloat("X_REQUEST_TIMEOUT_SECONDS", "15")
# X's pay-per-use prices in US dollars (docs.x.com/x-api/getting-started/pricing, 2026):
# the keyword pages project each X keyword's monthly cost from its volume.
X_PRICE_PER_POST_READ = envstr("X_PRICE_PER_POST_READ", "0.005")
X_PRICE_PER_USER_READ = envstr("X_PRICE_PER_USER_READ", "0.010")
# How many pages one poll task follows before handing over to the next task.
POLL_MAX_PAGES = envint("POLL_MAX_PAGES", "10")
# A new keyword reads the platform's recent window (X: 7 days) once. Posts from the last
# this many hours join the queue; older ones are kept as history (customer panel, reports).
BACKFILL_QUEUE_HOURS = envint("BACKFILL_QUEUE_HOURS", "24")
# How often each brand account's own posts are read, to find replies sent outside Earshot.
OWN_POSTS_POLL_SECONDS = envint("OWN_POSTS_POLL_SECONDS", "60")
# Closed mentions posted more than this many days ago are removed every night, their counts
# kept per day in MentionDailyAggregate (listening/services/retention.py); 0 keeps them all.
MENTION_RETENTION_DAYS = envint("MENTION_RETENTION_DAYS", "0")
if MENTION_RETENTION_DAYS < 0:
    raise ImproperlyConfigured(
        f"MENTION_RETENTION_DAYS is {MENTION_RETENTION_DAYS}: it must be 0 (keep forever) or more."
    )

# --- Triage ---------------------------------------------------------------------------
# A claim idle this long returns to the queue (any activity by its holder renews it).
CLAIM_LEASE_MINUTES = envint("CLAIM_LEASE_MINUTES", "15")
# First-response targets shown beside each mention's waiting time.
SLA_NEGATIVE_MINUTES = envint("SLA_NEGATIVE_MINUTES", "30")
SLA_DEFAULT_MINUTES = envint("SLA_DEFAULT_MINUTES", "240")
# Seconds a sent reply waits before it leaves, so the agent can still undo it.
REPLY_UNDO_SECONDS = envint("REPLY_UNDO_SECONDS", "10")

# --- Audit log (django-auditlog; /audit/) --------------------------------------------------
# Entries older than this many days are deleted by beat every night; 0 keeps them forever.
AUDIT_RETENTION_DAYS = envint("AUDIT_RETENTION_DAYS", "365")
if AUDIT_RETENTION_DAYS < 0:
    raise ImproperlyConfigured(
        f"AUDIT_RETENTION_DAYS is {AUDIT_RETENTION_DAYS}: it must be 0 (keep forever) or more."
    )
# Changes to these are recorded with who made them (the claims, sends and approvals of the
# desk are recorded by their services, responses/services/audit.py). Secrets are masked:
# config.audit.hide_secret records that a credential changed, never its value. Fields that
# only Earshot itself writes (a user's last login, password hash) are left out.
_SECRET = "config.audit.hide_secret"
AUDITLOG_INCLUDE_TRACKING_MODELS = (
    {"model": "listening.trackedkeyword"},
    {"model": "listening.source", "mask_fields": ["credentials"], "mask_callable": _SECRET},
    {
        "model": "listening.brand",
        "mask_fields": [
            "x_bearer_token",
            "x_consumer_key",
            "x_consumer_secret",
            "x_access_token",
            "x_access_token_secret",
        ],
        "mask_callable": _SECRET,
    },
    {"model": "listening.team", "m2m_fields": {"members"}},
    {
        "model": "auth.user",
        "exclude_fields": ["password", "last_login"],
        "m2m_fields": {"groups"},
    },
)

# --- Reports ----------------------------------------------------------------------------
# The team's business hours, for the report's business-time figures; the report's days and
# hours are in this time zone too (see /report/definitions/ and config/business_hours.py).
BUSINESS_TIME_ZONE = envstr("BUSINESS_TIME_ZONE", TIME_ZONE)
BUSINESS_HOURS = envstr("BUSINESS_HOURS", "mon-fri 09:00-17:30")
BUSINESS_HOLIDAYS = envlist("BUSINESS_HOLIDAYS")
# Checked now: a mistake stops startup with a message naming it, not the report page later.
business_calendar_parse(
    time_zone=BUSINESS_TIME_ZONE, hours=BUSINESS_HOURS, holidays=BUSINESS_HOLIDAYS
)

# --- Alerts and the weekly digest -------------------------------------------------------
# Alert e-mails go here; empty: to every active supervisor and admin with an e-mail address.
ALERT_EMAILS = envlist("ALERT_EMAILS")
# A Slack-compatible incoming webhook (JSON {"text": ...} POST); empty: no webhook.
ALERT_WEBHOOK_URL = envstr("ALERT_WEBHOOK_URL")
ALERT_WEBHOOK_TIMEOUT_SECONDS = envfloat("ALERT_WEBHOOK_TIMEOUT_SECONDS", "5")
# After an alert is sent, alerts of the same kind and keyword are counted, not sent, this long.
ALERT_COOLDOWN_MINUTES = envint("ALERT_COOLDOWN_MINUTES", "30")
# A spike: negative mentions of a keyword in the last window, against the same window's
# counts over the previous days (z-score), and at least a minimum count.
ALERT_SPIKE_WINDOW_MINUTES = envint("ALERT_SPIKE_WINDOW_MINUTES", "15")
ALERT_SPIKE_BASELINE_DAYS = envint("ALERT_SPIKE_BASELINE_DAYS", "7")
ALERT_SPIKE_MIN_Z = envfloat("ALERT_SPIKE_MIN_Z", "3")
ALERT_SPIKE_MIN_COUNT = envint("ALERT_SPIKE_MIN_COUNT", "5")
# A keyword listened to for less than this has no baseline yet (its first poll alone, the
# newest page at once, would look like a burst): it raises no spike alert.
ALERT_SPIKE_MIN_HISTORY_HOURS = envint("ALERT_SPIKE_MIN_HISTORY_HOURS", "24")
# Earshot's public address, for links in alerts and the digest; empty: no links.
SITE_URL = envstr("SITE_URL").rstrip("/")

# --- E-mail (alerts, the weekly digest) -----------------------------------------------
EMAIL_BACKEND = envstr(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEVELOPMENT
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = envstr("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", "25")
EMAIL_HOST_USER = envstr("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = envstr("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", "False")
# Without one, an SMTP server that never answers would hold a delivery task forever.
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT_SECONDS", "10")
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "earshot@localhost")

# --- People (/people/) ----------------------------------------------------------------
# Days an e-mailed invitation can be used, once.
INVITE_VALID_DAYS = envint("INVITE_VALID_DAYS", "7")
if INVITE_VALID_DAYS < 1:
    raise ImproperlyConfigured(f"INVITE_VALID_DAYS is {INVITE_VALID_DAYS}: it must be 1 or more.")

# "json": one JSON object a line (python-json-logger), for log collectors; "plain" for people.
LOG_FORMAT = envstr("LOG_FORMAT", "plain" if DEVELOPMENT else "json")
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT is {LOG_FORMAT!r}: it must be plain or json.")
# In JSON, Celery's worker logs through the same handler instead of its own plain format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = LOG_FORMAT == "plain"
# Seconds since any keyword's last successful poll after which /healthz reports polling stalled.
HEALTH_POLL_MAX_AGE_SECONDS = envint("HEALTH_POLL_MAX_AGE_SECONDS", "900")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # django-axes: failed logins and lockouts are warnings; its INFO lines are chatter
        # (a banner on every start, a line on every successful login).
        "axes": {"level": "WARNING"},
        # tweepy's DEBUG lines print each request's headers, the bearer token among them:
        # never, whatever LOG_LEVEL says.
        "tweepy": {"level": "INFO"},
    },
}
