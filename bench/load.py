"""`make load`: 50 simulated agents working a desk of 100k mentions for 5 minutes, on loopback.

    python -m bench.load [--users 50] [--duration 300] [--mentions 100000]

In a database created for the run and dropped after it (on the server of DATABASE_URL):
a desk filled by bench/desk.py (5 % of the mentions open, a few of those held by other
agents), one agent account per simulated agent, and the X API simulator (in this process,
on loopback) holding every open mention's post so that replies have something to answer.
Then gunicorn and a prefork Celery worker as real processes (bench/processes.py), and
locust, headless, running bench/locustfile.py against gunicorn for the duration
(LOAD_DURATION, in seconds or as locust writes it: 300, 90s, 5m).

Afterwards, once the replies sent in the last seconds have left:

- per request type: requests, failures, p50, p95 and p99 (locust's figures);
- double claims: two agents holding one mention at the same time, from the agents' own notes
  of what they held when (the claim's answer to the request that let go of it);
- double replies: mentions with more than one live reply in the database, and posts the
  simulator received twice for one mention. All three must be 0.

The figures are printed and written to bench/load_results.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import processes
from bench.machine import git_commit, git_dirty, machine_info
from bench.report import Figure, Goal, machine_line, table
from bench.throwaway import django_setup, throwaway_database

REPO_ROOT = processes.REPO_ROOT
RESULTS_PATH = Path(__file__).resolve().parent / "load_results.json"
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
USERS = 50
DURATION = "300"
MENTIONS = 100_000
OPEN_SHARE = 0.05
CLAIMED_SHARE = 0.02
DESK_AGENTS = 5
USERNAME_PREFIX = "load-agent-"
PASSWORD = "load test password"
# Replies leave REPLY_UNDO_SECONDS after they are sent: wait for the last ones.
DRAIN_TIMEOUT = 120.0
LOCUST_STOP_TIMEOUT = 30
_DURATION = re.compile(r"^(\d+)([smh]?)$")


class LoadError(RuntimeError):
    """The load test could not run as intended."""


def duration_seconds(value: str) -> int:
    """300, "300", "90s", "5m", "1h" as seconds."""
    found = _DURATION.match(str(value).strip())
    if found is None:
        raise argparse.ArgumentTypeError(f"a duration is seconds or 90s / 5m / 1h, not {value!r}")
    number, unit = int(found.group(1)), found.group(2)
    seconds = number * {"": 1, "s": 1, "m": 60, "h": 3600}[unit]
    if seconds < 1:
        raise argparse.ArgumentTypeError("the duration must be at least 1 s")
    return seconds


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--users", type=int, default=USERS, help=f"agents (default {USERS})")
    parser.add_argument(
        "--spawn-rate", type=float, default=5.0, help="agents started per second (default 5)"
    )
    parser.add_argument(
        "--duration",
        type=duration_seconds,
        default=duration_seconds(os.environ.get("LOAD_DURATION") or DURATION),
        help="how long the agents work, after they have all started "
        "(default LOAD_DURATION, else 300 s)",
    )
    parser.add_argument(
        "--mentions", type=int, default=MENTIONS, help=f"the desk's size (default {MENTIONS:,})"
    )
    parser.add_argument(
        "--think-seconds",
        type=float,
        default=5.0,
        help="an agent's time on a claimed mention before it acts (default 5)",
    )
    parser.add_argument(
        "--live-check-seconds",
        type=float,
        default=3.0,
        help="seconds between an agent's live checks of the queue (default 3)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)
    if args.users < 1 or args.mentions < 100:
        parser.error("--users must be at least 1 and --mentions at least 100")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    server_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    if not server_url or not redis_url:
        print("DATABASE_URL and REDIS_URL must be set (make load sets both).", file=sys.stderr)
        return 2
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda signum, frame: sys.exit(128 + signum))
    database = f"earshot_load_{os.getpid()}"
    _progress(f"{args.users} agents for {args.duration}s on {args.mentions:,} mentions")
    with throwaway_database(server_url, database) as database_url:
        django_setup(database_url=database_url)
        from bench import measure

        try:
            results = _run(args, database_url=database_url, redis_url=redis_url)
            results["machine"] = machine_info(postgresql=measure.postgresql_version())
        finally:
            measure.connections_close()
    print(report(results))
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    _progress(f"wrote {args.output}")
    return 0


def _run(args: argparse.Namespace, *, database_url: str, redis_url: str) -> dict[str, Any]:
    from django.core.management import call_command

    from bench.desk import agents_create, desk_fill

    call_command("migrate", verbosity=0)
    desk_agents = agents_create(prefix="load-desk-", count=DESK_AGENTS)
    _agents_create(count=args.users)
    desk = desk_fill(
        mentions=args.mentions,
        open_share=OPEN_SHARE,
        claimed_share=CLAIMED_SHARE,
        agent_ids=desk_agents,
        seed=args.seed,
    )
    simulator = _simulator_with_open_mentions()
    _progress(
        f"desk of {desk.mentions:,} mentions ({desk.claimable:,} claimable) in "
        f"{desk.seconds:.0f}s; the simulator holds their posts"
    )
    queue = processes.queue_name()
    with simulator, tempfile.TemporaryDirectory(prefix="earshot-load-") as scratch:
        env = processes.app_environment(
            database_url=database_url,
            redis_url=redis_url,
            queue=queue,
            x_api_base_url=simulator.base_url,
            extra={},
        )
        with processes.ProcessStack(env) as stack:
            base_url = stack.start_web(port=processes.free_port())
            stack.start_worker(queue=queue)
            _progress(f"gunicorn and worker up; locust: {args.users} agents for {args.duration}s")
            prefix = Path(scratch) / "locust"
            holds_path = Path(scratch) / "holds.json"
            _locust(args, base_url=base_url, prefix=prefix, holds_path=holds_path, stack=stack)
            drained = _replies_drain(stack)
        posts = simulator.received_posts
        stats = read_locust_stats(prefix.with_name("locust_stats.csv"))
        failures = read_locust_failures(prefix.with_name("locust_failures.csv"))
        holds = json.loads(holds_path.read_text()) if holds_path.exists() else []
    if not holds and stats["total"]["requests"]:
        raise LoadError(
            "the agents' notes of their claims are missing: locust did not stop cleanly"
        )
    return {
        "benchmark": "load",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(REPO_ROOT),
        "uncommitted_changes": git_dirty(REPO_ROOT),
        "users": args.users,
        "duration_seconds": args.duration,
        "think_seconds": args.think_seconds,
        "live_check_seconds": args.live_check_seconds,
        "mentions": desk.mentions,
        "claimable_at_start": desk.claimable,
        "gunicorn_workers": processes.GUNICORN_WORKERS,
        "worker_concurrency": processes.WORKER_CONCURRENCY,
        "requests": stats["by_name"],
        "total": stats["total"],
        "failures": failures,
        "claims": len(holds),
        "double_claims": double_claims(holds),
        **_replies_check(posts),
        "replies_left_unsent": not drained,
    }


def _agents_create(*, count: int) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from config.roles import AGENT

    group = Group.objects.get(name=AGENT)
    user_model = get_user_model()
    for number in range(1, count + 1):
        user = user_model.objects.create_user(
            username=f"{USERNAME_PREFIX}{number:02d}", password=PASSWORD
        )
        user.groups.add(group)


def _simulator_with_open_mentions() -> Any:
    """The X simulator holding the post of every open mention, under its own id and author:
    X refuses a reply to a post it does not have."""
    from bench.desk import BRAND_HANDLE
    from listening.models import OPEN_STATUSES, Mention
    from listening.simulators.x_api import XApiSimulator, handle_user_id

    # The simulator logs every request at INFO: every reply, of no interest here.
    logging.getLogger("earshot.x_sim").setLevel(logging.WARNING)
    simulator = XApiSimulator(
        bearer_token=processes.SIM_BEARER,
        consumer_key=processes.SIM_CONSUMER_KEY,
        access_token=processes.SIM_ACCESS_TOKEN,
        brand_user={"id": handle_user_id(BRAND_HANDLE), "username": BRAND_HANDLE},
        post_rate_limit=10**9,  # 50 agents' replies: X's per-user limit is not under test
    )
    open_mentions = Mention.objects.filter(status__in=OPEN_STATUSES).values_list(
        "external_id", "text", "posted_at", "author__external_id", "author__username"
    )
    for external_id, text, posted_at, author_id, username in open_mentions.iterator():
        simulator.add_tweet(
            id=external_id,
            text=text,
            created_at=posted_at,
            author={"id": author_id, "username": username, "name": username},
        )
    return simulator


def _locust(
    args: argparse.Namespace,
    *,
    base_url: str,
    prefix: Path,
    holds_path: Path,
    stack: processes.ProcessStack,
) -> None:
    ramp = args.users / args.spawn_rate
    env = {
        **os.environ,
        "LOAD_USERNAME_PREFIX": USERNAME_PREFIX,
        "LOAD_PASSWORD": PASSWORD,
        "LOAD_CLAIMS_PATH": str(holds_path),
        "LOAD_THINK_SECONDS": str(args.think_seconds),
        "LOAD_LIVE_CHECK_SECONDS": str(args.live_check_seconds),
    }
    argv = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--users", str(args.users), "--spawn-rate", str(args.spawn_rate),
        "--run-time", f"{round(args.duration + ramp)}s", "--host", base_url,
        "--csv", str(prefix), "--only-summary", "--stop-timeout", str(LOCUST_STOP_TIMEOUT),
        "--loglevel", "WARNING",
    ]  # fmt: skip
    log_path = processes.LOG_DIR / "bench-locust.log"
    with open(log_path, "wb") as log:
        locust = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + args.duration + ramp + LOCUST_STOP_TIMEOUT + 60
            while locust.poll() is None:
                stack.check_alive()
                if time.monotonic() > deadline:
                    raise LoadError("locust did not stop at the end of its run time")
                time.sleep(1)
        finally:
            if locust.poll() is None:
                locust.terminate()
                locust.wait(timeout=30)
    # Locust exits 1 when some requests failed: that is a figure, not a crash.
    if locust.returncode not in (0, 1):
        raise LoadError(f"locust exited with {locust.returncode}: see {log_path}")


def _replies_drain(stack: processes.ProcessStack) -> bool:
    """Wait until no reply is queued or being sent; False if some still were at the timeout."""
    from responses.models import Reply, ReplyStatus

    deadline = time.monotonic() + DRAIN_TIMEOUT
    pending = Reply.objects.filter(status__in=[ReplyStatus.QUEUED, ReplyStatus.SENDING])
    while pending.exists():
        if time.monotonic() > deadline:
            return False
        stack.check_alive()
        time.sleep(1)
    return True


def double_claims(holds: list[list[Any]]) -> int:
    """Pairs of different agents whose holds of one mention overlap in time.

    A hold runs from the claim's answer to the request letting go of it, the part of it
    that is surely held: an overlap of two such spans is two agents holding it at once.
    """
    by_mention: dict[int, list[tuple[float, float, str]]] = defaultdict(list)
    for mention_id, username, start, end in holds:
        by_mention[mention_id].append((start, end, username))
    doubles = 0
    for spans in by_mention.values():
        spans.sort()
        for index, (start, end, username) in enumerate(spans):
            for other_start, other_end, other in spans[index + 1 :]:
                if other_start >= end:
                    break
                if other != username and other_start < end and start < other_end:
                    doubles += 1
    return doubles


def _replies_check(posts: list[dict[str, Any]]) -> dict[str, int]:
    from django.db.models import Count

    from responses.models import Reply, ReplyStatus

    live = Reply.objects.exclude(status__in=[ReplyStatus.FAILED, ReplyStatus.RETURNED])
    twice_in_database = (
        live.values("mention_id").annotate(replies=Count("id")).filter(replies__gt=1).count()
    )
    per_post = Counter(post["in_reply_to_tweet_id"] for post in posts)
    return {
        "replies_sent": Reply.objects.filter(status=ReplyStatus.SENT).count(),
        "replies_failed": Reply.objects.filter(status=ReplyStatus.FAILED).count(),
        "posts_received_by_x": len(posts),
        "double_replies_in_database": twice_in_database,
        "double_replies_on_x": sum(1 for count in per_post.values() if count > 1),
    }


def read_locust_stats(path: Path) -> dict[str, Any]:
    """Locust's per-request-type figures (its --csv stats file), in milliseconds."""
    by_name: dict[str, dict[str, Any]] = {}
    total: dict[str, Any] = {}
    with path.open(newline="") as file:
        for row in csv.DictReader(file):
            figures = {
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "p50_ms": _number(row["50%"]),
                "p95_ms": _number(row["95%"]),
                "p99_ms": _number(row["99%"]),
                "max_ms": _number(row["Max Response Time"]),
                "per_second": round(float(row["Requests/s"]), 2),
            }
            if row["Name"] == "Aggregated":
                total = figures
            else:
                by_name[f"{row['Type']} {row['Name']}"] = figures
    if not total:
        raise LoadError(f"{path} has no Aggregated row: did locust run?")
    return {"by_name": by_name, "total": total}


def read_locust_failures(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(newline="") as file:
        return [
            {
                "request": f"{row['Method']} {row['Name']}",
                "error": row["Error"],
                "occurrences": int(row["Occurrences"]),
            }
            for row in csv.DictReader(file)
        ]


def _number(value: str) -> float | None:
    return None if value in ("", "N/A") else float(value)


def figures(results: dict[str, Any]) -> list[Figure]:
    total = results["total"]
    rows = [
        Figure("load: requests", total["requests"]),
        Figure("load: failed requests", total["failures"], "", Goal(at_most=0)),
        Figure("load: double claims", results["double_claims"], "", Goal(at_most=0)),
        Figure(
            "load: double replies (database)",
            results["double_replies_in_database"],
            "",
            Goal(at_most=0),
        ),
        Figure("load: double replies (X)", results["double_replies_on_x"], "", Goal(at_most=0)),
        Figure("load: all requests, p50", total["p50_ms"] or 0, "ms"),
        Figure("load: all requests, p95", total["p95_ms"] or 0, "ms"),
    ]
    for name, row in results["requests"].items():
        rows.append(
            Figure(f"load: {name}, p95 ({row['requests']:,} requests)", row["p95_ms"] or 0, "ms")
        )
    return rows


def report(results: dict[str, Any]) -> str:
    commit = results["commit"] or "unknown"
    if results["uncommitted_changes"]:
        commit += " with uncommitted changes"
    lines = [
        "",
        f"Load: {results['users']} agents for {results['duration_seconds']}s on "
        f"{results['mentions']:,} mentions, commit {commit}, {results['timestamp']}",
        machine_line(results["machine"]),
        f"gunicorn {results['gunicorn_workers']} sync workers, Celery prefork "
        f"{results['worker_concurrency']}; an agent checks the queue every "
        f"{results['live_check_seconds']:g}s and spends {results['think_seconds']:g}s on a mention",
        "",
        f"{'request':<44}{'count':>8}{'failed':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}",
    ]
    for name, row in [*results["requests"].items(), ("all", results["total"])]:
        lines.append(
            f"{name:<44}{row['requests']:>8,}{row['failures']:>8,}"
            f"{_ms(row['p50_ms']):>9}{_ms(row['p95_ms']):>9}{_ms(row['p99_ms']):>9}"
        )
    lines += [
        "",
        f"claims {results['claims']:,}, replies sent {results['replies_sent']:,} "
        f"(failed {results['replies_failed']}), posts received by X "
        f"{results['posts_received_by_x']:,}",
        "",
        table(figures(results)[:5]),
    ]
    if results["failures"]:
        lines += ["", "Failures:"]
        lines += [
            f"  {row['occurrences']:>5} x {row['request']}: {row['error']}"
            for row in results["failures"]
        ]
    if results["replies_left_unsent"]:
        lines += ["", f"Some replies were still queued {DRAIN_TIMEOUT:.0f}s after the end."]
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _progress(message: str) -> None:
    print(f"load: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
