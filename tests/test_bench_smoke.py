"""The end-to-end benchmarks run, briefly, as `make bench` and `make load` run them.

Each starts gunicorn, a Celery worker (and beat) as real processes on a database of its own
beside the test database, with the X API simulator on loopback. These tests hold that they
work from end to end and produce their figures; they hold no timing (figures are for
BENCHMARKS.md, on a quiet machine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.throwaway import connect

REPO_ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 600


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    # The benchmarks create their own database on the server of DATABASE_URL (the one the
    # test run was given), and use REDIS_URL's Redis with a queue of their own.
    env = {**os.environ, "EARSHOT_DEVELOPMENT": "1"}
    result = subprocess.run(
        [sys.executable, *argv],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def _database_exists(name: str) -> bool:
    connection = connect(os.environ["DATABASE_URL"], dbname="postgres")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            return cursor.fetchone() is not None
    finally:
        connection.close()


def test_latency_benchmark_times_posts_through_web_worker_and_beat(tmp_path: Path) -> None:
    output = tmp_path / "results.json"

    result = _run(["-m", "bench", "--only", "latency", "--samples", "2", "--output", str(output)])

    results = json.loads(output.read_text())
    latency = results["latency"]
    assert results["benchmarks"] == ["latency"]
    assert latency["samples"] == 2
    assert len(latency["seconds"]) == 2
    assert all(seconds > 0 for seconds in latency["seconds"])
    assert latency["p95_seconds"] == max(latency["seconds"])
    assert latency["live_check_errors"] == 0
    assert latency["browser_poll_seconds"] == 1.0  # hx-trigger="every 1s" on the queue rows
    names = [figure["figure"] for figure in results["figures"]]
    assert "poll-to-queue, 2 posts: p95" in names
    assert "poll-to-queue, 2 posts: p95" in result.stdout
    # Its database is gone with it.
    assert not [line for line in result.stderr.splitlines() if "Traceback" in line]
    database = next(
        line.rsplit(" ", 1)[1]
        for line in result.stderr.splitlines()
        if "database earshot_bench_" in line
    )
    assert not _database_exists(database)


def test_worker_memory_benchmark_reads_a_prefork_worker_after_its_ingest(tmp_path: Path) -> None:
    output = tmp_path / "results.json"

    _run(
        [
            "-m", "bench", "--only", "worker_memory", "--worker-mentions", "2000",
            "--output", str(output),
        ]
    )  # fmt: skip

    memory = json.loads(output.read_text())["worker_memory"]
    assert memory["mentions"] == 2000
    assert memory["tasks"] >= 2  # two keywords, each polled at least once
    for moment in ("at_start", "at_end"):
        figures = memory[moment]
        assert len(figures["children_rss_mb"]) == 2  # the prefork pool's two children
        assert figures["main_rss_mb"] > 0
        assert figures["pss_total_mb"] == pytest.approx(
            figures["main_pss_mb"] + sum(figures["children_pss_mb"]), abs=0.2
        )
        # PSS shares the pages the children hold in common: never more than RSS.
        assert figures["pss_total_mb"] <= figures["rss_total_mb"]
    assert memory["peak_pss_total_mb"] >= memory["at_start"]["pss_total_mb"]


def test_load_test_runs_agents_without_errors_or_double_work(tmp_path: Path) -> None:
    output = tmp_path / "load_results.json"

    _run(
        [
            "-m", "bench.load", "--users", "5", "--duration", "15", "--mentions", "2000",
            "--think-seconds", "1", "--live-check-seconds", "1", "--output", str(output),
        ]
    )  # fmt: skip

    results = json.loads(output.read_text())
    assert results["users"] == 5
    assert results["total"]["requests"] > 0
    assert results["total"]["failures"] == 0
    assert results["failures"] == []
    for request in (
        "POST /login/ (POST)",
        "GET /queue/",
        "GET /queue/ (live check)",
        "POST /queue/claim-next/",
        "GET /mentions/[id]/",
    ):
        assert results["requests"][request]["requests"] > 0, request
        assert results["requests"][request]["p95_ms"] is not None, request
    assert results["claims"] > 0
    assert results["double_claims"] == 0
    assert results["double_replies_in_database"] == 0
    assert results["double_replies_on_x"] == 0
    # Every reply the agents sent reached X, once; none failed or was left behind.
    assert results["replies_sent"] == results["posts_received_by_x"]
    assert results["replies_failed"] == 0
    assert results["replies_left_unsent"] is False


def test_double_claims_are_overlapping_holds_by_different_agents() -> None:
    from bench.load import double_claims

    holds = [
        [1, "ann", 0.0, 10.0],
        [1, "bob", 10.0, 20.0],  # after ann let go: fine
        [2, "ann", 0.0, 5.0],
        [2, "ann", 4.0, 8.0],  # ann again (claim-next gives back her own): fine
        [3, "ann", 0.0, 10.0],
        [3, "bob", 9.0, 12.0],  # bob while ann held it: a double claim
    ]

    assert double_claims(holds) == 1


def test_ingest_benchmark_stores_every_post_and_scores_each_repetition_afresh(
    tmp_path: Path,
) -> None:
    output = tmp_path / "results.json"

    _run(
        ["-m", "bench", "--only", "ingest", "--mentions", "300", "--repeat", "2"]
        + ["--output", str(output)]
    )

    ingest = json.loads(output.read_text())["ingest"]
    assert (ingest["mentions"], ingest["repetitions"]) == (300, 2)
    assert set(ingest["figures"]) == {
        "earshot ingest",
        "VADER alone",
        "bare batched upsert",
        "earshot ingest, amplified",
    }
    # No repetition finds its scores remembered from the one before: each scores as many
    # texts as the first, at most one per distinct text.
    first, second = ingest["ingest_vader_calls_per_repetition"]
    assert first == second
    assert 0 < first <= ingest["distinct_texts"] < 300
