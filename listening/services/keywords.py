"""Writes on tracked keywords (admins)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from listening.clients.base import (
    FetchedAuthor,
    FetchedPost,
    PlatformClient,
    PlatformError,
    RateLimited,
)
from listening.clients.registry import client_for_keyword
from listening.models import (
    OPEN_STATUSES,
    Brand,
    Mention,
    Platform,
    PollCursor,
    Source,
    Team,
    TrackedKeyword,
)
from listening.query import QueryablePost, parse_query
from listening.services.budgets import (
    budget_block,
    budget_for_keyword,
    budget_observe,
    budget_state,
    budget_take,
)

logger = logging.getLogger(__name__)


class TeamOfAnotherBrand(ValueError):
    """A keyword may only be routed to a team of its own brand."""


@transaction.atomic
def keyword_create(
    *,
    brand: Brand,
    query: str,
    poll_interval_seconds: int,
    is_active: bool = True,
    source: Source | None = None,
    team: Team | None = None,
) -> TrackedKeyword:
    """Create a keyword with its cursor; it is due for polling at once. Without a source it
    listens on X, with the brand's X credentials; without a team its mentions go to every
    agent of the brand."""
    if team is not None and team.brand_id != brand.pk:
        raise TeamOfAnotherBrand(f"{team.name} is a team of another brand than {brand}.")
    keyword = TrackedKeyword.objects.create(
        brand=brand,
        source=source,
        platform=source.platform if source is not None else Platform.X,
        query=query.strip(),
        poll_interval_seconds=poll_interval_seconds,
        is_active=is_active,
        team=team,
    )
    PollCursor.objects.create(keyword=keyword)
    return keyword


@transaction.atomic
def keyword_update(
    *,
    keyword: TrackedKeyword,
    brand: Brand,
    query: str,
    poll_interval_seconds: int,
    is_active: bool,
    source: Source | None,
    team: Team | None,
) -> tuple[TrackedKeyword, int]:
    """Save changes; returns the keyword and how many open mentions moved to its new team.

    A changed query or source starts listening afresh: the old cursor means nothing there.
    A changed team takes the keyword's open mentions along (`keyword_route`).
    """
    if team is not None and team.brand_id != brand.pk:
        raise TeamOfAnotherBrand(f"{team.name} is a team of another brand than {brand}.")
    query = query.strip()
    # Compare with the stored row: a bound ModelForm has already changed the instance.
    stored_query, stored_source, stored_team = TrackedKeyword.objects.values_list(
        "query", "source", "team"
    ).get(pk=keyword.pk)
    if query != stored_query or (source.pk if source else None) != stored_source:
        PollCursor.objects.filter(keyword=keyword).update(
            since_id="",
            next_token="",
            round_newest_id="",
            last_error="",
            version=0,
            # A new query has a history of its own to read.
            backfill_next_token="",
            backfill_done_at=None,
            backfill_pages=0,
            volume_per_hour=0.0,
        )
    keyword.brand = brand
    keyword.source = source
    keyword.platform = source.platform if source is not None else Platform.X
    keyword.query = query
    keyword.poll_interval_seconds = poll_interval_seconds
    keyword.is_active = is_active
    keyword.save(
        update_fields=["brand", "source", "platform", "query", "poll_interval_seconds", "is_active"]
    )
    moved = 0
    if (team.pk if team else None) != stored_team:
        moved = keyword_route(keyword=keyword, team=team)
    return keyword, moved


def keyword_pause(*, keyword: TrackedKeyword) -> bool:
    """Stop polling `keyword`: the dispatcher claims only active keywords, and a poll already
    queued makes no call once it sees the keyword paused. False when it was paused already."""
    changed = TrackedKeyword.objects.filter(pk=keyword.pk, is_active=True).update(is_active=False)
    keyword.is_active = False
    return changed == 1


def keyword_resume(*, keyword: TrackedKeyword, now: datetime | None = None) -> bool:
    """Poll `keyword` again, from its next dispatch on (it is due at once). Its cursor is
    kept, so the posts made while it was paused are read too, as far back as the platform's
    search reaches. False when it was active already."""
    with transaction.atomic():
        changed = TrackedKeyword.objects.filter(pk=keyword.pk, is_active=False).update(
            is_active=True
        )
        if changed:
            PollCursor.objects.filter(keyword=keyword).update(next_poll_at=now or timezone.now())
    keyword.is_active = True
    return changed == 1


@transaction.atomic
def keyword_route(*, keyword: TrackedKeyword, team: Team | None) -> int:
    """Route `keyword`'s mentions to `team` (None: every agent of the brand).

    Its open mentions (new, reopened, claimed) move to the team's queue in one UPDATE;
    closed ones keep the team that had them, so reports still say who answered. Returns how
    many mentions moved. Safe to run twice: the second run moves none.
    """
    if team is not None and team.brand_id != keyword.brand_id:
        raise TeamOfAnotherBrand(f"{team.name} is a team of another brand than {keyword.brand}.")
    TrackedKeyword.objects.filter(pk=keyword.pk).update(team=team)
    keyword.team = team
    open_mentions = Mention.objects.filter(keyword=keyword, status__in=OPEN_STATUSES)
    elsewhere = (
        open_mentions.exclude(team=team) if team else open_mentions.filter(team__isnull=False)
    )
    return elsewhere.update(team=team)


# X's recent search reaches back 7 days: a search that returns everything in one page has
# seen a week of posts.
X_SEARCH_REACH = timedelta(days=7)
# A rate over less time than this says little.
SHORTEST_SPAN = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class SearchSample:
    """What a platform's search returned for a draft query, matched as polling would."""

    posts: list[tuple[FetchedPost, FetchedAuthor | None]]
    # The platform had more pages: the rate is over the newest posts only.
    has_more: bool
    # The time the posts cover (from `since` to the search), and the posts a day that makes.
    span: timedelta
    since: datetime
    per_day: float
    # Returned by the platform but left out by the parts of the query it cannot express.
    filtered_out: int


class SearchNotRun(Exception):
    """The one-off search made no call, or the platform refused it; `str()` says why, for the
    admin."""


def keyword_search_once(
    *,
    brand: Brand,
    query: str,
    source: Source | None = None,
    client: PlatformClient | None = None,
    now: datetime | None = None,
) -> SearchSample:
    """Run a draft query once on its platform's search, as a poll would, and store nothing.

    Takes one call from the credential's rate budget (none left: `SearchNotRun`, no call
    made), corrects the budget from the platform's rate-limit headers, and applies the parts
    of the query the platform cannot express. No mention, author or cursor is written.
    """
    now = now or timezone.now()
    draft = TrackedKeyword(
        brand=brand,
        source=source,
        platform=source.platform if source is not None else Platform.X,
        query=query,
    )
    client = client or client_for_keyword(draft)
    remote_query, local_filter = parse_query(query).split_for(client.syntax)
    budget = budget_for_keyword(draft)
    if not budget_take(budget, now=now):
        _, resets_at = budget_state(budget, now=now)
        logger.info("One-off search for %r not run: budget %s is spent", query, budget.key)
        raise SearchNotRun(
            f"No {draft.get_platform_display()} search call is left in this credential's "
            f"rate budget until {resets_at:%H:%M:%S} UTC: polling needs what remains."
            if resets_at
            else f"No {draft.get_platform_display()} search call is left in the rate budget."
        )
    try:
        page = client.search_page(query=remote_query, since_id=None, next_token=None)
    except PlatformError as exc:
        if isinstance(exc, RateLimited):
            budget_block(budget, until=exc.reset_at)
        logger.warning("One-off search for %r on %s failed: %s", query, draft.platform, exc)
        raise SearchNotRun(str(exc)) from exc
    if page.rate_limit is not None:
        budget_observe(budget, page.rate_limit, now=now)
    kept = [
        post
        for post in page.posts
        if local_filter is None or local_filter.matches(_queryable(post, page.authors))
    ]
    span = _span_covered(page.posts, has_more=page.next_token is not None, draft=draft, now=now)
    return SearchSample(
        posts=[(post, page.authors.get(post.author_external_id)) for post in kept],
        has_more=page.next_token is not None,
        span=span,
        since=now - span,
        per_day=len(kept) / (span / timedelta(days=1)),
        filtered_out=len(page.posts) - len(kept),
    )


def _queryable(post: FetchedPost, authors: dict[str, FetchedAuthor]) -> QueryablePost:
    author = authors.get(post.author_external_id)
    return QueryablePost(
        text=post.text,
        author_username=author.username if author else "",
        lang=post.lang,
        is_retweet=post.reposted_id is not None,
    )


def _span_covered(
    posts: list[FetchedPost], *, has_more: bool, draft: TrackedKeyword, now: datetime
) -> timedelta:
    """How long a stretch of time one page of search results stands for.

    A full page (more to come) covers back to its oldest post; X's last page covers all of
    its 7-day reach. Elsewhere the reach is not documented, so the oldest post is the bound.
    """
    if not has_more and draft.platform == Platform.X:
        return X_SEARCH_REACH
    oldest = min((post.posted_at for post in posts), default=now)
    return max(now - oldest, SHORTEST_SPAN)
