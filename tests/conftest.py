"""Fixtures shared by the whole suite: role users, the X simulator, a real Celery worker."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib import import_module
from pathlib import Path
from typing import IO

import pytest
from celery import Celery
from django.apps import apps as django_apps
from django.conf import settings as django_settings
from django.contrib.auth.models import Group, User
from django.db import connection
from playwright.sync_api import Browser, Page, sync_playwright

from config.celery import app as celery_app
from config.roles import ADMIN, AGENT, SUPERVISOR
from listening.models import Brand, TrackedKeyword
from listening.services.keywords import keyword_create
from listening.services.polling import keyword_poll
from listening.simulators.x_api import XApiSimulator

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
SIM_BEARER = "test-bearer"
SIM_CONSUMER_KEY = "test-consumer-key"
SIM_ACCESS_TOKEN = "test-access-token"
BRAND_USER = {"id": "900000000000000001", "username": "NorthwindHelp", "name": "Northwind Help"}

# Playwright's sync API keeps an event loop running in the main thread; the ORM calls our
# browser tests make around it are still plain synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def shared_data_file(name: str) -> Path:
    """A file of ../shared/data; outside this workspace the test skips, naming the file."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"shared data file {path} is missing (it exists only in the Earshot workspace)")
    return path


# --- people ------------------------------------------------------------------------------


PASSWORD = "correct horse battery"


def _user(username: str, role: str | None, first: str = "", last: str = "") -> User:
    user = User.objects.create_user(
        username=username, password=PASSWORD, first_name=first, last_name=last
    )
    if role:
        # get_or_create: a transactional test before this one flushed the migrated groups.
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


@pytest.fixture
def agent(db) -> User:
    return _user("alice", AGENT, "Alice", "Moreau")


@pytest.fixture
def other_agent(db) -> User:
    return _user("bob", AGENT, "Bob", "Lindqvist")


@pytest.fixture
def supervisor(db) -> User:
    return _user("sofia", SUPERVISOR, "Sofia", "Reyes")


@pytest.fixture
def admin_user(db) -> User:
    return _user("adam", ADMIN, "Adam", "Kowalski")


@pytest.fixture
def outsider(db) -> User:
    return _user("olivia", None, "Olivia", "Nobody")


# --- listening ---------------------------------------------------------------------------


# The starter playbooks come from a data migration; a transactional test's flush empties them.
_starter_playbooks = import_module("responses.migrations.0009_starter_playbooks")


@pytest.fixture
def brand(db) -> Brand:
    _starter_playbooks.create_starter_playbooks(django_apps, None)
    return Brand.objects.create(name="Northwind Coffee", x_handle="NorthwindHelp")


@pytest.fixture
def keyword(brand) -> TrackedKeyword:
    return keyword_create(brand=brand, query="@NorthwindHelp", poll_interval_seconds=30)


@pytest.fixture(scope="session")
def x_simulator_server() -> Iterator[XApiSimulator]:
    simulator = XApiSimulator(
        bearer_token=SIM_BEARER,
        consumer_key=SIM_CONSUMER_KEY,
        access_token=SIM_ACCESS_TOKEN,
        brand_user=BRAND_USER,
    )
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def x_sim(x_simulator_server: XApiSimulator, settings) -> Iterator[XApiSimulator]:
    """The X API simulator, emptied, with Earshot's settings pointing at it."""
    x_simulator_server.reset()
    settings.X_API_BASE_URL = x_simulator_server.base_url
    settings.X_BEARER_TOKEN = SIM_BEARER
    settings.X_CONSUMER_KEY = SIM_CONSUMER_KEY
    settings.X_CONSUMER_SECRET = "test-consumer-secret"
    settings.X_ACCESS_TOKEN = SIM_ACCESS_TOKEN
    settings.X_ACCESS_TOKEN_SECRET = "test-access-secret"
    # A short undo window keeps end-to-end sends quick; tests of the window set their own.
    settings.REPLY_UNDO_SECONDS = 1
    limits = (x_simulator_server.rate_limit, x_simulator_server.max_age)
    yield x_simulator_server
    # Tests may tighten the budget or widen the window: the next test gets X's defaults.
    x_simulator_server.rate_limit, x_simulator_server.max_age = limits


_author_ids = iter(range(10_000, 10**9))


def customer(username: str, name: str = "", followers: int = 120) -> dict:
    return {
        "id": str(next(_author_ids)),
        "username": username,
        "name": name or username.title(),
        "followers_count": followers,
        "following_count": 80,
        "tweet_count": 1500,
        "listed_count": 2,
        "verified": False,
    }


def search_requests(sim) -> list:
    """The X simulator's requests to recent search, in order."""
    return [entry for entry in sim.requests_log if entry[1] == "/2/tweets/search/recent"]


def add_stream(
    sim,
    count: int,
    label: str,
    *,
    spacing: timedelta = timedelta(milliseconds=10),
    last_ago: timedelta = timedelta(0),
) -> list[dict]:
    """`count` matching posts by different customers, `spacing` apart, the last `last_ago`
    ago (by default just now: newer than any post before them)."""
    base = datetime.now(UTC) - last_ago - spacing * count
    return [
        sim.add_tweet(
            text=f"@NorthwindHelp {label} {n}",
            author=customer(f"{label}{n}"),
            created_at=base + spacing * n,
        )
        for n in range(count)
    ]


POLL_TASK = "listening.tasks.poll_keyword"


def listening_started(keyword) -> None:
    """Past the keyword's first round, so a poll is a live multi-page round."""
    assert keyword_poll(keyword_id=keyword.pk, max_pages=1).ok


# --- a real Celery worker ----------------------------------------------------------------


@pytest.fixture(scope="session")
def celery_queue() -> str:
    """A queue of this test run's own, so no other worker on the same Redis takes its tasks."""
    name = f"earshot-test-{uuid.uuid4().hex[:8]}"
    celery_app.conf.task_default_queue = name
    return name


@pytest.fixture(scope="session")
def celery_worker_process(
    celery_queue: str, x_simulator_server: XApiSimulator, django_db_setup, django_db_blocker
) -> Iterator[subprocess.Popen]:
    """`celery worker` as its own process, on the test database and the simulator."""
    process, log = start_celery_worker(celery_queue, x_simulator_server)
    yield process
    process.terminate()
    process.wait(timeout=20)
    log.close()


def start_celery_worker(
    queue: str,
    simulator: XApiSimulator,
    *,
    log_name: str = "test-celery-worker",
    redis_url: str | None = None,
) -> tuple[subprocess.Popen, IO[str]]:
    """Start a real `celery worker` (solo pool) on `queue`, the test database and the X
    simulator (and a Redis of the test's own, if given); returns once it answers a ping."""
    database = django_settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(database),
        "CELERY_QUEUE": queue,
        "X_API_BASE_URL": simulator.base_url,
        "X_BEARER_TOKEN": SIM_BEARER,
        "X_CONSUMER_KEY": SIM_CONSUMER_KEY,
        "X_CONSUMER_SECRET": "test-consumer-secret",
        "X_ACCESS_TOKEN": SIM_ACCESS_TOKEN,
        "X_ACCESS_TOKEN_SECRET": "test-access-secret",
        "EARSHOT_DEVELOPMENT": "1",
        "REPLY_UNDO_SECONDS": "1",
    }
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    (REPO_ROOT / "var").mkdir(exist_ok=True)
    log = open(REPO_ROOT / "var" / f"{log_name}.log", "w")  # noqa: SIM115
    hostname = f"{queue}-{uuid.uuid4().hex[:6]}@localhost"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "config", "worker", "--hostname", hostname,
            "--pool", "solo", "--queues", queue, "--loglevel", "info",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    pinger = celery_app if redis_url is None else Celery("ping", broker=redis_url)
    try:
        _wait_for_worker(hostname, process, pinger)
    except RuntimeError:
        # A worker that never answered must not outlive the test run.
        process.kill()
        process.wait(timeout=10)
        log.close()
        raise
    return process, log


def _database_url(database: dict) -> str:
    host = database.get("HOST") or ""
    port = database.get("PORT") or ""
    password = f":{database['PASSWORD']}" if database.get("PASSWORD") else ""
    if host.startswith("/"):
        return f"postgres://{database['USER']}{password}@/{database['NAME']}?host={host}&port={port or 5432}"
    return f"postgres://{database['USER']}{password}@{host}:{port or 5432}/{database['NAME']}"


def _wait_for_worker(
    hostname: str, process: subprocess.Popen, app: Celery, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("celery worker exited at start: see its log under var/")
        if app.control.ping(timeout=0.5, destination=[hostname]):
            return
    raise RuntimeError("celery worker did not answer a ping within 30 s")


def all_at_once(work, items: list) -> list:
    """Run `work(item)` for each item in its own thread, all released at the same instant.

    Each thread has its own database connection, closed at the end, as concurrent web or
    worker processes would. Returns the results in the order of `items`.
    """
    barrier = threading.Barrier(len(items))
    results: list = [None] * len(items)

    def run(index: int, item) -> None:
        try:
            barrier.wait()
            results[index] = work(item)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(items)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def wait_until(condition, timeout: float = 15, interval: float = 0.1):
    """Poll `condition` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


# --- a real browser ------------------------------------------------------------------------

# Debian's Chromium (installed by `make test`); elsewhere Playwright's own, if installed.
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        executable = CHROMIUM if Path(CHROMIUM).exists() else None
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def log_in(browser: Browser, base_url: str, username: str) -> Page:
    page = browser.new_context(base_url=base_url).new_page()
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/queue/")
    page.wait_for_load_state()
    return page
