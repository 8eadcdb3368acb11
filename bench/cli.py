"""`python -m bench`: run the benchmarks, print one table, write one bench/results.json.

- ingest: how close polling comes to the cost of VADER itself (bench/ingest.py);
- queue: the triage queue page at 10k and 1M mentions (bench/queue_page.py);
- claim: 50 agents pressing "claim next" at once (bench/claim_next.py);
- scheduler: 200 keywords sharing one X app's search budget (bench/scheduler.py);
- drafts: drafts per second and their sameness beside real brand replies (bench/drafts.py);
- dashboard: the report page and `report --json` at 1M mentions and 300k replies
  (bench/dashboard.py);
- latency: a post on X to the queue's live check, through gunicorn, worker and beat as
  real processes (bench/latency.py);
- worker_memory: a real Celery worker's resident memory after ingesting 100k mentions
  (bench/worker_memory.py).

The 50-agent load test is `make load` (bench/load.py), not one of these: it runs for minutes
against a server it starts, and writes bench/load_results.json.

All of them run in one database created for the run and dropped after it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import ingest
from bench.machine import git_commit, git_dirty, machine_info
from bench.report import Figure, machine_line, table
from bench.throwaway import django_setup, throwaway_database

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_PATH = Path(__file__).resolve().parent / "results.json"
# In this order whatever order --only names them: ingest starts from the empty database.
BENCHMARKS = (
    "ingest",
    "queue",
    "claim",
    "scheduler",
    "drafts",
    "dashboard",
    "latency",
    "worker_memory",
)
CLAIM_CLIENT_KINDS = ("threads", "processes")


def _benchmark_list(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"choose among {', '.join(BENCHMARKS)} (comma-separated), not {value!r}"
        )
    return [name for name in BENCHMARKS if name in names]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only",
        type=_benchmark_list,
        default=list(BENCHMARKS),
        metavar="NAMES",
        help=f"comma-separated benchmarks to run (default all: {','.join(BENCHMARKS)})",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--mentions",
        type=int,
        metavar="N",
        help=f"ingest: generated mentions to ingest (default {ingest.DEFAULT_MENTIONS:,})",
    )
    size.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke run: ingest {ingest.QUICK_MENTIONS:,} mentions, queue at 10k and 100k, "
        "claim-next on 100k for 5 s",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=ingest.DEFAULT_REPETITIONS,
        metavar="R",
        help="ingest: repetitions per figure; the median is reported "
        f"(default {ingest.DEFAULT_REPETITIONS})",
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="seed of the generator and the desks (default 1)"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="PATH",
        help="ingest: after the timed runs, run the ingest once more under cProfile and save "
        "the stats",
    )
    parser.add_argument(
        "--claim-clients",
        choices=CLAIM_CLIENT_KINDS,
        default=CLAIM_CLIENT_KINDS[0],
        help="claim: the 50 clients are threads (default) or forked processes",
    )
    parser.add_argument(
        "--samples",
        type=int,
        metavar="N",
        help="latency: posts to time (default 20; --quick: 3)",
    )
    parser.add_argument(
        "--worker-mentions",
        type=int,
        metavar="N",
        help="worker_memory: mentions the worker ingests (default 100,000; --quick: 10,000)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS_PATH,
        metavar="PATH",
        help="where to write the results as JSON (default bench/results.json)",
    )
    args = parser.parse_args(argv)
    if args.mentions is None:
        args.mentions = ingest.QUICK_MENTIONS if args.quick else ingest.DEFAULT_MENTIONS
    if args.mentions < 1 or args.repeat < 1:
        parser.error("--mentions and --repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    server_url = os.environ.get("DATABASE_URL", "")
    if not server_url:
        print(
            "DATABASE_URL is not set: the benchmark creates its own database on that server.",
            file=sys.stderr,
        )
        return 2
    # SIGTERM and SIGHUP become SystemExit, so the throwaway database is dropped as on Ctrl-C.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda signum, frame: sys.exit(128 + signum))

    database = f"earshot_bench_{os.getpid()}"
    _progress(f"{', '.join(args.only)}{' (quick)' if args.quick else ''}, database {database}")
    with throwaway_database(server_url, database) as database_url:
        django_setup(database_url=database_url)
        from django.core.management import call_command

        from bench import measure  # the ORM is usable only from here on

        try:
            call_command("migrate", verbosity=0)
            postgresql = measure.postgresql_version()
            sections = _run(args, database_url=database_url)
        finally:
            measure.connections_close()
    figures, notes = _figures_and_notes(sections)
    results = summarise(args, sections, figures, notes, machine_info(postgresql=postgresql))
    print(report(results, figures))
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    _progress(f"wrote {args.output}")
    return 0


def _run(args: argparse.Namespace, *, database_url: str) -> dict[str, dict[str, Any]]:
    from bench import claim_next, drafts, queue_page, scheduler  # they use the ORM at import

    sections: dict[str, dict[str, Any]] = {}
    if "ingest" in args.only:
        sections["ingest"] = ingest.run(args, database_url=database_url)
    if "queue" in args.only:
        sections["queue"] = queue_page.run(quick=args.quick, seed=args.seed, progress=_progress)
    if "claim" in args.only:
        sections["claim"] = claim_next.run(
            quick=args.quick, seed=args.seed, clients=args.claim_clients, progress=_progress
        )
    if "scheduler" in args.only:
        sections["scheduler"] = scheduler.run(seed=args.seed, progress=_progress)
    if "drafts" in args.only:
        sections["drafts"] = drafts.run(progress=_progress)
    if "dashboard" in args.only:
        from bench import dashboard

        sections["dashboard"] = dashboard.run(quick=args.quick, seed=args.seed, progress=_progress)
    if "latency" in args.only:
        from bench import latency

        sections["latency"] = latency.run(
            quick=args.quick,
            seed=args.seed,
            database_url=database_url,
            samples=args.samples,
            progress=_progress,
        )
    if "worker_memory" in args.only:
        from bench import worker_memory

        sections["worker_memory"] = worker_memory.run(
            quick=args.quick,
            seed=args.seed,
            database_url=database_url,
            mentions=args.worker_mentions,
            progress=_progress,
        )
    return sections


def _figures_and_notes(sections: dict[str, dict[str, Any]]) -> tuple[list[Figure], list[str]]:
    from bench import claim_next, drafts, queue_page, scheduler

    figures: list[Figure] = []
    notes: list[str] = []
    if "ingest" in sections:
        figures += ingest.figures(sections["ingest"])
    if "queue" in sections:
        figures += queue_page.figures(sections["queue"])
        notes += queue_page.notes(sections["queue"])
    if "claim" in sections:
        figures += claim_next.figures(sections["claim"])
        notes += claim_next.notes(sections["claim"])
    if "scheduler" in sections:
        figures += scheduler.figures(sections["scheduler"])
        notes += scheduler.notes(sections["scheduler"])
    if "drafts" in sections:
        figures += drafts.figures(sections["drafts"])
        notes += drafts.notes(sections["drafts"])
    if "dashboard" in sections:
        from bench import dashboard

        figures += dashboard.figures(sections["dashboard"])
        notes += dashboard.notes(sections["dashboard"])
    for name in ("latency", "worker_memory"):
        if name in sections:
            module = importlib.import_module(f"bench.{name}")
            figures += module.figures(sections[name])
            notes += module.notes(sections[name])
    return figures, notes


def summarise(
    args: argparse.Namespace,
    sections: dict[str, dict[str, Any]],
    figures: list[Figure],
    notes: list[str],
    machine: dict[str, Any],
) -> dict[str, Any]:
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(REPO_ROOT),
        "uncommitted_changes": git_dirty(REPO_ROOT),
        "benchmarks": list(sections),
        "quick": args.quick,
        "seed": args.seed,
        "machine": machine,
        "figures": [figure.as_json() for figure in figures],
        "notes": notes,
        **sections,
    }


def report(results: dict[str, Any], figures: list[Figure]) -> str:
    lines = []
    if "ingest" in results:
        lines.append(ingest.report(results["ingest"]))
    commit = results["commit"] or "unknown"
    if results["uncommitted_changes"]:
        commit += " with uncommitted changes"
    lines += [
        "",
        f"Summary: {', '.join(results['benchmarks'])}{' (--quick)' if results['quick'] else ''}, "
        f"commit {commit}, {results['timestamp']}",
        machine_line(results["machine"]),
        "",
        table(figures),
    ]
    if results["notes"]:
        lines += ["", *results["notes"]]
    return "\n".join(lines)


def _progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)
