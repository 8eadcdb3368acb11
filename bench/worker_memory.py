"""The worker memory benchmark: a real Celery worker's resident memory after 100k mentions.

The worker is started as docker-compose starts it (prefork, one child per core: 2 here) on
the throwaway database, against the X API simulator (in this process, on loopback) holding
100k generated posts (--quick: 10k) for two keywords. The benchmark enqueues the keywords'
`poll_keyword` tasks, the task beat's dispatcher sends, whenever the queue is empty, until
every post is stored; each task follows POLL_MAX_PAGES pages of 100 posts. Then it reads
from /proc the resident memory of the worker's main process and of each pool child:

- RSS, each process's own figure; the sum counts pages the children share with their parent
  (copy-on-write after the fork) once per process, so it overstates what the worker costs;
- PSS, each shared page divided among the processes sharing it: the sum is what the worker
  adds to the machine's memory, and the figure held against the 150 MB goal.

The peak of the sum, sampled every second during the ingest, is reported beside the end.

Uses the ORM at import: import it only after `django.setup()`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone

from bench import processes
from bench.report import Figure, Goal
from listening.models import Amplification, Author, Brand, Mention, PollCursor, RateBudget
from listening.services.budgets import budget_for_x
from listening.services.keywords import keyword_create
from listening.simulators.generator import generate_mentions
from listening.simulators.x_api import XApiSimulator, handle_user_id
from listening.tasks import poll_keyword

MENTIONS = 100_000
QUICK_MENTIONS = 10_000
GOAL_MB = 150.0
BRANDS = (("Alpha Coffee", "AlphaCoffee"), ("Beta Tea", "BetaTea"))
# No progress for this long means the worker is stuck: stop rather than wait forever.
STALL_TIMEOUT = 180.0
SAMPLE_EVERY = 1.0
UNLIMITED = 10**9
PROGRESS_EVERY = 20_000


class BenchError(RuntimeError):
    """The ingest did not finish: a memory figure of a half-done run would mean little."""


@dataclass(frozen=True)
class Memory:
    """Resident memory of a worker: its main process and each pool child, in kB."""

    main_rss_kb: int
    main_pss_kb: int
    children_rss_kb: list[int]
    children_pss_kb: list[int]

    @property
    def rss_total_kb(self) -> int:
        return self.main_rss_kb + sum(self.children_rss_kb)

    @property
    def pss_total_kb(self) -> int:
        return self.main_pss_kb + sum(self.children_pss_kb)


def run(
    *,
    quick: bool,
    seed: int,
    database_url: str,
    progress: Callable[[str], None],
    mentions: int | None = None,
) -> dict[str, Any]:
    count = mentions or (QUICK_MENTIONS if quick else MENTIONS)
    # The simulator logs every request at INFO: a thousand lines of no interest here.
    logging.getLogger("earshot.x_sim").setLevel(logging.WARNING)
    simulator = XApiSimulator(
        bearer_token=processes.SIM_BEARER,
        brand_user={"id": handle_user_id(BRANDS[0][1]), "username": BRANDS[0][1]},
        rate_limit=UNLIMITED,  # never throttle: waiting out a window is not what is measured
    )
    start = time.monotonic()
    for number, (name, handle) in enumerate(BRANDS):
        share = count // len(BRANDS) + (1 if number < count % len(BRANDS) else 0)
        load_simulator_for(simulator, brand_name=name, brand_handle=handle, count=share, seed=seed)
    progress(f"worker memory: {count:,} posts on the simulator in {time.monotonic() - start:.0f}s")
    keyword_ids = _keywords_prepare()
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
            worker = stack.start_worker(queue=queue)
            at_start = worker_memory(worker.pid)
            progress(
                f"worker memory: worker up, {_mb(at_start.pss_total_kb):.0f} MB PSS "
                f"({_mb(at_start.rss_total_kb):.0f} MB RSS) before any task; ingesting"
            )
            start = time.monotonic()
            peak, tasks = _ingest(
                stack,
                worker.pid,
                queue=queue,
                keyword_ids=keyword_ids,
                expected=count,
                progress=progress,
            )
            seconds = time.monotonic() - start
            # Idle for a moment: what the worker keeps, not what a task had in hand.
            time.sleep(2 * SAMPLE_EVERY)
            at_end = worker_memory(worker.pid)
    progress(
        f"worker memory: {count:,} mentions in {seconds:.0f}s ({tasks} tasks); "
        f"{_mb(at_end.pss_total_kb):.0f} MB PSS, {_mb(at_end.rss_total_kb):.0f} MB RSS"
    )
    return {
        "benchmark": "worker_memory",
        "mentions": count,
        "tasks": tasks,
        "seconds": round(seconds, 1),
        "pool": f"prefork, {processes.WORKER_CONCURRENCY} children",
        "poll_max_pages": settings.POLL_MAX_PAGES,
        "goal_mb": GOAL_MB,
        "at_start": _as_mb(at_start),
        "at_end": _as_mb(at_end),
        "peak_pss_total_mb": round(_mb(peak.pss_total_kb), 1),
        "peak_rss_total_mb": round(_mb(peak.rss_total_kb), 1),
    }


def figures(results: dict[str, Any]) -> list[Figure]:
    end = results["at_end"]
    goal = Goal(at_most=results["goal_mb"])
    label = f"worker after {results['mentions']:,} mentions"
    return [
        Figure(f"{label}: PSS, main + children", end["pss_total_mb"], "MB", goal),
        Figure(f"{label}: RSS, main + children", end["rss_total_mb"], "MB"),
        Figure(f"{label}: RSS, largest child", max(end["children_rss_mb"]), "MB"),
        Figure(f"{label}: PSS, peak during ingest", results["peak_pss_total_mb"], "MB"),
        Figure(
            "worker before any task: PSS, main + children",
            results["at_start"]["pss_total_mb"],
            "MB",
        ),
    ]


def notes(results: dict[str, Any]) -> list[str]:
    return [
        f"worker memory: {results['pool']}, {results['tasks']} poll tasks of up to "
        f"{results['poll_max_pages']} pages; RSS counts the pages the children share with "
        "the main process once per process, PSS divides them: the goal is held against PSS."
    ]


def load_simulator_for(
    simulator: XApiSimulator, *, brand_name: str, brand_handle: str, count: int, seed: int
) -> None:
    """`count` generated posts about one brand, spread over the last six days (recent
    search sees seven), oldest first."""
    generated = generate_mentions(
        brand_name=brand_name, brand_handle=brand_handle, count=count, seed=seed
    )
    step = min(timedelta(seconds=1), timedelta(days=6) / max(count, 1))
    newest = datetime.now(UTC) - timedelta(seconds=1)
    for position, mention in enumerate(generated):
        simulator.add_tweet(**mention, created_at=newest - step * (count - 1 - position))


def _keywords_prepare() -> list[int]:
    """One keyword per brand, alone in the database, each with a cursor past its first round
    and backfill, so that every poll reads on from where the last one stopped."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"TRUNCATE {Brand._meta.db_table}, {Author._meta.db_table} RESTART IDENTITY CASCADE"
        )
    keyword_ids = []
    for name, handle in BRANDS:
        brand = Brand.objects.create(
            name=name, x_handle=handle, x_bearer_token=processes.SIM_BEARER
        )
        # Polled only when the benchmark says so: beat does not run here.
        keyword = keyword_create(
            brand=brand, query=f'"{name}" OR @{handle}', poll_interval_seconds=3600
        )
        PollCursor.objects.update_or_create(
            keyword=keyword, defaults={"backfill_done_at": timezone.now()}
        )
        keyword_ids.append(keyword.pk)
    # X allows an app 450 searches in 15 minutes, and Earshot keeps to that: 1,000 pages
    # would take over half an hour of waiting, which is not what is measured. A budget as
    # large as the simulator's own limit lets every page through.
    spec = budget_for_x(brand)
    # An earlier benchmark of the run (latency) may have spent from the same credential.
    RateBudget.objects.update_or_create(
        key=spec.key,
        defaults={
            "limit": UNLIMITED,
            "window_seconds": spec.window_seconds,
            "remaining": UNLIMITED,
            "reset_at": timezone.now() + timedelta(days=1),
        },
    )
    return keyword_ids


def _ingest(
    stack: processes.ProcessStack,
    worker_pid: int,
    *,
    queue: str,
    keyword_ids: list[int],
    expected: int,
    progress: Callable[[str], None],
) -> tuple[Memory, int]:
    """Keep a poll task waiting in the queue until every post is stored; the peak memory
    (by PSS total) and the number of tasks sent."""
    broker = redis.Redis.from_url(settings.REDIS_URL)
    peak = worker_memory(worker_pid)
    tasks = 0
    stored = 0
    progressed_at = time.monotonic()
    try:
        while stored < expected:
            stack.check_alive()
            if broker.llen(queue) == 0:
                poll_keyword.apply_async((keyword_ids[tasks % len(keyword_ids)],), queue=queue)
                tasks += 1
            time.sleep(SAMPLE_EVERY / 4)
            now_stored = Mention.objects.count() + Amplification.objects.count()
            if now_stored > stored:
                if now_stored // PROGRESS_EVERY > stored // PROGRESS_EVERY:
                    progress(
                        f"worker memory: {now_stored:,} stored, "
                        f"{_mb(worker_memory(worker_pid).pss_total_kb):.0f} MB PSS"
                    )
                stored, progressed_at = now_stored, time.monotonic()
            elif time.monotonic() - progressed_at > STALL_TIMEOUT:
                raise BenchError(
                    f"no mention stored for {STALL_TIMEOUT:.0f}s: {stored:,} of {expected:,} "
                    "(see var/bench-worker.log)"
                )
            sample = worker_memory(worker_pid)
            if sample.pss_total_kb > peak.pss_total_kb:
                peak = sample
    finally:
        broker.close()
    return peak, tasks


def worker_memory(pid: int) -> Memory:
    """The main process's and its children's VmRSS and Pss, from /proc (Linux).

    A child replaced while it is read (WORKER_MAX_MEMORY_PER_CHILD_MB) is left out: it is
    exiting, and its successor is not forked yet.
    """
    children = []
    for child in _children(pid):
        try:
            children.append((_status_kb(child, "VmRSS"), _pss_kb(child)))
        except (OSError, BenchError):
            continue
    return Memory(
        main_rss_kb=_status_kb(pid, "VmRSS"),
        main_pss_kb=_pss_kb(pid),
        children_rss_kb=[rss for rss, _pss in children],
        children_pss_kb=[pss for _rss, pss in children],
    )


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "children").read_text().split()
        except OSError:  # a thread that ended meanwhile
            continue
        found += [int(child) for child in text]
    return sorted(found)


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise BenchError(f"/proc/{pid}/status has no {field}")


def _pss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise BenchError(f"/proc/{pid}/smaps_rollup has no Pss")


def _mb(kb: float) -> float:
    return kb / 1024


def _as_mb(memory: Memory) -> dict[str, Any]:
    return {
        "main_rss_mb": round(_mb(memory.main_rss_kb), 1),
        "main_pss_mb": round(_mb(memory.main_pss_kb), 1),
        "children_rss_mb": [round(_mb(kb), 1) for kb in memory.children_rss_kb],
        "children_pss_mb": [round(_mb(kb), 1) for kb in memory.children_pss_kb],
        "rss_total_mb": round(_mb(memory.rss_total_kb), 1),
        "pss_total_mb": round(_mb(memory.pss_total_kb), 1),
    }
