"""`python -m bench.chaos`: run every scenario, print one table, write the JSON."""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.chaos import scenarios
from bench.chaos.checks import Outcome
from bench.chaos.rig import (
    CLIENT_TIMEOUT_SECONDS,
    DISPATCH_EVERY_SECONDS,
    FULL_KILLS,
    QUICK_KILLS,
    REPO_ROOT,
    RESULTS_PATH,
    SWEEP_EVERY_SECONDS,
    Chaos,
    retrying,
)
from bench.machine import git_commit, git_dirty, machine_info
from bench.report import machine_line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos",
        description="Faults against real processes: what is lost, doubled or answered twice.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_KILLS} kills instead of {FULL_KILLS}, shorter outages, fewer replies",
    )
    parser.add_argument("--kills", type=int, help="worker kills (default 20; 3 with --quick)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the stream and the timing")
    parser.add_argument("--results", type=Path, default=RESULTS_PATH, help="where the JSON goes")
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep var/chaos/run-PID (server and worker logs) even when every scenario passed",
    )
    parser.add_argument(
        "--only",
        type=_scenario_list,
        metavar="NAMES",
        help=f"comma-separated scenarios (default all: {','.join(SCENARIOS)}; --quick leaves "
        "out the last)",
    )
    args = parser.parse_args(argv)
    if args.only is None:
        args.only = list(QUICK_SCENARIOS if args.quick else SCENARIOS)
    if args.kills is None:
        args.kills = QUICK_KILLS if args.quick else FULL_KILLS
    if args.kills < 1:
        parser.error("--kills must be at least 1")
    return args


# Every scenario by name, in the order they run; the last is not in --quick: it lasts over a
# minute by design (a lost send task is noticed a minute late).
SCENARIOS = (
    "kills", "redis", "postgres", "429", "5xx", "slow", "cut", "malformed", "replies",
    "replies-redis",
)  # fmt: skip
QUICK_SCENARIOS = SCENARIOS[:-1]


def _scenario_list(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"choose among {', '.join(SCENARIOS)} (comma-separated), not {value!r}"
        )
    return [name for name in SCENARIOS if name in names]


def run(chaos: Chaos, args: argparse.Namespace) -> list[Outcome]:
    quick = args.quick
    steps: dict[str, Callable[[], Outcome]] = {
        "kills": lambda: scenarios.kill_workers(chaos, kills=args.kills),
        "redis": lambda: scenarios.restart_redis(chaos, down_seconds=2 if quick else 5),
        "postgres": lambda: scenarios.restart_postgresql(chaos),
        "429": lambda: scenarios.storm_429(chaos, 2 if quick else 5),
        "5xx": lambda: scenarios.server_errors(chaos),
        "slow": lambda: scenarios.slow_answers(chaos),
        "cut": lambda: scenarios.cut_connections(chaos),
        "malformed": lambda: scenarios.malformed_json(chaos),
        "replies": lambda: scenarios.reply_timeouts(chaos, replies=6 if quick else 20),
        "replies-redis": lambda: scenarios.replies_across_redis_restart(chaos, replies=10),
    }
    outcomes: list[Outcome] = []
    duplicates = 0
    for name in args.only:
        outcome = steps[name]()
        duplicates = chaos.check(outcome, duplicates)
        chaos.progress(
            f"{outcome.scenario}: lost {outcome.lost}, duplicated {outcome.duplicated}, "
            f"double replies {outcome.double_replies}, recovery {outcome.recovery_seconds} s"
        )
        outcomes.append(outcome)
    # Last, over the whole run: every post ever put on X is stored exactly once.
    everything = Outcome("whole run", faults=0, posts=len(chaos.posted))
    chaos.recover(everything, list(chaos.posted), time.monotonic(), watch_polls=False)
    everything.duplicated = retrying(chaos.duplicates)
    everything.double_replies = chaos.double_replies()
    everything.details = {
        "kinds": dict(Counter(chaos.posted.values())),
        "dispatches_refused": chaos.dispatch_failures,
    }
    outcomes.append(everything)
    return outcomes


def table(outcomes: list[Outcome]) -> str:
    rows = [("scenario", "faults", "posts", "lost", "duplicated", "double replies",
             "first poll s", "recovery s", "result")]  # fmt: skip
    for o in outcomes:
        rows.append(
            (
                o.scenario,
                str(o.faults),
                str(o.posts),
                str(o.lost),
                str(o.duplicated),
                str(o.double_replies),
                "" if o.first_poll_seconds is None else f"{o.first_poll_seconds:.2f}",
                "no recovery" if o.recovery_seconds is None else f"{o.recovery_seconds:.2f}",
                "pass" if o.passed else "FAIL",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda signum, frame: sys.exit(128 + signum))
    started = time.monotonic()
    chaos = Chaos(seed=args.seed, recovery_timeout=60, progress=_progress)
    with chaos.running():
        outcomes = run(chaos, args)
        from bench.measure import postgresql_version

        postgresql = retrying(postgresql_version)
    results = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(REPO_ROOT),
        "uncommitted_changes": git_dirty(REPO_ROOT),
        "quick": args.quick,
        "scenarios_run": args.only,
        "kills": args.kills,
        "seed": args.seed,
        "seconds": round(time.monotonic() - started, 1),
        "machine": machine_info(postgresql=postgresql),
        "dispatcher": "driven: poll_keyword sent whenever the queue is empty "
        f"(checked every {DISPATCH_EVERY_SECONDS} s), resume_stalled_replies every "
        f"{SWEEP_EVERY_SECONDS} s; beat not running",
        "client_timeout_seconds": CLIENT_TIMEOUT_SECONDS,
        "scenarios": [outcome.as_json() for outcome in outcomes],
        "passed": all(outcome.passed for outcome in outcomes),
    }
    commit = results["commit"] or "unknown"
    if results["uncommitted_changes"]:
        commit += " with uncommitted changes"
    print(
        f"Chaos{' (--quick)' if args.quick else ''}: commit {commit}, {results['timestamp']}, "
        f"{results['seconds']} s"
    )
    print(machine_line(results["machine"]))
    print()
    print(table(outcomes))
    for outcome in outcomes:
        if died := outcome.details.get("workers_died"):
            print(
                f"{outcome.scenario}: worker(s) {', '.join(died)} died of it and were started "
                "again, as docker-compose's restart policy would (see BENCHMARKS.md, Chaos)"
            )
    args.results.write_text(json.dumps(results, indent=2, default=str) + "\n")
    _progress(f"wrote {args.results}")
    if results["passed"] and not args.keep_logs:
        shutil.rmtree(chaos.directory, ignore_errors=True)
    else:
        _progress(f"the servers' and workers' logs are in {chaos.directory}")
    return 0 if results["passed"] else 1


_STARTED = time.monotonic()


def _progress(message: str) -> None:
    print(f"chaos {time.monotonic() - _STARTED:5.1f} s: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
