"""The ingest benchmark: how close Earshot's polling comes to the cost of VADER itself.

Three figures from one run, each the median of a few repetitions, in items per second:

- earshot ingest: `keyword_poll` against the X API simulator from an empty cursor until every
  generated mention is stored (HTTP, tweepy, parsing, VADER, upserts, cursor writes);
- VADER alone: `polarity_scores` over the same texts, every one of them, in one loop (the
  ingest scores each distinct text once and starts every repetition with no remembered score);
- bare batched upsert: the same rows through plain psycopg2 in batches of 100, no HTTP, no VADER;
- earshot ingest, amplified: the same ingest over a stream where 10 % of the posts are retweets
  of earlier ones and 5 % exact copies of earlier texts by other people: what folding costs.

Everything happens in a database created for the run and dropped after it.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import math
import pstats
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.machine import git_commit, machine_info
from bench.report import Figure, Goal
from listening.simulators.generator import generate_mentions
from listening.simulators.x_api import XApiSimulator, handle_user_id

REPO_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_MENTIONS = 20_000
QUICK_MENTIONS = 2_000
DEFAULT_REPETITIONS = 3
TARGET_RATIO = 0.6

BRAND_NAME = "Bench Coffee"
BRAND_HANDLE = "BenchCoffee"
# Every generated mention names the brand or @-mentions its handle (see the generator).
QUERY = f'"{BRAND_NAME}" OR @{BRAND_HANDLE}'
BEARER_TOKEN = "bench-bearer"
PAGE_SIZE = 100  # what the X client asks for

INGEST = "earshot ingest"
VADER = "VADER alone"
UPSERT = "bare batched upsert"
AMPLIFIED = "earshot ingest, amplified"
REPOST_SHARE = 0.10
COPY_SHARE = 0.05


@dataclass
class ServerClock:
    """Time the in-process simulator spends answering: it shares the GIL with the ingest."""

    seconds: float = 0.0
    requests: int = 0

    def wrap(self, simulator: XApiSimulator) -> None:
        answer = simulator.handle

        def timed_handle(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return answer(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.requests += 1

        # An instance attribute: the simulator's HTTP handler calls `simulator.handle`.
        simulator.handle = timed_handle  # type: ignore[method-assign]

    def reset(self) -> None:
        self.seconds = 0.0
        self.requests = 0


@dataclass
class Timings:
    seconds: dict[str, list[float]] = field(
        default_factory=lambda: {INGEST: [], VADER: [], UPSERT: [], AMPLIFIED: []}
    )
    simulator_seconds: list[float] = field(default_factory=list)
    # Texts VADER scored in each plain ingest: each distinct text once.
    vader_calls: list[int] = field(default_factory=list)


def run(args: argparse.Namespace, *, database_url: str) -> dict[str, Any]:
    """The ingest benchmark in the (migrated, empty) throwaway database: its results."""
    from django.conf import settings

    from bench import measure  # the ORM is usable only once Django is set up

    simulator = XApiSimulator(
        bearer_token=BEARER_TOKEN,
        brand_user={"id": handle_user_id(BRAND_HANDLE), "username": BRAND_HANDLE},
        rate_limit=10**9,  # never throttle: waiting out a window is not ingest
    )
    tweets, authors = load_simulator(simulator, count=args.mentions, seed=args.seed)
    amplified = XApiSimulator(
        bearer_token=BEARER_TOKEN,
        brand_user={"id": handle_user_id(BRAND_HANDLE), "username": BRAND_HANDLE},
        rate_limit=10**9,
    )
    amplified_tweets, _ = load_simulator(
        amplified, count=args.mentions, seed=args.seed, amplify=True
    )
    clock = ServerClock()
    clock.wrap(simulator)
    # The simulator logs every request at INFO: hundreds of lines, and time, per run.
    logging.getLogger("earshot.x_sim").setLevel(logging.WARNING)
    _progress(f"ingest: {len(tweets):,} mentions, {args.repeat} repetitions")
    # The simulator thread runs only while the ingest does: later benchmarks may fork.
    with simulator, amplified:
        # Read when the X client is built, as production reads it from X_API_BASE_URL.
        settings.X_API_BASE_URL = simulator.base_url
        timings = _time_repetitions(
            args, measure, tweets, authors, database_url, simulator, clock, amplified, settings
        )
    return summarise(args, timings, tweets, measure.postgresql_version())


def load_simulator(
    simulator: XApiSimulator, *, count: int, seed: int, amplify: bool = False
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Seed the simulator with `count` generated mentions, oldest first, newest a second ago.

    With `amplify`, REPOST_SHARE of them are retweets of an earlier one and COPY_SHARE exact
    copies of an earlier text, each by the generated post's own author.
    Returns the tweets as the simulator stored them and the generator's authors by id.
    """
    mentions = generate_mentions(
        brand_name=BRAND_NAME, brand_handle=BRAND_HANDLE, count=count, seed=seed
    )
    # Spread over at most six days: recent search only sees the last seven.
    step = min(timedelta(seconds=1), timedelta(days=6) / count)
    newest = datetime.now(UTC) - timedelta(seconds=1)
    draw = random.Random(seed)
    tweets: list[dict[str, Any]] = []
    for position, mention in enumerate(mentions):
        created_at = newest - step * (count - 1 - position)
        roll = draw.random() if amplify and tweets else 1.0
        if roll < REPOST_SHARE + COPY_SHARE:
            earlier = draw.choice(tweets)
            if roll < REPOST_SHARE:
                mention = {
                    **mention,
                    "text": f"RT @{earlier['author_username']}: {earlier['text']}"[:280],
                    "referenced_tweets": [{"type": "retweeted", "id": earlier["id"]}],
                }
            else:
                mention = {**mention, "text": earlier["text"]}
        tweet = simulator.add_tweet(**mention, created_at=created_at)
        tweets.append({**tweet, "author_username": mention["author"]["username"]})
    authors = {str(mention["author"]["id"]): mention["author"] for mention in mentions}
    return tweets, authors


def _time_repetitions(
    args: argparse.Namespace,
    measure: Any,
    tweets: list[dict[str, Any]],
    authors: dict[str, dict[str, Any]],
    database_url: str,
    simulator: XApiSimulator,
    clock: ServerClock,
    amplified: XApiSimulator,
    settings: Any,
) -> Timings:
    from listening.services.sentiment import sentiment_cache_clear, sentiment_texts_scored

    setup = measure.database_prepare(
        brand_name=BRAND_NAME, brand_handle=BRAND_HANDLE, bearer_token=BEARER_TOKEN, query=QUERY
    )
    count = len(tweets)
    # One page more than needed: the poll must end because the results ran out, not the pages.
    max_pages = math.ceil(count / PAGE_SIZE) + 1
    texts = [tweet["text"] for tweet in tweets]
    batches = measure.upsert_batches(tweets=tweets, authors=authors, setup=setup)
    _warm_up()

    def ingest() -> float:
        # Every ingest starts with no remembered scores: a repetition must score its texts
        # as the first one did, not find them all remembered from the one before.
        sentiment_cache_clear()
        return measure.time_earshot_ingest(
            keyword_id=setup.keyword_id, expected=count, max_pages=max_pages
        )

    timings = Timings()
    for repetition in range(1, args.repeat + 1):
        measure.listening_tables_reset(keyword_id=setup.keyword_id)
        simulator.clear_logs()
        clock.reset()
        timings.seconds[INGEST].append(ingest())
        timings.simulator_seconds.append(clock.seconds)
        timings.vader_calls.append(sentiment_texts_scored())
        timings.seconds[VADER].append(measure.time_vader_alone(texts))
        measure.listening_tables_reset(keyword_id=setup.keyword_id)
        timings.seconds[UPSERT].append(
            measure.time_bare_upsert(batches=batches, database_url=database_url, expected=count)
        )
        measure.listening_tables_reset(keyword_id=setup.keyword_id)
        settings.X_API_BASE_URL = amplified.base_url
        timings.seconds[AMPLIFIED].append(ingest())
        settings.X_API_BASE_URL = simulator.base_url
        _progress(
            f"repetition {repetition}/{args.repeat}: "
            + ", ".join(f"{name} {values[-1]:.2f}s" for name, values in timings.seconds.items())
            + f" (simulator answering: {clock.seconds:.2f}s of the ingest)"
        )
    if args.profile:
        measure.listening_tables_reset(keyword_id=setup.keyword_id)
        profile_to(args.profile, ingest)
    return timings


def _warm_up() -> None:
    """Load VADER's lexicon in earshot's cache: a worker pays that once, not per poll."""
    from listening.services.sentiment import sentiment_score

    sentiment_score(text="warming up")


def profile_to(path: Path, work: Callable[[], float]) -> None:
    profiler = cProfile.Profile()
    profiler.runcall(work)
    profiler.dump_stats(path)
    _progress(f"profile of one ingest saved to {path}; the 25 costliest calls, cumulative:")
    pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(25)


def summarise(
    args: argparse.Namespace, timings: Timings, tweets: list[dict[str, Any]], postgresql: str
) -> dict[str, Any]:
    count = len(tweets)
    medians = {name: statistics.median(values) for name, values in timings.seconds.items()}
    rates = {name: count / seconds for name, seconds in medians.items()}
    figures = {
        name: {
            "items_per_second": round(rates[name], 1),
            "median_seconds": round(medians[name], 4),
            "seconds": [round(value, 4) for value in timings.seconds[name]],
            "ratio_to_vader_alone": round(rates[name] / rates[VADER], 3),
        }
        for name in timings.seconds
    }
    ratio = rates[INGEST] / rates[VADER]
    # Approximate: the simulator thread shares the GIL, so this is what the ingest's own side
    # would do against an instant X API.
    own_seconds = statistics.median(
        ingest - simulator
        for ingest, simulator in zip(
            timings.seconds[INGEST], timings.simulator_seconds, strict=True
        )
    )
    return {
        "benchmark": "ingest",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(REPO_ROOT),
        "mentions": count,
        "repetitions": args.repeat,
        "seed": args.seed,
        "query": QUERY,
        "figures": figures,
        "ingest_over_vader_alone": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "target_met": ratio >= TARGET_RATIO,
        "ingest_vader_calls": max(timings.vader_calls),
        # The same in every repetition: each starts with no remembered score.
        "ingest_vader_calls_per_repetition": timings.vader_calls,
        "distinct_texts": len({tweet["text"] for tweet in tweets}),
        "ingest_simulator_seconds": [round(value, 4) for value in timings.simulator_seconds],
        "ingest_without_simulator_items_per_second": round(count / own_seconds, 1),
        "machine": machine_info(postgresql=postgresql),
    }


def report(results: dict[str, Any]) -> str:
    machine = results["machine"]
    figures = results["figures"]
    ratio = results["ingest_over_vader_alone"]
    lines = [
        "",
        f"Ingest benchmark: {results['mentions']:,} mentions, median of "
        f"{results['repetitions']} repetitions, commit {results['commit'] or 'unknown'}",
        f"Machine: {machine['cpu']}, {machine['cores']} cores ({machine['usable_cores']} usable), "
        f"{machine['python']}, PostgreSQL {machine['postgresql']}",
        "",
        f"{'figure':<22}{'items/s':>12}{'x VADER alone':>16}",
    ]
    for name, figure in figures.items():
        lines.append(
            f"{name:<22}{figure['items_per_second']:>12,.0f}{figure['ratio_to_vader_alone']:>16.2f}"
        )
    simulator = statistics.median(results["ingest_simulator_seconds"])
    own_rate = results["ingest_without_simulator_items_per_second"]
    lines += [
        "",
        f"earshot ingest made {results['ingest_vader_calls']:,} VADER calls for "
        f"{results['mentions']:,} mentions with {results['distinct_texts']:,} distinct texts "
        "(each text is scored once per process; VADER alone scores every mention).",
        f"The simulator, in the same process, spent {simulator:.2f}s of the ingest's median "
        f"{figures[INGEST]['median_seconds']:.2f}s answering; without it, roughly "
        f"{own_rate:,.0f} items/s ({own_rate / figures[VADER]['items_per_second']:.2f} x VADER alone).",
        "",
        f"ingest / VADER alone = {ratio:.2f} (target >= {results['target_ratio']:.2f}): "
        + ("target met" if results["target_met"] else "target NOT met"),
    ]
    return "\n".join(lines)


def figures(results: dict[str, Any]) -> list[Figure]:
    """The ingest's rows in the summary table; its own report above gives the detail."""
    rates = results["figures"]
    return [Figure(f"ingest: {name}", rates[name]["items_per_second"], "/s") for name in rates] + [
        Figure(
            "ingest: earshot ingest / VADER alone",
            results["ingest_over_vader_alone"],
            "x",
            Goal(at_least=results["target_ratio"]),
        )
    ]


def _progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)
