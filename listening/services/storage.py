"""Storing a page of fetched posts: authors upserted, mentions inserted once, in bulk.

Plain SQL through psycopg2's execute_values rather than bulk_create: this is the ingest hot
path (see BENCHMARKS.md), and the ORM's per-object overhead, the extra query to learn which
posts are new, and rewriting unchanged author rows cost more than scoring the posts. Column
names come from the models, so a renamed field fails loudly here rather than silently.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone
from psycopg2.extras import execute_values

from listening.clients.base import FetchedPost, SearchPage
from listening.clients.text import clean_text
from listening.models import (
    ANSWERED_STATUSES,
    Amplification,
    AmplificationKind,
    Author,
    Mention,
    MentionStatus,
    SentimentLabel,
    TrackedKeyword,
)
from listening.services.folding import folds_as_copy, text_fingerprint
from listening.services.priority import (
    PriorityFacts,
    amplification_head_start,
    mention_priority,
    with_amplification_reason,
)
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
    "team",
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
    "text_fingerprint",
    "fetched_at",
)
AUTHOR_HISTORY_WINDOW = timedelta(days=7)
# How far back a copy of the same words folds under an earlier mention.
COPY_WINDOW = timedelta(days=7)


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
        (
            platform,
            a.external_id,
            clean_text(a.username),
            clean_text(a.name),
            a.followers_count,
            a.verified,
            clean_text(a.url),
            now,
        )
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


@dataclass(slots=True)
class StoredPage:
    new_mentions: int = 0
    # Reposts and copies folded under a mention (new or stored before) instead of queued.
    folded: int = 0


@dataclass(slots=True)
class _Fold:
    post: FetchedPost
    kind: str
    # The mention it folds under: its pk if stored before, else its external id on this page.
    mention_pk: int | None = None
    mention_external_id: str = ""


def _stored_ids(cursor, model: type, *, platform: str, external_ids: set[str]) -> dict[str, int]:
    if not external_ids:
        return {}
    cursor.execute(
        f"SELECT external_id, id FROM {model._meta.db_table} "
        "WHERE platform = %s AND external_id = ANY(%s)",
        [platform, list(external_ids)],
    )
    return dict(cursor.fetchall())


def _mentions_of(cursor, *, platform: str, external_ids: set[str]) -> dict[str, int]:
    """Mention pk per external id: the mention itself, or the one it was folded under."""
    found = _stored_ids(cursor, Mention, platform=platform, external_ids=external_ids)
    missing = external_ids - found.keys()
    if missing:
        cursor.execute(
            f"SELECT external_id, mention_id FROM {Amplification._meta.db_table} "
            "WHERE platform = %s AND external_id = ANY(%s)",
            [platform, list(missing)],
        )
        found.update(cursor.fetchall())
    return found


def _recent_by_fingerprint(cursor, *, brand_id: int, fingerprints: set[str], now) -> dict[str, int]:
    """The earliest mention of the brand in the copy window for each fingerprint.

    One index probe per fingerprint (brand, fingerprint, posted_at): with `= ANY` and
    DISTINCT ON, PostgreSQL chose a scan of the whole table while it was small, a cost that
    grew with every page stored (5 ms a page at 2,800 mentions).
    """
    if not fingerprints:
        return {}
    cursor.execute(
        "SELECT wanted.fingerprint, earliest.id FROM unnest(%s::text[]) AS wanted (fingerprint) "
        "CROSS JOIN LATERAL ("
        f"SELECT id FROM {Mention._meta.db_table} WHERE brand_id = %s "
        "AND text_fingerprint = wanted.fingerprint AND posted_at >= %s "
        "ORDER BY posted_at, id LIMIT 1) AS earliest",
        [list(fingerprints), brand_id, now - COPY_WINDOW],
    )
    return dict(cursor.fetchall())


def _sort_out_folds(
    cursor, *, keyword: TrackedKeyword, posts: list[FetchedPost], now
) -> tuple[list[FetchedPost], list[_Fold], dict[str, str]]:
    """Split a page into posts to store as mentions and posts that fold under one.

    Oldest first, so of several copies on one page the first becomes the mention.
    """
    platform = keyword.platform
    fingerprints = {p.external_id: text_fingerprint(p.text) for p in posts}
    already_folded = _stored_ids(
        cursor, Amplification, platform=platform, external_ids=set(fingerprints)
    )
    stored_originals = _mentions_of(
        cursor, platform=platform, external_ids={p.reposted_id for p in posts if p.reposted_id}
    )
    stored_copies = _recent_by_fingerprint(
        cursor,
        brand_id=keyword.brand_id,
        fingerprints={fingerprints[p.external_id] for p in posts if folds_as_copy(p)},
        now=now,
    )
    # Where each post of this page went: (pk of a stored mention, or external id of a
    # mention this page stores). A repost of a folded copy folds where the copy did.
    went_to: dict[str, tuple[int | None, str]] = {}
    new_by_fingerprint: dict[str, str] = {}
    to_store: list[FetchedPost] = []
    folds: list[_Fold] = []
    for post in sorted(posts, key=lambda p: (p.posted_at, p.external_id)):
        if post.external_id in already_folded:
            continue
        fingerprint = fingerprints[post.external_id]
        copy = folds_as_copy(post)
        if post.reposted_id in stored_originals:
            target = (stored_originals[post.reposted_id], "")
        elif post.reposted_id in went_to:
            target = went_to[post.reposted_id]
        elif copy and fingerprint in stored_copies:
            target = (stored_copies[fingerprint], "")
        elif copy and fingerprint in new_by_fingerprint:
            target = (None, new_by_fingerprint[fingerprint])
        else:
            to_store.append(post)
            went_to[post.external_id] = (None, post.external_id)
            if copy:
                new_by_fingerprint.setdefault(fingerprint, post.external_id)
            continue
        kind = AmplificationKind.REPOST if post.reposted_id else AmplificationKind.COPY
        folds.append(_Fold(post, kind, mention_pk=target[0], mention_external_id=target[1]))
        went_to[post.external_id] = target
    return to_store, folds, fingerprints


def _store_folds(
    cursor, *, platform: str, folds: list[_Fold], author_pks: dict[str, int], now
) -> int:
    """Insert the folds as amplifications and move their mentions up; returns how many."""
    pending = {f.mention_external_id for f in folds if f.mention_pk is None}
    mention_pks = _stored_ids(cursor, Mention, platform=platform, external_ids=pending)
    rows = [
        (
            fold.mention_pk or mention_pks[fold.mention_external_id],
            platform,
            fold.post.external_id,
            author_pks[fold.post.author_external_id],
            fold.kind,
            fold.post.posted_at,
            fold.post.url,
        )
        for fold in folds
        if fold.mention_pk or fold.mention_external_id in mention_pks
    ]
    if not rows:
        return 0
    table = Amplification._meta.db_table
    added = execute_values(
        cursor,
        f"INSERT INTO {table} (mention_id, platform, external_id, author_id, kind, posted_at, "
        "url) VALUES %s ON CONFLICT (platform, external_id) DO NOTHING RETURNING mention_id",
        rows,
        page_size=len(rows),
        fetch=True,
    )
    per_mention = Counter(mention_pk for (mention_pk,) in added)
    if per_mention:
        _amplify(cursor, per_mention)
    return sum(per_mention.values())


def _amplify(cursor, added: Counter[int]) -> None:
    """Count new amplifications on their mentions, and make each as much more urgent."""
    table = Mention._meta.db_table
    cursor.execute(
        f"SELECT id, amplification_count, sentiment_label, urgency_at, priority_reasons "
        f"FROM {table} WHERE id = ANY(%s) FOR UPDATE",
        [list(added)],
    )
    updates = []
    for pk, count, label, urgency_at, stored_reasons in cursor.fetchall():
        # Django's psycopg2 backend hands jsonb back as text.
        reasons = json.loads(stored_reasons) if isinstance(stored_reasons, str) else stored_reasons
        new_count = count + added[pk]
        gained = amplification_head_start(count=new_count, label=label) - (
            amplification_head_start(count=count, label=label)
        )
        updates.append(
            (
                pk,
                new_count,
                urgency_at - gained,
                _jsonb(with_amplification_reason(reasons, new_count)),
            )
        )
    execute_values(
        cursor,
        f"UPDATE {table} AS m SET amplification_count = v.count, urgency_at = v.urgency, "
        "priority_reasons = v.reasons FROM (VALUES %s) AS v (id, count, urgency, reasons) "
        "WHERE m.id = v.id",
        updates,
        template="(%s, %s, %s::timestamptz, %s::jsonb)",
        page_size=len(updates),
    )


def page_store(
    *, keyword: TrackedKeyword, page: SearchPage, archive_before: datetime | None = None
) -> StoredPage:
    """Store a page's posts as mentions of `keyword`, folding reposts and copies.

    Runs inside the caller's transaction. A post already stored (by this or another
    keyword) is left as it is: mentions and amplifications are unique per platform and
    external id. The original of a repost, when the platform sent it along, is stored as a
    mention of its own so the repost has something to fold under. Posts older than
    `archive_before` (history read by the backfill) are stored archived, not queued.
    """
    result = StoredPage()
    # A page never repeats a post, but keep the first of any duplicate to be safe.
    posts = list({p.external_id: p for p in page.posts}.values())
    seen = {p.external_id for p in posts}
    for post in list(posts):
        if post.original is not None and post.original.external_id not in seen:
            posts.append(post.original)
            seen.add(post.original.external_id)
    if not posts:
        return result
    platform = keyword.platform
    now = timezone.now()
    with connection.cursor() as cursor:
        to_store, folds, fingerprints = _sort_out_folds(
            cursor, keyword=keyword, posts=posts, now=now
        )
        author_pks = _upsert_authors(
            cursor,
            platform=platform,
            page=page,
            wanted={p.author_external_id for p in posts},
        )
        result.new_mentions = _insert_mentions(
            cursor,
            keyword=keyword,
            page=page,
            posts=to_store,
            author_pks=author_pks,
            fingerprints=fingerprints,
            now=now,
            archive_before=archive_before,
        )
        result.folded = _store_folds(
            cursor, platform=platform, folds=folds, author_pks=author_pks, now=now
        )
    return result


def _jsonb(value: object) -> str:
    """JSON text for a jsonb column: PostgreSQL reads the quoted literal as the column's
    type. A page quotes three of these per mention, and quoting them as plain text rather
    than through psycopg2's Json adapter makes quoting a page's rows about 40% cheaper."""
    return json.dumps(value)


def _initial_status(post: FetchedPost, *, follow_up: bool, archive_before: datetime | None) -> str:
    if archive_before is not None and post.posted_at < archive_before:
        return MentionStatus.ARCHIVED
    return MentionStatus.REOPENED if follow_up else MentionStatus.NEW


def _insert_mentions(
    cursor,
    *,
    keyword: TrackedKeyword,
    page: SearchPage,
    posts: list[FetchedPost],
    author_pks: dict[str, int],
    fingerprints: dict[str, str],
    now,
    archive_before: datetime | None,
) -> int:
    if not posts:
        return 0
    scores = sentiment_score_many(texts=[p.text for p in posts])
    history = _author_history(
        cursor, author_pks=[author_pks[p.author_external_id] for p in posts], now=now
    )
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
                keyword.platform,
                post.external_id,
                keyword.brand_id,
                keyword.pk,
                keyword.team_id,
                author_pk,
                clean_text(post.text),
                clean_text(post.lang),
                post.posted_at,
                post.conversation_id,
                post.in_reply_to_user_id,
                clean_text(post.url),
                _jsonb(post.referenced_posts),
                _jsonb(post.public_metrics),
                score.compound,
                score.positive,
                score.neutral,
                score.negative,
                score.label,
                _initial_status(post, follow_up=follow_up, archive_before=archive_before),
                post.posted_at - priority.head_start,
                _jsonb(priority.reasons),
                fingerprints[post.external_id],
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
