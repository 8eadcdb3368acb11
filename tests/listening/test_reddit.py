"""Reddit through PRAW: the client against the simulator, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import ast
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from listening.clients.base import (
    AuthenticationFailed,
    PlatformError,
    PlatformOutcomeUnknown,
    PlatformUnavailable,
    RateLimited,
    RequestRejected,
)
from listening.clients.reddit import RedditClient, RedditCredentials, client_for_source
from listening.clients.registry import client_for_source as registry_client_for_source
from listening.models import Mention, Platform, PollCursor, Source, TrackedKeyword
from listening.query import REDDIT_SYNTAX, parse_query
from listening.services.polling import keyword_poll
from listening.simulators.reddit_api import RedditApiSimulator
from tests.conftest import REPO_ROOT

NOW = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)
CLIENT_ID = "test-client-id"
CLIENT_SECRET = "test-client-secret"
BRAND_ACCOUNT = "NorthwindHelp"
PASSWORD = "test-password"
TOKEN_PATH = "/api/v1/access_token"
SEARCH_PATH = "/r/all/search/"


@pytest.fixture(scope="module")
def reddit_server() -> Iterator[RedditApiSimulator]:
    simulator = RedditApiSimulator(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, username=BRAND_ACCOUNT, password=PASSWORD
    )
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def reddit(reddit_server: RedditApiSimulator) -> Iterator[RedditApiSimulator]:
    reddit_server.rate_limit = 1000
    reddit_server.now = lambda: NOW
    reddit_server.reset()
    yield reddit_server
    reddit_server.now = lambda: datetime.now(UTC)


def client_for(sim: RedditApiSimulator, **credentials: str) -> RedditClient:
    subreddit = credentials.pop("subreddit", "all")
    fields = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "username": BRAND_ACCOUNT,
        "password": PASSWORD,
        **credentials,
    }
    return RedditClient(
        RedditCredentials(**fields),
        base_url=sim.base_url,
        account_handle=BRAND_ACCOUNT,
        subreddit=subreddit,
    )


def signed_in(sim: RedditApiSimulator) -> RedditClient:
    """A client holding its access token already, so the next request is an API call."""
    client = client_for(sim)
    client.own_posts_page(since_id=None, next_token=None)
    sim.clear_logs()
    return client


def search(client: RedditClient, query: str = "northwind", **cursors: str | None):
    return client.search_page(
        query=query, since_id=cursors.get("since_id"), next_token=cursors.get("next_token")
    )


def api_calls(sim: RedditApiSimulator, path: str = SEARCH_PATH) -> list[dict[str, str]]:
    return [query for _, logged_path, query, _ in sim.requests_log if logged_path == path]


def test_only_the_reddit_client_module_imports_praw():
    importers = set()
    for path in REPO_ROOT.glob("**/*.py"):
        if {".venv", "var", "node_modules"} & set(path.parts):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] in ("praw", "prawcore") for name in names):
                importers.add(Path(path).relative_to(REPO_ROOT).as_posix())
    assert importers == {"listening/clients/reddit.py"}


# --- search -----------------------------------------------------------------------------------


def test_a_submission_is_normalised_field_by_field(reddit):
    created = NOW - timedelta(minutes=5)
    post = reddit.add_post(
        title="Northwind Coffee charged me twice",
        selftext="Second time this month & still no refund <sigh>",
        author="paula_p",
        subreddit="Coffee",
        created_at=created,
        num_comments=3,
        score=17,
    )

    page = search(client_for(reddit))

    (fetched,) = page.posts
    assert fetched.external_id == post["name"] and post["name"].startswith("t3_")
    assert fetched.text == (
        "Northwind Coffee charged me twice\n\nSecond time this month & still no refund <sigh>"
    )
    assert fetched.author_external_id == post["author_fullname"]
    assert post["author_fullname"].startswith("t2_")
    assert fetched.posted_at == created
    assert fetched.conversation_id == post["name"]
    assert (fetched.lang, fetched.in_reply_to_user_id) == ("", "")
    assert fetched.referenced_posts == [] and fetched.original is None
    assert fetched.public_metrics == {"reply_count": 3, "like_count": 17}
    assert (
        post["permalink"] == f"/r/Coffee/comments/{post['id']}/northwind_coffee_charged_me_twice/"
    )
    assert fetched.url == f"https://www.reddit.com{post['permalink']}"
    author = page.authors[post["author_fullname"]]
    assert (author.username, author.name, author.followers_count, author.verified) == (
        "paula_p", "paula_p", 0, False,
    )  # fmt: skip
    assert author.url == "https://www.reddit.com/user/paula_p"
    assert page.newest_id == f"{created.timestamp()!r}@{post['name']}"
    assert page.next_token is None and page.rejected == []
    # The simulator's window is 1000 per 600 s on its fixed clock; reset_at is our clock's.
    assert (page.rate_limit.limit, page.rate_limit.remaining) == (1000, 999)
    assert (
        timedelta(seconds=595)
        < page.rate_limit.reset_at - datetime.now(UTC)
        <= timedelta(seconds=600)
    )


def test_a_post_by_a_deleted_account_is_a_fine_item(reddit):
    orphan = reddit.add_post(title="northwind beans are stale", author="[deleted]")

    page = search(client_for(reddit))

    (post,) = page.posts
    assert post.external_id == orphan["name"] and post.text == "northwind beans are stale"
    assert post.author_external_id == "[deleted]"
    deleted = page.authors["[deleted]"]
    assert (deleted.username, deleted.url) == ("[deleted]", "")


def test_a_crosspost_carries_its_original_and_its_author(reddit):
    original = reddit.add_post(
        title="Northwind outage megathread", selftext="Post here", author="modder",
        subreddit="NorthwindCoffee", created_at=NOW - timedelta(hours=2),
    )  # fmt: skip
    crosspost = reddit.add_post(
        title="northwind is down again (xpost)", author="sharer", subreddit="mildlyinfuriating",
        crosspost_of=original["name"], created_at=NOW - timedelta(minutes=1),
    )  # fmt: skip

    page = search(client_for(reddit), "again")

    (post,) = page.posts
    assert post.external_id == crosspost["name"]
    assert post.referenced_posts == [{"type": "retweeted", "id": original["name"]}]
    assert post.reposted_id == original["name"]
    assert post.original is not None
    assert post.original.external_id == original["name"]
    assert post.original.text == "Northwind outage megathread\n\nPost here"
    assert post.original.posted_at == NOW - timedelta(hours=2)
    assert page.authors[original["author_fullname"]].username == "modder"
    assert page.authors[crosspost["author_fullname"]].username == "sharer"


def test_the_query_sent_is_the_remote_part_of_the_split(reddit):
    query = parse_query('"Northwind Coffee" (latte OR mocha) -refund')
    remote, local = query.split_for(REDDIT_SYNTAX)
    assert remote == '"Northwind Coffee"' and local is query

    reddit.add_subreddit("Coffee")
    reddit.add_subreddit("espresso")

    search(client_for(reddit), remote)
    search(client_for(reddit, subreddit="Coffee+espresso"), remote)

    (everywhere,) = api_calls(reddit)
    assert everywhere == {
        "q": '"Northwind Coffee"', "restrict_sr": "False", "sort": "new", "syntax": "lucene",
        "t": "week", "limit": "100", "type": "link", "raw_json": "1",
    }  # fmt: skip
    (several,) = api_calls(reddit, "/r/Coffee+espresso/search/")
    assert several == {**everywhere, "restrict_sr": "True"}


def test_a_search_in_named_subreddits_is_restricted_to_them(reddit):
    inside = reddit.add_post(title="northwind crema", subreddit="espresso")
    reddit.add_post(title="northwind elsewhere", subreddit="AskReddit")

    page = search(client_for(reddit, subreddit="espresso"))

    assert [post.external_id for post in page.posts] == [inside["name"]]
    assert api_calls(reddit, "/r/espresso/search/")[0]["restrict_sr"] == "True"


def test_pages_come_newest_first_and_next_token_continues_the_round(reddit):
    names = [
        reddit.add_post(title=f"northwind post {i}", created_at=NOW - timedelta(minutes=i))["name"]
        for i in range(150)
    ]
    reddit.add_post(title="unrelated", created_at=NOW)
    client = client_for(reddit)

    first = search(client)
    second = search(client, next_token=first.next_token)

    assert [post.external_id for post in first.posts] == names[:100]
    assert first.next_token == names[99]
    assert [post.external_id for post in second.posts] == names[100:]
    assert second.next_token is None
    assert first.newest_id == f"{NOW.timestamp()!r}@{names[0]}"
    assert [call.get("after") for call in api_calls(reddit)] == [None, names[99]]


def test_the_since_cursor_returns_only_newer_posts(reddit):
    old = reddit.add_post(title="northwind old", created_at=NOW - timedelta(minutes=10))
    client = client_for(reddit)
    cursor = search(client).newest_id
    late = reddit.add_post(title="northwind indexed late", created_at=NOW - timedelta(minutes=20))
    same_second = reddit.add_post(
        title="northwind same second", created_at=NOW - timedelta(minutes=10)
    )
    newer = reddit.add_post(title="northwind newer", created_at=NOW - timedelta(minutes=1))

    page = search(client, since_id=cursor)

    # Newer ones only, a later post of the cursor's second included; a post older than the
    # cursor that turns up late (search indexing lag) is not fetched again.
    assert [post.external_id for post in page.posts] == [newer["name"], same_second["name"]]
    assert page.next_token is None
    assert page.newest_id == f"{(NOW - timedelta(minutes=1)).timestamp()!r}@{newer['name']}"
    assert late["name"] not in {post.external_id for post in page.posts}
    assert old["name"] not in {post.external_id for post in page.posts}


def test_the_cursor_holds_even_when_its_post_is_deleted(reddit):
    anchor = reddit.add_post(title="northwind anchor", created_at=NOW - timedelta(minutes=10))
    client = client_for(reddit)
    cursor = search(client).newest_id
    newer = reddit.add_post(title="northwind after", created_at=NOW - timedelta(minutes=2))
    reddit.remove(anchor["name"])

    page = search(client, since_id=cursor)

    # A `before=<fullname>` cursor would now get an empty listing forever.
    assert [post.external_id for post in page.posts] == [newer["name"]]
    assert "before" not in api_calls(reddit)[-1]


def test_an_unreadable_cursor_reads_the_whole_listing(reddit):
    post = reddit.add_post(title="northwind", created_at=NOW - timedelta(minutes=1))

    page = search(client_for(reddit), since_id="not a cursor")

    assert [p.external_id for p in page.posts] == [post["name"]]


def test_a_round_stops_at_the_cursor_across_pages(reddit):
    for i in range(120, 100, -1):
        reddit.add_post(title=f"northwind {i}", created_at=NOW - timedelta(minutes=i))
    client = client_for(reddit)
    cursor = search(client).newest_id
    fresh = [
        reddit.add_post(title=f"northwind fresh {i}", created_at=NOW - timedelta(minutes=i))
        for i in range(100, -1, -1)
    ]

    first = search(client, since_id=cursor)
    second = search(client, since_id=cursor, next_token=first.next_token)

    assert len(first.posts) == 100 and first.next_token
    assert [p.external_id for p in second.posts] == [fresh[0]["name"]]
    assert second.next_token is None


# --- failures ---------------------------------------------------------------------------------


def test_a_refused_token_is_an_authentication_failure_and_is_not_retried(reddit):
    client = signed_in(reddit)
    reddit.fail_next(401)

    with pytest.raises(AuthenticationFailed) as refused:
        search(client)

    assert str(refused.value) == (
        "Reddit refused the access token (401 Unauthorized: invalid_token). "
        "Check the source's Reddit credentials."
    )
    assert len(reddit.requests_log) == 1  # prawcore would have signed in again and retried


def test_wrong_app_secret_or_password_are_refused_sign_ins(reddit):
    with pytest.raises(AuthenticationFailed, match=r"client id or secret \(401 Unauthorized\)"):
        search(client_for(reddit, client_secret="wrong"))
    with pytest.raises(AuthenticationFailed, match=r"sign in the account \(invalid_grant\)"):
        search(client_for(reddit, password="wrong"))
    assert api_calls(reddit) == []


def test_missing_credentials_are_named_without_calling_reddit(reddit):
    with pytest.raises(AuthenticationFailed, match="The Reddit source has no client_secret"):
        search(client_for(reddit, client_secret=""))
    assert reddit.requests_log == []


@pytest.mark.parametrize(
    ("subreddit", "access", "message"),
    [
        ("SecretClub", "private", r"Reddit refused the search \(403 Forbidden: private\)"),
        ("GoneSub", "banned", r"Reddit refused the search \(404 Not Found: banned\)"),
        ("NoSuchSub", None, r"it redirects to /subreddits/search"),
    ],
)
def test_a_subreddit_reddit_refuses_is_a_rejected_request(reddit, subreddit, access, message):
    if access:
        reddit.add_subreddit(subreddit, access=access)

    with pytest.raises(RequestRejected, match=message):
        search(client_for(reddit, subreddit=subreddit))


def test_names_that_are_not_reddits_are_refused_before_any_call(reddit):
    with pytest.raises(RequestRejected, match=r"subreddit '\.\./api' is not a subreddit name"):
        search(client_for(reddit, subreddit="../api"))
    odd = RedditClient(
        RedditCredentials(CLIENT_ID, CLIENT_SECRET, BRAND_ACCOUNT, PASSWORD),
        base_url=reddit.base_url,
        account_handle="Northwind Help",
    )
    with pytest.raises(RequestRejected, match="'Northwind Help' is not a Reddit username"):
        odd.own_posts_page(since_id=None, next_token=None)
    assert reddit.requests_log == []


def test_a_bad_request_is_rejected_in_reddits_words(reddit):
    client = signed_in(reddit)
    reddit.fail_next(400, {"message": "Bad Request", "error": 400})

    with pytest.raises(RequestRejected, match=r"^Reddit refused the search \(400 Bad Request\)$"):
        search(client)


def test_a_spent_budget_is_read_from_the_headers_and_the_next_call_is_not_made(reddit):
    reddit.rate_limit = 3  # the token request is not counted; three API calls are
    client = signed_in(reddit)  # one
    search(client)  # two
    page = search(client)  # three: the budget is spent
    assert (page.rate_limit.limit, page.rate_limit.remaining) == (3, 0)
    calls = len(reddit.requests_log)

    with pytest.raises(RateLimited) as spent:
        search(client)

    assert len(reddit.requests_log) == calls  # refused here, never sent
    assert spent.value.reset_at == page.rate_limit.reset_at
    assert "no search before" in str(spent.value)


def test_a_429_is_rate_limited_until_reddits_reset(reddit):
    reddit.rate_limit = 1
    search(client_for(reddit))
    before = datetime.now(UTC)

    with pytest.raises(RateLimited) as limited:
        search(client_for(reddit))  # a new client: it does not know the budget is spent

    # x-ratelimit-reset says 600 s (the simulator's clock stands still).
    assert before + timedelta(seconds=600) <= limited.value.reset_at
    assert limited.value.reset_at <= datetime.now(UTC) + timedelta(seconds=600)
    assert str(limited.value).startswith(
        "Reddit rate limit reached for the search (429 Too Many Requests); next call allowed at"
    )
    assert len(api_calls(reddit)) == 2  # no retry


def test_a_429_with_its_own_reset_header_is_honoured(reddit):
    client = signed_in(reddit)
    reddit.fail_next(
        429,
        headers={
            "x-ratelimit-used": "100",
            "x-ratelimit-remaining": "0.0",
            "x-ratelimit-reset": "42",
        },
    )
    before = datetime.now(UTC)

    with pytest.raises(RateLimited) as limited:
        search(client)

    assert before + timedelta(seconds=42) <= limited.value.reset_at
    assert limited.value.reset_at <= datetime.now(UTC) + timedelta(seconds=42)


def test_a_generic_user_agent_is_throttled_and_the_message_says_so(reddit):
    before = datetime.now(UTC)

    with pytest.raises(
        RateLimited, match="to a generic User-Agent too: check the source's user_agent"
    ) as limited:
        search(client_for(reddit, user_agent="python-requests/2.32.3"))

    assert (
        before + timedelta(seconds=60)
        <= limited.value.reset_at
        <= datetime.now(UTC) + timedelta(seconds=60)
    )
    assert [path for _, path, _, _ in reddit.requests_log] == [TOKEN_PATH]


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_server_error_is_a_transient_failure_not_retried(reddit, status):
    client = signed_in(reddit)
    reddit.fail_next(status)

    with pytest.raises(
        PlatformUnavailable, match=rf"Reddit answered {status} .* to the search; will retry"
    ):
        search(client)

    assert len(reddit.requests_log) == 1  # prawcore would have slept and retried twice


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "with a body that is not valid JSON"),
        (b"<html>upstream</html>", "with a body that is not valid JSON"),
        (b'{"kind": "t3"}', "with something that is not a Listing"),
        (b'{"kind": "Listing", "data": {"children": "none"}}', "a Listing without children"),
    ],
)
def test_a_body_that_is_not_a_listing_is_a_transient_failure(reddit, body, message):
    client = signed_in(reddit)
    reddit.fail_next(200, body)

    with pytest.raises(PlatformUnavailable, match=message):
        search(client)


def test_a_cut_connection_is_a_transient_failure_not_retried(reddit):
    client = signed_in(reddit)
    reddit.cut_next()

    with pytest.raises(
        PlatformUnavailable,
        match=r"^Reddit could not be reached \(ConnectionError\) for the search; will retry$",
    ):
        search(client)

    assert len(reddit.requests_log) == 1


def test_a_search_that_takes_too_long_times_out(reddit, settings):
    settings.X_REQUEST_TIMEOUT_SECONDS = 0.3
    client = signed_in(reddit)
    reddit.slow_next(1.0)

    with pytest.raises(
        PlatformUnavailable, match="^Reddit did not answer in time for the search; will retry$"
    ):
        search(client)


def test_an_unreachable_reddit_fails_at_sign_in():
    unreachable = RedditClient(
        RedditCredentials("id", "secret", "someone", "pw"), base_url="http://127.0.0.1:9"
    )
    with pytest.raises(
        PlatformUnavailable, match=r"could not be reached \(ConnectionError\) for the sign-in"
    ):
        search(unreachable)


def test_the_client_never_sleeps_on_low_budget_headers_or_failures(reddit, monkeypatch):
    def no_sleeping(seconds: float) -> None:
        raise AssertionError(f"slept {seconds} s")

    # prawcore paces by the headers (here it would nap 10 s before the last call) and
    # retries a 5xx or a 401 after napping; Earshot's client must do neither.
    monkeypatch.setattr(time, "sleep", no_sleeping)
    reddit.rate_limit = 5
    client = signed_in(reddit)
    search(client)
    search(client)
    page = search(client)
    assert page.rate_limit.remaining == 1
    reddit.fail_next(503)  # a fault answers before the budget is counted
    with pytest.raises(PlatformUnavailable):
        search(client)
    assert search(client).rate_limit.remaining == 0  # prawcore would wait out the window
    with pytest.raises(RateLimited):
        search(client)  # known spent: refused here
    with pytest.raises(RateLimited):
        search(client_for(reddit))  # Reddit's own 429
    reddit.rate_limit = 1000
    reddit.reset()
    client = signed_in(reddit)
    reddit.fail_next(401)
    with pytest.raises(AuthenticationFailed):
        search(client)


# --- malformed items --------------------------------------------------------------------------


def _thing(**changes: Any) -> dict[str, Any]:
    data = {
        "name": "t3_abc1", "title": "northwind", "selftext": "", "author": "someone",
        "author_fullname": "t2_xyz", "created_utc": NOW.timestamp() - 60,
        "permalink": "/r/Coffee/comments/abc1/northwind/", "num_comments": 0, "score": 1,
    }  # fmt: skip
    data.update(changes)
    return {"kind": "t3", "data": {k: v for k, v in data.items() if v is not ...}}


def test_each_bad_item_is_named_and_the_good_ones_kept(reddit):
    good = reddit.add_post(
        title="northwind good", author="goodwin", created_at=NOW - timedelta(hours=1)
    )
    bad_items = [
        "not an object",
        {"kind": "t1", "data": {}},
        {"kind": "t3"},
        _thing(name=...),
        _thing(name="t1_abc2"),
        _thing(title=None),
        _thing(created_utc="yesterday"),
        _thing(created_utc=float("inf")),
        _thing(author="has space"),
        _thing(author_fullname="t3_zzz"),
        _thing(selftext=42),
        _thing(crosspost_parent="nope"),
    ]
    for minutes, item in enumerate(bad_items):
        reddit.add_raw_item(item, created_at=NOW - timedelta(minutes=minutes))

    page = search(client_for(reddit))

    assert [post.external_id for post in page.posts] == [good["name"]]
    assert [rejected.reason for rejected in page.rejected] == [
        "item is a str, not an object",
        "item has kind 't1', not t3",
        "item has no 'data' object",
        "missing or invalid field 'name'",
        "name 't1_abc2' is not a fullname of kind t3 (t3_…)",
        "missing or invalid field 'title'",
        "created_utc 'yesterday' is not a Unix time",
        "created_utc inf is out of range",
        "author 'has space' is not a Reddit username",
        "author_fullname 't3_zzz' is not a fullname of kind t2 (t2_…)",
        "field 'selftext' holds int, not text",
        "crosspost_parent 'nope' is not a fullname of kind t3 (t3_…)",
    ]
    assert page.rejected[0].raw == "not an object"


def test_text_is_made_safe_to_store_and_odd_fields_fall_back(reddit):
    reddit.add_raw_item(
        _thing(
            title="north\u0000wind \ud83d\ude00 \u200fرقم\u200e",
            selftext="lone \ud800 surrogate",
            permalink="javascript alert",
            lang="EN",
            score=True,
        )
    )

    (post,) = search(client_for(reddit)).posts

    assert post.text == "northwind \U0001f600 \u200fرقم\u200e\n\nlone \ufffd surrogate"
    post.text.encode("utf-8")
    assert post.url == "https://www.reddit.com/comments/abc1/"
    assert post.lang == "en" and post.public_metrics == {"reply_count": 0}


_hostile_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(
        [
            "\u0000",
            "\ud800",
            "\udfff",
            "\u200f\u202e",
            "x" * 100_000,
            "t3_",
            "t3_ABC",
            "t3_abc1",
            "t2_zz",
            "[deleted]",
            "",
            " ",
            "/r/x",
            "\n",
        ]
    ),  # fmt: skip
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
_T3_FIELDS = [
    "name", "title", "selftext", "author", "author_fullname", "created_utc", "permalink",
    "lang", "crosspost_parent", "crosspost_parent_list", "num_comments", "score",
]  # fmt: skip
_hostile_item = st.one_of(
    _hostile_value,
    st.fixed_dictionaries(
        {}, optional={"kind": st.one_of(st.just("t3"), _hostile_value), "data": _hostile_value}
    ),
    st.builds(
        lambda changes, dropped: {
            "kind": "t3",
            "data": {k: v for k, v in {**_thing()["data"], **changes}.items() if k not in dropped},
        },
        st.dictionaries(st.sampled_from(_T3_FIELDS), _hostile_value, max_size=3),
        st.sets(st.sampled_from(_T3_FIELDS), max_size=3),
    ),
)
_GOOD_ITEM = {
    "kind": "t3",
    "data": {
        "name": "t3_900000", "title": "northwind holds", "selftext": "fine", "author": "goodwin",
        "author_fullname": "t2_good", "created_utc": NOW.timestamp() - 3600,
        "permalink": "/r/Coffee/comments/900000/holds/", "num_comments": 1, "score": 2,
    },
}  # fmt: skip


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    items=st.lists(_hostile_item, max_size=6),
    position=st.integers(min_value=0, max_value=6),
    after=_hostile_value,
    mangle=st.sampled_from(["none", "none", "none", "truncate", "not-an-object", "bytes", "empty"]),
)
def test_hostile_items_never_escape_as_anything_but_a_platform_error(
    reddit, items, position, after, mangle
):
    reddit.reset()
    client = signed_in(reddit)
    children = [*items[:position], _GOOD_ITEM, *items[position:]]
    body: Any = {"kind": "Listing", "data": {"after": after, "dist": 7, "children": children}}
    # ensure_ascii: lone surrogates travel as "\ud800" escapes, as a real JSON body can carry.
    raw = json.dumps(body).encode()
    if mangle == "truncate":
        raw = raw[: len(raw) // 2]
    elif mangle == "not-an-object":
        raw = json.dumps(children).encode()
    elif mangle == "bytes":
        raw = b"\xff\xfe" + raw
    elif mangle == "empty":
        raw = b""
    reddit.fail_next(200, raw)

    try:
        page = search(client)
    except PlatformError:
        assert mangle != "none"
        return
    assert mangle == "none"
    good = next(p for p in page.posts if p.external_id == "t3_900000")
    assert good.text == "northwind holds\n\nfine"
    assert good.posted_at == NOW - timedelta(hours=1)
    assert page.authors["t2_good"].username == "goodwin"
    for post in page.posts:
        assert post.author_external_id in page.authors
        assert "\x00" not in post.text and post.text.encode("utf-8")
        assert post.posted_at.tzinfo is not None and post.external_id.startswith("t3_")
        assert len(post.url) <= 1000
    for author in page.authors.values():
        assert len(author.username) <= 100 and len(author.external_id) <= 255
    assert len(page.posts) + len(page.rejected) <= len(children)
    assert page.next_token is None or (
        len(page.next_token) <= 500
        and page.next_token[:3] in ("t1_", "t3_", "t2_", "t4_", "t5_", "t6_")
    )
    assert page.newest_id is None or len(page.newest_id) <= 500


# --- replies ----------------------------------------------------------------------------------


def test_a_reply_is_posted_once_and_found_again(reddit):
    mention = reddit.add_post(title="northwind lost my order", author="rita_r")
    client = client_for(reddit)

    posted = client.post_reply(
        text="Hi Rita, sorry! DM us your order number. ^AM", in_reply_to_id=mention["name"]
    )

    (received,) = reddit.received_posts
    assert received["thing_id"] == mention["name"] and received["name"] == posted.external_id
    assert received["author"] == BRAND_ACCOUNT
    assert posted.external_id.startswith("t1_")
    assert posted.text == "Hi Rita, sorry! DM us your order number. ^AM"
    assert posted.posted_at == NOW
    found = client.find_reply(
        author_username=BRAND_ACCOUNT, text=posted.text, in_reply_to_id=mention["name"]
    )
    assert found == posted
    # The account that posts is read, whatever handle a caller written for X passes.
    assert (
        client.find_reply(
            author_username="XHandle", text=posted.text, in_reply_to_id=mention["name"]
        )
        == posted
    )
    assert (
        client.find_reply(
            author_username=BRAND_ACCOUNT, text="other words", in_reply_to_id=mention["name"]
        )
        is None
    )
    assert reddit.thing(mention["name"])["num_comments"] == 1
    assert len(reddit.received_posts) == 1


def test_own_comments_link_to_the_ids_search_gives_their_parents(reddit):
    mention = reddit.add_post(
        title="northwind espresso machine broke", created_at=NOW - timedelta(hours=1)
    )
    native = reddit.add_comment(
        parent_id=mention["name"],
        body="Sorry to hear! Sent you a DM.",
        created_at=NOW - timedelta(minutes=30),
    )
    client = client_for(reddit)
    (searched,) = search(client).posts

    page = client.own_posts_page(since_id=None, next_token=None)

    (own,) = page.posts
    assert own.external_id == native["name"]
    assert own.replied_to_id == searched.external_id == mention["name"]
    assert own.conversation_id == mention["name"]
    assert own.text == "Sorry to hear! Sent you a DM."
    assert native["permalink"] == f"{mention['permalink']}{native['id']}/"
    assert own.url == f"https://www.reddit.com{native['permalink']}"
    assert page.authors[own.author_external_id].username == BRAND_ACCOUNT
    assert api_calls(reddit, f"/user/{BRAND_ACCOUNT}/comments")[0]["sort"] == "new"
    later = client.own_posts_page(since_id=page.newest_id, next_token=None)
    assert later.posts == [] and later.next_token is None


def test_a_reply_whose_answer_is_late_is_unknown_and_carried_out_once(reddit, settings):
    settings.X_REQUEST_TIMEOUT_SECONDS = 0.3
    mention = reddit.add_post(title="northwind refund please")
    client = signed_in(reddit)
    reddit.slow_next(1.0)

    with pytest.raises(
        PlatformOutcomeUnknown,
        match="^Reddit did not answer in time for the reply; it may have been posted$",
    ):
        client.post_reply(text="We're on it.", in_reply_to_id=mention["name"])

    (received,) = reddit.received_posts
    found = client.find_reply(
        author_username=BRAND_ACCOUNT, text="We're on it.", in_reply_to_id=mention["name"]
    )
    assert found is not None and found.external_id == received["name"]
    assert len(reddit.received_posts) == 1
    assert [path for method, path, _, _ in reddit.requests_log if method == "POST"] == [
        "/api/comment/"
    ]


@pytest.mark.parametrize("fault", ["500", "cut"])
def test_a_reply_without_a_readable_answer_may_have_been_posted(reddit, fault):
    mention = reddit.add_post(title="northwind help")
    client = signed_in(reddit)
    if fault == "cut":
        reddit.cut_next()
    else:
        reddit.fail_next(500)

    with pytest.raises(PlatformOutcomeUnknown, match="it may have been posted"):
        client.post_reply(text="Hello", in_reply_to_id=mention["name"])

    # Nothing is retried: one POST, whatever Reddit did with it.
    assert [path for method, path, _, _ in reddit.requests_log if method == "POST"] == [
        "/api/comment/"
    ]
    assert reddit.received_posts == []


def test_a_failed_sign_in_before_a_reply_is_not_an_unknown_outcome(reddit):
    mention = reddit.add_post(title="northwind help")
    reddit.fail_next(503)  # the token request

    with pytest.raises(
        PlatformUnavailable,
        match="^Reddit answered 503 Service Unavailable to the sign-in; will retry$",
    ) as failed:
        client_for(reddit).post_reply(text="Hello", in_reply_to_id=mention["name"])

    assert not isinstance(failed.value, PlatformOutcomeUnknown)
    assert reddit.received_posts == []


def test_reddits_refusals_of_a_reply_are_passed_on_in_its_words(reddit):
    locked = reddit.add_post(title="northwind locked", locked=True)
    gone = reddit.add_post(title="northwind gone")
    open_thread = reddit.add_post(title="northwind open")
    reddit.remove(gone["name"])
    client = client_for(reddit)

    with pytest.raises(
        RequestRejected, match=r"^Reddit refused the reply \(THREAD_LOCKED: Comments are locked.\)$"
    ):
        client.post_reply(text="Hi", in_reply_to_id=locked["name"])
    with pytest.raises(
        RequestRejected, match="DELETED_LINK: the link you are commenting on has been deleted"
    ):
        client.post_reply(text="Hi", in_reply_to_id=gone["name"])
    with pytest.raises(RequestRejected, match="NO_TEXT: we need something here"):
        client.post_reply(text="   ", in_reply_to_id=open_thread["name"])
    assert reddit.received_posts == []


def test_a_comment_ratelimit_is_rate_limited_until_reddit_says(reddit):
    mention = reddit.add_post(title="northwind")
    client = signed_in(reddit)
    words = (
        "Looks like you've been doing that a lot. Take a break for 9 minutes before trying again."
    )
    reddit.fail_next(200, {"json": {"errors": [["RATELIMIT", words, "ratelimit"]]}})
    before = datetime.now(UTC)

    with pytest.raises(RateLimited, match="Reddit is limiting this account's comments") as limited:
        client.post_reply(text="Hi", in_reply_to_id=mention["name"])

    assert (
        before + timedelta(minutes=9)
        <= limited.value.reset_at
        <= datetime.now(UTC) + timedelta(minutes=9)
    )
    assert reddit.received_posts == []


def test_a_reply_reddit_would_refuse_is_not_sent(reddit):
    client = client_for(reddit)

    with pytest.raises(RequestRejected, match="at most 10,000 characters; this reply has 10,001"):
        client.post_reply(text="x" * 10_001, in_reply_to_id="t3_abc1")
    with pytest.raises(RequestRejected, match="'12345' is not a Reddit post or comment"):
        client.post_reply(text="Hi", in_reply_to_id="12345")
    assert reddit.requests_log == [] and reddit.received_posts == []


def test_the_simulator_refuses_an_over_long_comment_as_reddit_does(reddit):
    mention = reddit.add_post(title="northwind")
    client = client_for(reddit)
    # Past the client's own check, straight through praw: the simulator's rule itself.
    body = client.reddit.request(
        method="POST", path="api/comment/", data={"thing_id": mention["name"], "text": "y" * 10_001}
    )
    assert body == {"json": {"errors": [["TOO_LONG", "this is too long (max: 10000)", "text"]]}}
    assert reddit.received_posts == []


# --- through the database ---------------------------------------------------------------------


@pytest.mark.django_db
def test_polling_stores_exact_mentions_filters_locally_and_stores_nothing_twice(reddit, brand):
    reddit.now = lambda: datetime.now(UTC)
    now = datetime.now(UTC).replace(microsecond=0)
    complaint = reddit.add_post(
        title="Northwind Coffee app keeps crashing", selftext="Since the update. Fix it!",
        author="grumpy_gus", subreddit="Coffee", created_at=now - timedelta(minutes=5),
    )  # fmt: skip
    praise = reddit.add_post(
        title="Northwind Coffee beans are great", author="happy_hal", subreddit="espresso",
        created_at=now - timedelta(minutes=3),
    )  # fmt: skip
    refund = reddit.add_post(
        title="Northwind Coffee refund finally arrived", author="patient_pat",
        created_at=now - timedelta(minutes=1),
    )  # fmt: skip
    reddit.add_post(title="Unrelated coffee chatter", author="other", created_at=now)
    source = Source.objects.create(
        brand=brand, platform=Platform.REDDIT, name="Reddit", base_url=reddit.base_url,
        account_handle=BRAND_ACCOUNT,
        credentials={
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "username": BRAND_ACCOUNT,
            "password": PASSWORD,
        },
    )  # fmt: skip
    keyword = TrackedKeyword.objects.create(
        brand=brand, platform=Platform.REDDIT, source=source, query='"Northwind Coffee" -refund'
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
        complaint["name"]: (
            "reddit", "Northwind Coffee app keeps crashing\n\nSince the update. Fix it!",
            "grumpy_gus", "https://www.reddit.com/user/grumpy_gus",
            f"https://www.reddit.com{complaint['permalink']}", complaint["name"],
        ),
        praise["name"]: (
            "reddit", "Northwind Coffee beans are great", "happy_hal",
            "https://www.reddit.com/user/happy_hal",
            f"https://www.reddit.com{praise['permalink']}", praise["name"],
        ),
    }  # fmt: skip
    # Reddit was asked for the phrase only; the exclusion was applied here.
    assert api_calls(reddit)[0]["q"] == '"Northwind Coffee"'
    # The cursor moved past the newest post Reddit returned: the refund one, filtered here.
    cursor = PollCursor.objects.get(keyword=keyword)
    assert cursor.since_id == f"{(now - timedelta(minutes=1)).timestamp()!r}@{refund['name']}"

    again = keyword_poll(keyword_id=keyword.pk, max_pages=5)

    assert again.ok and again.stored == 0 and Mention.objects.count() == 2


@pytest.mark.django_db
def test_the_registry_builds_the_client_from_the_source(brand):
    app = {"client_id": "id", "client_secret": "s", "username": "bot_acct", "password": "p"}
    public = Source(
        brand=brand, platform=Platform.REDDIT, name="Reddit", account_handle="NorthwindHelp",
        credentials=app,
    )  # fmt: skip
    agent = "server:acme-listening:v2 (by /u/bot_acct)"
    local = Source(
        brand=brand, platform=Platform.REDDIT, name="Reddit", base_url="http://127.0.0.1:1/",
        credentials={**app, "subreddit": "Coffee", "user_agent": agent},
    )  # fmt: skip
    client = registry_client_for_source(public)
    assert isinstance(client, RedditClient) and client.platform == Platform.REDDIT
    assert (client.oauth_url, client.www_url, client.subreddit) == (
        "https://oauth.reddit.com", "https://www.reddit.com", "all",
    )  # fmt: skip
    assert client.account_handle == "NorthwindHelp" and client.can_reply
    assert client.syntax is REDDIT_SYNTAX
    assert client.credentials.user_agent == ""  # the default naming Earshot is used
    other = client_for_source(local)
    assert (other.oauth_url, other.www_url, other.subreddit) == (
        "http://127.0.0.1:1", "http://127.0.0.1:1", "Coffee",
    )  # fmt: skip
    assert other.account_handle == "bot_acct"
    assert other.credentials.user_agent == agent


# --- the command line -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_simulator_runs_from_the_command_line_with_demo_posts():
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "listening.simulators.reddit_api", "--port", str(port),
         "--seed-count", "4", "--generate-every", "0", "--seed", "3",
         "--client-id", "cli-id", "--client-secret", "cli-secret", "--password", "cli-pw"],
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = RedditClient(
        RedditCredentials("cli-id", "cli-secret", "NorthwindHelp", "cli-pw"),
        base_url=f"http://127.0.0.1:{port}",
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                page = search(client, "northwind OR northwindhelp")
                break
            except PlatformUnavailable:
                assert time.monotonic() < deadline, "the simulator did not start"
                time.sleep(0.1)
        assert len(page.posts) == 4 and page.rejected == []
        assert all(post.external_id.startswith("t3_") for post in page.posts)
    finally:
        process.terminate()
        process.wait(timeout=10)
