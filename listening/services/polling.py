"""Polling tracked keywords: fetch pages from a platform, score them, store them once.

Each page is stored in one transaction together with the cursor's progress, and that write is
a compare-and-set on the cursor's version: a crash between pages resumes the same round from
`next_token`, and two polls of the same keyword racing each other store every post once.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
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
from listening.models import PollCursor, QuarantinedItem, ReadingCursor, TrackedKeyword
from listening.query import Query, QueryablePost, QuerySyntaxError, parse_query
from listening.services.budgets import (
    BudgetSpec,
    budget_block,
    budget_for_keyword,
    budget_observe,
    budget_state,
    budget_take,
)
from listening.services.scheduling import KeywordLoad, plan_poll_intervals
from listening.services.storage import page_store

logger = logging.getLogger(__name__)

# After X refuses the credentials or the query, try again only now and then: neither will
# fix itself, but an admin may fix it at any time.
REFUSED_RETRY = timedelta(minutes=15)
# How much of a malformed item is kept for an admin to look at.
QUARANTINE_RAW_CHARS = 10_000
# History is read only while more than this share of the budget's window is left.
BACKFILL_HEADROOM = 0.25


def smoothed_rate(*, per_hour: float, count: int, seconds: float) -> float:
    """An hourly rate, exponentially smoothed over about an hour, after `count` more events
    in the last `seconds`."""
    if seconds <= 0:
        return per_hour + count
    keep = math.exp(-seconds / 3600)
    return keep * per_hour + (1 - keep) * count * 3600 / seconds


@dataclass(slots=True)
class PollOutcome:
    keyword_id: int
    stored: int = 0
    folded: int = 0
    pages: int = 0
    skipped: list[str] = field(default_factory=list)
    error: str = ""
    rate_limited_until: datetime | None = None
    # The credential's budget ran out first: the poll resumes when it resets.
    budget_wait_until: datetime | None = None

    @property
    def ok(self) -> bool:
        return not self.error


def keyword_poll(
    *, keyword_id: int, max_pages: int, client: PlatformClient | None = None
) -> PollOutcome:
    """Poll one keyword once: follow up to `max_pages` pages, storing each as it comes.

    Makes no call while the keyword is paused or its rate-limit block lasts. Safe to run
    twice, or twice at once: posts are unique per platform and the cursor only moves by
    compare-and-set.
    """
    outcome = PollOutcome(keyword_id=keyword_id)
    keyword = TrackedKeyword.objects.select_related("brand", "source").get(pk=keyword_id)
    if not keyword.is_active:
        # Paused after the dispatcher queued this poll: a paused keyword costs no call.
        return outcome
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
            cursor,
            RequestRejected(f"The keyword's query is not valid: {exc}"),
            outcome,
            keyword=keyword,
        )
        return outcome
    budget = budget_for_keyword(keyword)

    for _ in range(max_pages):
        if not _budget_allows_call(budget, cursor, outcome):
            return outcome
        try:
            page = client.search_page(
                query=remote_query,
                since_id=cursor.since_id or None,
                next_token=cursor.next_token or None,
            )
        except PlatformError as exc:
            if isinstance(exc, RateLimited):
                budget_block(budget, until=exc.reset_at)
            _record_failure(cursor, exc, outcome, keyword=keyword)
            return outcome
        outcome.pages += 1
        if local_filter is not None:
            _keep_matching(page, local_filter)
        cursor = _store_page(
            keyword=keyword, cursor=cursor, page=page, outcome=outcome, budget=budget
        )
        if cursor is None:  # a concurrent poll of this keyword got there first
            return outcome
        if not cursor.next_token or cursor.is_rate_limited:
            break
    return outcome


def _budget_allows_call(budget: BudgetSpec, cursor: PollCursor, outcome: PollOutcome) -> bool:
    """Take a call from the budget; when none is left, wait for its reset (not an error)."""
    with transaction.atomic():
        # A take lost in a crash lets one call more through Earshot's count, and the
        # platform's headers correct the count on its next answer: not worth a WAL flush
        # (a millisecond) before every call.
        _commit_without_waiting_for_flush()
        taken = budget_take(budget)
    if taken:
        return True
    _, reset_at = budget_state(budget)
    outcome.budget_wait_until = reset_at
    if reset_at is not None:
        PollCursor.objects.filter(pk=cursor.pk).update(next_poll_at=reset_at)
    logger.info("Keyword %s waits for budget %s until %s", cursor.keyword_id, budget.key, reset_at)
    return False


def keyword_backfill_page(*, keyword_id: int, client: PlatformClient | None = None) -> int:
    """Read one page of the keyword's history (the older pages of its first round).

    Runs only while the budget has more than BACKFILL_HEADROOM of its window left, so live
    polls always come first. Safe twice at once: the token moves by compare-and-set and
    mentions are stored once. Posts older than settings.BACKFILL_QUEUE_HOURS are stored
    as history (status archived), not queued. Returns how many mentions were new.
    """
    keyword = TrackedKeyword.objects.select_related("brand", "source").get(pk=keyword_id)
    cursor = PollCursor.objects.get(keyword=keyword)
    token = cursor.backfill_next_token
    if not token or not keyword.is_active or cursor.is_rate_limited:
        return 0
    budget = budget_for_keyword(keyword)
    remaining, _ = budget_state(budget)
    if remaining <= budget.limit * BACKFILL_HEADROOM or not budget_take(budget):
        return 0
    client = client or client_for_keyword(keyword)
    remote_query, local_filter = parse_query(keyword.query).split_for(client.syntax)
    try:
        page = client.search_page(query=remote_query, since_id=None, next_token=token)
    except PlatformError as exc:
        if isinstance(exc, RateLimited):
            budget_block(budget, until=exc.reset_at)
        logger.warning("Backfill of keyword %s failed, will retry: %s", keyword.pk, exc)
        return 0
    if page.rate_limit is not None:
        budget_observe(budget, page.rate_limit)
    if local_filter is not None:
        _keep_matching(page, local_filter)
    now = timezone.now()
    with transaction.atomic():
        moved = PollCursor.objects.filter(pk=cursor.pk, backfill_next_token=token).update(
            backfill_next_token=page.next_token or "",
            backfill_pages=F("backfill_pages") + 1,
            backfill_done_at=None if page.next_token else now,
        )
        if not moved:
            return 0
        stored = page_store(
            keyword=keyword,
            page=page,
            archive_before=now - timedelta(hours=settings.BACKFILL_QUEUE_HOURS),
        )
    return stored.new_mentions


def backfill_due() -> list[int]:
    """Keywords with history still to read."""
    return list(
        PollCursor.objects.filter(keyword__is_active=True)
        .exclude(backfill_next_token="")
        .values_list("keyword_id", flat=True)
    )


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
    *,
    keyword: TrackedKeyword,
    cursor: PollCursor,
    page: SearchPage,
    outcome: PollOutcome,
    budget: BudgetSpec,
) -> PollCursor | None:
    """Store one page and move the cursor past it, atomically, and correct the budget from
    the page's rate-limit headers in the same commit. None if another poll won."""
    for item in page.rejected:
        logger.warning(
            "Skipped a malformed item from %s for keyword %s (%r): %s. Item: %.500r",
            keyword.platform,
            keyword.pk,
            keyword.query,
            item.reason,
            item.raw,
        )
    _drop_oversized_cursor(page, keyword)
    now = timezone.now()
    with transaction.atomic():
        locked = PollCursor.objects.select_for_update().get(pk=cursor.pk)
        if locked.version != cursor.version:
            logger.info("Keyword %s was polled concurrently; this poll yields", keyword.pk)
            _budget_observe_last(budget, page)
            return None
        # The page and the cursor's move commit together, so a lost commit only means the
        # page is fetched again: waiting for the WAL flush buys nothing here.
        _commit_without_waiting_for_flush()
        stored_page = page_store(keyword=keyword, page=page)
        stored = stored_page.new_mentions
        next_token = page.next_token
        first_page_ever = (
            locked.backfill_done_at is None
            and not locked.backfill_next_token
            and not locked.since_id
            and not cursor.next_token
        )
        if first_page_ever:
            # A new keyword: the newest page starts live polling at once; the rest of the
            # platform's window is history, for the backfill to read when budget allows.
            locked.backfill_next_token = next_token or ""
            locked.backfill_done_at = None if next_token else now
            next_token = None
        locked.advance_round(
            continued_round=bool(cursor.next_token),
            newest_id=page.newest_id,
            next_token=next_token,
        )
        if locked.last_success_at is not None:
            locked.volume_per_hour = smoothed_rate(
                per_hour=locked.volume_per_hour,
                count=stored,
                seconds=(now - locked.last_success_at).total_seconds(),
            )
        locked.last_polled_at = now
        locked.last_success_at = now
        locked.last_error = ""
        locked.last_error_at = None
        locked.last_stored_count = outcome.stored + stored
        if page.rejected:
            QuarantinedItem.objects.bulk_create(
                QuarantinedItem(
                    keyword=keyword,
                    platform=keyword.platform,
                    reason=item.reason[:2000],
                    raw=repr(item.raw)[:QUARANTINE_RAW_CHARS],
                    received_at=now,
                )
                for item in page.rejected
            )
            locked.skipped_items_total += len(page.rejected)
            locked.last_skipped_reason = "; ".join(item.reason for item in page.rejected)[:1000]
            locked.last_skipped_at = now
        if page.rate_limit and page.rate_limit.remaining <= 0:
            # The budget is spent: the next call would be refused, so don't make it.
            locked.blocked_until = page.rate_limit.reset_at
        locked.save()
        _budget_observe_last(budget, page)
    outcome.stored += stored
    outcome.folded += stored_page.folded
    outcome.skipped.extend(item.reason for item in page.rejected)
    return locked


def _budget_observe_last(budget: BudgetSpec, page: SearchPage) -> None:
    """Correct the budget from the page's headers. Last in the page's transaction: its row
    is shared by every keyword on the credential, so it stays locked only until the commit,
    and the commit it rides on does not wait for the WAL flush."""
    if page.rate_limit is not None:
        budget_observe(budget, page.rate_limit)


def _drop_oversized_cursor(page: SearchPage, keyword: TrackedKeyword) -> None:
    """A cursor longer than Earshot keeps is not the platform's: ignore it (the round ends,
    and the next one starts from the last good cursor) rather than fail the page."""
    limit = PollCursor._meta.get_field("since_id").max_length
    for name in ("newest_id", "next_token"):
        value = getattr(page, name)
        if value is not None and len(value) > limit:
            logger.warning(
                "Keyword %s: %s answered a %s of %s characters; ignored",
                keyword.pk,
                keyword.platform,
                name,
                len(value),
            )
            setattr(page, name, None)


def _commit_without_waiting_for_flush() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _record_failure(
    cursor: PollCursor, exc: PlatformError, outcome: PollOutcome, *, keyword: TrackedKeyword
) -> None:
    # The warning names the cursor by its keyword: the one at hand, not a fresh query, which
    # would fail (and lose the warning) when the database is what went away meanwhile.
    cursor.keyword = keyword
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


# Beat's dispatches drift by milliseconds: a keyword due just after this dispatch would wait
# a whole dispatch period more (a 10 s keyword polled every 15 s). Claiming it this much early
# keeps it on its interval.
DUE_SLACK = timedelta(seconds=1)


def poll_claim_due(*, now: datetime | None = None) -> list[int]:
    """Claim every due, active, unblocked keyword for one poll; return their ids.

    Each claimed keyword's next poll is set by the budget plan (listening/services/
    scheduling.py). The claim is a conditional UPDATE of `next_poll_at`: if two
    dispatchers run at once, each keyword is claimed by exactly one of them.
    """
    now = now or timezone.now()
    poll_cursors_ensure(due_at=now)
    intervals = poll_intervals_planned()
    due = PollCursor.objects.filter(
        Q(blocked_until__isnull=True) | Q(blocked_until__lte=now),
        keyword__is_active=True,
        next_poll_at__lte=now + DUE_SLACK,
    ).values_list("pk", "keyword_id", "keyword__poll_interval_seconds", "next_poll_at")
    claimed: list[int] = []
    for cursor_pk, keyword_id, interval, seen_next_poll_at in due:
        seconds = intervals.get(keyword_id, interval)
        won = PollCursor.objects.filter(pk=cursor_pk, next_poll_at=seen_next_poll_at).update(
            next_poll_at=now + timedelta(seconds=seconds)
        )
        if won == 1:
            claimed.append(keyword_id)
    return claimed


def poll_intervals_planned() -> dict[int, float]:
    """Seconds between polls for every active keyword, planned per shared budget."""
    keywords = TrackedKeyword.objects.filter(is_active=True).select_related(
        "brand", "source", "cursor"
    )
    groups: dict[BudgetSpec, list[KeywordLoad]] = defaultdict(list)
    for keyword in keywords:
        cursor = getattr(keyword, "cursor", None)
        groups[budget_for_keyword(keyword)].append(
            KeywordLoad(
                keyword_id=keyword.pk,
                min_interval_seconds=keyword.poll_interval_seconds,
                volume_per_hour=cursor.volume_per_hour if cursor else 0.0,
            )
        )
    intervals: dict[int, float] = {}
    for budget, loads in groups.items():
        intervals.update(plan_poll_intervals(loads, budget))
    return intervals
