"""Earshot settings: one module, read from the environment (see .env.example)."""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

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
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
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

SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", "False")
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

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

# --- Triage ---------------------------------------------------------------------------
# A claim idle this long returns to the queue (any activity by its holder renews it).
CLAIM_LEASE_MINUTES = envint("CLAIM_LEASE_MINUTES", "15")
# First-response targets shown beside each mention's waiting time.
SLA_NEGATIVE_MINUTES = envint("SLA_NEGATIVE_MINUTES", "30")
SLA_DEFAULT_MINUTES = envint("SLA_DEFAULT_MINUTES", "240")
# Seconds a sent reply waits before it leaves, so the agent can still undo it.
REPLY_UNDO_SECONDS = envint("REPLY_UNDO_SECONDS", "10")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
