"""Rows for tests, made the way the product makes them (no fixtures files)."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import count

from listening.models import Author, Brand, Mention, TrackedKeyword
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
) -> Mention:
    score = sentiment_score(text=text)
    return Mention.objects.create(
        platform="x",
        external_id=external_id or str(next(_ids)),
        brand=brand,
        keyword=keyword,
        author=author or make_author(),
        text=text,
        posted_at=posted_at or datetime.now(UTC),
        sentiment_compound=score.compound,
        sentiment_positive=score.positive,
        sentiment_neutral=score.neutral,
        sentiment_negative=score.negative,
        sentiment_label=score.label,
        status=status,
    )
