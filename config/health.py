"""/healthz: is this deployment working? For load balancers, orchestrators and uptime checks.

No login, and nothing secret in the answer: each part says "ok" or what failed. 200 when
every part is healthy, 503 naming the failing ones otherwise.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.db.models import Max, Min
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config.celery import app as celery_app

logger = logging.getLogger(__name__)

# Each check waits this long at most, so a probe gets its answer before it gives up.
CHECK_TIMEOUT_SECONDS = 2


def _database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"ok": True}


def _redis() -> dict[str, Any]:
    client = redis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=CHECK_TIMEOUT_SECONDS,
        socket_connect_timeout=CHECK_TIMEOUT_SECONDS,
    )
    try:
        client.ping()
    finally:
        client.close()
    return {"ok": True}


def _broker() -> dict[str, Any]:
    with celery_app.connection_for_write(settings.CELERY_BROKER_URL) as broker:
        broker.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT_SECONDS)
    return {"ok": True}


def _polling() -> dict[str, Any]:
    """How long since any active keyword was last polled successfully.

    Stalled when that is longer than HEALTH_POLL_MAX_AGE_SECONDS: beat, the worker or every
    platform has stopped answering. A deployment without active keywords has nothing to poll;
    keywords never polled yet get the same allowance from when they were created.
    """
    from listening.models import PollCursor

    facts = PollCursor.objects.filter(keyword__is_active=True).aggregate(
        last_success_at=Max("last_success_at"), first_created_at=Min("keyword__created_at")
    )
    last_success_at: datetime | None = facts["last_success_at"]
    if facts["first_created_at"] is None:
        return {"ok": True, "last_success_at": None, "age_seconds": None, "detail": "no keyword"}
    since = last_success_at or facts["first_created_at"]
    age = max(0, round((timezone.now() - since).total_seconds()))
    result: dict[str, Any] = {
        "ok": age <= settings.HEALTH_POLL_MAX_AGE_SECONDS,
        "last_success_at": last_success_at.isoformat() if last_success_at else None,
        "age_seconds": age if last_success_at else None,
    }
    if not result["ok"]:
        result["error"] = (
            f"no successful poll for {age} s (limit {settings.HEALTH_POLL_MAX_AGE_SECONDS} s)"
            if last_success_at
            else f"no keyword polled successfully since the first was added {age} s ago"
        )
    return result


CHECKS = {"database": _database, "redis": _redis, "broker": _broker, "polling": _polling}


def _run(name: str) -> dict[str, Any]:
    try:
        return CHECKS[name]()
    except Exception as exc:  # a health check reports every failure; it never raises one
        # The answer is public: the exception's kind only; its words (hosts, ports) go to the log.
        logger.warning("Health check %s failed: %s: %s", name, type(exc).__name__, exc)
        return {"ok": False, "error": type(exc).__name__}


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    parts = {}
    for name in CHECKS:
        if name == "polling" and not parts["database"]["ok"]:
            parts[name] = {"ok": False, "error": "the database is unavailable"}
        else:
            parts[name] = _run(name)
    failing = sorted(name for name, part in parts.items() if not part["ok"])
    if failing:
        logger.warning(
            "Health check failing: %s",
            "; ".join(f"{name}: {parts[name].get('error')}" for name in failing),
        )
    return JsonResponse(
        {"status": "failing" if failing else "ok", "failing": failing, **parts},
        status=503 if failing else 200,
    )
