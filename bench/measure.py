"""The three timed figures of the ingest benchmark, against the throwaway database.

Uses the ORM at import: import it only after `django.setup()` (bench.ingest does).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, connections
from django.utils import timezone
from psycopg2.extras import Json, execute_values
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from bench.throwaway import connect
from listening.models import (
    Amplification,
    Author,
    Brand,
    Mention,
    MentionStatus,
    PollCursor,
    RateBudget,
    SentimentLabel,
)
from listening.services.keywords import keyword_create
from listening.services.polling import keyword_poll

PLATFORM = "x"
# Earshot stores a page at a time and X pages hold at most 100 posts: the bare upsert matches.
BATCH_SIZE = 100

INSERT_AUTHORS = f"""
    INSERT INTO {Author._meta.db_table}
        (platform, external_id, username, name, followers_count, verified, updated_at)
    VALUES %s
    ON CONFLICT (platform, external_id) DO NOTHING
"""
AUTHOR_TEMPLATE = "(%s, %s, %s, %s, %s, %s, now())"
SELECT_AUTHOR_PKS = (
    f"SELECT external_id, id FROM {Author._meta.db_table} "
    "WHERE platform = %s AND external_id = ANY(%s)"
)
INSERT_MENTIONS = f"""
    INSERT INTO {Mention._meta.db_table}
        (platform, external_id, brand_id, keyword_id, author_id, text, lang, posted_at,
         conversation_id, in_reply_to_user_id, referenced_posts, public_metrics,
         sentiment_compound, sentiment_positive, sentiment_neutral, sentiment_negative,
         sentiment_label, status, urgency_at, priority_reasons, fetched_at)
    VALUES %s
    ON CONFLICT (platform, external_id) DO NOTHING
"""
MENTION_TEMPLATE = "(" + ", ".join(["%s"] * 20) + ", now())"
# The bare upsert skips VADER: every row gets this neutral score.
CONSTANT_SENTIMENT = (0.0, 0.0, 1.0, 0.0, SentimentLabel.NEUTRAL.value)


class BenchError(RuntimeError):
    """A run did not do the work it was timed for; its figure would mean nothing."""


@dataclass(frozen=True)
class Setup:
    brand_id: int
    keyword_id: int


@dataclass(frozen=True)
class UpsertBatch:
    authors: list[tuple[Any, ...]]
    # Each row starts with its author's external id, swapped for the author's pk when inserted.
    mentions: list[tuple[Any, ...]]


def database_prepare(*, brand_name: str, brand_handle: str, bearer_token: str, query: str) -> Setup:
    """Create the one brand and keyword polled, in the freshly migrated throwaway database."""
    brand = Brand.objects.create(
        name=brand_name, x_handle=brand_handle, x_bearer_token=bearer_token
    )
    keyword = keyword_create(brand=brand, query=query, poll_interval_seconds=60)
    return Setup(brand_id=brand.pk, keyword_id=keyword.pk)


def listening_tables_reset(*, keyword_id: int) -> None:
    """Empty mentions, authors, cursors and budgets, then give the keyword a fresh cursor
    whose first round (and backfill) is behind it, so one poll is one live round."""
    models = (Amplification, Mention, Author, PollCursor, RateBudget)
    tables = ", ".join(model._meta.db_table for model in models)
    with connection.cursor() as cursor:
        # CASCADE: the responses tables point at mentions; in this database they are empty.
        cursor.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    PollCursor.objects.create(keyword_id=keyword_id, backfill_done_at=timezone.now())


def time_earshot_ingest(*, keyword_id: int, expected: int, max_pages: int) -> float:
    """Seconds for one `keyword_poll` from an empty cursor to all `expected` posts stored."""
    start = time.perf_counter()
    outcome = keyword_poll(keyword_id=keyword_id, max_pages=max_pages)
    elapsed = time.perf_counter() - start
    # Reposts and copies are folded under their mention: every post is one or the other.
    stored = Mention.objects.count() + Amplification.objects.count()
    handled = outcome.stored + outcome.folded
    cursor = PollCursor.objects.get(keyword_id=keyword_id)
    if not outcome.ok or handled != expected or stored != expected or cursor.next_token:
        raise BenchError(
            f"earshot ingest stored {handled} (tables: {stored}) of {expected} in "
            f"{outcome.pages} pages; error: {outcome.error or 'none'}; "
            f"next_token left: {cursor.next_token or 'none'}"
        )
    return elapsed


def time_vader_alone(texts: list[str]) -> float:
    """Seconds to score every text once with one analyzer, built before the clock starts."""
    analyzer = SentimentIntensityAnalyzer()
    start = time.perf_counter()
    for text in texts:
        analyzer.polarity_scores(text)
    return time.perf_counter() - start


def upsert_batches(
    *, tweets: list[dict[str, Any]], authors: dict[str, dict[str, Any]], setup: Setup
) -> list[UpsertBatch]:
    """The rows earshot would store for `tweets`, ready to insert: built outside the timing."""
    batches = []
    for first in range(0, len(tweets), BATCH_SIZE):
        chunk = tweets[first : first + BATCH_SIZE]
        author_ids = dict.fromkeys(tweet["author_id"] for tweet in chunk)
        batches.append(
            UpsertBatch(
                authors=[_author_row(authors[author_id]) for author_id in author_ids],
                mentions=[_mention_row(tweet, setup) for tweet in chunk],
            )
        )
    return batches


def _author_row(author: dict[str, Any]) -> tuple[Any, ...]:
    return (
        PLATFORM,
        str(author["id"]),
        author["username"],
        author.get("name", ""),
        int(author.get("followers_count", 0)),
        bool(author.get("verified", False)),
    )


def _mention_row(tweet: dict[str, Any], setup: Setup) -> tuple[Any, ...]:
    posted_at = datetime.fromisoformat(tweet["created_at"].replace("Z", "+00:00"))
    return (
        tweet["author_id"],
        PLATFORM,
        tweet["id"],
        setup.brand_id,
        setup.keyword_id,
        tweet["text"],
        tweet.get("lang", ""),
        posted_at,
        tweet.get("conversation_id", ""),
        tweet.get("in_reply_to_user_id", ""),
        Json(tweet.get("referenced_tweets", [])),
        Json(tweet.get("public_metrics", {})),
        *CONSTANT_SENTIMENT,
        MentionStatus.NEW.value,
        posted_at,  # urgency: no head start, as for a plain mention
        Json([]),
    )


def time_bare_upsert(*, batches: list[UpsertBatch], database_url: str, expected: int) -> float:
    """Seconds to insert the batches with plain psycopg2, one transaction per batch."""
    db = connect(database_url)
    try:
        start = time.perf_counter()
        for batch in batches:
            _insert_batch(db, batch)
        elapsed = time.perf_counter() - start
    finally:
        db.close()
    stored = Mention.objects.count()
    if stored != expected:
        raise BenchError(f"bare upsert stored {stored} of {expected} mentions")
    return elapsed


def _insert_batch(db: Any, batch: UpsertBatch) -> None:
    with db, db.cursor() as cursor:  # commits the batch, as earshot commits each page
        execute_values(
            cursor, INSERT_AUTHORS, batch.authors, template=AUTHOR_TEMPLATE, page_size=BATCH_SIZE
        )
        cursor.execute(SELECT_AUTHOR_PKS, (PLATFORM, [row[1] for row in batch.authors]))
        author_pks = dict(cursor.fetchall())
        execute_values(
            cursor,
            INSERT_MENTIONS,
            [
                (row[1], row[2], row[3], row[4], author_pks[row[0]], *row[5:])
                for row in batch.mentions
            ],
            template=MENTION_TEMPLATE,
            page_size=BATCH_SIZE,
        )


def postgresql_version() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        return cursor.fetchone()[0]


def connections_close() -> None:
    """Let go of the throwaway database, so dropping it needs no force."""
    connections.close_all()
