"""Replies the team sent outside Earshot: found among the brand account's own posts.

People answer on the platform's own app too. Each brand account's posts are read like a
keyword's results (same round-by-round cursor, same compare-and-set), and every post that
replies to a stored mention becomes a Reply of origin PLATFORM: response times count it,
and the mention leaves the open queue as "answered outside Earshot".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from listening.clients.base import PlatformClient, PlatformError, RateLimited, SearchPage
from listening.clients.registry import client_for_account
from listening.models import (
    OPEN_STATUSES,
    REPLYABLE_PLATFORMS,
    AccountCursor,
    Brand,
    Mention,
    MentionStatus,
    Platform,
    Source,
)
from listening.services.budgets import (
    budget_block,
    budget_for_source,
    budget_for_x,
    budget_observe,
    budget_take,
)
from listening.services.polling import cursor_record_failure
from responses.models import Reply, ReplyOrigin, ReplyStatus

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class AccountReadOutcome:
    cursor_id: int
    pages: int = 0
    linked: int = 0
    error: str = ""


def account_cursors_ensure(*, due_at: datetime) -> int:
    """A cursor for every brand with an X handle and every active source with an account on
    a platform Earshot can reply on. Safe to run twice (and twice at once)."""
    created = 0
    for brand_id in Brand.objects.exclude(x_handle="").values_list("pk", flat=True):
        _, made = AccountCursor.objects.get_or_create(
            brand_id=brand_id, platform=Platform.X, defaults={"next_poll_at": due_at}
        )
        created += made
    sources = (
        Source.objects.filter(
            is_active=True, platform__in=REPLYABLE_PLATFORMS, account_cursor__isnull=True
        )
        .exclude(account_handle="")
        .values_list("pk", "brand_id", "platform")
    )
    for source_id, brand_id, platform in sources:
        _, made = AccountCursor.objects.get_or_create(
            source_id=source_id,
            defaults={"brand_id": brand_id, "platform": platform, "next_poll_at": due_at},
        )
        created += made
    return created


def account_cursors_claim_due(*, now: datetime | None = None) -> list[int]:
    """Claim every due, unblocked account cursor for one read (a conditional UPDATE each, so
    two dispatchers never claim the same one); return their ids."""
    now = now or timezone.now()
    account_cursors_ensure(due_at=now)
    interval = timedelta(seconds=settings.OWN_POSTS_POLL_SECONDS)
    due = AccountCursor.objects.filter(
        Q(blocked_until__isnull=True) | Q(blocked_until__lte=now), next_poll_at__lte=now
    ).values_list("pk", "next_poll_at")
    return [
        pk
        for pk, seen in due
        if AccountCursor.objects.filter(pk=pk, next_poll_at=seen).update(
            next_poll_at=now + interval
        )
    ]


def account_posts_read(
    *, cursor_id: int, max_pages: int, client: PlatformClient | None = None
) -> AccountReadOutcome:
    """Read the brand account's new posts and link its replies to their mentions.

    Idempotent: a post is linked to a mention once (a unique constraint), and the cursor
    moves only by compare-and-set, in the transaction that links the page.
    """
    outcome = AccountReadOutcome(cursor_id=cursor_id)
    cursor = AccountCursor.objects.select_related("brand", "source").get(pk=cursor_id)
    if cursor.is_rate_limited:
        return outcome
    client = client or client_for_account(cursor)
    budget = (
        budget_for_source(cursor.source)
        if cursor.source is not None
        else budget_for_x(cursor.brand)
    )
    for _ in range(max_pages):
        # The brand's own posts are read with the same credential, from the same budget.
        if not budget_take(budget):
            return outcome
        try:
            page = client.own_posts_page(
                since_id=cursor.since_id or None, next_token=cursor.next_token or None
            )
        except PlatformError as exc:
            if isinstance(exc, RateLimited):
                budget_block(budget, until=exc.reset_at)
            outcome.error = cursor_record_failure(cursor, exc)
            return outcome
        outcome.pages += 1
        if page.rate_limit is not None:
            budget_observe(budget, page.rate_limit)
        moved = _link_page(cursor, page)
        if moved is None:
            return outcome
        cursor, linked = moved
        outcome.linked += linked
        if not cursor.next_token or cursor.is_rate_limited:
            break
    return outcome


def _link_page(cursor: AccountCursor, page: SearchPage) -> tuple[AccountCursor, int] | None:
    now = timezone.now()
    with transaction.atomic():
        locked = AccountCursor.objects.select_for_update().get(pk=cursor.pk)
        if locked.version != cursor.version:
            return None
        linked = replies_link_found(brand=cursor.brand, platform=cursor.platform, page=page)
        locked.advance_round(
            continued_round=bool(cursor.next_token),
            newest_id=page.newest_id,
            next_token=page.next_token,
        )
        locked.last_polled_at = locked.last_success_at = now
        locked.last_error, locked.last_error_at = "", None
        locked.linked_total += linked
        if page.rate_limit and page.rate_limit.remaining <= 0:
            locked.blocked_until = page.rate_limit.reset_at
        locked.save()
    return locked, linked


def replies_link_found(*, brand: Brand, platform: str, page: SearchPage) -> int:
    """Record each of the page's replies to a stored mention; returns how many were new.

    A mention with one of Earshot's own replies in flight is left alone: that post is the
    reply being sent, and the send records it.
    """
    answers = [post for post in page.posts if post.replied_to_id]
    if not answers:
        return 0
    mentions = {
        m.external_id: m
        for m in Mention.objects.filter(
            brand=brand, platform=platform, external_id__in={p.replied_to_id for p in answers}
        )
        .exclude(replies__status__in=[ReplyStatus.QUEUED, ReplyStatus.SENDING])
        .only("pk", "external_id")
    }
    # Every reply of the brand's is kept (a second answer in the same thread too); the first
    # one is what response times count.
    replies = [
        Reply(
            mention=mentions[post.replied_to_id],
            agent=None,
            origin=ReplyOrigin.PLATFORM,
            text=post.text,
            status=ReplyStatus.SENT,
            external_id=post.external_id,
            posted_at=post.posted_at,
        )
        for post in answers
        if post.replied_to_id in mentions
    ]
    known = set(
        Reply.objects.filter(
            mention__in=[r.mention for r in replies],
            external_id__in=[r.external_id for r in replies],
        ).values_list("mention_id", "external_id")
    )
    new = [r for r in replies if (r.mention.pk, r.external_id) not in known]
    Reply.objects.bulk_create(new, ignore_conflicts=True)
    answered = list({r.mention.pk for r in new})
    if answered:
        Mention.objects.filter(pk__in=answered, status__in=OPEN_STATUSES).update(
            status=MentionStatus.REPLIED, claim_expires_at=None
        )
        logger.info(
            "Linked %s replies %s sent on %s outside Earshot", len(new), brand.name, platform
        )
    return len(new)
