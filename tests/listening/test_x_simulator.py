"""The X API simulator, driven through tweepy's unmodified Client as Earshot's client drives it.

No database: these tests only need the simulator's HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import tweepy
from requests.adapters import HTTPAdapter
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from listening.simulators import x_query
from listening.simulators.generator import generate_mentions, iter_mentions
from listening.simulators.x_api import TWITTER_EPOCH_MS, XApiSimulator, handle_user_id
from tests.conftest import SHARED_DATA, shared_data_file

REPO_ROOT = Path(__file__).resolve().parents[2]
TWCS_PATH = SHARED_DATA / "twcs_dev.csv"
X_HOST = "https://api.twitter.com"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
RESET_AT = int(NOW.timestamp()) + 900

BRAND = {"id": "900", "username": "NorthwindHelp", "name": "Northwind Coffee"}
ALICE = {
    "id": "101",
    "username": "alice",
    "name": "Alice Ames",
    "followers_count": 12,
    "following_count": 30,
    "tweet_count": 400,
    "listed_count": 1,
    "verified": False,
}
BOB = {
    "id": "202",
    "username": "bob_b",
    "name": "Bob Brook",
    "followers_count": 250_000,
    "following_count": 80,
    "tweet_count": 9000,
    "listed_count": 700,
    "verified": True,
}
ALL_TWEET_FIELDS = [
    "author_id",
    "created_at",
    "conversation_id",
    "lang",
    "public_metrics",
    "referenced_tweets",
    "in_reply_to_user_id",
]
ZERO_METRICS = {
    "retweet_count": 0,
    "reply_count": 0,
    "like_count": 0,
    "quote_count": 0,
    "bookmark_count": 0,
    "impression_count": 0,
}
INVALID_REQUEST = {
    "title": "Invalid Request",
    "detail": "One or more parameters to your request was invalid.",
    "type": "https://api.twitter.com/2/problems/invalid-request",
}


class Clock:
    """The simulator's `now`, moved by hand."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


class SimulatorAdapter(HTTPAdapter):
    """Sends tweepy's https://api.twitter.com requests to the simulator instead."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    def send(self, request: requests.PreparedRequest, *args, **kwargs) -> requests.Response:
        request.url = self.base_url + request.url.removeprefix(X_HOST)
        return super().send(request, *args, **kwargs)


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def sim(clock: Clock) -> Iterator[XApiSimulator]:
    simulator = XApiSimulator(brand_user=BRAND)
    simulator.now = clock
    with simulator:
        yield simulator


def connect(client: tweepy.Client, base_url: str) -> tweepy.Client:
    client.session.mount(X_HOST + "/", SimulatorAdapter(base_url))
    return client


def app_client(sim: XApiSimulator, bearer: str = "sim-bearer", **kwargs) -> tweepy.Client:
    kwargs.setdefault("return_type", requests.Response)
    return connect(tweepy.Client(bearer_token=bearer, **kwargs), sim.base_url)


def user_client(
    sim: XApiSimulator,
    *,
    consumer_key: str = "sim-consumer-key",
    access_token: str = "sim-access-token",
) -> tweepy.Client:
    client = tweepy.Client(
        consumer_key=consumer_key,
        consumer_secret="consumer-secret",
        access_token=access_token,
        access_token_secret="token-secret",
        return_type=requests.Response,
    )
    return connect(client, sim.base_url)


def search(sim: XApiSimulator, query: str, **params) -> dict:
    return app_client(sim).search_recent_tweets(query, **params).json()


def ids(body: dict) -> list[str]:
    return [item["id"] for item in body.get("data", [])]


def minutes_ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


# --- field selection and includes ---------------------------------------------------------


def test_it_returns_only_id_text_and_edit_history_without_field_parameters(sim):
    tweet = sim.add_tweet(text="Northwind coffee is great", author=ALICE, created_at=minutes_ago(5))

    response = app_client(sim).search_recent_tweets("northwind")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json() == {
        "data": [
            {
                "id": tweet["id"],
                "text": "Northwind coffee is great",
                "edit_history_tweet_ids": [tweet["id"]],
            }
        ],
        "meta": {"newest_id": tweet["id"], "oldest_id": tweet["id"], "result_count": 1},
    }


def test_it_gives_a_tweet_a_snowflake_id_for_its_creation_time(sim):
    first = sim.add_tweet(text="a", author=ALICE, created_at=minutes_ago(5))
    second = sim.add_tweet(text="b", author=BOB, created_at=minutes_ago(5))

    ms = int(minutes_ago(5).timestamp() * 1000)
    assert first["id"] == str((ms - TWITTER_EPOCH_MS) << 22)
    assert second["id"] == str(((ms - TWITTER_EPOCH_MS) << 22) | 1)
    assert first["conversation_id"] == first["id"]


def test_it_renders_requested_fields_and_includes_each_author_once(sim):
    root = sim.add_tweet(
        text="@NorthwindHelp my order is late",
        author=ALICE,
        created_at=minutes_ago(10),
        public_metrics={"like_count": 3},
    )
    reply = sim.add_tweet(
        text="@alice @NorthwindHelp same here",
        author=BOB,
        created_at=minutes_ago(5),
        conversation_id=root["id"],
        in_reply_to_user_id=ALICE["id"],
        referenced_tweets=[{"type": "replied_to", "id": root["id"]}],
    )
    again = sim.add_tweet(text="@NorthwindHelp still late", author=ALICE, created_at=minutes_ago(1))

    body = search(
        sim,
        "@NorthwindHelp",
        tweet_fields=ALL_TWEET_FIELDS,
        expansions=["author_id"],
        user_fields=["name", "username", "public_metrics", "verified"],
    )

    assert body["data"] == [
        {
            "id": again["id"],
            "text": "@NorthwindHelp still late",
            "edit_history_tweet_ids": [again["id"]],
            "author_id": "101",
            "created_at": "2026-03-02T11:59:00.000Z",
            "conversation_id": again["id"],
            "lang": "en",
            "public_metrics": ZERO_METRICS,
        },
        {
            "id": reply["id"],
            "text": "@alice @NorthwindHelp same here",
            "edit_history_tweet_ids": [reply["id"]],
            "author_id": "202",
            "created_at": "2026-03-02T11:55:00.000Z",
            "conversation_id": root["id"],
            "lang": "en",
            "public_metrics": ZERO_METRICS,
            "referenced_tweets": [{"type": "replied_to", "id": root["id"]}],
            "in_reply_to_user_id": "101",
        },
        {
            "id": root["id"],
            "text": "@NorthwindHelp my order is late",
            "edit_history_tweet_ids": [root["id"]],
            "author_id": "101",
            "created_at": "2026-03-02T11:50:00.000Z",
            "conversation_id": root["id"],
            "lang": "en",
            "public_metrics": {**ZERO_METRICS, "like_count": 3},
        },
    ]
    assert body["includes"] == {
        "users": [
            {
                "id": "101",
                "name": "Alice Ames",
                "username": "alice",
                "public_metrics": {
                    "followers_count": 12,
                    "following_count": 30,
                    "tweet_count": 400,
                    "listed_count": 1,
                },
                "verified": False,
            },
            {
                "id": "202",
                "name": "Bob Brook",
                "username": "bob_b",
                "public_metrics": {
                    "followers_count": 250_000,
                    "following_count": 80,
                    "tweet_count": 9000,
                    "listed_count": 700,
                },
                "verified": True,
            },
        ]
    }
    assert body["meta"] == {"newest_id": again["id"], "oldest_id": root["id"], "result_count": 3}


def test_tweepy_builds_tweets_and_users_from_the_body(sim):
    tweet = sim.add_tweet(text="late again", author=BOB, created_at=minutes_ago(2))

    response = app_client(sim, return_type=tweepy.Response).search_recent_tweets(
        "late", tweet_fields=["created_at", "author_id"], expansions=["author_id"]
    )

    assert [(t.id, t.author_id, t.created_at) for t in response.data] == [
        (int(tweet["id"]), 202, minutes_ago(2))
    ]
    assert [(u.id, u.username, u.name) for u in response.includes["users"]] == [
        (202, "bob_b", "Bob Brook")
    ]


def test_no_results_leave_out_data_and_includes(sim):
    sim.add_tweet(text="nothing to see", author=ALICE, created_at=minutes_ago(1))

    assert search(sim, "late", expansions=["author_id"]) == {"meta": {"result_count": 0}}


def test_it_serves_a_malformed_item_as_is_beside_good_ones(sim):
    good = sim.add_tweet(text="late order", author=ALICE, created_at=minutes_ago(3))
    sim.add_raw_item({"id": "not-a-number", "text": "late order too"}, created_at=minutes_ago(2))
    sim.add_raw_item({"text": "late, and no id"}, created_at=minutes_ago(1))
    sim.add_raw_item({"id": "777", "text": "unrelated"}, created_at=minutes_ago(1))

    body = search(sim, "late", since_id="5", tweet_fields=["author_id"])

    assert body["data"] == [
        {"text": "late, and no id"},
        {"id": "not-a-number", "text": "late order too"},
        {
            "id": good["id"],
            "text": "late order",
            "edit_history_tweet_ids": [good["id"]],
            "author_id": "101",
        },
    ]
    assert body["meta"] == {"newest_id": "not-a-number", "oldest_id": good["id"], "result_count": 3}


# --- since_id, until_id and paging --------------------------------------------------------


def test_since_id_and_until_id_are_exclusive(sim):
    first, second, third = (
        sim.add_tweet(text=f"late {n}", author=ALICE, created_at=minutes_ago(10 - n))
        for n in range(3)
    )

    assert ids(search(sim, "late", since_id=first["id"])) == [third["id"], second["id"]]
    assert search(sim, "late", since_id=third["id"]) == {"meta": {"result_count": 0}}
    assert ids(search(sim, "late", until_id=third["id"])) == [second["id"], first["id"]]


def test_next_token_pages_with_the_same_since_id_cover_every_match_once(sim):
    matching = [
        sim.add_tweet(text=f"late order {n}", author=ALICE, created_at=minutes_ago(60 - n))
        for n in range(25)
    ]
    for n in range(5):
        sim.add_tweet(text=f"fine order {n}", author=BOB, created_at=minutes_ago(30 - n))
    since_id = matching[2]["id"]

    pages = [search(sim, "late", since_id=since_id, max_results=10)]
    # A post arriving mid-way must not shift the pages already being walked.
    arrived = sim.add_tweet(text="late order arriving now", author=BOB, created_at=NOW)
    while "next_token" in pages[-1]["meta"]:
        token = pages[-1]["meta"]["next_token"]
        pages.append(search(sim, "late", since_id=since_id, max_results=10, next_token=token))

    collected = [tweet_id for page in pages for tweet_id in ids(page)]
    assert collected == [tweet["id"] for tweet in reversed(matching[3:])]
    assert [page["meta"]["result_count"] for page in pages] == [10, 10, 2]
    assert pages[0]["meta"]["newest_id"] == matching[-1]["id"]
    assert "next_token" not in pages[-1]["meta"]
    # The next poll starts from the first page's newest_id and sees only the newcomer.
    assert ids(search(sim, "late", since_id=pages[0]["meta"]["newest_id"])) == [arrived["id"]]


def test_tweepy_paginator_follows_next_token(sim):
    matching = [
        sim.add_tweet(text=f"late order {n}", author=ALICE, created_at=minutes_ago(30 - n))
        for n in range(23)
    ]
    client = app_client(sim, return_type=tweepy.Response)

    found = tweepy.Paginator(
        client.search_recent_tweets, "late", since_id=matching[0]["id"], max_results=10
    ).flatten()

    assert [str(tweet.id) for tweet in found] == [t["id"] for t in reversed(matching[1:])]


def test_a_broken_next_token_is_a_bad_request(sim):
    with pytest.raises(tweepy.BadRequest) as caught:
        app_client(sim).search_recent_tweets("late", next_token="!!")

    assert caught.value.api_messages == ["The `next_token` query parameter value [!!] is not valid"]


# --- the seven-day window and the clock -----------------------------------------------------


def test_only_the_last_seven_days_are_visible_and_future_posts_appear_on_time(sim, clock):
    sim.add_tweet(text="late", author=ALICE, created_at=NOW - timedelta(days=7, seconds=1))
    edge = sim.add_tweet(text="late", author=ALICE, created_at=NOW - timedelta(days=6, hours=23))
    future = sim.add_tweet(text="late", author=BOB, created_at=NOW + timedelta(minutes=5))

    assert ids(search(sim, "late")) == [edge["id"]]

    clock.advance(minutes=5)
    assert ids(search(sim, "late")) == [future["id"], edge["id"]]

    clock.advance(hours=1)
    assert ids(search(sim, "late")) == [future["id"]]


def test_start_time_older_than_the_window_is_refused(sim):
    with pytest.raises(tweepy.BadRequest) as caught:
        app_client(sim).search_recent_tweets("late", start_time=NOW - timedelta(days=8))

    assert caught.value.api_messages == [
        "Invalid 'start_time':'2026-02-22T12:00:00Z'. 'start_time' must be on or after 2026-02-23T12:00Z"
    ]


def test_start_and_end_time_bound_the_results(sim):
    tweets = [
        sim.add_tweet(text="late", author=ALICE, created_at=minutes_ago(m)) for m in (50, 40, 30)
    ]

    body = search(sim, "late", start_time=minutes_ago(45), end_time=minutes_ago(30))

    assert ids(body) == [tweets[1]["id"]]


# --- the query language ---------------------------------------------------------------------


@pytest.fixture
def corpus(sim) -> dict[str, str]:
    """Labelled posts for the operator tests; returns label -> id."""
    carol = {**ALICE, "id": "303", "username": "carol"}
    erin = {**ALICE, "id": "505", "username": "erin"}
    brand = {**ALICE, "id": "606", "username": "sprintcare"}
    t1 = sim.add_tweet(
        text="@sprintcare's app is down again #outage", author=ALICE, created_at=minutes_ago(6)
    )
    t2 = sim.add_tweet(
        text="@sprintcareX is a different account", author=BOB, created_at=minutes_ago(5)
    )
    t3 = sim.add_tweet(
        text="Loving the new Sprint care plan", author=carol, created_at=minutes_ago(4)
    )
    t4 = sim.add_tweet(
        text="RT @alice: @sprintcare's app is down again", author=BOB, created_at=minutes_ago(3)
    )
    t5 = sim.add_tweet(
        text="@SprintCare ya no funciona la app", author=erin, created_at=minutes_ago(2), lang="es"
    )
    t6 = sim.add_tweet(
        text="@alice Sorry to hear that, please DM us",
        author=brand,
        created_at=minutes_ago(1),
        in_reply_to_user_id="101",
        referenced_tweets=[{"type": "replied_to", "id": t1["id"]}],
    )
    return {f"t{n}": t["id"] for n, t in enumerate((t1, t2, t3, t4, t5, t6), start=1)}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("@sprintcare", {"t1", "t4", "t5"}),  # "@sprintcare's" matches, "@sprintcareX" does not
        ("@sprintcarex", {"t2"}),
        ("sprintcare", {"t1", "t4", "t5"}),  # a bare word matches the mention's word too
        ("#outage", {"t1"}),
        ("outage", {"t1"}),
        ("#down", set()),
        ("APP down", {"t1", "t4"}),  # every bare word must match, in any case
        ("app plan", set()),
        ('"care plan"', {"t3"}),
        ('"plan care"', set()),
        ('"is down again"', {"t1", "t4"}),
        ('@sprintcare -"is down"', {"t5"}),
        ("app -funciona", {"t1", "t4"}),
        ("sorry OR funciona", {"t5", "t6"}),
        ("(sorry OR funciona) -lang:es", {"t6"}),
        ("app lang:es", {"t5"}),
        ("from:sprintcare", {"t6"}),
        ("from:SPRINTCARE", {"t6"}),
        ("from:606", {"t6"}),
        ("alice -from:sprintcare", {"t4"}),
        ("@sprintcare -is:retweet", {"t1", "t5"}),
        ("@alice is:reply", {"t6"}),
        ("@alice -is:reply", {"t4"}),
        ("down OR (plan lang:en)", {"t1", "t3", "t4"}),
        ("down -(again OR plan)", set()),
    ],
)
def test_query_operators(sim, corpus, query, expected):
    found = set(ids(search(sim, query, max_results=100)))

    assert found == {corpus[label] for label in expected}


def test_an_unknown_operator_is_a_bad_request_in_xs_shape(sim):
    with pytest.raises(tweepy.BadRequest) as caught:
        app_client(sim).search_recent_tweets("late has:links")

    message = (
        "There were errors processing your request: Reference to invalid operator 'has'. Operator is "
        "not available in current product or product packaging. Please refer to complete available "
        "operator list at https://developer.twitter.com/en/docs/twitter-api/tweets/search/integrate/"
        "build-a-query#list. (at position 6)"
    )
    assert caught.value.response.json() == {
        "errors": [{"parameters": {"query": ["late has:links"]}, "message": message}],
        **INVALID_REQUEST,
    }


def test_a_query_over_512_characters_is_a_bad_request(sim):
    query = "late " * 102 + "xyz"  # 513 characters

    with pytest.raises(tweepy.BadRequest) as caught:
        app_client(sim).search_recent_tweets(query)

    assert caught.value.response.json()["errors"][0]["parameters"] == {"query": [query]}
    assert caught.value.api_messages == [
        f"The `query` query parameter value [{query}] is too long: queries are limited to 512 characters"
    ]


NEEDS_POSITIVE = (
    "A query needs at least one positive keyword, phrase or from: clause; negations, lang: and "
    "is: cannot stand alone"
)


@pytest.mark.parametrize(
    ("query", "message", "position"),
    [
        ("", "The query is empty", 1),
        ("(late", "Unmatched '('", 1),
        ("late)", "Unmatched ')'", 5),
        ("()", "Empty parentheses", 1),
        ('"late', "Unterminated quoted phrase", 1),
        ("late OR", "Ambiguous use of OR: it must stand between two clauses", 6),
        ("OR late", "Ambiguous use of OR: it must stand between two clauses", 1),
        ("late OR OR coffee", "Ambiguous use of OR: it must stand between two clauses", 6),
        ("- late", "A negation must be followed by a term, without a space", 1),
        ("late from:", "Invalid value '' for operator 'from:'", 6),
        ("late lang:english", "Invalid value 'english' for operator 'lang:'", 6),
        ('"!!!" late', "'!!!' contains nothing searchable", 1),
        ("-late", NEEDS_POSITIVE, 1),
        ("lang:en is:reply", NEEDS_POSITIVE, 1),
    ],
)
def test_parse_errors_name_the_problem_and_its_position(query, message, position):
    with pytest.raises(x_query.QueryError) as caught:
        x_query.parse_query(query)

    assert (caught.value.message, caught.value.position) == (message, position)
    assert str(caught.value) == f"{message} (at position {position})"


def test_and_binds_tighter_than_or_and_case_matters_for_or():
    assert x_query.parse_query("late coffee OR -tea #cup") == x_query.Or(
        (
            x_query.And((x_query.Term(("late",)), x_query.Term(("coffee",)))),
            x_query.And((x_query.Not(x_query.Term(("tea",))), x_query.Term(("#cup",)))),
        )
    )
    assert x_query.parse_query("late or coffee") == x_query.And(
        (x_query.Term(("late",)), x_query.Term(("or",)), x_query.Term(("coffee",)))
    )


def test_unsupported_is_values_and_upper_case_and_are_refused():
    with pytest.raises(x_query.QueryError, match=r"invalid operator 'is:verified'"):
        x_query.parse_query("late is:verified")
    with pytest.raises(x_query.QueryError, match=r"Ambiguous use of AND"):
        x_query.parse_query("late AND coffee")


def test_tokens_split_on_punctuation_but_keep_sigils():
    assert x_query.tokenize("@SprintCare's app—DOWN! #Outage $TMUS co-op") == (
        "@sprintcare", "s", "app", "down", "#outage", "$tmus", "co", "op",
    )  # fmt: skip


# --- parameter validation -------------------------------------------------------------------


@pytest.mark.parametrize("max_results", [5, 9, 101])
def test_max_results_outside_10_to_100_is_a_bad_request(sim, max_results):
    with pytest.raises(tweepy.BadRequest) as caught:
        app_client(sim).search_recent_tweets("late", max_results=max_results)

    assert caught.value.response.json() == {
        "errors": [
            {
                "parameters": {"max_results": [str(max_results)]},
                "message": f"The `max_results` query parameter value [{max_results}] is not between 10 and 100",
            }
        ],
        **INVALID_REQUEST,
    }


@pytest.mark.parametrize("max_results", [10, 100])
def test_max_results_bounds_are_inclusive(sim, max_results):
    assert search(sim, "late", max_results=max_results) == {"meta": {"result_count": 0}}


def test_unknown_fields_and_parameters_are_reported_together(sim):
    response = requests.get(
        sim.base_url + "/2/tweets/search/recent",
        params={"query": "late", "tweet.fields": "author_id,colour", "foo": "1"},
        headers={"Authorization": "Bearer sim-bearer"},
    )

    assert response.status_code == 400
    assert [error["message"] for error in response.json()["errors"]] == [
        "The query parameter [foo] is not one of [query,start_time,end_time,since_id,until_id,"
        "max_results,next_token,pagination_token,sort_order,expansions,tweet.fields,media.fields,"
        "poll.fields,user.fields,place.fields]",
        "The `tweet.fields` query parameter value [colour] is not one of [attachments,author_id,"
        "card_uri,context_annotations,conversation_id,created_at,edit_controls,"
        "edit_history_tweet_ids,entities,geo,id,in_reply_to_user_id,lang,non_public_metrics,"
        "note_tweet,organic_metrics,possibly_sensitive,promoted_metrics,public_metrics,"
        "referenced_tweets,reply_settings,source,text,withheld]",
    ]


# --- authentication and rate limits ---------------------------------------------------------


def test_a_wrong_bearer_token_is_unauthorized_with_xs_problem_body(sim):
    with pytest.raises(tweepy.Unauthorized) as caught:
        app_client(sim, bearer="not-the-token").search_recent_tweets("late")

    response = caught.value.response
    assert response.json() == {
        "title": "Unauthorized",
        "type": "about:blank",
        "status": 401,
        "detail": "Unauthorized",
    }
    assert response.headers["content-type"] == "application/problem+json"
    assert "x-rate-limit-remaining" not in response.headers
    assert caught.value.api_messages == ["Unauthorized"]


def test_rate_limit_headers_count_down_and_429_carries_the_reset(sim, clock):
    sim.rate_limit = 3
    client = app_client(sim)

    remaining = [
        client.search_recent_tweets("late").headers["x-rate-limit-remaining"] for _ in range(3)
    ]
    with pytest.raises(tweepy.TooManyRequests) as caught:
        client.search_recent_tweets("late")

    assert remaining == ["2", "1", "0"]
    assert caught.value.reset_time == RESET_AT
    assert caught.value.response.json() == {
        "title": "Too Many Requests",
        "type": "about:blank",
        "status": 429,
        "detail": "Too Many Requests",
    }
    assert {k: v for k, v in caught.value.response.headers.items() if k.startswith("x-rate")} == {
        "x-rate-limit-limit": "3",
        "x-rate-limit-remaining": "0",
        "x-rate-limit-reset": str(RESET_AT),
    }

    clock.advance(seconds=900)
    fresh = client.search_recent_tweets("late").headers
    assert (fresh["x-rate-limit-remaining"], fresh["x-rate-limit-reset"]) == (
        "2",
        str(RESET_AT + 900),
    )


def test_a_rate_limited_post_creates_nothing(sim):
    sim.post_rate_limit = 1
    mention = sim.add_tweet(
        text="@NorthwindHelp late order", author=ALICE, created_at=minutes_ago(5)
    )
    client = user_client(sim)
    first = client.create_tweet(text="On it!", in_reply_to_tweet_id=mention["id"]).json()

    with pytest.raises(tweepy.TooManyRequests):
        client.create_tweet(text="Second reply", in_reply_to_tweet_id=mention["id"])

    assert [post["text"] for post in sim.received_posts] == ["On it!"]
    assert ids(search(sim, "from:NorthwindHelp")) == [first["data"]["id"]]
    assert sim.tweet(mention["id"])["public_metrics"]["reply_count"] == 1


def test_injected_failures_answer_once_and_spend_no_budget(sim):
    client = app_client(sim)
    sim.fail_next(503)
    sim.fail_next(200, body=b'{"data": [', count=1)

    with pytest.raises(tweepy.TwitterServerError) as caught:
        client.search_recent_tweets("late")
    malformed = client.search_recent_tweets("late")
    healthy = client.search_recent_tweets("late")

    assert caught.value.response.json() == {
        "title": "Service Unavailable",
        "detail": "Service Unavailable",
        "type": "about:blank",
        "status": 503,
    }
    assert malformed.content == b'{"data": ['
    assert healthy.json() == {"meta": {"result_count": 0}}
    assert healthy.headers["x-rate-limit-remaining"] == "449"
    assert [entry[:2] for entry in sim.requests_log] == [("GET", "/2/tweets/search/recent")] * 3
    assert sim.requests_log[0][2] == {"query": "late"}


def test_faults_aimed_at_one_path_leave_the_others_alone(sim):
    mention = sim.add_tweet(text="@NorthwindHelp late", author=ALICE, created_at=minutes_ago(5))
    reader, writer = app_client(sim), user_client(sim)

    sim.cut_next(after_carrying_out=True, path="/2/tweets")
    found_during_cut = reader.search_recent_tweets("late")  # not aimed at: answered as usual
    with pytest.raises(requests.ConnectionError):
        writer.create_tweet(text="On it!", in_reply_to_tweet_id=mention["id"])
    sim.fail_next(500, path="/2/tweets")
    found_during_failure = reader.search_recent_tweets("late")
    with pytest.raises(tweepy.TwitterServerError):
        writer.create_tweet(text="On it, again!", in_reply_to_tweet_id=mention["id"])

    assert ids(found_during_cut.json()) == [mention["id"]]
    assert ids(found_during_failure.json()) == [mention["id"]]
    # The cut came after the post was carried out; the 500 touched nothing.
    assert [post["text"] for post in sim.received_posts] == ["On it!"]


def test_an_outage_answers_every_request_until_it_ends_with_x_s_429(sim, clock):
    sim.fail_for(60, 429, path="/2/tweets/search/recent")
    client = app_client(sim)

    refusals = []
    for _ in range(3):
        with pytest.raises(tweepy.TooManyRequests) as caught:
            client.search_recent_tweets("late")
        refusals.append(caught.value.response)
    sim.fail_next(500, count=2)
    assert sim.faults_pending == 2
    sim.clear_faults()
    assert sim.faults_pending == 0
    healthy = client.search_recent_tweets("late")

    assert {response.json()["title"] for response in refusals} == {"Too Many Requests"}
    assert {response.headers["x-rate-limit-remaining"] for response in refusals} == {"0"}
    # It resets when the storm is over: X's reset time, on the simulator's clock.
    assert {response.headers["x-rate-limit-reset"] for response in refusals} == {
        str(int(NOW.timestamp()) + 61)
    }
    assert healthy.json() == {"meta": {"result_count": 0}}
    assert healthy.headers["x-rate-limit-remaining"] == "449"  # the storm spent no budget


def test_an_outage_ends_by_itself_at_its_deadline(sim):
    sim.fail_for(0.2, 503)
    client = app_client(sim)

    with pytest.raises(tweepy.TwitterServerError):
        client.search_recent_tweets("late")
    time.sleep(0.3)

    assert client.search_recent_tweets("late").json() == {"meta": {"result_count": 0}}


# --- posting replies ------------------------------------------------------------------------


def test_a_reply_with_oauth1_is_created_recorded_and_searchable(sim, clock):
    mention = sim.add_tweet(
        text="@NorthwindHelp where is my order?", author=ALICE, created_at=minutes_ago(5)
    )
    clock.advance(seconds=30)

    response = user_client(sim).create_tweet(
        text="@alice Sorry! We've refunded your order.", in_reply_to_tweet_id=mention["id"]
    )

    posted_id = response.json()["data"]["id"]
    assert response.status_code == 201
    assert response.json() == {
        "data": {
            "id": posted_id,
            "text": "@alice Sorry! We've refunded your order.",
            "edit_history_tweet_ids": [posted_id],
        }
    }
    assert response.headers["location"] == f"https://api.twitter.com/2/tweets/{posted_id}"
    assert (int(posted_id) >> 22) + TWITTER_EPOCH_MS == int(clock().timestamp() * 1000)
    assert sim.received_posts == [
        {
            "id": posted_id,
            "text": "@alice Sorry! We've refunded your order.",
            "in_reply_to_tweet_id": mention["id"],
            "received_at": NOW + timedelta(seconds=30),
        }
    ]
    body = search(sim, "refunded", tweet_fields=ALL_TWEET_FIELDS, expansions=["author_id"])
    assert body["data"] == [
        {
            "id": posted_id,
            "text": "@alice Sorry! We've refunded your order.",
            "edit_history_tweet_ids": [posted_id],
            "author_id": "900",
            "created_at": "2026-03-02T12:00:30.000Z",
            "conversation_id": mention["id"],
            "lang": "en",
            "public_metrics": ZERO_METRICS,
            "referenced_tweets": [{"type": "replied_to", "id": mention["id"]}],
            "in_reply_to_user_id": "101",
        }
    ]
    assert body["includes"] == {"users": [BRAND]}


def test_posting_with_an_app_only_bearer_is_forbidden(sim):
    client = app_client(sim)

    with pytest.raises(tweepy.Forbidden) as caught:
        client.create_tweet(text="hello", user_auth=False)

    assert caught.value.response.json() == {
        "title": "Unsupported Authentication",
        "detail": "Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.  "
        "Supported authentication types are [OAuth 1.0a User Context, OAuth 2.0 User Context].",
        "type": "https://api.twitter.com/2/problems/unsupported-authentication",
        "status": 403,
    }
    assert sim.received_posts == []


@pytest.mark.parametrize(
    ("consumer_key", "access_token"),
    [("wrong-key", "sim-access-token"), ("sim-consumer-key", "wrong-token")],
)
def test_posting_with_other_oauth1_keys_is_unauthorized(sim, consumer_key, access_token):
    client = user_client(sim, consumer_key=consumer_key, access_token=access_token)

    with pytest.raises(tweepy.Unauthorized):
        client.create_tweet(text="hello")

    assert sim.received_posts == []


def test_a_post_over_280_characters_is_forbidden(sim):
    with pytest.raises(tweepy.Forbidden) as caught:
        user_client(sim).create_tweet(text="x" * 281)

    assert caught.value.response.json() == {
        "detail": "Your Tweet text is too long. For more information on how Twitter determines "
        "text length see https://github.com/twitter/twitter-text.",
        "type": "about:blank",
        "title": "Forbidden",
        "status": 403,
    }
    assert sim.received_posts == []


def test_a_post_of_exactly_280_characters_is_accepted(sim):
    assert user_client(sim).create_tweet(text="é" * 280).status_code == 201


def test_an_empty_post_is_a_bad_request(sim):
    with pytest.raises(tweepy.BadRequest) as caught:
        user_client(sim).create_tweet(text="")

    assert caught.value.api_messages == [
        "Post text must not be empty when no media, poll or quote is attached"
    ]


def test_a_reply_to_an_unknown_post_is_refused(sim):
    with pytest.raises(tweepy.Forbidden) as caught:
        user_client(sim).create_tweet(text="hello", in_reply_to_tweet_id="12345")

    assert caught.value.response.json() == {
        "detail": "You attempted to reply to a Tweet that is deleted or not visible to you.",
        "type": "about:blank",
        "title": "Forbidden",
        "status": 403,
    }
    assert sim.received_posts == []


def test_users_me_is_the_brand_account(sim):
    response = user_client(sim).get_me()

    assert response.json() == {"data": BRAND}


# --- control endpoints for other processes --------------------------------------------------


def test_control_endpoints_seed_read_and_reset(sim):
    created = requests.post(
        sim.base_url + "/_sim/tweets",
        json={"text": "late via control", "author": ALICE, "created_at": "2026-03-02T11:58:00Z"},
    )
    user_client(sim).create_tweet(text="On it", in_reply_to_tweet_id=created.json()["data"]["id"])

    posts = requests.get(sim.base_url + "/_sim/posts").json()
    reset = requests.post(sim.base_url + "/_sim/reset")

    assert created.status_code == 201
    assert created.json()["data"]["created_at"] == "2026-03-02T11:58:00.000Z"
    assert [(p["text"], p["in_reply_to_tweet_id"], p["received_at"]) for p in posts["data"]] == [
        ("On it", created.json()["data"]["id"], "2026-03-02T12:00:00.000Z")
    ]
    assert reset.status_code == 200
    assert (sim.received_posts, sim.requests_log) == ([], [])
    assert search(sim, "late") == {"meta": {"result_count": 0}}


def test_control_fail_queues_a_failure_for_the_next_x_request(sim):
    queued = requests.post(sim.base_url + "/_sim/fail", json={"status": 500, "count": 1})

    with pytest.raises(tweepy.TwitterServerError):
        app_client(sim).search_recent_tweets("late")

    assert queued.json() == {"ok": True}
    assert search(sim, "late") == {"meta": {"result_count": 0}}


def test_control_tweets_refuse_a_body_that_is_not_an_object(sim):
    response = requests.post(sim.base_url + "/_sim/tweets", json=["late"])

    assert (response.status_code, response.json()) == (
        400,
        {"error": "the body must be a JSON object"},
    )


# --- TWCS replay ----------------------------------------------------------------------------


@pytest.fixture
def twcs_rows() -> list[dict[str, str]]:
    # Skips, naming the file, on a clone outside the workspace; CI always has it.
    with open(shared_data_file("twcs_dev.csv"), newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _file_time(row: dict[str, str]) -> datetime:
    return datetime.strptime(row["created_at"], "%a %b %d %H:%M:%S %z %Y")


def test_twcs_loads_every_row_shifted_as_one_block(sim, twcs_rows):
    loaded = sim.load_twcs_csv(TWCS_PATH, shift_to=NOW)

    newest_row = max(twcs_rows, key=_file_time)
    first, second = twcs_rows[0], twcs_rows[1]
    assert loaded == len(twcs_rows) == 2675
    assert sim.tweet(newest_row["tweet_id"])["created_at"] == "2026-03-02T12:00:00.000Z"
    shifted = {
        row["tweet_id"]: datetime.fromisoformat(sim.tweet(row["tweet_id"])["created_at"])
        for row in (first, second)
    }
    assert (
        shifted["2"] - shifted["1"]
        == _file_time(second) - _file_time(first)
        == timedelta(seconds=58)
    )


def test_twcs_replies_point_at_their_parent_its_author_and_the_root(sim, twcs_rows):
    sim.load_twcs_csv(TWCS_PATH, shift_to=NOW)

    brand_reply, customer_reply, opener = sim.tweet("1"), sim.tweet("2"), sim.tweet("8")

    assert (brand_reply["author_id"], brand_reply["referenced_tweets"]) == (
        handle_user_id("sprintcare"),
        [{"type": "replied_to", "id": "3"}],
    )
    assert brand_reply["in_reply_to_user_id"] == "115712"
    assert customer_reply["referenced_tweets"] == [{"type": "replied_to", "id": "1"}]
    assert customer_reply["in_reply_to_user_id"] == handle_user_id("sprintcare")
    assert brand_reply["conversation_id"] == customer_reply["conversation_id"] == "8"
    assert "referenced_tweets" not in opener and "in_reply_to_user_id" not in opener
    assert opener["conversation_id"] == "8"


def test_twcs_texts_authors_and_visibility(sim, twcs_rows):
    sim.load_twcs_csv(TWCS_PATH, shift_to=NOW)
    newest_row = max(twcs_rows, key=_file_time)
    entity_row = next(row for row in twcs_rows if "&amp;" in row["text"])
    multiline_row = next(row for row in twcs_rows if "\n" in row["text"])

    assert sim.tweet(entity_row["tweet_id"])["text"] == entity_row["text"]
    assert sim.tweet(multiline_row["tweet_id"])["text"] == multiline_row["text"]
    body = search(
        sim,
        f"from:{newest_row['author_id']}",
        max_results=10,
        expansions=["author_id"],
        user_fields=["public_metrics"],
    )
    assert body["data"][0]["id"] == newest_row["tweet_id"]
    author = body["includes"]["users"][0]
    assert author["username"] == newest_row["author_id"]
    assert sim.tweet(twcs_rows[1]["tweet_id"])["author_id"] == "115712"
    # Customer 115712's thread is from 31 Oct 2017, a month before the newest row: out of sight.
    assert search(sim, "from:115712") == {"meta": {"result_count": 0}}


# --- the demo generator ---------------------------------------------------------------------


NORTHWIND = {"brand_name": "Northwind Coffee", "brand_handle": "NorthwindHelp"}


def test_generated_mentions_are_deterministic_per_seed():
    first = generate_mentions(**NORTHWIND, count=50, seed=3)
    again = generate_mentions(**NORTHWIND, count=50, seed=3)
    other = generate_mentions(**NORTHWIND, count=50, seed=4)

    assert first == again
    assert first != other
    stream = iter_mentions(**NORTHWIND, seed=3)
    assert [next(stream) for _ in range(50)] == first


def test_generated_mentions_read_like_a_support_inbox():
    mentions = generate_mentions(**NORTHWIND, count=400, seed=11)
    analyzer = SentimentIntensityAnalyzer()
    tones = Counter()
    for mention in mentions:
        score = analyzer.polarity_scores(mention["text"])["compound"]
        tones["negative" if score <= -0.05 else "positive" if score >= 0.05 else "neutral"] += 1

    assert all(len(m["text"]) <= 280 and m["lang"] == "en" for m in mentions)
    assert all("@NorthwindHelp" in m["text"] or "Northwind Coffee" in m["text"] for m in mentions)
    name_only = [m for m in mentions if "@NorthwindHelp" not in m["text"]]
    assert 0.2 * len(mentions) < len(name_only) < 0.6 * len(mentions)
    assert min(tones.values()) > 0.15 * len(mentions), tones
    followers = [m["author"]["followers_count"] for m in mentions]
    assert sorted(followers)[len(followers) // 2] < 1000 < max(followers)
    assert any(count >= 50_000 for count in followers)
    assert len({m["text"] for m in mentions}) > 250


def test_generated_mentions_load_into_the_simulator(sim):
    for mention in generate_mentions(**NORTHWIND, count=30, seed=5):
        sim.add_tweet(**mention, created_at=minutes_ago(10))

    body = search(sim, '@NorthwindHelp OR "Northwind Coffee"', max_results=100)

    assert body["meta"]["result_count"] == 30


# --- the command line ---------------------------------------------------------------------


def test_the_cli_serves_seeds_generates_and_stops_on_sigterm(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "listening.simulators.x_api", "--port", "0", "--seed-count", "5",
         "--generate-every", "0.2", "--seed", "1", "--bearer-token", "cli-bearer"],
        cwd=REPO_ROOT,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        line = process.stderr.readline()
        base_url = line.rsplit(" on ", 1)[1].strip()
        time.sleep(0.5)
        client = connect(
            tweepy.Client(bearer_token="cli-bearer", return_type=requests.Response), base_url
        )
        body = client.search_recent_tweets(
            '@NorthwindHelp OR "Northwind Coffee"', max_results=100
        ).json()
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()

    assert base_url.startswith("http://127.0.0.1:")
    assert body["meta"]["result_count"] >= 6  # five seeds and at least one generated since
    assert process.returncode == 0
    assert '"GET /2/tweets/search/recent?' in rest
    assert rest.rstrip().endswith("stopped")
