"""Reads for the keyword studio: which stored mentions a draft query matches, and what the
query would cost to listen for.

The preview is bounded: it looks at the brand's newest `PREVIEW_SCAN_LIMIT` mentions at most,
narrows them in SQL by the words every match must contain, and confirms each candidate with
Earshot's own matcher (`Query.matches`), so it counts exactly what polling would have kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Min, Q, QuerySet
from django.utils import timezone

from listening.models import Brand, Mention, Platform
from listening.query import And, From, Lang, Node, Or, Query, QueryablePost, Term
from listening.selectors import x_monthly_cost
from listening.services.budgets import PLATFORM_LIMITS

# How many of the brand's newest mentions a preview reads at most, and how many it shows.
PREVIEW_SCAN_LIMIT = 5_000
PREVIEW_SHOWN = 10
# The preview's optional window.
PREVIEW_WINDOW_DAYS = 30
# A rate over less time than this says little.
SHORTEST_SPAN = timedelta(hours=1)
SECONDS_PER_MONTH = 30 * 24 * 3600
# X's recent search returns at most 100 posts a call.
X_POSTS_PER_CALL = 100


@dataclass(frozen=True, slots=True)
class PreviewMatch:
    mention_id: int
    platform: str
    author_username: str
    posted_at: datetime
    text: str


@dataclass(frozen=True, slots=True)
class KeywordPreview:
    matched: int
    # The mentions read: the newest `scan_limit` of the brand (within the window, if any).
    scanned: int
    scan_limit: int
    window_days: int | None
    # The newest matches, newest first.
    newest: list[PreviewMatch]
    # The time the scanned mentions cover: from the oldest one read (`since`) to now.
    span: timedelta | None
    since: datetime | None

    @property
    def limit_reached(self) -> bool:
        return self.scanned >= self.scan_limit

    @property
    def per_day(self) -> float | None:
        if self.span is None:
            return None
        return self.matched / (self.span / timedelta(days=1))


@dataclass(frozen=True, slots=True)
class XCostEstimate:
    """What listening for a query on X would cost a month, and take of the search budget."""

    per_day: float
    poll_interval_seconds: int
    monthly_cost: Decimal
    # Search calls a month: one per poll, or one per 100 posts when more arrive between polls.
    calls_per_month: int
    # The share of the credential's search budget (450 calls per 15 minutes) those calls take.
    budget_share: float

    @property
    def budget_percent(self) -> float:
        return self.budget_share * 100


def keyword_preview(
    *,
    brand: Brand,
    query: Query,
    window_days: int | None = None,
    scan_limit: int = PREVIEW_SCAN_LIMIT,
    now: datetime | None = None,
) -> KeywordPreview:
    """How many of the brand's newest mentions (at most `scan_limit`, posted in the last
    `window_days` days if given) `query` matches, and the newest `PREVIEW_SHOWN` of them."""
    now = now or timezone.now()
    recent = Mention.objects.filter(brand=brand, posted_at__lte=now)
    if window_days is not None:
        recent = recent.filter(posted_at__gte=now - timedelta(days=window_days))
    scanned, oldest, candidates = _newest(recent, scan_limit)
    prefilter = sql_prefilter(query.root)
    if prefilter is not None:
        candidates = candidates.filter(prefilter)
    rows = candidates.order_by("-posted_at", "-id").values_list(
        "pk", "platform", "author__username", "posted_at", "text", "lang", "referenced_posts"
    )
    matched, newest = 0, []
    for pk, platform, username, posted_at, text, lang, references in rows:
        post = QueryablePost(
            text=text,
            author_username=username,
            lang=lang,
            is_retweet=any(ref.get("type") == "retweeted" for ref in references or ()),
        )
        if not query.matches(post):
            continue
        matched += 1
        if len(newest) < PREVIEW_SHOWN:
            newest.append(PreviewMatch(pk, platform, username, posted_at, text))
    return KeywordPreview(
        matched=matched,
        scanned=scanned,
        scan_limit=scan_limit,
        window_days=window_days,
        newest=newest,
        span=max(now - oldest, SHORTEST_SPAN) if oldest is not None else None,
        since=oldest,
    )


def _newest(mentions: QuerySet[Mention], limit: int) -> tuple[int, datetime | None, QuerySet]:
    """(how many, the oldest time, the rows) of the newest `limit` of `mentions`.

    The bound is a range on the brand's (brand, posted_at) index, found by stepping over
    `limit` index entries: a `pk IN (... LIMIT n)` subquery would let PostgreSQL test the
    words on every row of the brand before joining.
    """
    newest_first = mentions.order_by("-posted_at", "-id")
    last = newest_first.values_list("posted_at", "pk")[limit - 1 : limit].first()
    if last is None:
        summary = mentions.aggregate(count=Count("pk"), oldest=Min("posted_at"))
        return summary["count"], summary["oldest"], mentions
    posted_at, pk = last
    bounded = mentions.filter(Q(posted_at__gt=posted_at) | Q(posted_at=posted_at, pk__gte=pk))
    return limit, posted_at, bounded


def x_cost_estimate(*, per_day: float, poll_interval_seconds: int) -> XCostEstimate:
    """The monthly X cost of `per_day` posts (the keyword list's own cost model) and the
    search calls polling every `poll_interval_seconds` makes."""
    polls = SECONDS_PER_MONTH // max(poll_interval_seconds, 1)
    pages = int(per_day * 30 / X_POSTS_PER_CALL)
    calls = max(polls, pages)
    limit, window_seconds = PLATFORM_LIMITS[Platform.X]
    return XCostEstimate(
        per_day=per_day,
        poll_interval_seconds=poll_interval_seconds,
        monthly_cost=x_monthly_cost(volume_per_hour=per_day / 24),
        calls_per_month=calls,
        budget_share=calls / (SECONDS_PER_MONTH / window_seconds * limit),
    )


# --- the SQL prefilter ----------------------------------------------------------------------


def sql_prefilter(node: Node) -> Q | None:
    """A condition every mention `node` matches also meets (None: no narrowing possible).

    It only narrows: `Query.matches` decides. Words become case-insensitive substring tests
    (a token of the text contains the word, so its text does); OR and AND keep their shape;
    exclusions and is:retweet narrow nothing. Where PostgreSQL's case-insensitivity is not
    Python's case folding (ß is "ss" to Python), the word is left to the matcher.
    """
    match node:
        case Term():
            words = [Q(text__icontains=token) for token in node.tokens if _like_safe(token)]
            return _all(words)
        case From(handle) if _like_safe(handle.lower()):
            return Q(author__username__iexact=handle) | Q(author__username__iexact=f"@{handle}")
        case Lang(code):
            return Q(lang__iexact=code)
        case And(children):
            return _all([part for c in children if (part := sql_prefilter(c)) is not None])
        case Or(children):
            parts = [sql_prefilter(child) for child in children]
            if any(part is None for part in parts):
                return None
            either = Q()
            for part in parts:
                either |= part
            return either
    return None


def _all(parts: list[Q]) -> Q | None:
    if not parts:
        return None
    both = Q()
    for part in parts:
        both &= part
    return both


def _like_safe(token: str) -> bool:
    """Whether SQL's case-insensitive LIKE finds every text Python's casefold matches `token`
    in: true of ASCII words, except those with "ss" (a ß or ẞ in the text folds to it)."""
    return token.isascii() and "ss" not in token
