"""Earshot's X client against the simulator: tweepy runs unmodified, only its host changes."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listening.clients.base import (
    AuthenticationFailed,
    PlatformUnavailable,
    RateLimited,
    RequestRejected,
)
from listening.clients.x import XClient, XCredentials, parse_search_body, snowflake_time
from tests.conftest import SIM_ACCESS_TOKEN, SIM_BEARER, SIM_CONSUMER_KEY, customer

REPO = Path(__file__).resolve().parents[2]


def client_for(sim, bearer: str = SIM_BEARER) -> XClient:
    return XClient(
        XCredentials(
            bearer_token=bearer,
            consumer_key=SIM_CONSUMER_KEY,
            consumer_secret="secret",
            access_token=SIM_ACCESS_TOKEN,
            access_token_secret="secret",
        ),
        base_url=sim.base_url,
    )


def test_only_the_x_client_module_imports_tweepy():
    importers = set()
    for path in REPO.glob("**/*.py"):
        if ".venv" in path.parts or "var" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] == "tweepy" for name in names):
                importers.add(path.relative_to(REPO).as_posix())
    # Tests of the simulator drive tweepy directly, as any X client would.
    assert importers - {"tests/listening/test_x_simulator.py"} == {"listening/clients/x.py"}


def test_a_page_carries_posts_authors_cursor_and_rate_limit(x_sim):
    author = customer("paula_p", "Paula Price", followers=4321)
    tweet = x_sim.add_tweet(text="@NorthwindHelp is the app down?", author=author)

    page = client_for(x_sim).search_page(query="@NorthwindHelp", since_id=None, next_token=None)

    (post,) = page.posts
    assert (post.external_id, post.text, post.author_external_id) == (
        tweet["id"],
        tweet["text"],
        author["id"],
    )
    assert post.conversation_id == tweet["id"] and post.lang == "en"
    assert page.authors[author["id"]].followers_count == 4321
    assert page.newest_id == tweet["id"] and page.next_token is None
    assert page.rate_limit.limit == 450 and page.rate_limit.remaining == 449
    assert page.rejected == []


def test_failures_become_platform_neutral_errors_in_plain_words(x_sim):
    with pytest.raises(AuthenticationFailed, match=r"401 Unauthorized: Unauthorized\)"):
        client_for(x_sim, bearer="wrong").search_page(query="x", since_id=None, next_token=None)
    with pytest.raises(RequestRejected, match="X refused the search \\(400\\)"):
        client_for(x_sim).search_page(query="x" * 513, since_id=None, next_token=None)
    x_sim.fail_next(429, headers={"x-rate-limit-reset": "2000000000"})
    with pytest.raises(RateLimited) as limited:
        client_for(x_sim).search_page(query="x", since_id=None, next_token=None)
    assert limited.value.reset_at == datetime.fromtimestamp(2_000_000_000, tz=UTC)
    x_sim.fail_next(502)
    with pytest.raises(PlatformUnavailable, match="X answered 502"):
        client_for(x_sim).search_page(query="x", since_id=None, next_token=None)


def test_an_unreachable_server_is_a_transient_failure():
    client = XClient(XCredentials(bearer_token="t"), base_url="http://127.0.0.1:9")
    with pytest.raises(PlatformUnavailable, match="Could not reach X for the search"):
        client.search_page(query="x", since_id=None, next_token=None)


def test_a_reply_is_posted_with_user_context_and_its_time_read_from_its_id(x_sim):
    tweet = x_sim.add_tweet(text="@NorthwindHelp hi", author=customer("rita_r"))

    posted = client_for(x_sim).post_reply(text="Hi Rita! ^AM", in_reply_to_id=tweet["id"])

    (received,) = x_sim.received_posts
    assert received["id"] == posted.external_id
    assert received["in_reply_to_tweet_id"] == tweet["id"]
    assert abs(posted.posted_at - datetime.now(UTC)) < timedelta(seconds=5)


def test_snowflake_time_reads_the_time_inside_an_id():
    # A recorded search in ../shared/xapi: the tweet's text is the time its script sent it,
    # "2022-10-07 22:42:12.637103"; X stamped it a moment later.
    sent = datetime(2022, 10, 7, 22, 42, 12, 637103, tzinfo=UTC)
    assert timedelta(0) < snowflake_time("1578516068309794817") - sent < timedelta(seconds=1)


def test_each_bad_item_is_named_and_the_good_ones_kept():
    body = {
        "data": [
            {"id": "1", "text": "ok", "author_id": "7", "created_at": "2026-11-01T10:00:00.000Z"},
            {
                "id": "2",
                "text": "no author",
                "author_id": "8",
                "created_at": "2026-11-01T10:00:00.000Z",
            },
            {
                "id": "x3",
                "text": "bad id",
                "author_id": "7",
                "created_at": "2026-11-01T10:00:00.000Z",
            },
            {"id": "4", "text": "bad time", "author_id": "7", "created_at": "yesterday"},
            "not an object",
        ],
        "includes": {
            "users": [{"id": "7", "username": "seven", "name": "Seven"}, {"name": "no id"}]
        },
        "meta": {"newest_id": "4", "result_count": 5},
    }
    page = parse_search_body(body)
    assert [p.external_id for p in page.posts] == ["1"]
    assert [r.reason for r in page.rejected] == [
        "malformed user: KeyError('id')",
        "author 8 is not in includes.users",
        "id 'x3' is not numeric",
        "created_at 'yesterday' is not a timestamp",
        "item is a str, not an object",
    ]
