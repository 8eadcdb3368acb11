"""Storing a page of fetched posts: authors upserted, mentions inserted once, in bulk.

Plain SQL through psycopg2's execute_values rather than bulk_create: this is the ingest hot
path (see BENCHMARKS.md), and the ORM's per-object overhead, the extra query to learn which
posts are new, and rewriting unchanged author rows cost more than scoring the posts. Column
names come from the models, so a renamed field fails loudly here rather than silently.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.utils import timezone
from psycopg2.extras import Json, execute_values

from listening.clients.base import SearchPage
from listening.models import (
    ANSWERED_STATUSES,
    Author,
    Mention,
    MentionStatus,
    SentimentLabel,
    TrackedKeyword,
)
from listening.services.priority import PriorityFacts, mention_priority
from listening.services.sentiment import sentiment_score_many

_AUTHOR_FIELDS = (
    "platform", "external_id", "username", "name", "followers_count", "verified", "url",
)  # fmt: skip
_AUTHOR_CHANGING = ("username", "name", "followers_count", "verified", "url")
_MENTION_FIELDS = (
    "platform",
    "external_id",
    "brand",
    "keyword",
    "author",
    "text",
    "lang",
    "posted_at",
    "conversation_id",
    "in_reply_to_user_id",
    "url",
    "referenced_posts",
    "public_metrics",
    "sentiment_compound",
    "sentiment_positive",
    "sentiment_neutral",
    "sentiment_negative",
    "sentiment_label",
    "status",
    "urgency_at",
    "priority_reasons",
    "fetched_at",
)
AUTHOR_HISTORY_WINDOW = timedelta(days=7)


def _columns(model: type, fields: tuple[str, ...]) -> list[str]:
    return [model._meta.get_field(name).column for name in fields]


def _upsert_authors(cursor, *, platform: str, page: SearchPage, wanted: set[str]) -> dict[str, int]:
    """Insert new authors, update changed ones (and only those); return external id → pk."""
    table = Author._meta.db_table
    columns = _columns(Author, _AUTHOR_FIELDS)
    updated_at = Author._meta.get_field("updated_at").column
    changing = _columns(Author, _AUTHOR_CHANGING)
    now = timezone.now()
    rows = [
        (platform, a.external_id, a.username, a.name, a.followers_count, a.verified, a.url, now)
        for a in page.authors.values()
        if a.external_id in wanted
    ]
    execute_values(
        cursor,
        f"INSERT INTO {table} ({', '.join(columns)}, {updated_at}) VALUES %s "
        f"ON CONFLICT (platform, external_id) DO UPDATE SET "
        + ", ".join(f"{c} = EXCLUDED.{c}" for c in [*changing, updated_at])
        + f" WHERE ({', '.join(f'{table}.{c}' for c in changing)}) "
        f"IS DISTINCT FROM ({', '.join(f'EXCLUDED.{c}' for c in changing)})",
        rows,
        page_size=len(rows) or 1,
    )
    cursor.execute(
        f"SELECT external_id, id FROM {table} WHERE platform = %s AND external_id = ANY(%s)",
        [platform, list(wanted)],
    )
    return dict(cursor.fetchall())


def _author_history(cursor, *, author_pks: list[int], now) -> dict[int, tuple[int, int]]:
    """Per author: (negative mentions in the last week, positive mentions ever), stored so far."""
    table = Mention._meta.db_table
    cursor.execute(
        f"SELECT author_id, "
        f"COUNT(*) FILTER (WHERE sentiment_label = %s AND posted_at >= %s), "
        f"COUNT(*) FILTER (WHERE sentiment_label = %s) "
        f"FROM {table} WHERE author_id = ANY(%s) GROUP BY author_id",
        [SentimentLabel.NEGATIVE, now - AUTHOR_HISTORY_WINDOW, SentimentLabel.POSITIVE, author_pks],
    )
    return {author: (negative, positive) for author, negative, positive in cursor.fetchall()}


def _answered_conversations(
    cursor, *, posts: list, author_pks: dict[str, int]
) -> set[tuple[str, int]]:
    """(conversation, author) pairs of this page in which the team already answered them."""
    conversations = [p.conversation_id for p in posts if p.conversation_id]
    if not conversations:
        return set()
    cursor.execute(
        f"SELECT DISTINCT conversation_id, author_id FROM {Mention._meta.db_table} "
        f"WHERE conversation_id = ANY(%s) AND author_id = ANY(%s) AND status = ANY(%s)",
        [conversations, list(author_pks.values()), list(ANSWERED_STATUSES)],
    )
    return set(cursor.fetchall())


def page_store(*, keyword: TrackedKeyword, page: SearchPage) -> int:
    """Store a page's posts as mentions of `keyword`; returns how many were new.

    Runs inside the caller's transaction. A post already stored (by this or another
    keyword) is left as it is: mentions are unique per platform and external id.
    """
    # A page never repeats a post, but keep the first of any duplicate to be safe.
    posts = list({p.external_id: p for p in page.posts}.values())
    if not posts:
        return 0
    platform = keyword.platform
    scores = sentiment_score_many(texts=[p.text for p in posts])
    now = timezone.now()
    with connection.cursor() as cursor:
        author_pks = _upsert_authors(
            cursor,
            platform=platform,
            page=page,
            wanted={p.author_external_id for p in posts},
        )
        history = _author_history(cursor, author_pks=list(author_pks.values()), now=now)
        answered = _answered_conversations(cursor, posts=posts, author_pks=author_pks)
        rows = []
        for post, score in zip(posts, scores, strict=True):
            author_pk = author_pks[post.author_external_id]
            complaints, praise = history.get(author_pk, (0, 0))
            follow_up = (post.conversation_id, author_pk) in answered
            priority = mention_priority(
                PriorityFacts(
                    compound=score.compound,
                    label=score.label,
                    followers=page.authors[post.author_external_id].followers_count,
                    text=post.text,
                    earlier_complaints_this_week=complaints,
                    earlier_positive=praise,
                    follows_up_our_reply=follow_up,
                )
            )
            rows.append(
                (
                    platform,
                    post.external_id,
                    keyword.brand_id,
                    keyword.pk,
                    author_pk,
                    post.text,
                    post.lang,
                    post.posted_at,
                    post.conversation_id,
                    post.in_reply_to_user_id,
                    post.url,
                    Json(post.referenced_posts),
                    Json(post.public_metrics),
                    score.compound,
                    score.positive,
                    score.neutral,
                    score.negative,
                    score.label,
                    MentionStatus.REOPENED if follow_up else MentionStatus.NEW,
                    post.posted_at - priority.head_start,
                    Json(priority.reasons),
                    now,
                )
            )
        inserted = execute_values(
            cursor,
            f"INSERT INTO {Mention._meta.db_table} "
            f"({', '.join(_columns(Mention, _MENTION_FIELDS))}) VALUES %s "
            "ON CONFLICT (platform, external_id) DO NOTHING RETURNING id",
            rows,
            page_size=len(rows),
            fetch=True,
        )
    return len(inserted)
