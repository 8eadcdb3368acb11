"""The claim-next benchmark: 50 agents pressing "claim next" at once, for a fixed time.

A desk of 1M mentions with 50k open (--quick: 100k and 5k) is filled by `bench.desk`. Each of
50 clients, with its own database connection and its own agent, makes one warm-up claim,
waits for the others, then calls `mention_claim_next(agent=...)` in a loop for 15 seconds
(--quick: 5) and records every mention it was handed. Afterwards:

- claims per second: the timed claims over the time from the start to the last client's end;
- double claims: ids handed to more than one caller (warm-up claims included);
- disagreements: the table's claimed rows held by the clients' agents, compared with what
  each caller was handed, as (agent, mention) pairs. Both must be zero.

Clients are threads by default. On this 2-core machine threads outran processes (see
BENCHMARKS.md); `--claim-clients processes` forks one process per client instead, for a
machine with cores enough that the GIL, not the database, would set the pace.

Uses the ORM at import: import it only after `django.setup()`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from bench.desk import agents_create, desk_fill
from bench.explain import explain
from bench.report import Figure, Goal, percentile
from listening.models import Mention, MentionStatus
from responses.services.claims import mention_claim_next

SIZE = 1_000_000
QUICK_SIZE = 100_000
OPEN_SHARE = 0.05
CLAIMED_SHARE = 0.02  # of the open ones, held (or lapsed) by agents outside the benchmark
CLIENTS = 50
SECONDS = 15.0
QUICK_SECONDS = 5.0
# Long enough for the slowest warm-up claim on a loaded 2-core machine.
RESULT_TIMEOUT = 600.0

GOAL_RATE = 500.0


class BenchError(RuntimeError):
    """The race did not run as intended; its figures would mean nothing."""


@dataclass
class ClientResult:
    agent_id: int
    warm_up_ids: list[int] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    ran_out: bool = False
    finished_at: float = 0.0
    error: str = ""


def run(*, quick: bool, seed: int, clients: str, progress: Callable[[str], None]) -> dict[str, Any]:
    size, seconds = (QUICK_SIZE, QUICK_SECONDS) if quick else (SIZE, SECONDS)
    desk_agents = agents_create(prefix="claim-desk-", count=5)
    agent_ids = agents_create(prefix="claim-agent-", count=CLIENTS)
    desk = desk_fill(
        mentions=size,
        open_share=OPEN_SHARE,
        claimed_share=CLAIMED_SHARE,
        agent_ids=desk_agents,
        seed=seed,
    )
    progress(
        f"claim-next: desk of {desk.mentions:,} mentions ({desk.claimable:,} claimable) "
        f"filled in {desk.seconds:.1f}s; {CLIENTS} {clients} claim for {seconds:.0f}s"
    )
    plan = explain(_claim_sql(desk_agents[0]))
    results, started = _race(agent_ids, seconds=seconds, clients=clients)
    elapsed = max(result.finished_at for result in results) - started
    claims = sum(len(result.ids) for result in results)
    check = _check(results, agent_ids=agent_ids)
    latencies = [value for result in results for value in result.seconds]
    outcome = {
        "benchmark": "claim",
        "mentions": desk.mentions,
        "claimable": desk.claimable,
        "clients": CLIENTS,
        "client_kind": clients,
        "seconds_planned": seconds,
        "seconds": round(elapsed, 3),
        "claims": claims,
        "warm_up_claims": sum(len(result.warm_up_ids) for result in results),
        "claims_per_second": round(claims / elapsed, 1),
        "claim_p50_ms": round(percentile(latencies, 50) * 1000, 2) if latencies else None,
        "claim_p95_ms": round(percentile(latencies, 95) * 1000, 2) if latencies else None,
        "ran_out": any(result.ran_out for result in results),
        **check,
        "explain": plan,
    }
    progress(
        f"claim-next: {claims:,} claims in {elapsed:.1f}s = {claims / elapsed:,.1f}/s, "
        f"{check['double_claims']} double claims, {check['disagreements']} disagreements"
    )
    return outcome


def figures(results: dict[str, Any]) -> list[Figure]:
    label = f"claim-next, {results['clients']} {results['client_kind']}"
    rows = [
        Figure(f"{label}: claims/s", results["claims_per_second"], "/s", Goal(at_least=GOAL_RATE)),
        Figure(f"{label}: double claims", results["double_claims"], "", Goal(at_most=0)),
        Figure(
            f"{label}: table vs callers, pairs that differ",
            results["disagreements"],
            "",
            Goal(at_most=0),
        ),
    ]
    if results["claim_p50_ms"] is not None:
        rows += [
            Figure(f"{label}: one claim, p50", results["claim_p50_ms"], "ms"),
            Figure(f"{label}: one claim, p95", results["claim_p95_ms"], "ms"),
        ]
    return rows


def notes(results: dict[str, Any]) -> list[str]:
    plan = results["explain"]
    lines = [
        f"claim-next on {results['mentions']:,} mentions: its SELECT ... FOR UPDATE SKIP LOCKED "
        f"took {plan['execution_ms']:.1f} ms alone, {plan['costliest_node_ms']:.1f} ms of it in "
        f"{plan['costliest_node']}"
    ]
    if results["ran_out"]:
        lines.append("claim-next: the clients ran out of claimable mentions before the time was up")
    return lines


def _claim_sql(agent_id: int) -> str:
    """The SQL of one claim-next, captured from a claim that is rolled back."""
    agent = get_user_model().objects.get(pk=agent_id)
    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        mention_claim_next(agent=agent)
        transaction.set_rollback(True)
    for query in captured.captured_queries:
        if "SKIP LOCKED" in query["sql"]:
            return query["sql"]
    raise BenchError("mention_claim_next ran no SELECT ... FOR UPDATE SKIP LOCKED")


def _race(
    agent_ids: list[int], *, seconds: float, clients: str
) -> tuple[list[ClientResult], float]:
    """Start every client together; their results and the moment they started."""
    if clients == "processes":
        context: Any = multiprocessing.get_context("fork")
        results: Any = context.Queue()
        start = context.Barrier(len(agent_ids) + 1)
        # A forked child must not share the parent's socket to PostgreSQL.
        connections.close_all()
        workers: list[Any] = [
            context.Process(target=_client, args=(agent_id, seconds, start, results), daemon=True)
            for agent_id in agent_ids
        ]
    else:
        results = queue.Queue()
        start = threading.Barrier(len(agent_ids) + 1)
        workers = [
            threading.Thread(target=_client, args=(agent_id, seconds, start, results), daemon=True)
            for agent_id in agent_ids
        ]
    for worker in workers:
        worker.start()
    try:
        # Broken when a client failed before the start: its result says why.
        with contextlib.suppress(threading.BrokenBarrierError):
            start.wait(timeout=RESULT_TIMEOUT)
        started = time.monotonic()
        # Read before joining: a process cannot exit while its result is still unread.
        collected = [results.get(timeout=RESULT_TIMEOUT + seconds) for _ in workers]
    finally:
        for worker in workers:
            if isinstance(worker, multiprocessing.process.BaseProcess) and worker.is_alive():
                worker.join(timeout=5)
                if worker.is_alive():
                    worker.terminate()
            worker.join()
    errors = [result.error for result in collected if result.error]
    if errors:
        raise BenchError(f"{len(errors)} claim-next clients failed; the first:\n{errors[0]}")
    return collected, started


def _client(agent_id: int, seconds: float, start: Any, results: Any) -> None:
    """One agent: a warm-up claim, then claim-next in a loop until the time is up."""
    result = ClientResult(agent_id=agent_id)
    try:
        agent = get_user_model().objects.get(pk=agent_id)
        warm_up = mention_claim_next(agent=agent)
        if warm_up is not None:
            result.warm_up_ids.append(warm_up.pk)
        start.wait(timeout=RESULT_TIMEOUT)
        end = time.monotonic() + seconds
        while (before := time.monotonic()) < end:
            mention = mention_claim_next(agent=agent)
            if mention is None:
                result.ran_out = True
                break
            result.seconds.append(time.monotonic() - before)
            result.ids.append(mention.pk)
    except BaseException:  # reported by the parent, which raises
        result.error = traceback.format_exc()
        start.abort()  # nobody waits for a client that will never arrive
    finally:
        result.finished_at = time.monotonic()
        connections.close_all()  # this client's own connection
        results.put(result)


def _check(results: list[ClientResult], *, agent_ids: list[int]) -> dict[str, int]:
    """Compare what callers were handed with each other and with the table."""
    handed = [
        (result.agent_id, mention_id)
        for result in results
        for mention_id in (*result.warm_up_ids, *result.ids)
    ]
    ids = [mention_id for _agent, mention_id in handed]
    held = set(
        Mention.objects.filter(
            status=MentionStatus.CLAIMED, claimed_by_id__in=agent_ids
        ).values_list("claimed_by_id", "id")
    )
    return {
        "handed_out": len(handed),
        "double_claims": len(ids) - len(set(ids)),
        "held_in_table": len(held),
        "disagreements": len(held ^ set(handed)),
    }
