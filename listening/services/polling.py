"""Polling tracked keywords: fetch pages from a platform, score them, store them once.

Each page is stored in one transaction together with the cursor's progress, and that write is
a compare-and-set on the cursor's version: a crash between pages resumes the same round from
`next_token`, and two polls of the same keyword racing each other store every post once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from listening.clients.base import (
    AuthenticationFailed,
    PlatformClient,
    PlatformError,
    RateLimited,
    RequestRejected,
    SearchPage,
)
from listening.clients.registry import client_for_keyword
from listening.models import PollCursor, ReadingCursor, TrackedKeyword
from listening.query import Query, QueryablePost, QuerySyntaxError, parse_query
from listening.services.storage import page_store

logger = logging.getLogger(__name__)

# After X refuses the credentials or the query, try again only now and then: neither will
# fix itself, but an admin may fix it at any time.
REFUSED_RETRY = timedelta(minutes=15)


@dataclass(slots=True)
class PollOutcome:
    keyword_id: int
    stored: int = 0
    folded: int = 0
    pages: int = 0
    skipped: list[str] = field(default_factory=list)
    error: str = ""
    rate_limited_until: datetime | None = None

    @property
    def ok(self) -> bool:
        return not self.error


def keyword_poll(
    *, keyword_id: int, max_pages: int, client: PlatformClient | None = None
) -> PollOutcome:
    """Poll one keyword once: follow up to `max_pages` pages, storing each as it comes.

    Makes no call while the keyword's rate-limit block lasts. Safe to run twice, or twice
    at once: posts are unique per platform and the cursor only moves by compare-and-set.
    """
    outcome = PollOutcome(keyword_id=keyword_id)
    keyword = TrackedKeyword.objects.select_related("brand", "source").get(pk=keyword_id)
    cursor, _ = PollCursor.objects.get_or_create(keyword=keyword)
    now = timezone.now()
    if cursor.blocked_until and cursor.blocked_until > now:
        outcome.rate_limited_until = cursor.blocked_until
        return outcome
    client = client or client_for_keyword(keyword)
    try:
        remote_query, local_filter = parse_query(keyword.query).split_for(client.syntax)
    except QuerySyntaxError as exc:
        # Saved through Django's admin or before validation existed: say so, call nothing.
        _record_failure(
            cursor, RequestRejected(f"The keyword's query is not valid: {exc}"), outcome
        )
        return outcome

    for _ in range(max_pages):
        try:
            page = client.search_page(
                query=remote_query,
                since_id=cursor.since_id or None,
                next_token=cursor.next_token or None,
            )
        except PlatformError as exc:
            _record_failure(cursor, exc, outcome)
            return outcome
        outcome.pages += 1
        if local_filter is not None:
            _keep_matching(page, local_filter)
        cursor = _store_page(keyword=keyword, cursor=cursor, page=page, outcome=outcome)
        if cursor is None:  # a concurrent poll of this keyword got there first
            return outcome
        if not cursor.next_token or cursor.is_rate_limited:
            break
    return outcome


def _keep_matching(page: SearchPage, query: Query) -> None:
    """Drop what the platform returned but the query, fully applied, does not match."""
    page.posts = [
        post
        for post in page.posts
        if query.matches(
            QueryablePost(
                text=post.text,
                author_username=page.authors[post.author_external_id].username,
                lang=post.lang,
                is_retweet=post.reposted_id is not None,
            )
        )
    ]


def _store_page(
    *, keyword: TrackedKeyword, cursor: PollCursor, page: SearchPage, outcome: PollOutcome
) -> PollCursor | None:
    """Store one page and move the cursor past it, atomically. None if another poll won."""
    for item in page.rejected:
        logger.warning(
            "Skipped a malformed item from %s for keyword %s (%r): %s. Item: %.500r",
            keyword.platform,
            keyword.pk,
            keyword.query,
            item.reason,
            item.raw,
        )
    now = timezone.now()
    with transaction.atomic():
        locked = PollCursor.objects.select_for_update().get(pk=cursor.pk)
        if locked.version != cursor.version:
            logger.info("Keyword %s was polled concurrently; this poll yields", keyword.pk)
            return None
        # The page and the cursor's move commit together, so a lost commit only means the
        # page is fetched again: waiting for the WAL flush buys nothing here.
        _commit_without_waiting_for_flush()
        stored_page = page_store(keyword=keyword, page=page)
        stored = stored_page.new_mentions
        locked.advance_round(
            continued_round=bool(cursor.next_token),
            newest_id=page.newest_id,
            next_token=page.next_token,
        )
        locked.last_polled_at = now
        locked.last_success_at = now
        locked.last_error = ""
        locked.last_error_at = None
        locked.last_stored_count = outcome.stored + stored
        if page.rejected:
            locked.skipped_items_total += len(page.rejected)
            locked.last_skipped_reason = "; ".join(item.reason for item in page.rejected)[:1000]
            locked.last_skipped_at = now
        if page.rate_limit and page.rate_limit.remaining <= 0:
            # The budget is spent: the next call would be refused, so don't make it.
            locked.blocked_until = page.rate_limit.reset_at
        locked.save()
    outcome.stored += stored
    outcome.folded += stored_page.folded
    outcome.skipped.extend(item.reason for item in page.rejected)
    return locked


def _commit_without_waiting_for_flush() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _record_failure(cursor: PollCursor, exc: PlatformError, outcome: PollOutcome) -> None:
    outcome.error = cursor_record_failure(cursor, exc)
    if isinstance(exc, RateLimited):
        outcome.rate_limited_until = exc.reset_at


def cursor_record_failure(cursor: ReadingCursor, exc: PlatformError) -> str:
    """Note a failed read on `cursor` and when to try again; returns the reason."""
    now = timezone.now()
    changes: dict[str, object] = {
        "last_polled_at": now,
        "last_error": str(exc),
        "last_error_at": now,
    }
    if isinstance(exc, RateLimited):
        changes["blocked_until"] = exc.reset_at
        changes["next_poll_at"] = exc.reset_at
    elif isinstance(exc, AuthenticationFailed | RequestRejected):
        changes["next_poll_at"] = now + REFUSED_RETRY
    logger.warning("Reading %s failed: %s", cursor, exc)
    type(cursor).objects.filter(pk=cursor.pk).update(**changes)
    return str(exc)


def poll_cursors_ensure(*, due_at: datetime) -> int:
    """Give every keyword a cursor (keywords may be created in Django's admin). Safe twice."""
    missing = TrackedKeyword.objects.filter(cursor__isnull=True).values_list("pk", flat=True)
    created = PollCursor.objects.bulk_create(
        [PollCursor(keyword_id=pk, next_poll_at=due_at) for pk in missing], ignore_conflicts=True
    )
    return len(created)


def poll_claim_due(*, now: datetime | None = None) -> list[int]:
    """Claim every due, active, unblocked keyword for one poll; return their ids.

    The claim is a conditional UPDATE of `next_poll_at`: if two dispatchers run at once,
    each keyword is claimed by exactly one of them.
    """
    now = now or timezone.now()
    poll_cursors_ensure(due_at=now)
    due = PollCursor.objects.filter(
        Q(blocked_until__isnull=True) | Q(blocked_until__lte=now),
        keyword__is_active=True,
        next_poll_at__lte=now,
    ).values_list("pk", "keyword_id", "keyword__poll_interval_seconds", "next_poll_at")
    claimed: list[int] = []
    for cursor_pk, keyword_id, interval, seen_next_poll_at in due:
        won = PollCursor.objects.filter(pk=cursor_pk, next_poll_at=seen_next_poll_at).update(
            next_poll_at=now + timedelta(seconds=interval)
        )
        if won == 1:
            claimed.append(keyword_id)
    return claimed
