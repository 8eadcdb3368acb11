"""Retention: mentions older than MENTION_RETENTION_DAYS go, their counts stay.

Beat runs `listening.tasks.remove_expired_mentions` daily; with MENTION_RETENTION_DAYS = 0
(the default) nothing is ever removed. A mention is removed when it was posted (`posted_at`)
more than that many days ago and is closed: replied, resolved, ignored (no reply needed),
spam or history. Open mentions (new, reopened, claimed, a reply being sent) and mentions
with a reply still in flight (awaiting approval, sent back, queued, sending) stay, however
old. Removing a mention removes what hangs from it: its replies and amplifications (their
foreign keys cascade); alerts about it keep their text and lose the link. Authors stay (they
may have other mentions, and hold the team's tags on them).

Before they go, the removed mentions' counts are added to `MentionDailyAggregate`, per brand,
day (in BUSINESS_TIME_ZONE), platform, keyword, sentiment and status: how many, how many
answered and the sum of their first response times, how many resolved and the sum of their
resolution times, sent replies and amplifications. Each batch is one transaction: the rows
are locked, added to the aggregates and deleted together, so a crash part-way leaves both as
they were, and a second run finds nothing left to count twice.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Min, Q
from django.utils import timezone

from listening.models import Mention, MentionStatus

logger = logging.getLogger(__name__)

REMOVABLE_STATUSES = (
    MentionStatus.REPLIED,
    MentionStatus.RESOLVED,
    MentionStatus.NO_REPLY_NEEDED,
    MentionStatus.SPAM,
    MentionStatus.ARCHIVED,
)
# Reply statuses (responses.models.ReplyStatus, named here: listening does not import
# responses) of a reply not yet settled: its mention is not removed under it.
REPLY_IN_FLIGHT = ("awaiting", "returned", "queued", "sending")
REPLY_SENT = "sent"
BATCH_SIZE = 1000
# Below the task's soft time limit: the task sends itself again for what is left.
TIME_BUDGET_SECONDS = 40.0

_AGGREGATE_UPSERT = """
    INSERT INTO listening_mentiondailyaggregate AS t (
        brand_id, day, platform, keyword_id, sentiment_label, status, mention_count,
        answered_count, first_response_seconds_total, resolved_count, resolution_seconds_total,
        sent_reply_count, amplification_count, updated_at
    ) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT ON CONSTRAINT mention_aggregate_one_per_group DO UPDATE SET
        mention_count = t.mention_count + EXCLUDED.mention_count,
        answered_count = t.answered_count + EXCLUDED.answered_count,
        first_response_seconds_total =
            t.first_response_seconds_total + EXCLUDED.first_response_seconds_total,
        resolved_count = t.resolved_count + EXCLUDED.resolved_count,
        resolution_seconds_total = t.resolution_seconds_total + EXCLUDED.resolution_seconds_total,
        sent_reply_count = t.sent_reply_count + EXCLUDED.sent_reply_count,
        amplification_count = t.amplification_count + EXCLUDED.amplification_count,
        updated_at = EXCLUDED.updated_at
"""


@dataclass(frozen=True, slots=True)
class RetentionOutcome:
    removed: int
    batches: int
    # Stopped at the time budget with removable mentions left.
    more: bool


def retention_cutoff(*, now: datetime | None = None) -> datetime | None:
    """Mentions posted before this moment may be removed; None: retention is off."""
    days = settings.MENTION_RETENTION_DAYS
    if days <= 0:
        return None
    return (now or timezone.now()) - timedelta(days=days)


def mentions_remove_expired(
    *,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    time_budget_seconds: float = TIME_BUDGET_SECONDS,
) -> RetentionOutcome:
    """Remove closed mentions posted before the retention cutoff, in batches, each one's
    counts added to MentionDailyAggregate in the same transaction as its delete.

    Safe to run twice, and beside another run (rows another run holds are skipped). Returns
    how many mentions were removed, and whether some are left for another call.
    """
    cutoff = retention_cutoff(now=now)
    if cutoff is None:
        return RetentionOutcome(removed=0, batches=0, more=False)
    deadline = time.monotonic() + time_budget_seconds
    removed = batches = 0
    while True:
        count = _remove_batch(cutoff=cutoff, batch_size=batch_size)
        if count == 0:
            break
        removed += count
        batches += 1
        if count < batch_size:
            break
        if time.monotonic() > deadline:
            logger.info("Retention: %d mentions removed, more left for the next run", removed)
            return RetentionOutcome(removed=removed, batches=batches, more=True)
    if removed:
        logger.info("Retention: %d mentions posted before %s removed, counts kept", removed, cutoff)
    return RetentionOutcome(removed=removed, batches=batches, more=False)


def _removable(cutoff: datetime) -> Any:
    return Mention.objects.filter(posted_at__lt=cutoff, status__in=REMOVABLE_STATUSES).exclude(
        replies__status__in=REPLY_IN_FLIGHT
    )


@transaction.atomic
def _remove_batch(*, cutoff: datetime, batch_size: int) -> int:
    ids = list(
        _removable(cutoff)
        .select_for_update(skip_locked=True)
        .order_by("posted_at", "id")
        .values_list("id", flat=True)[:batch_size]
    )
    if not ids:
        return 0
    _add_to_aggregates(ids)
    Mention.objects.filter(pk__in=ids).delete()
    return len(ids)


def _add_to_aggregates(ids: list[int]) -> None:
    zone = ZoneInfo(settings.BUSINESS_TIME_ZONE)
    facts = (
        Mention.objects.filter(pk__in=ids)
        .annotate(
            first_sent_at=Min("replies__posted_at", filter=Q(replies__status=REPLY_SENT)),
            sent_replies=Count("replies", filter=Q(replies__status=REPLY_SENT)),
        )
        .values_list(
            "brand_id", "posted_at", "platform", "keyword_id", "sentiment_label", "status",
            "resolved_at", "amplification_count", "first_sent_at", "sent_replies",
        )
        .order_by()
    )  # fmt: skip
    groups: dict[tuple, list[float]] = defaultdict(lambda: [0, 0, 0.0, 0, 0.0, 0, 0])
    for (
        brand_id, posted_at, platform, keyword_id, sentiment, status,
        resolved_at, amplifications, first_sent_at, sent_replies,
    ) in facts:  # fmt: skip
        key = (brand_id, posted_at.astimezone(zone).date(), platform, keyword_id, sentiment, status)
        sums = groups[key]
        sums[0] += 1
        if first_sent_at is not None:
            sums[1] += 1
            sums[2] += (first_sent_at - posted_at).total_seconds()
        if status == MentionStatus.RESOLVED and resolved_at is not None:
            sums[3] += 1
            sums[4] += (resolved_at - posted_at).total_seconds()
        sums[5] += sent_replies
        sums[6] += amplifications
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.executemany(_AGGREGATE_UPSERT, [(*key, *sums, now) for key, sums in groups.items()])
