"""Malformed, oversized and unicode-hostile items from X never crash a poll: each bad item is
quarantined with its reason and every good one is stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from listening.models import Mention, PollCursor, QuarantinedItem, TrackedKeyword
from listening.services.keywords import keyword_create
from listening.services.polling import keyword_poll
from tests.conftest import customer

pytestmark = pytest.mark.django_db

HOSTILE_TEXT = st.one_of(
    st.text(max_size=300),
    st.sampled_from(
        [
            "\u0000nul inside",
            "\u202eevil rtl override",
            "\\ud800 lone surrogate as an escape",
            "ｆｕｌｌｗｉｄｔｈ",
            "🙂" * 500,
            "x" * 100_000,
            "",
        ]
    ),
)
# Values of the wrong type, or missing, for each field X normally sends.
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | HOSTILE_TEXT,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def hostile_items(draw) -> object:
    """An item of `data[]` that claims to be a tweet, broken in one or more ways."""
    item = {
        "id": draw(st.one_of(st.from_regex(r"\A[0-9]{1,19}\Z"), ANY_JSON)),
        "text": "@NorthwindHelp " + draw(HOSTILE_TEXT),
        "author_id": draw(st.one_of(st.just("1"), ANY_JSON)),
        "created_at": draw(st.one_of(st.just("2026-11-22T10:00:00.000Z"), ANY_JSON)),
        "referenced_tweets": draw(ANY_JSON),
        "public_metrics": draw(ANY_JSON),
    }
    dropped = draw(st.sets(st.sampled_from(sorted(item)), max_size=3))
    item = {key: value for key, value in item.items() if key not in dropped}
    return draw(st.one_of(st.just(item), ANY_JSON.filter(lambda v: not isinstance(v, dict))))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(items=st.lists(hostile_items(), min_size=1, max_size=4))
def test_a_poll_quarantines_each_bad_item_and_stores_every_good_one(x_sim, brand, items):
    x_sim.reset()
    Mention.objects.all().delete()
    TrackedKeyword.objects.all().delete()
    keyword = keyword_create(brand=brand, query="@NorthwindHelp", poll_interval_seconds=30)
    now = datetime.now(UTC)
    good = [
        x_sim.add_tweet(
            text=f"@NorthwindHelp fine post {n}",
            author=customer(f"fine{n}"),
            created_at=now - timedelta(minutes=5, seconds=n),
        )
        for n in range(2)
    ]
    for n, item in enumerate(items):
        x_sim.add_raw_item(item, created_at=now - timedelta(minutes=1, seconds=n))

    outcome = keyword_poll(keyword_id=keyword.pk, max_pages=3)

    assert outcome.error == "", outcome.error
    stored = set(Mention.objects.filter(keyword=keyword).values_list("external_id", flat=True))
    assert stored == {tweet["id"] for tweet in good}
    # Every hostile item was served (its text matches, or it has none) and none can be read
    # (its author is never among the page's users): each is quarantined with its reason.
    quarantined = list(QuarantinedItem.objects.filter(keyword=keyword))
    assert len(quarantined) == len(items)
    assert all(item.reason and item.platform == "x" for item in quarantined)
    assert PollCursor.objects.get(keyword=keyword).skipped_items_total == len(items)


def test_a_nul_character_is_dropped_not_fatal_to_the_page(x_sim, keyword):
    x_sim.add_tweet(
        text="@NorthwindHelp broken\u0000 text", author=customer("nul_nia", "Ni\u0000a")
    )
    x_sim.add_tweet(text="@NorthwindHelp fine text", author=customer("fine_fay"))

    outcome = keyword_poll(keyword_id=keyword.pk, max_pages=2)

    assert outcome.error == "" and outcome.stored == 2
    assert set(Mention.objects.values_list("text", flat=True)) == {
        "@NorthwindHelp broken text",
        "@NorthwindHelp fine text",
    }
    assert Mention.objects.get(author__username="nul_nia").author.name == "Nia"
