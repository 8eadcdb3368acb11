"""Writes on tracked keywords (admins)."""

from __future__ import annotations

from django.db import transaction

from listening.models import Brand, Platform, PollCursor, Source, TrackedKeyword


@transaction.atomic
def keyword_create(
    *,
    brand: Brand,
    query: str,
    poll_interval_seconds: int,
    is_active: bool = True,
    source: Source | None = None,
) -> TrackedKeyword:
    """Create a keyword with its cursor; it is due for polling at once. Without a source it
    listens on X, with the brand's X credentials."""
    keyword = TrackedKeyword.objects.create(
        brand=brand,
        source=source,
        platform=source.platform if source is not None else Platform.X,
        query=query.strip(),
        poll_interval_seconds=poll_interval_seconds,
        is_active=is_active,
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
    source: Source | None = None,
) -> TrackedKeyword:
    """Save changes. A changed query or source starts listening afresh: the old cursor
    means nothing there."""
    query = query.strip()
    # Compare with the stored row: a bound ModelForm has already changed the instance.
    stored_query, stored_source = TrackedKeyword.objects.values_list("query", "source").get(
        pk=keyword.pk
    )
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
    return keyword
