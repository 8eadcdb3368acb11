"""Backfill: a new keyword reads the last 7 days once, page by page, behind live polling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from listening.models import Mention, MentionStatus, PollCursor, RateBudget
from listening.services.budgets import budget_for_keyword, budget_take
from listening.services.keywords import keyword_update
from listening.services.polling import backfill_due, keyword_backfill_page, keyword_poll
from tests.conftest import customer, search_requests

pytestmark = pytest.mark.django_db


def add_history(sim, count: int) -> list[dict]:
    """`count` posts spread over the last three days, oldest first."""
    now = datetime.now(UTC)
    return [
        sim.add_tweet(
            text=f"@NorthwindHelp old story {n}",
            author=customer(f"past{n}"),
            created_at=now - timedelta(hours=72) + timedelta(hours=72 * n / count),
        )
        for n in range(count)
    ]


def test_the_first_poll_reads_the_newest_page_and_leaves_the_rest_to_the_backfill(x_sim, keyword):
    history = add_history(x_sim, 250)

    first = keyword_poll(keyword_id=keyword.pk, max_pages=10)

    assert (first.stored, first.pages) == (100, 1)
    cursor = PollCursor.objects.get(keyword=keyword)
    assert cursor.since_id == history[-1]["id"]
    assert cursor.next_token == "" and cursor.backfill_next_token
    assert backfill_due() == [keyword.pk]


def test_live_polls_go_on_while_history_is_read(x_sim, keyword):
    add_history(x_sim, 250)
    keyword_poll(keyword_id=keyword.pk, max_pages=10)
    fresh = x_sim.add_tweet(text="@NorthwindHelp help right now", author=customer("now_nia"))

    live = keyword_poll(keyword_id=keyword.pk, max_pages=10)

    assert (live.stored, live.pages) == (1, 1)
    assert Mention.objects.get(external_id=fresh["id"]).status == MentionStatus.NEW
    assert PollCursor.objects.get(keyword=keyword).backfill_next_token


def test_the_backfill_reads_every_older_page_once_and_archives_what_is_over_a_day_old(
    x_sim, keyword, settings
):
    settings.BACKFILL_QUEUE_HOURS = 24
    history = add_history(x_sim, 250)
    keyword_poll(keyword_id=keyword.pk, max_pages=10)

    pages = [keyword_backfill_page(keyword_id=keyword.pk) for _ in range(3)]

    assert pages == [100, 50, 0]
    cursor = PollCursor.objects.get(keyword=keyword)
    assert cursor.backfill_next_token == "" and cursor.backfill_done_at is not None
    assert cursor.backfill_pages == 2
    assert backfill_due() == []
    assert Mention.objects.count() == 250
    # The newest 100 came live and are queued; the 150 read as history (29 to 72 hours
    # old) are kept, archived, out of the queue.
    live_ids = {h["id"] for h in history[-100:]}
    assert (
        set(Mention.objects.filter(status=MentionStatus.NEW).values_list("external_id", flat=True))
        == live_ids
    )
    archived = Mention.objects.filter(status=MentionStatus.ARCHIVED)
    assert archived.count() == 150
    assert all(m.posted_at < datetime.now(UTC) - timedelta(hours=24) for m in archived)


def test_the_backfill_waits_while_the_budget_is_low(x_sim, keyword):
    add_history(x_sim, 150)
    keyword_poll(keyword_id=keyword.pk, max_pages=10)
    calls = len(search_requests(x_sim))
    spec = budget_for_keyword(keyword)
    budget_take(spec)
    RateBudget.objects.filter(key=spec.key).update(remaining=int(spec.limit * 0.2))

    assert keyword_backfill_page(keyword_id=keyword.pk) == 0

    assert len(search_requests(x_sim)) == calls
    assert PollCursor.objects.get(keyword=keyword).backfill_pages == 0


def test_a_new_query_reads_its_own_history(x_sim, keyword, brand):
    add_history(x_sim, 150)
    keyword_poll(keyword_id=keyword.pk, max_pages=10)
    keyword.refresh_from_db()

    keyword_update(
        keyword=keyword,
        brand=brand,
        query="@NorthwindHelp story",
        poll_interval_seconds=30,
        is_active=True,
        source=None,
        team=None,
    )

    cursor = PollCursor.objects.get(keyword=keyword)
    assert (cursor.backfill_next_token, cursor.backfill_done_at, cursor.since_id) == ("", None, "")
    assert keyword_poll(keyword_id=keyword.pk, max_pages=10).pages == 1
    assert PollCursor.objects.get(keyword=keyword).backfill_next_token
