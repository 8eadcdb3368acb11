"""Rows for tests, made the way the product makes them (no fixtures files)."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import count

from listening.models import Author, Brand, Mention, TrackedKeyword
from listening.services.priority import PriorityFacts, mention_priority
from listening.services.sentiment import sentiment_score

_ids = count(1_800_000_000_000_000_000)


def make_author(*, username: str = "", name: str = "", followers: int = 100) -> Author:
    n = next(_ids)
    return Author.objects.create(
        platform="x",
        external_id=str(n),
        username=username or f"user{n % 100000}",
        name=name,
        followers_count=followers,
    )


def make_mention(
    *,
    brand: Brand,
    text: str,
    author: Author | None = None,
    keyword: TrackedKeyword | None = None,
    posted_at: datetime | None = None,
    external_id: str = "",
    status: str = "new",
    claimed_by=None,
    claim_expires_at: datetime | None = None,
) -> Mention:
    score = sentiment_score(text=text)
    author = author or make_author()
    posted_at = posted_at or datetime.now(UTC)
    priority = mention_priority(
        PriorityFacts(
            compound=score.compound,
            label=score.label,
            followers=author.followers_count,
            text=text,
            earlier_complaints_this_week=0,
            earlier_positive=0,
        )
    )
    return Mention.objects.create(
        platform="x",
        external_id=external_id or str(next(_ids)),
        brand=brand,
        keyword=keyword,
        author=author,
        text=text,
        posted_at=posted_at,
        urgency_at=posted_at - priority.head_start,
        priority_reasons=priority.reasons,
        sentiment_compound=score.compound,
        sentiment_positive=score.positive,
        sentiment_neutral=score.neutral,
        sentiment_negative=score.negative,
        sentiment_label=score.label,
        status=status,
        claimed_by=claimed_by,
        claim_expires_at=claim_expires_at,
    )
