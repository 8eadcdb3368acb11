"""`make chaos`: its checks see what they are meant to see, and its quick run, end to end
against real processes of its own, loses nothing, doubles nothing and recovers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.chaos.checks import count_double_replies, count_duplicates, missing_posts
from listening.models import Amplification, AmplificationKind, Mention
from tests.factories import make_author, make_mention

REPO_ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = [
    "kill -9 worker mid-poll",
    "Redis stopped and started",
    "PostgreSQL restarted",
    "X 429 storm",
    "X 5xx answers",
    "X slower than the client timeout",
    "X cuts connections",
    "X malformed JSON",
    "reply answer lost after X posted",
    "whole run",
]


@pytest.mark.django_db
def test_the_checks_count_a_lost_post_a_post_stored_twice_and_a_fold_counted_twice(brand):
    mention = make_mention(brand=brand, external_id="101", text="@NorthwindHelp late again")
    make_mention(brand=brand, external_id="102", text="@NorthwindHelp still nothing")
    fold = Amplification.objects.create(
        mention=mention,
        platform=mention.platform,
        external_id="103",
        author=make_author(username="echo"),
        kind=AmplificationKind.REPOST,
        posted_at=mention.posted_at,
    )
    Mention.objects.filter(pk=mention.pk).update(amplification_count=1)

    assert missing_posts(["101", "102", "103", "104"]) == ["104"]
    assert count_duplicates() == 0

    # The same post folded under a mention and stored as one: stored twice.
    make_mention(brand=brand, external_id="103", text="RT @someone: @NorthwindHelp late again")
    # A fold counted twice on its mention.
    Mention.objects.filter(pk=mention.pk).update(amplification_count=2)

    assert count_duplicates() == 2
    assert missing_posts(["101", fold.external_id]) == []


def test_a_second_post_to_the_same_customer_post_is_a_double_reply():
    posts = [
        {"id": "1", "in_reply_to_tweet_id": "500"},
        {"id": "2", "in_reply_to_tweet_id": "501"},
        {"id": "3", "in_reply_to_tweet_id": "500"},
        {"id": "4", "in_reply_to_tweet_id": "500"},
    ]

    assert count_double_replies(posts) == 2
    assert count_double_replies(posts[:2]) == 0


def test_the_quick_chaos_run_loses_nothing_doubles_nothing_and_recovers_from_every_fault(
    tmp_path,
):
    results_path = tmp_path / "chaos.json"

    # Its own PostgreSQL, Redis, simulator and workers: this test's database is not used.
    run = subprocess.run(
        [sys.executable, "-m", "bench.chaos", "--quick", "--results", str(results_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert run.returncode == 0, run.stdout + run.stderr[-4000:]
    results = json.loads(results_path.read_text())
    rows = {row["scenario"]: row for row in results["scenarios"]}
    assert list(rows) == SCENARIOS
    for row in rows.values():
        assert (row["lost"], row["duplicated"], row["double_replies"]) == (0, 0, 0), row
        assert row["recovery_seconds"] is not None and row["passed"], row
    assert results["passed"] is True
    # The faults did happen, where they were meant to.
    kills = rows["kill -9 worker mid-poll"]
    assert kills["faults"] == 3
    assert kills["details"]["killed_while"] == {"waiting on X": 2, "in the database": 1}
    assert len(kills["details"]["recovery_seconds_each"]) == 3
    whole_run = rows["whole run"]
    assert whole_run["details"]["dispatches_refused"] > 0  # Redis was really down a while
    assert whole_run["posts"] == sum(row["posts"] for row in results["scenarios"][:-2])
    assert rows["X 429 storm"]["details"]["searches_during_storm"] >= 1
    # Every reply posted once: each first answer lost, none posted again.
    replies = rows["reply answer lost after X posted"]["details"]
    assert replies["statuses"] == {"sent": 6}
    assert replies["posts_received_by_x"] == 6
    # One table, every row passing.
    table = run.stdout.splitlines()
    header = next(n for n, line in enumerate(table) if line.startswith("scenario"))
    rows_printed = table[header + 1 : header + 1 + len(SCENARIOS)]
    assert [line.rsplit(None, 1)[-1] for line in rows_printed] == ["pass"] * len(SCENARIOS)
