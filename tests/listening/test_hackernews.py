"""Hacker News through Algolia's HN Search API: the client against the simulator, over HTTP."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from listening.clients.base import (
    AuthenticationFailed,
    PlatformError,
    PlatformUnavailable,
    RateLimited,
    RequestRejected,
)
from listening.clients.hackernews import (
    HackerNewsClient,
    _Bound,
    _Window,
    decode_since,
    decode_window,
    encode_since,
    encode_window,
)
from listening.clients.registry import client_for_source
from listening.clients.text import clean_text, html_to_text
from listening.models import Mention, Platform, PollCursor, Source, TrackedKeyword
from listening.query import HACKER_NEWS_SYNTAX, parse_query
from listening.services.polling import keyword_poll
from listening.simulators.hackernews_api import HackerNewsApiSimulator
from tests.conftest import REPO_ROOT

SEARCH_PATH = "/api/v1/search_by_date"
NOW = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def hn_server() -> Iterator[HackerNewsApiSimulator]:
    simulator = HackerNewsApiSimulator()
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def hn(hn_server: HackerNewsApiSimulator) -> Iterator[HackerNewsApiSimulator]:
    hn_server.rate_limit = 10_000
    hn_server.now = lambda: NOW
    hn_server.reset()
    yield hn_server
    hn_server.now = lambda: datetime.now(UTC)


def client_for(sim: HackerNewsApiSimulator, *, timeout: float = 2.0) -> HackerNewsClient:
    client = HackerNewsClient(base_url=sim.base_url, timeout=timeout)
    client.now = lambda: NOW
    return client


def searches(sim: HackerNewsApiSimulator) -> list[dict[str, str]]:
    return [query for _, path, query, _ in sim.requests_log if path == SEARCH_PATH]


def first_page(client: HackerNewsClient, query: str = "northwind", since_id: str | None = None):
    return client.search_page(query=query, since_id=since_id, next_token=None)


def whole_round(client: HackerNewsClient, query: str = "northwind", since_id: str | None = None):
    """Every page of one round, following next_token; the first page's newest_id."""
    pages = [first_page(client, query, since_id)]
    while pages[-1].next_token:
        assert len(pages) < 50, "the round does not end"
        pages.append(
            client.search_page(query=query, since_id=since_id, next_token=pages[-1].next_token)
        )
    return pages


# --- search ----------------------------------------------------------------------------------


def test_a_story_and_a_comment_are_normalised_field_by_field(hn):
    story = hn.add_post(
        kind="story",
        title="Northwind Coffee's app is down",
        text="Anyone else? <p>Checkout fails with a 503 &amp; the &quot;retry&quot; spins.",
        author="pg",
        url="https://northwind.example/status",
        points=42,
        created_at=NOW - timedelta(minutes=10),
    )
    comment = hn.add_post(
        kind="comment",
        text='Same for me, <i>northwind</i> support says soon.<p>See <a href="https:&#x2F;&#x2F;'
        'status.example&#x2F;">https:&#x2F;&#x2F;status.example&#x2F;</a>',
        author="dang",
        parent_id=story["objectID"],
        created_at=NOW - timedelta(minutes=2),
    )

    page = first_page(client_for(hn))

    newer, older = page.posts
    assert newer.external_id == comment["objectID"]
    assert newer.text == (
        "Same for me, northwind support says soon.\n\nSee https://status.example/"
    )
    assert newer.author_external_id == "dang"
    assert newer.posted_at == NOW - timedelta(minutes=2)
    assert newer.conversation_id == story["objectID"]
    assert newer.referenced_posts == [{"type": "replied_to", "id": story["objectID"]}]
    assert newer.replied_to_id == story["objectID"] and newer.reposted_id is None
    assert newer.lang == "" and newer.in_reply_to_user_id == ""
    assert newer.public_metrics == {}
    assert newer.url == f"https://news.ycombinator.com/item?id={comment['objectID']}"
    assert newer.original is None

    assert older.external_id == story["objectID"]
    assert older.text == (
        "Northwind Coffee's app is down\n\nAnyone else?\n\n"
        'Checkout fails with a 503 & the "retry" spins.'
    )
    assert older.conversation_id == story["objectID"] and older.referenced_posts == []
    assert older.public_metrics == {"points": 42, "num_comments": 1}
    assert older.url == f"https://news.ycombinator.com/item?id={story['objectID']}"

    assert set(page.authors) == {"pg", "dang"}
    dang = page.authors["dang"]
    assert (dang.external_id, dang.username, dang.name) == ("dang", "dang", "dang")
    assert (dang.followers_count, dang.verified) == (0, False)
    assert dang.url == "https://news.ycombinator.com/user?id=dang"
    assert page.rejected == [] and page.next_token is None and page.rate_limit is None


def test_the_query_sent_is_the_remote_part_with_a_time_window(hn):
    query = parse_query('northwind "cold brew" -refund lang:en')
    remote, local = query.split_for(HACKER_NEWS_SYNTAX)
    assert remote == "northwind cold brew" and local is query

    client_for(hn).search_page(query=remote, since_id=None, next_token=None)

    (sent,) = searches(hn)
    seven_days_ago = int((NOW - timedelta(days=7)).timestamp())
    assert sent == {
        "query": "northwind cold brew",
        "tags": "(story,comment)",
        "hitsPerPage": "100",
        "page": "0",
        "numericFilters": f"created_at_i>={seven_days_ago}",
    }


def test_algolias_prefix_matches_are_dropped_but_a_match_in_the_link_is_kept(hn):
    hn.add_post(kind="comment", text="northwindish is not the brand", created_at=NOW)
    linked = hn.add_post(
        kind="story", title="A roastery's outage report", url="https://northwind.example/"
    )

    page = first_page(client_for(hn))

    # The simulator, like Algolia, served both (the last word matches as a prefix).
    assert [p.external_id for p in page.posts] == [linked["objectID"]]
    assert page.rejected == []


def test_pages_come_newest_first_and_the_round_pins_its_end(hn):
    for n in range(250):
        hn.add_post(
            kind="comment", text=f"northwind {n}", author=f"user{n}",
            created_at=NOW - timedelta(seconds=1000 - n),
        )  # fmt: skip
    client = client_for(hn)

    pages = whole_round(client)

    assert [len(p.posts) for p in pages] == [100, 100, 50]
    assert [p.next_token is None for p in pages] == [False, False, True]
    texts = [post.text for page in pages for post in page.posts]
    assert texts == [f"northwind {n}" for n in reversed(range(250))]
    newest = int((NOW - timedelta(seconds=751)).timestamp())
    sent = searches(hn)
    assert [s["page"] for s in sent] == ["0", "1", "2"]
    assert "created_at_i<=" not in sent[0]["numericFilters"]
    assert all(s["numericFilters"].endswith(f",created_at_i<={newest}") for s in sent[1:])
    assert pages[0].newest_id == f"{newest}:{40000249}"


def test_posts_added_mid_round_are_left_for_the_next_round(hn):
    for n in range(150):
        hn.add_post(
            kind="comment", text=f"northwind {n}", created_at=NOW - timedelta(hours=1, seconds=-n)
        )
    client = client_for(hn)
    first = first_page(client)
    late = hn.add_post(kind="comment", text="northwind late", created_at=NOW)

    second = client.search_page(query="northwind", since_id=None, next_token=first.next_token)

    assert len(first.posts) == 100 and len(second.posts) == 50 and second.next_token is None
    ids = {p.external_id for p in [*first.posts, *second.posts]}
    assert late["objectID"] not in ids and len(ids) == 150
    (next_round,) = whole_round(client, since_id=first.newest_id)
    assert [p.external_id for p in next_round.posts] == [late["objectID"]]


def test_a_window_beyond_the_1000_hit_cap_is_narrowed_and_nothing_is_skipped(hn):
    # 1,150 matches, three to a second: the 1,000th hit shares its second with others.
    start = NOW - timedelta(hours=2)
    added = [
        hn.add_post(
            kind="comment", text=f"northwind {n}", created_at=start + timedelta(seconds=n // 3)
        )
        for n in range(1150)
    ]

    pages = whole_round(client_for(hn))

    ids = [post.external_id for page in pages for post in page.posts]
    assert len(ids) == len(set(ids)) == 1150
    assert set(ids) == {hit["objectID"] for hit in added}
    sent = searches(hn)
    assert [s["page"] for s in sent[:10]] == [str(n) for n in range(10)]
    # After page 9, Algolia can page no further: the window ends at the oldest second read.
    oldest_read = added[1150 - 1000]["created_at_i"]
    assert sent[10]["page"] == "0"
    assert sent[10]["numericFilters"].endswith(f",created_at_i<={oldest_read}")
    assert all(page.rejected == [] for page in pages)
    # Posts are newest first across the whole round.
    times = [post.posted_at for page in pages for post in page.posts]
    assert times == sorted(times, reverse=True)


def test_the_since_cursor_returns_only_newer_posts_and_late_ones_of_the_same_second(hn):
    client = client_for(hn)
    seen = hn.add_post(kind="comment", text="northwind one", created_at=NOW - timedelta(seconds=30))
    (round_one,) = whole_round(client)
    assert [p.external_id for p in round_one.posts] == [seen["objectID"]]
    # Indexed after the first poll, but made in the same second as the newest post seen.
    same_second = hn.add_post(
        kind="comment", text="northwind two", created_at=NOW - timedelta(seconds=30)
    )
    newer = hn.add_post(
        kind="comment", text="northwind three", created_at=NOW - timedelta(seconds=5)
    )

    (round_two,) = whole_round(client, since_id=round_one.newest_id)

    assert [p.external_id for p in round_two.posts] == [newer["objectID"], same_second["objectID"]]
    since = f"created_at_i>={seen['created_at_i']}"
    assert searches(hn)[-1]["numericFilters"] == since
    (round_three,) = whole_round(client, since_id=round_two.newest_id)
    assert round_three.posts == [] and round_three.rejected == []
    assert (
        round_three.newest_id
        == round_two.newest_id
        == f"{newer['created_at_i']}:{newer['objectID']}"
    )


def test_cursors_stay_within_500_characters_preferring_repeats_to_gaps():
    many = tuple(str(40_000_000 + n) for n in range(100))
    assert encode_since(_Bound(1_700_000_000, ("1", "2"))) == "1700000000:1,2"
    assert decode_since("1700000000:1,2") == _Bound(1_700_000_000, ("1", "2"))
    # Too many ids to list: the whole second is asked for again (stored once), none skipped.
    assert encode_since(_Bound(1_700_000_000, many)) == "1700000000:"
    assert decode_since("not a cursor") is None
    token = encode_window(_Window(lower=_Bound(1, many), upper=_Bound(2, many), page=3))
    assert len(token) <= 500
    assert decode_window(token) == _Window(lower=_Bound(1), upper=_Bound(2), page=3)
    assert decode_window("{broken") is None


# --- errors -----------------------------------------------------------------------------------


def test_401_is_refused_credentials_in_plain_words(hn):
    hn.fail_next(401, {"message": "Invalid Application-ID or API key", "status": 401})
    with pytest.raises(AuthenticationFailed) as refused:
        first_page(client_for(hn))
    assert str(refused.value) == (
        "Hacker News search refused the request (401: Invalid Application-ID or API key). It "
        "needs no credentials: check that the source's address is the HN Search API "
        "(https://hn.algolia.com)."
    )
    assert len(searches(hn)) == 1  # no retry behind our back


@pytest.mark.parametrize("status", [400, 403])
def test_400_and_403_are_rejected_requests_with_algolias_words(hn, status):
    hn.fail_next(status, {"message": "Invalid syntax for numeric condition:x", "status": status})
    with pytest.raises(
        RequestRejected,
        match=rf"^Hacker News search refused the request \({status}: Invalid syntax for numeric condition:x\)$",
    ):
        first_page(client_for(hn))


def test_the_simulators_own_400_names_the_bad_parameter(hn):
    with pytest.raises(
        RequestRejected, match="Invalid syntax for numeric condition:created_at_i~5"
    ):
        requests_get_as_client(hn, numericFilters="created_at_i~5")


def requests_get_as_client(sim, **params: str) -> None:
    """A raw search with parameters the client never sends, translated as the client would."""
    from listening.clients.hackernews import _raise_for_status

    response = requests.get(sim.base_url + SEARCH_PATH, params=params, timeout=2)
    _raise_for_status(response, now=NOW)


def test_a_spent_budget_is_a_429_with_a_reset_a_minute_on(hn):
    hn.rate_limit = 2
    hn.reset()
    client = client_for(hn)
    first_page(client)
    first_page(client)

    with pytest.raises(RateLimited) as limited:
        first_page(client)

    assert limited.value.reset_at == NOW + timedelta(seconds=60)
    assert "Hacker News search rate limit reached (429: Too many requests)" in str(limited.value)
    assert "12:01:00 UTC" in str(limited.value)
    assert len(searches(hn)) == 3


def test_a_retry_after_from_a_proxy_is_honoured(hn):
    hn.fail_next(
        429, {"message": "Too many requests", "status": 429}, headers={"Retry-After": "300"}
    )
    with pytest.raises(RateLimited) as limited:
        first_page(client_for(hn))
    assert limited.value.reset_at == NOW + timedelta(seconds=300)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (
            lambda sim: sim.fail_next(500),
            r"^Hacker News search answered 500: Internal Server Error; will retry$",
        ),
        (
            lambda sim: sim.fail_next(503, b"<html>busy</html>", content_type="text/html"),
            r"^Hacker News search answered 503: <html>busy</html>; will retry$",
        ),
        (
            lambda sim: sim.fail_next(200, b'{"hits": [', content_type="application/json"),
            r"not valid JSON; will retry$",
        ),
        (
            lambda sim: sim.fail_next(200, ["a", "list"]),
            r"not a search result \(no hits list\); will retry$",
        ),
        (
            lambda sim: sim.cut_next(),
            r"^Could not reach Hacker News search: ConnectionError; will retry$",
        ),
        (
            lambda sim: sim.slow_next(1.5),
            r"^Hacker News search did not answer in time; will retry$",
        ),
    ],
    ids=["500", "503-html", "malformed-json", "not-a-result", "cut", "timeout"],
)
def test_transient_failures_are_platform_unavailable(hn, fault, message):
    hn.add_post(kind="comment", text="northwind", created_at=NOW)
    fault(hn)
    with pytest.raises(PlatformUnavailable, match=message):
        first_page(client_for(hn, timeout=0.5))
    assert len(searches(hn)) == 1


def test_an_unreachable_api_is_a_transient_failure():
    client = HackerNewsClient(base_url="http://127.0.0.1:9", timeout=1)
    with pytest.raises(PlatformUnavailable, match="^Could not reach Hacker News search"):
        first_page(client)


# --- malformed items --------------------------------------------------------------------------


def test_each_bad_hit_is_named_and_the_good_ones_kept(hn):
    good = hn.add_post(
        kind="comment",
        text="northwind is fine",
        author="fine",
        created_at=NOW - timedelta(seconds=5),
    )
    second = good["created_at_i"]
    hn.add_raw_hit("just a string", created_at_i=second)
    hn.add_raw_hit({**good, "objectID": 123}, created_at_i=second)
    hn.add_raw_hit({**good, "objectID": "9", "author": None}, created_at_i=second)
    hn.add_raw_hit({**good, "objectID": "10", "author": "a b"}, created_at_i=second)
    hn.add_raw_hit({**good, "objectID": "11", "created_at_i": "soon"}, created_at_i=second)
    hn.add_raw_hit({**good, "objectID": "12", "created_at_i": 10**10}, created_at_i=second)
    hn.add_raw_hit({**good, "objectID": "13", "comment_text": ""}, created_at_i=second)
    hn.add_raw_hit({**good, "objectID": "14", "comment_text": ["x"]}, created_at_i=second)
    hn.add_raw_hit({**good, "objectID": "15", "parent_id": {"id": 1}}, created_at_i=second)

    page = first_page(client_for(hn))

    assert [p.external_id for p in page.posts] == [good["objectID"]]
    assert page.posts[0].text == "northwind is fine"
    assert [r.reason for r in page.rejected] == [
        "hit is a str, not an object",
        "objectID 123 is not an HN item id",
        "author None is not an HN username",
        "author 'a b' is not an HN username",
        "created_at_i 'soon' is not a plausible time in seconds",
        "created_at_i 10000000000 is not a plausible time in seconds",
        "the hit has no title or text",
        "comment_text is a list, not text",
        "parent_id {'id': 1} is not an HN item id",
    ]
    assert page.rejected[0].raw == "just a string"
    # The cursor still moves past the second the bad hits share.
    assert page.newest_id.startswith(f"{second}:")


def test_html_becomes_text_in_one_pass_even_when_hostile():
    # html.parser needs half a minute for the first of these; a "<" that opens nothing is text.
    assert html_to_text("<a" * 100_000) == "<a" * 100_000
    assert html_to_text("<a" + "b" * 200_000) == "<a" + "b" * 200_000
    assert html_to_text("x<!-- never closed <p>y") == "x"
    assert html_to_text("a &lt; b <br>c<style>p{}</style>&amp; d") == "a < b\nc& d"


def test_text_is_made_safe_to_store():
    assert clean_text("a\x00b\x07c\td\ne") == "abc\td\ne"
    assert clean_text("x\ud800y") == "x\ufffdy"
    assert html_to_text("<p>one<p>two  <b>three</b><script>evil()</script><pre>a\n  b</pre>") == (
        "one\n\ntwo three\na\nb"
    )


_hostile_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=False),
    st.text(max_size=50),
    st.sampled_from(["\u0000", "\ud800", "\u202e\u200fabc", "x" * 100_000, "<p>", "&#0;", "-1"]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
_HIT_FIELDS = [
    "objectID", "author", "created_at_i", "created_at", "title", "story_text", "comment_text",
    "story_id", "parent_id", "_tags", "points", "num_comments", "url",
]  # fmt: skip
_hostile_hit = st.one_of(
    _hostile_value,
    st.fixed_dictionaries(
        {},
        optional={field: _hostile_value for field in _HIT_FIELDS},
    ),
    st.builds(
        lambda base, changes, dropped: {
            **{k: v for k, v in base.items() if k not in dropped},
            **changes,
        },
        st.just(
            {
                "objectID": "7",
                "author": "mallory",
                "created_at_i": int(NOW.timestamp()) - 60,
                "comment_text": "northwind",
                "_tags": ["comment"],
                "parent_id": 1,
                "story_id": 1,
            }
        ),  # fmt: skip
        st.dictionaries(st.sampled_from(_HIT_FIELDS), _hostile_value, max_size=3),
        st.sets(st.sampled_from(_HIT_FIELDS), max_size=3),
    ),
)
_GOOD_HIT = {
    "objectID": "40000001", "author": "goodwin", "created_at": "2026-03-02T11:00:00Z",
    "created_at_i": int(NOW.timestamp()) - 3600, "comment_text": "northwind <i>works</i>",
    "_tags": ["comment", "author_goodwin", "story_1"], "parent_id": 1, "story_id": 1,
}  # fmt: skip


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    hits=st.lists(_hostile_hit, max_size=6),
    position=st.integers(min_value=0, max_value=6),
    envelope=st.dictionaries(st.sampled_from(["nbHits", "nbPages", "page"]), _hostile_value),
    mangle=st.sampled_from(["none", "none", "none", "truncate", "not-an-object", "bytes"]),
)
def test_hostile_hits_never_escape_as_anything_but_a_platform_error(
    hn, hits, position, envelope, mangle
):
    hn.reset()
    body: Any = {"hits": [*hits[:position], _GOOD_HIT, *hits[position:]], **envelope}
    # ensure_ascii: lone surrogates travel as "\ud800" escapes, as a real JSON body can carry.
    raw = json.dumps(body).encode()
    if mangle == "truncate":
        raw = raw[: len(raw) // 2]
    elif mangle == "not-an-object":
        raw = json.dumps(body["hits"]).encode()
    elif mangle == "bytes":
        raw = b"\xff\xfe" + raw
    hn.fail_next(200, raw)

    try:
        page = first_page(client_for(hn))
    except PlatformError:
        assert mangle != "none"
        return
    good = next(
        p for p in page.posts if p.external_id == "40000001" and p.author_external_id == "goodwin"
    )
    assert good.text == "northwind works" and good.posted_at == NOW - timedelta(hours=1)
    for post in page.posts:
        assert post.author_external_id in page.authors
        assert "\x00" not in post.text and post.text.encode("utf-8")
        assert post.posted_at.tzinfo is not None
    assert len(page.posts) + len(page.rejected) <= len(body["hits"])
    assert page.next_token is None or len(page.next_token) <= 500
    assert page.newest_id is None or len(page.newest_id) <= 500


# --- read-only --------------------------------------------------------------------------------


def test_hacker_news_is_read_only_and_says_so_without_calling_it(hn):
    client = client_for(hn)
    assert client.can_reply is False and client.platform == Platform.HACKER_NEWS
    assert client.syntax is HACKER_NEWS_SYNTAX
    with pytest.raises(
        RequestRejected,
        match="^Hacker News has no write API: answer on the platform and mark the mention handled$",
    ):
        client.post_reply(text="Sorry!", in_reply_to_id="1")
    with pytest.raises(RequestRejected, match="no write API"):
        client.find_reply(author_username="northwind", text="Sorry!", in_reply_to_id="1")
    with pytest.raises(RequestRejected, match="no brand account on Hacker News"):
        client.own_posts_page(since_id=None, next_token=None)
    assert hn.requests_log == [] and hn.received_posts == []


# --- through the database ---------------------------------------------------------------------


@pytest.mark.django_db
def test_polling_stores_exact_mentions_filters_locally_and_stores_nothing_twice(hn, brand):
    hn.now = lambda: datetime.now(UTC)
    now = datetime.now(UTC).replace(microsecond=0)
    story = hn.add_post(
        kind="story", title="Northwind Coffee outage today?", author="roaster",
        created_at=now - timedelta(minutes=20),
    )  # fmt: skip
    complaint = hn.add_post(
        kind="comment", text="Northwind charged me twice, <i>terrible</i>.", author="grumpy",
        parent_id=story["objectID"], created_at=now - timedelta(minutes=5),
    )  # fmt: skip
    hn.add_post(
        kind="comment", text="Northwind refund finally arrived", author="patient",
        parent_id=story["objectID"], created_at=now - timedelta(minutes=3),
    )  # fmt: skip
    hn.add_post(kind="comment", text="Unrelated chatter", author="other", created_at=now)
    source = Source.objects.create(
        brand=brand, platform=Platform.HACKER_NEWS, name="Hacker News", base_url=hn.base_url
    )
    keyword = TrackedKeyword.objects.create(
        brand=brand, platform=Platform.HACKER_NEWS, source=source, query="northwind -refund"
    )
    PollCursor.objects.create(keyword=keyword)

    outcome = keyword_poll(keyword_id=keyword.pk, max_pages=5)

    assert outcome.ok and outcome.stored == 2 and outcome.skipped == []
    stored = {
        m.external_id: (
            m.platform,
            m.text,
            m.author.username,
            m.author.url,
            m.url,
            m.conversation_id,
        )
        for m in Mention.objects.select_related("author")
    }
    assert stored == {
        story["objectID"]: (
            "hackernews", "Northwind Coffee outage today?", "roaster",
            "https://news.ycombinator.com/user?id=roaster",
            f"https://news.ycombinator.com/item?id={story['objectID']}", story["objectID"],
        ),
        complaint["objectID"]: (
            "hackernews", "Northwind charged me twice, terrible.", "grumpy",
            "https://news.ycombinator.com/user?id=grumpy",
            f"https://news.ycombinator.com/item?id={complaint['objectID']}", story["objectID"],
        ),
    }  # fmt: skip
    assert Mention.objects.get(external_id=complaint["objectID"]).referenced_posts == [
        {"type": "replied_to", "id": story["objectID"]}
    ]
    cursor = PollCursor.objects.get(keyword=keyword)
    # The cursor moved past the newest hit the search returned (the refund comment).
    assert cursor.since_id.startswith(f"{int((now - timedelta(minutes=3)).timestamp())}:")

    again = keyword_poll(keyword_id=keyword.pk, max_pages=5)

    assert again.ok and again.stored == 0 and Mention.objects.count() == 2
    assert searches(hn)[-1]["numericFilters"] == f"created_at_i>={cursor.since_id.split(':')[0]}"


@pytest.mark.django_db
def test_the_registry_builds_the_client_from_the_source(brand):
    public = Source(brand=brand, platform=Platform.HACKER_NEWS, name="HN")
    local = Source(
        brand=brand, platform=Platform.HACKER_NEWS, name="HN", base_url="http://127.0.0.1:1/"
    )
    assert client_for_source(public).base_url == "https://hn.algolia.com"
    assert client_for_source(local).base_url == "http://127.0.0.1:1"


# --- the command line -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_simulator_runs_from_the_command_line_with_demo_posts():
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "listening.simulators.hackernews_api", "--port", str(port),
         "--seed-count", "4", "--generate-every", "0", "--seed", "3"],
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                body = requests.get(
                    f"http://127.0.0.1:{port}{SEARCH_PATH}",
                    params={"tags": "(story,comment)"},
                    timeout=1,
                ).json()
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the simulator did not start"
                time.sleep(0.1)
        assert body["nbHits"] == 4 and len(body["hits"]) == 4
        assert {"story", "comment"} >= {hit["_tags"][0] for hit in body["hits"]}
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_other_processes_add_posts_through_the_control_endpoint(hn):
    answer = requests.post(
        hn.base_url + "/_sim/posts",
        json={"kind": "comment", "text": "northwind via control", "author": "ctl",
              "created_at": "2026-03-02T11:59:00Z"},
        timeout=2,
    )  # fmt: skip
    assert answer.status_code == 201

    (post,) = first_page(client_for(hn)).posts

    assert (post.external_id, post.text) == (
        answer.json()["data"]["objectID"],
        "northwind via control",
    )
    assert post.posted_at == NOW - timedelta(minutes=1)
    refused = requests.post(hn.base_url + "/_sim/posts", json={"kind": "poll"}, timeout=2)
    assert refused.status_code == 400 and "kind must be story or comment" in refused.text
