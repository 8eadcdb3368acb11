"""Reads for the admin's listening pages: keyword costs and the health of every source."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from listening.models import (
    AccountCursor,
    Mention,
    MentionDailyAggregate,
    Platform,
    PollCursor,
    TrackedKeyword,
)
from listening.services.budgets import BudgetSpec, budget_for_keyword, budget_state
from listening.services.polling import poll_intervals_planned

HOURS_SHOWN = 24
DAYS_PER_MONTH = 30


def x_monthly_cost(*, volume_per_hour: float) -> Decimal:
    """What a keyword's posts would cost a month on X's pay-per-use prices: each post read,
    and (with the author expansion) its author read, before X's 24-hour de-duplication."""
    per_post = Decimal(settings.X_PRICE_PER_POST_READ) + Decimal(settings.X_PRICE_PER_USER_READ)
    posts = Decimal(str(volume_per_hour)) * 24 * DAYS_PER_MONTH
    return (posts * per_post).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class KeywordHealth:
    keyword: TrackedKeyword
    cursor: PollCursor | None
    budget: BudgetSpec
    budget_left: int
    budget_resets_at: datetime | None
    planned_interval_seconds: float | None
    # New mentions in each of the last 24 hours, oldest first.
    hourly: list[int]
    monthly_cost: Decimal | None

    @property
    def mentions_last_day(self) -> int:
        return sum(self.hourly)

    @property
    def hourly_peak(self) -> int:
        return max(self.hourly) or 1


def keyword_health(*, now: datetime | None = None) -> list[KeywordHealth]:
    """Every keyword with its cursor, budget, plan, last day's volume and X cost."""
    now = now or timezone.now()
    keywords = list(
        TrackedKeyword.objects.select_related("brand", "source", "cursor", "team").order_by(
            "brand__name", "platform", "query"
        )
    )
    intervals = poll_intervals_planned()
    hourly = _hourly_counts(now=now, brand_ids={k.brand_id for k in keywords})
    rows = []
    for keyword in keywords:
        cursor = getattr(keyword, "cursor", None)
        budget = budget_for_keyword(keyword)
        left, resets_at = budget_state(budget, now=now)
        volume = cursor.volume_per_hour if cursor else 0.0
        rows.append(
            KeywordHealth(
                keyword=keyword,
                cursor=cursor,
                budget=budget,
                budget_left=left,
                budget_resets_at=resets_at,
                planned_interval_seconds=intervals.get(keyword.pk),
                hourly=hourly.get(keyword.pk, [0] * HOURS_SHOWN),
                monthly_cost=x_monthly_cost(volume_per_hour=volume)
                if keyword.platform == Platform.X
                else None,
            )
        )
    return rows


def _hourly_counts(*, now: datetime, brand_ids: set[int]) -> dict[int, list[int]]:
    """Per keyword, mentions posted in each of the last 24 hours (by the brand index)."""
    if not brand_ids:
        return {}
    since = now - timedelta(hours=HOURS_SHOWN)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT keyword_id, FLOOR(EXTRACT(EPOCH FROM (%s - posted_at)) / 3600)::int, "
            f"COUNT(*) FROM {Mention._meta.db_table} "
            "WHERE brand_id = ANY(%s) AND posted_at >= %s AND posted_at <= %s "
            "AND keyword_id IS NOT NULL GROUP BY 1, 2",
            [now, list(brand_ids), since, now],
        )
        counts: dict[int, list[int]] = {}
        for keyword_id, hours_ago, count in cursor.fetchall():
            row = counts.setdefault(keyword_id, [0] * HOURS_SHOWN)
            row[HOURS_SHOWN - 1 - min(hours_ago, HOURS_SHOWN - 1)] += count
    return counts


def account_health() -> list[AccountCursor]:
    """The brand accounts whose own posts are read (replies sent outside Earshot)."""
    return list(AccountCursor.objects.select_related("brand", "source").order_by("brand__name"))


@dataclass(frozen=True, slots=True)
class RemovedMentionTotals:
    """What retention kept of the mentions it removed, over some days (MentionDailyAggregate):
    counts, and means from kept sums (no median or percentile survives removal)."""

    mentions: int = 0
    answered: int = 0
    first_response_seconds_total: float = 0.0
    resolved: int = 0
    resolution_seconds_total: float = 0.0

    @property
    def response_rate(self) -> float | None:
        return self.answered / self.mentions if self.mentions else None

    @property
    def mean_first_response(self) -> timedelta | None:
        if not self.answered:
            return None
        return timedelta(seconds=round(self.first_response_seconds_total / self.answered))

    @property
    def mean_resolution(self) -> timedelta | None:
        if not self.resolved:
            return None
        return timedelta(seconds=round(self.resolution_seconds_total / self.resolved))

    def as_json(self) -> dict[str, float | int | None]:
        first, resolution = self.mean_first_response, self.mean_resolution
        return {
            "mentions": self.mentions,
            "answered": self.answered,
            "response_rate": self.response_rate,
            "first_response_mean_seconds": first.total_seconds() if first else None,
            "resolved": self.resolved,
            "resolution_mean_seconds": resolution.total_seconds() if resolution else None,
        }


def removed_mention_totals(
    *, first_day: date, last_day: date, exclude_statuses: tuple[str, ...] = ()
) -> RemovedMentionTotals:
    """Totals of the mentions posted from `first_day` to `last_day` (both included, days in
    BUSINESS_TIME_ZONE) that retention has removed; zeros when none were."""
    totals = (
        MentionDailyAggregate.objects.filter(day__gte=first_day, day__lte=last_day)
        .exclude(status__in=exclude_statuses)
        .aggregate(
            mentions=Sum("mention_count", default=0),
            answered=Sum("answered_count", default=0),
            first_response_seconds_total=Sum("first_response_seconds_total", default=0.0),
            resolved=Sum("resolved_count", default=0),
            resolution_seconds_total=Sum("resolution_seconds_total", default=0.0),
        )
    )
    return RemovedMentionTotals(**totals)
