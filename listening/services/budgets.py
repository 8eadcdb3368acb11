"""Rate-limit budgets: Earshot never makes a call its credential has no budget left for.

Every platform call first takes one unit from its credential's budget, in one conditional
UPDATE, so any number of workers together stay under the limit. The platform's rate-limit
headers correct the count (they know about calls made by other tools with the same
credential); after a 429 the budget stays empty until the platform's reset time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from listening.clients.base import RateLimit
from listening.models import Brand, Platform, RateBudget, Source, TrackedKeyword


@dataclass(frozen=True, slots=True)
class BudgetSpec:
    key: str
    limit: int
    window_seconds: int

    @property
    def calls_per_second(self) -> float:
        return self.limit / self.window_seconds


# Each platform's documented default limit for the calls Earshot makes (docs/sources.md):
# (calls, per seconds), and whether it is counted per credential or per IP address.
PLATFORM_LIMITS: dict[str, tuple[int, int]] = {
    Platform.X: (450, 900),  # recent search, per app (bearer token)
    Platform.MASTODON: (300, 300),  # per account
    Platform.BLUESKY: (3000, 300),  # PDS, per IP
    Platform.REDDIT: (100, 60),  # per OAuth client
    Platform.HACKER_NEWS: (10_000, 3600),  # Algolia, per IP
    Platform.RSS: (60, 3600),  # our own courtesy to each feed's publisher
}
# Limits counted per IP: every source of the platform shares one budget.
PER_ADDRESS = {Platform.BLUESKY, Platform.HACKER_NEWS}


def _secret_key(secret: str) -> str:
    """Names a credential without storing it: two brands with one token share one budget."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def budget_for_x(brand: Brand) -> BudgetSpec:
    limit, window = PLATFORM_LIMITS[Platform.X]
    token = brand.x_bearer_token or settings.X_BEARER_TOKEN
    return BudgetSpec(f"x-search:{_secret_key(token)}", limit, window)


def budget_for_source(source: Source) -> BudgetSpec:
    limit, window = PLATFORM_LIMITS[source.platform]
    if source.platform in PER_ADDRESS:
        return BudgetSpec(f"{source.platform}:address", limit, window)
    return BudgetSpec(f"source:{source.pk}", limit, window)


def budget_for_keyword(keyword: TrackedKeyword) -> BudgetSpec:
    if keyword.platform == Platform.X or keyword.source is None:
        return budget_for_x(keyword.brand)
    return budget_for_source(keyword.source)


def _table() -> str:
    return RateBudget._meta.db_table


def budget_take(spec: BudgetSpec, *, now: datetime | None = None) -> bool:
    """Take one call from the budget; False (and nothing taken) when none is left."""
    now = now or timezone.now()
    # One statement: the first call on a key creates its window; a later one takes from it,
    # or starts the next window once this one has reset; none is taken when it is empty.
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO {_table()} AS b (key, "limit", window_seconds, remaining, reset_at) '
            "VALUES (%(key)s, %(limit)s, %(window)s, %(limit)s - 1, %(next_reset)s) "
            "ON CONFLICT (key) DO UPDATE SET "
            'remaining = CASE WHEN b.reset_at <= %(now)s THEN b."limit" - 1 '
            "ELSE b.remaining - 1 END, "
            "reset_at = CASE WHEN b.reset_at <= %(now)s THEN %(next_reset)s ELSE b.reset_at END "
            "WHERE b.reset_at <= %(now)s OR b.remaining > 0 RETURNING b.remaining",
            {
                "now": now,
                "next_reset": now + timedelta(seconds=spec.window_seconds),
                "key": spec.key,
                "limit": spec.limit,
                "window": spec.window_seconds,
            },
        )
        return cursor.fetchone() is not None


def budget_observe(spec: BudgetSpec, rate_limit: RateLimit, *, now: datetime | None = None) -> None:
    """Correct the budget from the platform's headers: its window and what it says is left
    (never more than Earshot itself counts)."""
    RateBudget.objects.filter(key=spec.key).update(
        limit=rate_limit.limit,
        reset_at=rate_limit.reset_at,
        observed_at=now or timezone.now(),
    )
    RateBudget.objects.filter(key=spec.key, remaining__gt=rate_limit.remaining).update(
        remaining=rate_limit.remaining
    )


def budget_block(spec: BudgetSpec, *, until: datetime) -> None:
    """The platform said 429: nothing more until `until`."""
    RateBudget.objects.filter(key=spec.key).update(remaining=0, reset_at=until)


def budget_state(spec: BudgetSpec, *, now: datetime | None = None) -> tuple[int, datetime | None]:
    """(calls left, when the window resets) as Earshot counts them now."""
    now = now or timezone.now()
    budget = RateBudget.objects.filter(key=spec.key).first()
    if budget is None or budget.reset_at <= now:
        return spec.limit, None
    return budget.remaining, budget.reset_at
