"""The poll-to-queue latency benchmark: a post appears on X; how long until the queue shows it?

Everything is a real process, as in production: gunicorn (bench/processes.py), a prefork
Celery worker and beat, against the throwaway database and Redis; only X is the simulator
(in this process, on loopback). One brand, one keyword polled every POLL_INTERVAL seconds,
one agent logged in through /login/.

Each sample waits a random moment (uniform over one poll interval, so the post lands
anywhere in the poll cycle), puts a post on the simulator, then asks the queue's live check
(the very request htmx makes: GET of the rows' `hx-get` URL with its `since` fingerprint and
the HX-Request / HX-Target headers) every PROBE_EVERY seconds until the answer holds the
post. The figure is the time from the post to that answer: beat's dispatch, the poll task,
X's answer, storage, and the web request.

Not included, and reported beside it: the browser's own polling period (hx-trigger "every
1s" in templates/responses/queue.html), which adds up to that much on a real screen.

Uses the ORM at import: import it only after `django.setup()`.
"""

from __future__ import annotations

import html
import logging
import random
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection

from bench import processes
from bench.report import Figure, Goal, percentile
from config.roles import AGENT
from listening.models import Author, Brand, Mention
from listening.services.keywords import keyword_create
from listening.simulators.x_api import XApiSimulator, handle_user_id

POLL_INTERVAL = 10  # seconds: the keyword's poll interval, the goal's base
GOAL_MARGIN = 2.0  # seconds over the poll interval
SAMPLES = 20
QUICK_SAMPLES = 3
PROBE_EVERY = 0.1  # seconds between live checks: the figure's resolution
# A post not in the queue after this long is a failure, not a slow sample.
SAMPLE_TIMEOUT = 120.0
BRAND_NAME = "Latency Coffee"
BRAND_HANDLE = "LatencyCoffee"
AGENT_USERNAME = "latency-agent"
AGENT_PASSWORD = "latency bench password"
QUEUE_TEMPLATE = processes.REPO_ROOT / "templates" / "responses" / "queue.html"
_ROWS_URL = re.compile(r'id="queue-rows"[^>]*?hx-get="([^"]+)"')
_BROWSER_PERIOD = re.compile(r'id="queue-rows"[^>]*?hx-trigger="every (\d+(?:\.\d+)?)s"')
CUSTOMER = {
    "id": "5100000001",
    "username": "latency_customer",
    "name": "Latency Customer",
    "followers_count": 120,
}


class BenchError(RuntimeError):
    """The measurement did not work as intended: its figures would mean nothing."""


def run(
    *,
    quick: bool,
    seed: int,
    database_url: str,
    progress: Callable[[str], None],
    samples: int | None = None,
) -> dict[str, Any]:
    samples = samples or (QUICK_SAMPLES if quick else SAMPLES)
    # The simulator logs every request at INFO: one line a poll, of no interest here.
    logging.getLogger("earshot.x_sim").setLevel(logging.WARNING)
    draw = random.Random(seed)
    simulator = XApiSimulator(
        bearer_token=processes.SIM_BEARER,
        consumer_key=processes.SIM_CONSUMER_KEY,
        access_token=processes.SIM_ACCESS_TOKEN,
        brand_user={"id": handle_user_id(BRAND_HANDLE), "username": BRAND_HANDLE},
    )
    _desk_prepare()
    dispatch_every = settings.CELERY_BEAT_SCHEDULE["dispatch-due-polls"]["schedule"]
    queue = processes.queue_name()
    with simulator:
        env = processes.app_environment(
            database_url=database_url,
            redis_url=settings.REDIS_URL,
            queue=queue,
            x_api_base_url=simulator.base_url,
            extra={},
        )
        with processes.ProcessStack(env) as stack:
            base_url = stack.start_web(port=processes.free_port())
            stack.start_worker(queue=queue)
            stack.start_beat()
            session = requests.Session()
            processes.agent_log_in(
                session, base_url=base_url, username=AGENT_USERNAME, password=AGENT_PASSWORD
            )
            checker = LiveCheck(session, base_url=base_url)
            progress(
                f"latency: gunicorn, worker and beat up; keyword polled every {POLL_INTERVAL}s, "
                f"beat dispatching every {dispatch_every:g}s; a warm-up post, then {samples} samples"
            )
            # The first poll of a new keyword reads X's recent window (backfill) first.
            _sample(simulator, checker, stack, label="warm-up")
            seconds: list[float] = []
            stored_lags: list[float] = []
            for number in range(1, samples + 1):
                time.sleep(draw.uniform(0, POLL_INTERVAL))
                visible, stored = _sample(simulator, checker, stack, label=f"sample {number}")
                seconds.append(visible)
                stored_lags.append(stored)
                progress(
                    f"latency: sample {number}/{samples}: stored after {stored:.2f}s, "
                    f"in the queue's live check after {visible:.2f}s"
                )
    return {
        "benchmark": "latency",
        "samples": samples,
        "poll_interval_seconds": POLL_INTERVAL,
        "dispatch_every_seconds": dispatch_every,
        "probe_every_seconds": PROBE_EVERY,
        "browser_poll_seconds": browser_poll_seconds(),
        "goal_seconds": POLL_INTERVAL + GOAL_MARGIN,
        "seconds": [round(value, 3) for value in seconds],
        "p50_seconds": round(percentile(seconds, 50), 3),
        "p95_seconds": round(percentile(seconds, 95), 3),
        "max_seconds": round(max(seconds), 3),
        "stored_p50_seconds": round(percentile(stored_lags, 50), 3),
        "stored_max_seconds": round(max(stored_lags), 3),
        "live_checks": checker.requests,
        "live_check_errors": checker.errors,
    }


def figures(results: dict[str, Any]) -> list[Figure]:
    goal = Goal(at_most=results["goal_seconds"])
    label = f"poll-to-queue, {results['samples']} posts"
    return [
        Figure(f"{label}: p50", results["p50_seconds"], "s", goal),
        Figure(f"{label}: p95", results["p95_seconds"], "s", goal),
        Figure(f"{label}: max", results["max_seconds"], "s"),
        Figure(f"{label}: stored in PostgreSQL, p50", results["stored_p50_seconds"], "s"),
        Figure(
            "poll-to-queue: browser's polling period, on top", results["browser_poll_seconds"], "s"
        ),
    ]


def notes(results: dict[str, Any]) -> list[str]:
    return [
        f"poll-to-queue: keyword polled every {results['poll_interval_seconds']}s, beat "
        f"dispatching due polls every {results['dispatch_every_seconds']:g}s (a poll waits for "
        "the next dispatch once it is due); measured by the live check over HTTP every "
        f"{results['probe_every_seconds']}s. A browser asks every "
        f"{results['browser_poll_seconds']:g}s, which adds up to that much on screen "
        "(not in the p50/p95)."
    ]


class LiveCheck:
    """The queue's every-second "changed?" request, made as htmx makes it."""

    def __init__(self, session: requests.Session, *, base_url: str) -> None:
        self.session = session
        self.base_url = base_url
        self.requests = 0
        self.errors = 0
        page = session.get(f"{base_url}/queue/", timeout=30)
        page.raise_for_status()
        self.poll_url = _rows_url(page.text)

    def shows(self, text: str) -> bool:
        """Ask once; True when the answer holds `text`. A 204 means "nothing changed"."""
        self.requests += 1
        answer = self.session.get(
            f"{self.base_url}{self.poll_url}",
            headers={"HX-Request": "true", "HX-Target": "queue-rows"},
            timeout=30,
        )
        if answer.status_code == 204:
            return False
        if answer.status_code != 200:
            self.errors += 1
            raise BenchError(f"the live check answered {answer.status_code}")
        self.poll_url = _rows_url(answer.text)
        return html.escape(text) in answer.text


def _rows_url(page: str) -> str:
    found = _ROWS_URL.search(page)
    if found is None:
        raise BenchError("the queue's rows have no hx-get URL: is this the queue page?")
    return html.unescape(found.group(1))


def browser_poll_seconds() -> float:
    found = _BROWSER_PERIOD.search(QUEUE_TEMPLATE.read_text())
    if found is None:
        raise BenchError(f"no 'every Ns' hx-trigger on #queue-rows in {QUEUE_TEMPLATE}")
    return float(found.group(1))


def _sample(
    simulator: XApiSimulator, checker: LiveCheck, stack: processes.ProcessStack, *, label: str
) -> tuple[float, float]:
    """Post once; seconds until the live check shows it, and until it was stored."""
    token = uuid.uuid4().hex[:10]
    text = f"@{BRAND_HANDLE} my order {token} never arrived, can you help?"
    posted_at = datetime.now(UTC)
    start = time.monotonic()
    simulator.add_tweet(text=text, author=CUSTOMER, created_at=posted_at)
    deadline = start + SAMPLE_TIMEOUT
    while time.monotonic() < deadline:
        if checker.shows(text):
            visible = time.monotonic() - start
            fetched_at = Mention.objects.values_list("fetched_at", flat=True).get(
                text__contains=token
            )
            return visible, (fetched_at - posted_at).total_seconds()
        time.sleep(PROBE_EVERY)
        stack.check_alive()
    raise BenchError(f"{label}: the post was not in the queue after {SAMPLE_TIMEOUT:.0f} s")


def _desk_prepare() -> None:
    """One brand, keyword and agent, alone: an earlier benchmark's desk would bury the post."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"TRUNCATE {Brand._meta.db_table}, {Author._meta.db_table} RESTART IDENTITY CASCADE"
        )
    brand = Brand.objects.create(name=BRAND_NAME, x_handle=BRAND_HANDLE)
    keyword_create(brand=brand, query=f"@{BRAND_HANDLE}", poll_interval_seconds=POLL_INTERVAL)
    agent = get_user_model().objects.create_user(username=AGENT_USERNAME, password=AGENT_PASSWORD)
    agent.groups.add(Group.objects.get(name=AGENT))
