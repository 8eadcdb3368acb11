"""The faults: each puts posts on X, breaks something real, waits for recovery and says
what was lost or doubled."""

from __future__ import annotations

import signal
import statistics
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from bench.chaos.checks import Outcome
from bench.chaos.rig import CLIENT_TIMEOUT_SECONDS, CREATE_POST, SEARCH, Chaos, wait_for


def kill_workers(chaos: Chaos, *, kills: int) -> Outcome:
    """kill -9 of whichever worker is mid-poll; it is restarted each time."""
    outcome = Outcome("kill -9 worker mid-poll", faults=kills, posts=0)
    recoveries: list[float] = []
    states: Counter[str] = Counter()
    for n in range(kills):
        ids = chaos.add_posts(chaos.rng.randint(150, 260), f"kill{n}")
        outcome.posts += len(ids)
        # Every page answers 0.15 s after X has done it: a poll is a while in flight.
        chaos.sim.slow_next(0.15, count=10, path=SEARCH)
        # Half the kills land while the worker waits on X, half while it is in PostgreSQL
        # (storing a page with the cursor row locked, or taking from the budget).
        state = ("waiting on X", "in the database")[n % 2]
        victim = wait_for(
            lambda state=state: chaos.worker_in_state(state), timeout=30, what=f"a worker {state}"
        )
        states[state] += 1
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(timeout=10)
        fault_end = time.monotonic()
        victim.log.close()
        # Started again at once, as a supervisor would; recovery is watched meanwhile (the
        # other worker carries on), and the next kill waits until both are up.
        with ThreadPoolExecutor(max_workers=1) as starter:
            restarted = starter.submit(chaos.start_worker, victim.name)
            step = Outcome("kill", faults=1, posts=len(ids))
            chaos.recover(step, ids, fault_end)
            chaos.workers[chaos.workers.index(victim)] = restarted.result()
        chaos.sim.clear_faults()
        outcome.lost += step.lost
        if step.recovery_seconds is not None:
            recoveries.append(step.recovery_seconds)
        if step.first_poll_seconds is not None:
            outcome.first_poll_seconds = max(
                outcome.first_poll_seconds or 0, step.first_poll_seconds
            )
        chaos.progress(
            f"kill {n + 1}/{kills}: worker {victim.name} {state}, {len(ids)} posts, "
            f"{'lost ' + str(step.lost) if step.lost else 'all stored'}"
            + (f" {step.recovery_seconds:.1f} s after the kill" if step.recovery_seconds else "")
        )
    if len(recoveries) == kills:
        outcome.recovery_seconds = max(recoveries)
    outcome.details = {
        "recovery_seconds_each": recoveries,
        "recovery_seconds_median": statistics.median(recoveries) if recoveries else None,
        "killed_while": dict(states),
        "note": "the killed worker restarts while the other carries on; recovery: from the "
        "kill to every post of its batch stored; the figure is the worst of the kills",
    }
    return outcome


def restart_redis(chaos: Chaos, *, down_seconds: float) -> Outcome:
    """Redis stopped (queued tasks lost: it keeps nothing on disk) and started again."""
    outcome = Outcome("Redis stopped and started", faults=1, posts=0)
    before = chaos.add_posts(120, "redis-before")
    chaos.recover(Outcome("", 0, 0), before, time.monotonic(), watch_polls=False)
    chaos.redis.stop()
    time.sleep(down_seconds / 2)
    during = chaos.add_posts(80, "redis-during")
    time.sleep(down_seconds / 2)
    chaos.redis.start()
    fault_end = time.monotonic()
    died = chaos.revive_workers()
    outcome.posts = len(before) + len(during)
    chaos.recover(outcome, before + during, fault_end)
    outcome.details = {
        "down_seconds": down_seconds,
        "workers_died": died + chaos.revive_workers(),
    }
    return outcome


def restart_postgresql(chaos: Chaos) -> Outcome:
    """`pg_ctl restart -m fast` while a worker holds a page in hand (page 2 answers slowly)."""
    outcome = Outcome("PostgreSQL restarted", faults=1, posts=0)
    ids = chaos.add_posts(260, "postgres")
    chaos.sim.slow_next(0, path=SEARCH)
    chaos.sim.slow_next(2.0, path=SEARCH)
    wait_for(lambda: chaos.worker_in_state("waiting on X"), timeout=20, what="a worker mid-poll")
    started = time.monotonic()
    chaos.postgres.restart()
    fault_end = time.monotonic()
    during = chaos.add_posts(40, "postgres-after")
    outcome.posts = len(ids) + len(during)
    chaos.recover(outcome, ids + during, fault_end)
    chaos.sim.clear_faults()
    outcome.details = {"restart_seconds": round(fault_end - started, 3)}
    return outcome


def simulator_fault(
    chaos: Chaos, name: str, inject: Callable[[], int], *, posts: int = 150
) -> Outcome:
    """Posts arrive while X misbehaves as `inject` sets up; it returns how many faults."""
    outcome = Outcome(name, faults=0, posts=0)
    outcome.faults = inject()
    ids = chaos.add_posts(posts, name.split()[0].lower())
    outcome.posts = len(ids)
    # The fault is over when X has used up every queued fault, or its outage has ended.
    wait_for(lambda: chaos.sim.faults_pending == 0, timeout=60, what=f"{name} to be used up")
    fault_end = time.monotonic()
    chaos.recover(outcome, ids, fault_end)
    return outcome


def storm_429(chaos: Chaos, seconds: float) -> Outcome:
    def inject() -> int:
        chaos.sim.fail_for(seconds, 429, path=SEARCH)
        return 1

    outcome = Outcome("X 429 storm", faults=1, posts=0)
    searches_before = _search_count(chaos)
    inject()
    storm_end = time.monotonic() + seconds
    ids = chaos.add_posts(150, "storm")
    time.sleep(max(0.0, storm_end - time.monotonic()))
    outcome.posts = len(ids)
    searches_during = _search_count(chaos) - searches_before
    chaos.recover(outcome, ids, storm_end)
    outcome.details = {
        "storm_seconds": seconds,
        "searches_during_storm": searches_during,
        "note": "X's 429 says when it resets (storm end + 1 s): Earshot waits until then",
    }
    return outcome


def _search_count(chaos: Chaos) -> int:
    return sum(1 for entry in chaos.sim.requests_log if entry[1] == SEARCH)


def server_errors(chaos: Chaos) -> Outcome:
    def inject() -> int:
        for status in (500, 502, 503, 500, 503, 504):
            chaos.sim.fail_next(status, path=SEARCH)
        return 6

    return simulator_fault(chaos, "X 5xx answers", inject)


def slow_answers(chaos: Chaos) -> Outcome:
    def inject() -> int:
        chaos.sim.slow_next(CLIENT_TIMEOUT_SECONDS + 1.5, count=3, path=SEARCH)
        return 3

    return simulator_fault(chaos, "X slower than the client timeout", inject)


def cut_connections(chaos: Chaos) -> Outcome:
    def inject() -> int:
        chaos.sim.cut_next(after_carrying_out=False, count=2, path=SEARCH)
        chaos.sim.cut_next(after_carrying_out=True, count=2, path=SEARCH)
        return 4

    return simulator_fault(chaos, "X cuts connections", inject)


def malformed_json(chaos: Chaos) -> Outcome:
    def inject() -> int:
        bodies = (
            b'{"data": [{"id": "17", "text": "@NorthwindHelp hi", "author_',  # cut off
            b"[]",  # JSON, but not X's object
            b"<html><body><h1>502 Bad Gateway</h1></body></html>",  # a proxy's page
        )
        for body in bodies:
            chaos.sim.fail_next(200, body=body, path=SEARCH)
        return len(bodies)

    return simulator_fault(chaos, "X malformed JSON", inject)


def reply_timeouts(chaos: Chaos, *, replies: int) -> Outcome:
    """Replies through the real worker while X carries out each post and then either hangs
    up (half of them) or answers only after the client has given up (the other half)."""
    outcome = Outcome("reply answer lost after X posted", faults=replies, posts=0)
    mention_ids = _unanswered_mentions(chaos, replies)
    posts_before = len(chaos.sim.received_posts)
    halves = (
        ("cut", mention_ids[: replies // 2]),
        ("slow", mention_ids[replies // 2 :]),
    )
    reply_ids: list[int] = []
    fault_end = time.monotonic()
    for kind, batch in halves:
        if kind == "cut":
            chaos.sim.cut_next(after_carrying_out=True, count=len(batch), path=CREATE_POST)
        else:
            chaos.sim.slow_next(CLIENT_TIMEOUT_SECONDS + 1.0, count=len(batch), path=CREATE_POST)
        reply_ids += [_submit_reply(chaos, mention_id) for mention_id in batch]
        wait_for(
            lambda: chaos.sim.faults_pending == 0, timeout=60, what="the reply faults to be used"
        )
        fault_end = time.monotonic()
    _replies_recover(chaos, outcome, reply_ids, posts_before, fault_end, chaos.recovery_timeout)
    outcome.details["note"] = "recovery: from the last fault to every reply marked sent"
    return outcome


# How long replies whose send task was lost may take: the sweeper (beat's
# resume_stalled_replies) gives a queued reply a new task once it is a minute late.
LOST_TASK_RECOVERY_TIMEOUT = 180


def replies_across_redis_restart(chaos: Chaos, *, replies: int) -> Outcome:
    """Replies waiting out their undo window when Redis stops and starts empty.

    Their send tasks were in Redis and in the workers' memory as countdown tasks; a worker
    that loses its broker connection drops what it held, and the restarted Redis has nothing.
    The sweeper finds them a minute late and sends them; none may be lost or sent twice.
    """
    from django.conf import settings

    outcome = Outcome("replies queued across a Redis restart", faults=1, posts=0)
    mention_ids = _unanswered_mentions(chaos, replies)
    posts_before = len(chaos.sim.received_posts)
    undo_seconds = settings.REPLY_UNDO_SECONDS
    settings.REPLY_UNDO_SECONDS = 5  # the tasks wait in Redis and the workers meanwhile
    try:
        reply_ids = [_submit_reply(chaos, mention_id) for mention_id in mention_ids]
    finally:
        settings.REPLY_UNDO_SECONDS = undo_seconds
    time.sleep(1)
    chaos.redis.stop()
    time.sleep(2)
    chaos.redis.start()
    fault_end = time.monotonic()
    died = chaos.revive_workers()
    _replies_recover(chaos, outcome, reply_ids, posts_before, fault_end, LOST_TASK_RECOVERY_TIMEOUT)
    outcome.details["workers_died"] = died + chaos.revive_workers()
    outcome.details["note"] = (
        "recovery: from Redis back to every reply sent; the sweeper waits for a reply to be a "
        "minute late (LOST_TASK_AFTER), and runs every few seconds here (every minute in beat)"
    )
    return outcome


def _unanswered_mentions(chaos: Chaos, count: int) -> list[int]:
    """`count` mentions nobody answered yet (posted and stored first, if there are not)."""
    from listening.models import Mention

    def unanswered() -> list[int]:
        return list(
            Mention.objects.filter(keyword_id=chaos.keyword_id, status="new")
            .order_by("id")
            .values_list("pk", flat=True)[:count]
        )

    if len(found := unanswered()) < count:
        posted = chaos.add_posts(2 * count, "to-answer")
        chaos.recover(Outcome("", 0, 0), posted, time.monotonic(), watch_polls=False)
        found = unanswered()
    return found


def _replies_recover(
    chaos: Chaos,
    outcome: Outcome,
    reply_ids: list[int],
    posts_before: int,
    fault_end: float,
    timeout: float,
) -> None:
    """Wait for every reply to be sent; count the lost ones (never on X) into `outcome`."""
    from responses.models import Reply, ReplyStatus

    deadline = fault_end + timeout
    while time.monotonic() < deadline:
        sent = Reply.objects.filter(pk__in=reply_ids, status=ReplyStatus.SENT).count()
        if sent == len(reply_ids):
            outcome.recovery_seconds = round(time.monotonic() - fault_end, 3)
            break
        time.sleep(0.1)
    statuses = Counter(Reply.objects.filter(pk__in=reply_ids).values_list("status", flat=True))
    # A reply lost is one never posted: not sent, and not on X either.
    on_x = {post["in_reply_to_tweet_id"] for post in chaos.sim.received_posts[posts_before:]}
    replied_to = dict(
        Reply.objects.filter(pk__in=reply_ids).values_list("pk", "mention__external_id")
    )
    outcome.lost = sum(1 for pk in reply_ids if replied_to[pk] not in on_x)
    outcome.posts = len(reply_ids)
    outcome.details = {
        "replies": len(reply_ids),
        "statuses": dict(statuses),
        "posts_received_by_x": len(chaos.sim.received_posts) - posts_before,
    }
    if statuses.get(ReplyStatus.SENT, 0) != len(reply_ids):
        outcome.recovery_seconds = None


def _submit_reply(chaos: Chaos, mention_id: int) -> int:
    from django.contrib.auth.models import User

    from responses.services.replies import reply_submit

    agent = User.objects.get(pk=chaos.agent_id)
    reply = reply_submit(
        mention_id=mention_id,
        agent=agent,
        text=f"Sorry about that! We are looking into your order now (case {mention_id}). ^CA",
        override_reason="chaos run: the same words on purpose",
    )
    return reply.pk
