"""The queue page benchmark: how long an agent waits for the triage queue on a busy desk.

At two desk sizes (10k and 1M mentions; --quick: 10k and 100k), each filled straight into
PostgreSQL by `bench.desk` with 2% of mentions open, the real `queue` view is requested
through Django's test `Client`, logged in as an agent, for three pages: the default (most
urgent first), sentiment=negative and order=newest. For each page:

- server time per request, p50 and p95 over 200 requests after 20 warm-up requests
  (--quick: 100 after 10);
- the same with 20 agents at once, each a thread with its own Client and connection,
  10 requests each after 2 warm-up ones (--quick: 5), and the pages per second they got;
- SQL queries per page, counted with `CaptureQueriesContext`;
- EXPLAIN (ANALYZE, BUFFERS) of each mention query the page ran, at the larger size.

Uses the ORM at import: import it only after `django.setup()`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from bench.desk import agents_create, desk_fill
from bench.explain import explain
from bench.report import Figure, Goal, percentile

SIZES = (10_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)
OPEN_SHARE = 0.02
CLAIMED_SHARE = 0.25  # of the open ones
PAGES = {
    "default": {},
    "negative": {"sentiment": "negative"},
    "newest": {"order": "newest"},
}
WARM_UP = 20
REQUESTS = 200
AGENTS = 20
AGENT_WARM_UP = 2
AGENT_REQUESTS = 10  # each: 200 timed requests in all
# A smoke run: fewer requests, the same shape.
QUICK_WARM_UP = 10
QUICK_REQUESTS = 100
QUICK_AGENT_REQUESTS = 5
ROW_MARKER = b'class="mention-row'

GOAL_P95_MS = 50.0
GOAL_GROWTH = 1.5
GOAL_QUERIES = 10


class BenchError(RuntimeError):
    """A page did not render what was timed; its figure would mean nothing."""


@dataclass
class PageTimes:
    p50_ms: float
    p95_ms: float
    concurrent_p50_ms: float
    concurrent_p95_ms: float
    concurrent_pages_per_second: float
    queries: int
    rows: int


def run(*, quick: bool, seed: int, progress: Callable[[str], None]) -> dict[str, Any]:
    """Both desk sizes, every page; the figures for the table and the details for the JSON."""
    sizes = QUICK_SIZES if quick else SIZES
    # The test client's default host, as Django's own test runner allows it.
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    agent_ids = agents_create(prefix="queue-agent-", count=AGENTS)
    url = reverse("responses:queue")
    sizes_out: dict[str, Any] = {}
    for size in sizes:
        desk = desk_fill(
            mentions=size,
            open_share=OPEN_SHARE,
            claimed_share=CLAIMED_SHARE,
            agent_ids=agent_ids,
            seed=seed,
        )
        progress(
            f"queue: desk of {desk.mentions:,} mentions ({desk.open:,} open) "
            f"filled in {desk.seconds:.1f}s"
        )
        pages: dict[str, Any] = {}
        for page, params in PAGES.items():
            times, plans = _measure_page(
                url, params, agent_ids=agent_ids, quick=quick, explain_sql=size == sizes[-1]
            )
            pages[page] = {**asdict(times), "explain": plans}
            progress(
                f"queue {size:,} {page}: p50 {times.p50_ms:.1f} ms, p95 {times.p95_ms:.1f} ms, "
                f"p95 at {AGENTS} agents {times.concurrent_p95_ms:.1f} ms, "
                f"{times.queries} queries, {times.rows} rows"
            )
        sizes_out[str(size)] = {"mentions": desk.mentions, "open": desk.open, "pages": pages}
    return {
        "benchmark": "queue",
        "sizes": list(sizes),
        "open_share": OPEN_SHARE,
        "requests": QUICK_REQUESTS if quick else REQUESTS,
        "warm_up": QUICK_WARM_UP if quick else WARM_UP,
        "agents": AGENTS,
        "agent_requests": QUICK_AGENT_REQUESTS if quick else AGENT_REQUESTS,
        "results": sizes_out,
    }


def figures(results: dict[str, Any]) -> list[Figure]:
    small, large = (str(size) for size in results["sizes"])
    rows = []
    for page in PAGES:
        for size in (small, large):
            times = results["results"][size]["pages"][page]
            label = f"queue {page}, {_size(int(size))}"
            p95_goal = Goal(at_most=GOAL_P95_MS) if size == large else None
            rows += [
                Figure(f"{label}: p50", times["p50_ms"], "ms"),
                Figure(f"{label}: p95", times["p95_ms"], "ms", p95_goal),
                Figure(
                    f"{label}: p95, {results['agents']} agents at once",
                    times["concurrent_p95_ms"],
                    "ms",
                ),
                Figure(
                    f"{label}: pages/s, {results['agents']} agents at once",
                    times["concurrent_pages_per_second"],
                    "/s",
                ),
                Figure(f"{label}: queries/page", times["queries"], "", Goal(at_most=GOAL_QUERIES)),
            ]
        ratio = f"{_size(int(large))} / {_size(int(small))}"
        growth = {
            stat: results["results"][large]["pages"][page][f"{stat}_ms"]
            / results["results"][small]["pages"][page][f"{stat}_ms"]
            for stat in ("p50", "p95")
        }
        rows += [
            Figure(f"queue {page}: p95 {ratio}", growth["p95"], "x", Goal(at_most=GOAL_GROWTH)),
            # No goal: the p95s move with a shared machine's load, the p50s much less, so
            # this says whether a p95 ratio is the desk's growth or the noise.
            Figure(f"queue {page}: p50 {ratio}", growth["p50"], "x"),
        ]
    return rows


def notes(results: dict[str, Any]) -> list[str]:
    """Where the larger desk's slowest mention query spends its time, from EXPLAIN ANALYZE."""
    large = str(results["sizes"][-1])
    lines = []
    for page in PAGES:
        plans = results["results"][large]["pages"][page]["explain"]
        if not plans:
            continue
        slowest = max(plans, key=lambda plan: plan["execution_ms"])
        lines.append(
            f"queue {page}, {_size(int(large))}: {len(plans)} mention queries; the slowest took "
            f"{slowest['execution_ms']:.1f} ms, {slowest['costliest_node_ms']:.1f} ms of it in "
            f"{slowest['costliest_node']}"
        )
    return lines


def _size(mentions: int) -> str:
    if mentions >= 1_000_000 and mentions % 1_000_000 == 0:
        return f"{mentions // 1_000_000}M"
    return f"{mentions // 1_000}k"


def _measure_page(
    url: str, params: dict[str, str], *, agent_ids: list[int], quick: bool, explain_sql: bool
) -> tuple[PageTimes, list[dict[str, Any]]]:
    warm_up, requests, agent_requests = (
        (QUICK_WARM_UP, QUICK_REQUESTS, QUICK_AGENT_REQUESTS)
        if quick
        else (WARM_UP, REQUESTS, AGENT_REQUESTS)
    )
    client = _logged_in_client(agent_ids[0])
    for _ in range(warm_up):
        _get(client, url, params)
    with CaptureQueriesContext(connection) as captured:
        rows = _get(client, url, params)
    # Copied now: the next request's request_started signal empties the connection's log.
    queries = [query["sql"] for query in captured.captured_queries]
    plans = []
    if explain_sql:
        plans = [explain(sql) for sql in queries if _is_mention_read(sql)]
    seconds = [_timed_get(client, url, params) for _ in range(requests)]
    concurrent, wall = _concurrent(url, params, agent_ids=agent_ids, requests=agent_requests)
    times = PageTimes(
        p50_ms=percentile(seconds, 50) * 1000,
        p95_ms=percentile(seconds, 95) * 1000,
        concurrent_p50_ms=percentile(concurrent, 50) * 1000,
        concurrent_p95_ms=percentile(concurrent, 95) * 1000,
        concurrent_pages_per_second=len(concurrent) / wall,
        queries=len(queries),
        rows=rows,
    )
    return times, plans


def _is_mention_read(sql: str) -> bool:
    return sql.startswith("SELECT") and 'FROM "listening_mention"' in sql


def _logged_in_client(agent_id: int) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.get(pk=agent_id))
    return client


def _get(client: Client, url: str, params: dict[str, str]) -> int:
    """Request the page; the number of mention rows it shows."""
    response = client.get(url, params)
    if response.status_code != 200:
        raise BenchError(f"GET {url} {params} answered {response.status_code}")
    rows = response.content.count(ROW_MARKER)
    if not rows:
        raise BenchError(f"GET {url} {params} showed no mentions: the desk is not what was meant")
    return rows


def _timed_get(client: Client, url: str, params: dict[str, str]) -> float:
    start = time.perf_counter()
    _get(client, url, params)
    return time.perf_counter() - start


def _concurrent(
    url: str, params: dict[str, str], *, agent_ids: list[int], requests: int
) -> tuple[list[float], float]:
    """Every agent requests the page at once; each request's seconds, and the wall time."""
    seconds: list[float] = []
    errors: list[BaseException] = []
    ready = threading.Barrier(len(agent_ids) + 1)
    done = threading.Barrier(len(agent_ids) + 1)

    def agent(agent_id: int) -> None:
        mine = []
        try:
            client = _logged_in_client(agent_id)
            for _ in range(AGENT_WARM_UP):
                _get(client, url, params)
            ready.wait()
            mine = [_timed_get(client, url, params) for _ in range(requests)]
        except BaseException as error:  # reported by the main thread
            errors.append(error)
            ready.abort()
        finally:
            seconds.extend(mine)
            connections.close_all()  # this thread's connection only
            done.wait()

    threads = [
        threading.Thread(target=agent, args=(agent_id,), daemon=True) for agent_id in agent_ids
    ]
    for thread in threads:
        thread.start()
    # Broken when an agent failed before the start: its error is raised below.
    with contextlib.suppress(threading.BrokenBarrierError):
        ready.wait()
    start = time.perf_counter()
    done.wait()
    wall = time.perf_counter() - start
    for thread in threads:
        thread.join()
    if errors:
        raise BenchError(f"an agent's request failed: {errors[0]!r}") from errors[0]
    return seconds, wall
