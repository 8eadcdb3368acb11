"""/healthz and the operational settings around it."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from django.utils import timezone

from config.celery import app as celery_app
from listening.models import PollCursor, TrackedKeyword

pytestmark = pytest.mark.django_db


def polled_keyword(brand, *, ago: timedelta | None, query: str = "northwind") -> TrackedKeyword:
    keyword = TrackedKeyword.objects.create(brand=brand, query=query)
    PollCursor.objects.create(
        keyword=keyword, last_success_at=timezone.now() - ago if ago is not None else None
    )
    return keyword


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # free, and nothing listens once the probe is closed


def test_a_healthy_deployment_answers_200_without_a_login(client, brand):
    polled_keyword(brand, ago=timedelta(minutes=2))
    polled_keyword(brand, ago=timedelta(days=3), query="old keyword")

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    health = response.json()
    assert (health["status"], health["failing"]) == ("ok", [])
    assert {name: health[name]["ok"] for name in ("database", "redis", "broker", "polling")} == {
        "database": True,
        "redis": True,
        "broker": True,
        "polling": True,
    }
    # The newest success across keywords counts.
    assert 115 <= health["polling"]["age_seconds"] <= 180


def test_without_active_keywords_there_is_nothing_to_be_late_for(client, brand):
    keyword = polled_keyword(brand, ago=timedelta(days=2))
    TrackedKeyword.objects.filter(pk=keyword.pk).update(is_active=False)

    health = client.get("/healthz").json()

    assert health["polling"] == {
        "ok": True, "last_success_at": None, "age_seconds": None, "detail": "no keyword",
    }  # fmt: skip


def test_failing_parts_are_named_with_a_503(client, brand, settings):
    polled_keyword(brand, ago=timedelta(hours=2))
    port = closed_port()
    settings.REDIS_URL = settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{port}/0"

    response = client.get("/healthz")

    assert response.status_code == 503
    health = response.json()
    assert (health["status"], health["failing"]) == ("failing", ["broker", "polling", "redis"])
    assert health["database"] == {"ok": True}
    assert health["redis"] == {"ok": False, "error": "ConnectionError"}
    assert health["broker"]["ok"] is False
    assert str(port) not in response.content.decode()  # where things run stays in the log
    assert health["polling"]["ok"] is False
    assert health["polling"]["error"].startswith("no successful poll for 72")
    assert health["polling"]["error"].endswith(" s (limit 900 s)")


def test_keywords_never_polled_get_the_same_allowance_from_their_creation(client, brand):
    keyword = polled_keyword(brand, ago=None)
    assert client.get("/healthz").json()["polling"]["ok"] is True  # just added

    TrackedKeyword.objects.filter(pk=keyword.pk).update(
        created_at=timezone.now() - timedelta(hours=1)
    )
    response = client.get("/healthz")

    assert response.status_code == 503 and response.json()["failing"] == ["polling"]
    assert response.json()["polling"]["error"].startswith(
        "no keyword polled successfully since the first was added 3"
    )


def test_health_probes_over_plain_http_are_not_redirected(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz").status_code == 200
    assert client.get(reverse("login")).status_code == 301


def test_it_answers_get_only(client):
    assert client.post("/healthz").status_code in (403, 405)  # CSRF first, then the method
    assert client.put("/healthz").status_code == 405


def test_celery_tasks_have_soft_and_hard_time_limits():
    # A stuck call to a platform cannot hold a worker forever: the soft limit raises
    # SoftTimeLimitExceeded in the task, the hard one kills it.
    soft, hard = celery_app.conf.task_soft_time_limit, celery_app.conf.task_time_limit
    assert (soft, hard) == (
        django_settings.CELERY_TASK_SOFT_TIME_LIMIT,
        django_settings.CELERY_TASK_TIME_LIMIT,
    )
    assert 0 < soft < hard
    # A task acknowledged late is not handed to another worker while it may still run.
    assert celery_app.conf.broker_transport_options["visibility_timeout"] > hard
