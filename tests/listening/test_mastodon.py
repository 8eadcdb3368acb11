"""Mastodon: Earshot's client through Mastodon.py, unmodified, against the local instance."""

from __future__ import annotations

import ast
import json
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from listening.clients.base import (
    AuthenticationFailed,
    FetchedPost,
    PlatformError,
    PlatformOutcomeUnknown,
    PlatformUnavailable,
    RateLimited,
    RequestRejected,
    SearchPage,
)
from listening.clients.mastodon import (
    MastodonClient,
    client_for_source,
    content_text,
    idempotency_key,
)
from listening.clients.registry import client_for_keyword
from listening.models import (
    AccountCursor,
    Mention,
    MentionStatus,
    Platform,
    PollCursor,
    Source,
    TrackedKeyword,
)
from listening.query import parse_query
from listening.services.polling import keyword_backfill_page, keyword_poll
from listening.simulators.mastodon_api import MastodonApiSimulator
from responses.models import Reply, ReplyOrigin, ReplyStatus
from responses.services.native_replies import account_cursors_ensure, account_posts_read
from responses.services.replies import reply_post

REPO = Path(__file__).resolve().parents[2]
TOKEN = "test-mastodon-token"
BRAND = "NorthwindHelp"
MAYA = {
    "username": "maya",
    "domain": "fosstodon.example",
    "name": "Maya Okafor",
    "followers_count": 4321,
}
OMAR = {"username": "omar", "name": "Omar Haddad", "followers_count": 12}
SEARCH = "/api/v2/search"


@pytest.fixture(scope="module")
def mastodon_server():
    simulator = MastodonApiSimulator(access_token=TOKEN, brand_username=BRAND)
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def sim(mastodon_server):
    mastodon_server.rate_limit = 300
    mastodon_server.public_hashtag_timelines = True
    mastodon_server.reset()
    return mastodon_server


def client_for(
    sim, token: str = TOKEN, *, handle: str = BRAND, timeout: float = 5
) -> MastodonClient:
    return MastodonClient(
        base_url=sim.base_url, access_token=token, account_handle=handle, timeout=timeout
    )


def host(sim) -> str:
    return sim.base_url.removeprefix("http://")


def ago(**delta) -> datetime:
    # A millisecond part keeps each post off a whole second, as real posts almost always are.
    return datetime.now(UTC).replace(microsecond=523_000) - timedelta(**delta)


def paths(sim) -> list[tuple[str, str]]:
    return [(method, path) for method, path, _, _ in sim.requests_log]


def queries(sim, path: str) -> list[dict]:
    return [query for _, logged, query, _ in sim.requests_log if logged == path]


def test_only_the_mastodon_client_module_imports_mastodon_py():
    importers = set()
    for path in REPO.glob("**/*.py"):
        if ".venv" in path.parts or "var" in path.parts:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except SyntaxError:
            continue  # a colleague's file, mid-edit
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] == "mastodon" for name in names):
                importers.add(path.relative_to(REPO).as_posix())
    assert importers == {"listening/clients/mastodon.py"}


# --- search -------------------------------------------------------------------------------


def test_a_search_page_carries_every_field_normalised(sim):
    created = ago(minutes=3)
    post = sim.add_post(
        text="Is #Northwind down?\nThe app & site both <fail>\n\nhttps://example.com/a/very/long/status/page",
        author=MAYA,
        created_at=created,
        favourites_count=7,
    )
    reply_created = ago(minutes=2)
    reply = sim.add_post(
        text="@maya@fosstodon.example northwind is on it",
        author=OMAR,
        in_reply_to_id=post["id"],
        created_at=reply_created,
        lang=None,
        spoiler_text="Northwind outage",
    )

    page = client_for(sim).search_page(query="northwind", since_id=None, next_token=None)

    first, second = page.posts
    assert first == FetchedPost(
        external_id=f"{host(sim)}/{reply['id']}",
        text="Northwind outage\n\n@maya northwind is on it",
        author_external_id="https://mastodon.example/@omar",
        posted_at=reply_created,
        conversation_id="",
        lang="und",
        in_reply_to_user_id="https://fosstodon.example/@maya",
        referenced_posts=[{"type": "replied_to", "id": f"{host(sim)}/{post['id']}"}],
        public_metrics={"reply_count": 0, "retweet_count": 0, "like_count": 0, "quote_count": 0},
        url=f"https://mastodon.example/@omar/{reply['id']}",
    )
    assert second.external_id == f"{host(sim)}/{post['id']}"
    assert second.text == (
        "Is #Northwind down?\nThe app & site both <fail>\n\nhttps://example.com/a/very/long/status/page"
    )
    assert second.posted_at == created
    assert second.conversation_id == second.external_id and second.lang == "en"
    assert second.referenced_posts == [] and second.in_reply_to_user_id == ""
    assert second.public_metrics == {
        "reply_count": 1, "retweet_count": 0, "like_count": 7, "quote_count": 0,
    }  # fmt: skip
    # A remote post: its address is on its own server, with that server's number for it.
    assert second.url.startswith("https://fosstodon.example/@maya/")
    assert second.url != f"https://fosstodon.example/@maya/{post['id']}"
    maya = page.authors["https://fosstodon.example/@maya"]
    assert (maya.username, maya.name, maya.followers_count, maya.verified, maya.url) == (
        "maya", "Maya Okafor", 4321, False, "https://fosstodon.example/@maya",
    )  # fmt: skip
    assert set(page.authors) == {
        "https://fosstodon.example/@maya",
        "https://mastodon.example/@omar",
    }
    assert page.newest_id == reply["id"] and page.next_token is None
    assert page.rejected == []
    assert (page.rate_limit.limit, page.rate_limit.remaining) == (300, 297)
    assert (
        timedelta(minutes=4) < page.rate_limit.reset_at - datetime.now(UTC) <= timedelta(minutes=5)
    )


def test_status_html_becomes_the_text_a_reader_sees():
    assert content_text("<p>a &amp; b &lt;3</p><p>second<br />line<br>three</p>") == (
        "a & b <3\n\nsecond\nline\nthree"
    )
    # Mastodon hides part of a long link's text; the text keeps the whole address.
    link = (
        '<a href="https://example.com/x"><span class="invisible">https://</span>'
        '<span class="ellipsis">example.com/very/lo</span><span class="invisible">ng</span></a>'
    )
    assert content_text(f"<p>see {link} now</p>") == "see https://example.com/very/long now"
    # The "RE:" line Mastodon 4.5 adds to quotes for old clients is not what anyone wrote.
    assert (
        content_text('<p class="quote-inline">RE: <a href="x">x</a><br></p><p>mine</p>') == "mine"
    )
    assert content_text("<p>  spaced\n out  </p>") == "spaced out"
    assert content_text("<pre>keep\n  this</pre>") == "keep\n  this"
    assert content_text("nul\x00 and \ud800") == "nul and \ufffd"
    assert content_text("") == ""


def test_the_query_sent_is_the_remote_part_of_the_keyword(sim):
    sim.add_post(text="Northwind coffee, every morning", author=MAYA)
    remote, local = parse_query('"northwind coffee" -spam lang:en').split_for(MastodonClient.syntax)

    client_for(sim).search_page(query=remote, since_id=None, next_token=None)

    assert (remote, local is not None) == ("northwind coffee", True)
    # Mastodon.py learns the instance's version first, once; then one search.
    assert paths(sim) == [
        ("GET", "/api/v1/instance/"),
        ("GET", "/api/v2/instance/"),
        ("GET", SEARCH),
    ]
    assert queries(sim, SEARCH) == [{"q": "northwind coffee", "type": "statuses", "limit": "40"}]


def test_search_pages_go_newest_first_and_lose_nothing_at_a_page_boundary(sim):
    # 42 posts a second apart, but the 40th and 41st newest share their second, 0.2 s apart.
    # Mastodon's search reads max_id as "before that second": a naive cursor loses the 41st.
    base = ago(hours=1)
    times = [base + timedelta(seconds=n) for n in range(42)]
    times[1] = times[2] - timedelta(milliseconds=200)
    posts = [
        sim.add_post(text=f"northwind {n}", author=MAYA, created_at=at)
        for n, at in enumerate(times)
    ]
    client = client_for(sim)

    first = client.search_page(query="northwind", since_id=None, next_token=None)
    second = client.search_page(query="northwind", since_id=None, next_token=first.next_token)

    newest_first = [f"{host(sim)}/{p['id']}" for p in reversed(posts)]
    assert [p.external_id for p in first.posts] == newest_first[:40]
    assert first.next_token == posts[2]["id"] and first.newest_id == posts[-1]["id"]
    assert [p.external_id for p in second.posts] == newest_first[40:]
    assert second.next_token is None
    (_, page_two) = queries(sim, SEARCH)
    assert int(page_two["max_id"]) > int(first.next_token)


def test_since_id_brings_only_newer_posts(sim):
    old = sim.add_post(text="northwind one", author=MAYA, created_at=ago(minutes=10))
    client = client_for(sim)
    first = client.search_page(query="northwind", since_id=None, next_token=None)
    new = sim.add_post(text="northwind two", author=OMAR, created_at=ago(minutes=1))

    again = client.search_page(query="northwind", since_id=first.newest_id, next_token=None)

    assert first.newest_id == old["id"]
    # Mastodon answers "after the cursor's second", which includes the cursor's own post:
    # it is left out here, not stored twice.
    assert [p.external_id for p in again.posts] == [f"{host(sim)}/{new['id']}"]
    assert again.newest_id == new["id"] and again.next_token is None
    assert queries(sim, SEARCH)[-1]["min_id"] == old["id"]


def test_a_hashtag_keyword_reads_the_tag_timeline_even_without_a_token(sim):
    quiet = {"username": "quiet", "domain": "social.example", "indexable": False}
    older = sim.add_post(
        text="Morning brew from #Northwind", author=quiet, created_at=ago(minutes=9)
    )
    newer = sim.add_post(text="#northwind again", author=MAYA, created_at=ago(minutes=2))
    sim.add_post(text="northwind without the tag", author=MAYA, created_at=ago(minutes=1))
    client = client_for(sim, token="")

    page = client.search_page(query="#northwind", since_id=None, next_token=None)
    later = client.search_page(query="#northwind", since_id=page.newest_id, next_token=None)

    assert [p.external_id for p in page.posts] == [
        f"{host(sim)}/{newer['id']}", f"{host(sim)}/{older['id']}",
    ]  # fmt: skip
    assert page.newest_id == newer["id"] and later.posts == []
    assert queries(sim, "/api/v1/timelines/tag/northwind") == [
        {"limit": "40"},
        {"limit": "40", "since_id": newer["id"]},
    ]
    # Not searchable (the author opted out of search), yet on the tag's timeline.
    assert client_for(sim).search_page(query="brew", since_id=None, next_token=None).posts == []
    # An instance that shows hashtag timelines to its users only wants a token.
    sim.public_hashtag_timelines = False
    with pytest.raises(AuthenticationFailed) as refused:
        client_for(sim, token="").search_page(query="#northwind", since_id=None, next_token=None)
    assert str(refused.value) == (
        "Mastodon wants an access token for the read of the hashtag timeline (401: This method "
        "requires an authenticated user). Add the brand account's token under Sources."
    )


def test_a_word_search_without_a_token_is_refused_before_any_call(sim):
    with pytest.raises(
        AuthenticationFailed, match="only searches the text of posts for a signed-in"
    ):
        client_for(sim, token="").search_page(query="northwind", since_id=None, next_token=None)
    assert sim.requests_log == []


def test_a_boost_is_a_retweet_carrying_its_original(sim):
    original = sim.add_post(text="northwind made my day", author=MAYA, created_at=ago(minutes=5))
    boost = sim.add_post(reblog_of_id=original["id"], created_at=ago(minutes=1))
    client = client_for(sim)
    searched = client.search_page(query="northwind", since_id=None, next_token=None)

    own = client.own_posts_page(since_id=None, next_token=None)

    (heard,) = searched.posts  # boosts are not in Mastodon's search index
    (post,) = own.posts
    assert post.external_id == f"{host(sim)}/{boost['id']}"
    assert post.referenced_posts == [{"type": "retweeted", "id": heard.external_id}]
    assert post.reposted_id == heard.external_id and post.original == heard
    assert post.text == "northwind made my day"
    assert post.author_external_id == "https://mastodon.example/@NorthwindHelp"
    assert set(own.authors) == {
        "https://mastodon.example/@NorthwindHelp", "https://fosstodon.example/@maya",
    }  # fmt: skip


# --- failures -------------------------------------------------------------------------------


def search(client: MastodonClient) -> SearchPage:
    return client.search_page(query="northwind", since_id=None, next_token=None)


def test_a_refused_token_is_an_authentication_failure_in_plain_words(sim):
    with pytest.raises(AuthenticationFailed) as refused:
        search(client_for(sim, token="wrong"))
    assert str(refused.value) == (
        "Mastodon refused the access token (401: The access token is invalid). "
        "Update it under Sources."
    )


def test_a_token_without_the_scope_or_a_bad_request_is_rejected(sim):
    sim.add_token("write-only", scopes=("write",))
    with pytest.raises(RequestRejected) as refused:
        search(client_for(sim, token="write-only"))
    assert str(refused.value).startswith(
        "Mastodon refused the search (403: This action is outside the authorized scopes). "
        "The access token needs the scopes read and write:statuses"
    )
    with pytest.raises(
        RequestRejected, match=r"\(400: param is missing or the value is empty: q\)"
    ):
        client_for(sim).search_page(query="   ", since_id=None, next_token=None)


def test_a_spent_budget_raises_with_the_reset_time_and_nothing_waits(sim):
    sim.rate_limit = 3  # the two version reads and one search
    sim.reset()
    client = client_for(sim)
    page = search(client)
    assert page.rate_limit.remaining == 0

    with pytest.raises(RateLimited, match="Mastodon rate limit reached for the search") as limited:
        search(client)

    assert limited.value.reset_at == page.rate_limit.reset_at
    # Mastodon.py was told to throw: it made the one refused call, and no retry after a wait.
    assert paths(sim)[-2:] == [("GET", SEARCH), ("GET", SEARCH)]
    assert len(sim.requests_log) == 4


def test_a_429_is_read_for_its_iso_reset_header(sim):
    client = client_for(sim)
    search(client)
    sim.fail_next(
        429,
        headers={
            "X-RateLimit-Limit": "300",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": "2030-01-01T00:05:00.000000Z",
        },
    )
    with pytest.raises(RateLimited) as limited:
        search(client)
    assert limited.value.reset_at == datetime(2030, 1, 1, 0, 5, tzinfo=UTC)
    assert str(limited.value) == (
        "Mastodon rate limit reached for the search (Too many requests); next call allowed "
        "at 00:05:00 UTC"
    )


def test_server_errors_broken_bodies_and_cut_connections_are_transient(sim):
    client = client_for(sim)
    search(client)
    sim.fail_next(500)
    with pytest.raises(PlatformUnavailable) as failed:
        search(client)
    assert str(failed.value) == (
        "Mastodon answered 500 to the search (We're sorry, but something went wrong on our "
        "end.); will retry"
    )
    sim.fail_next(200, b"<html>Bad gateway</html>", content_type="text/html")
    with pytest.raises(PlatformUnavailable, match="body that is not valid JSON"):
        search(client)
    sim.fail_next(200, ["not", "a", "search", "result"])
    with pytest.raises(PlatformUnavailable) as unreadable:
        search(client)
    assert str(unreadable.value) == (
        "Mastodon answered the search with something Earshot cannot read; will retry"
    )
    sim.cut_next()
    with pytest.raises(
        PlatformUnavailable, match=r"Mastodon could not be reached \(ConnectionError\)"
    ):
        search(client)


def test_a_failed_version_check_is_reported_as_what_it_is(sim):
    sim.fail_next(503)
    with pytest.raises(PlatformUnavailable) as failed:
        search(client_for(sim))
    assert str(failed.value) == (
        "Mastodon answered 503 to the check of the instance's version (The page could not be "
        "served due to a temporary server failure.); will retry"
    )
    assert paths(sim) == [("GET", "/api/v1/instance/")]


def test_an_unreachable_instance_is_a_transient_failure_even_for_a_reply():
    client = MastodonClient(base_url="http://127.0.0.1:9", access_token=TOKEN, timeout=2)
    with pytest.raises(PlatformUnavailable, match="Mastodon could not be reached"):
        search(client)
    # No connection was made, so the reply surely was not posted: a plain retry is safe.
    with pytest.raises(PlatformUnavailable) as failed:
        client.post_reply(text="hi", in_reply_to_id="127.0.0.1:9/1")
    assert type(failed.value) is PlatformUnavailable


# --- malformed items ------------------------------------------------------------------------


def test_each_bad_item_is_named_and_the_good_ones_kept(sim):
    good = sim.add_post(text="northwind is fine", author=MAYA, created_at=ago(minutes=30))
    template = sim.status(good["id"])
    bad = [
        "not an object",
        {**template, "id": None},
        {**template, "id": "12/34"},
        {**template, "created_at": "yesterday"},
        {**template, "account": {**template["account"], "url": "javascript:alert(1)"}},
        {**template, "account": {**template["account"], "username": ""}},
        {**template, "content": 42},
        {**template, "reblog": {"id": "1"}},
    ]
    for n, item in enumerate(bad):
        sim.add_raw_status(item, created_at=ago(minutes=20 - n))

    page = search(client_for(sim))

    assert [p.external_id for p in page.posts] == [f"{host(sim)}/{good['id']}"]
    assert [r.reason for r in page.rejected] == [
        "the boosted status is malformed: missing or invalid field 'created_at': None",
        "missing or invalid field 'content'",
        "account: missing or invalid field 'username' (1-100 characters)",
        "account: missing or invalid field 'url' (an http(s) address of at most 255 characters)",
        "created_at 'yesterday' is not a timestamp",
        "missing or invalid field 'id': '12/34'",
        "missing or invalid field 'id': None",
        "item is a str, not an object",
    ]
    assert [r.raw for r in page.rejected] == list(reversed(bad))


_hostile_strings = st.one_of(
    st.text(),
    st.sampled_from(
        ["\u0000", "\ud800", "\udfff\ud800", "\u202e\u200fRTL", "x" * 100_000, "<p>", "&#0;",
         "2026-13-45T99:99:99Z", "https://", "javascript:x", "1/2", "", " "]
    ),
)  # fmt: skip
_hostile_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _hostile_strings,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(_hostile_strings, inner, max_size=4)
    ),
    max_leaves=12,
)
_STATUS_FIELDS = ["id", "created_at", "content", "account", "reblog", "in_reply_to_id",
                  "in_reply_to_account_id", "language", "url", "uri", "spoiler_text",
                  "mentions", "quote", "favourites_count"]  # fmt: skip
_ACCOUNT_FIELDS = ["id", "url", "username", "display_name", "followers_count"]


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    mode=st.sampled_from(["items", "mutated", "body", "bytes"]),
    hostile=st.lists(_hostile_values, min_size=1, max_size=3),
    field=st.sampled_from(_STATUS_FIELDS),
    account_field=st.sampled_from([None, *_ACCOUNT_FIELDS]),
    raw_bytes=st.binary(max_size=200),
)
def test_hostile_answers_only_ever_fail_as_platform_errors(
    sim, mode, hostile, field, account_field, raw_bytes
):
    sim.reset()
    good = sim.add_post(text="northwind stays intact", author=MAYA, created_at=ago(minutes=30))
    stranger = sim.add_post(text="a template", author=OMAR, created_at=ago(minutes=40))
    template = sim.status(stranger["id"])
    sim.add_post(text="northwind", author=OMAR, created_at=ago(minutes=50))  # keeps OMAR real
    client = client_for(sim)
    if mode == "items":
        for item in hostile:
            sim.add_raw_status(item)
    elif mode == "mutated":
        for value in hostile:
            item = json.loads(json.dumps(template))
            if account_field is None:
                item[field] = value
            else:
                item["account"][account_field] = value
            sim.add_raw_status(item)
    else:
        search(client)  # past the version check: the fault below hits the search itself
        body = json.dumps(hostile[0]).encode() if mode == "body" else raw_bytes
        sim.fail_next(200, body)

    try:
        page = search(client)
    except PlatformError:
        return
    assert isinstance(page, SearchPage)
    for post in page.posts:
        assert isinstance(post, FetchedPost) and post.author_external_id in page.authors
        for text in (post.text, post.external_id, post.url, post.lang):
            assert "\x00" not in text and not any("\ud800" <= c <= "\udfff" for c in text)
        assert len(post.external_id) <= 255
    for author in page.authors.values():
        assert len(author.username) <= 100 and len(author.name) <= 200
        assert "\x00" not in author.name + author.username
    assert all(reason.reason for reason in page.rejected)
    assert page.newest_id is None or len(page.newest_id) <= 500
    if mode in ("items", "mutated"):
        intact = [p for p in page.posts if p.external_id == f"{host(sim)}/{good['id']}"]
        assert [(p.text, p.author_external_id) for p in intact] == [
            ("northwind stays intact", "https://fosstodon.example/@maya")
        ]


# --- replies --------------------------------------------------------------------------------


def heard(sim, text: str = "northwind lost my order", author=MAYA):
    """A customer's post, as search gives it: (its status, its external id)."""
    status = sim.add_post(text=text, author=author, created_at=ago(minutes=10))
    (post,) = (
        client_for(sim).search_page(query="northwind lost", since_id=None, next_token=None).posts
    )
    sim.clear_logs()
    return status, post.external_id


def test_a_reply_is_posted_once_and_found_again(sim):
    status, external_id = heard(sim)
    client = client_for(sim)
    text = "@maya@fosstodon.example Sorry! We're on it. ^AM"

    posted = client.post_reply(text=text, in_reply_to_id=external_id)

    (received,) = sim.received_posts
    assert posted.external_id == f"{host(sim)}/{received['id']}"
    assert (received["status"], received["in_reply_to_id"]) == (text, status["id"])
    assert received["idempotency_key"] == idempotency_key(external_id, text)
    assert posted.text == text
    assert abs(posted.posted_at - datetime.now(UTC)) < timedelta(seconds=5)
    found = client.find_reply(author_username="ignored", text=text, in_reply_to_id=external_id)
    assert found == posted
    assert client.find_reply(author_username="", text="other", in_reply_to_id=external_id) is None
    assert len(sim.received_posts) == 1


def test_a_reply_over_the_limit_or_elsewhere_is_refused_and_nothing_is_posted(sim):
    _, external_id = heard(sim)
    with pytest.raises(RequestRejected) as refused:
        client_for(sim).post_reply(text="x" * 501, in_reply_to_id=external_id)
    assert str(refused.value) == (
        "Mastodon refused the reply (422: Validation failed: Text character limit of 500 exceeded)"
    )
    with pytest.raises(RequestRejected, match="Earshot can only answer it through the instance"):
        client_for(sim).post_reply(text="hi", in_reply_to_id="mastodon.social/1234")
    assert sim.received_posts == []
    assert paths(sim) == [("POST", "/api/v1/statuses")]


def test_a_reply_whose_answer_is_late_is_an_unknown_outcome_posted_exactly_once(sim):
    _, external_id = heard(sim)
    client = client_for(sim, timeout=0.3)
    sim.slow_next(1.0)

    with pytest.raises(PlatformOutcomeUnknown, match="did not answer in time for the reply"):
        client.post_reply(text="On it!", in_reply_to_id=external_id)

    (received,) = sim.received_posts
    found = client.find_reply(author_username=BRAND, text="On it!", in_reply_to_id=external_id)
    assert found is not None and found.external_id == f"{host(sim)}/{received['id']}"
    # Sending again anyway is harmless: the Idempotency-Key makes it the same post.
    again = client.post_reply(text="On it!", in_reply_to_id=external_id)
    assert again.external_id == found.external_id and len(sim.received_posts) == 1


@pytest.mark.parametrize("fault", ["500", "cut"])
def test_a_reply_that_may_have_been_posted_is_an_unknown_outcome(sim, fault):
    _, external_id = heard(sim)
    if fault == "500":
        sim.fail_next(500)
    else:
        sim.cut_next()
    with pytest.raises(PlatformOutcomeUnknown, match="it may have been posted"):
        client_for(sim).post_reply(text="On it!", in_reply_to_id=external_id)
    assert sim.received_posts == []  # the fault answered before the instance acted


def test_own_posts_link_replies_sent_on_mastodon_to_the_posts_search_gave(sim):
    status, external_id = heard(sim)
    native = sim.add_post(text="@maya@fosstodon.example DMing you now", in_reply_to_id=status["id"])
    sim.add_post(text="Fresh beans today", created_at=ago(minutes=20))

    page = client_for(sim).own_posts_page(since_id=None, next_token=None)

    assert [p.external_id for p in page.posts][0] == f"{host(sim)}/{native['id']}"
    assert page.posts[0].replied_to_id == external_id
    assert page.posts[1].replied_to_id is None
    assert paths(sim) == [
        ("GET", "/api/v1/accounts/lookup"),
        ("GET", "/api/v1/accounts/100/statuses"),
    ]
    assert queries(sim, "/api/v1/accounts/lookup") == [{"acct": BRAND}]
    with pytest.raises(RequestRejected, match="no account handle"):
        client_for(sim, handle="").own_posts_page(since_id=None, next_token=None)


# --- end to end through the database --------------------------------------------------------


def mastodon_keyword(sim, brand, query: str) -> TrackedKeyword:
    source = Source.objects.create(
        brand=brand,
        platform=Platform.MASTODON,
        name="mastodon.example",
        base_url=sim.base_url,
        account_handle=BRAND,
        credentials={"access_token": TOKEN},
    )
    keyword = TrackedKeyword.objects.create(
        brand=brand, platform=Platform.MASTODON, source=source, query=query
    )
    PollCursor.objects.create(keyword=keyword)
    return keyword


@pytest.mark.django_db
def test_polling_stores_the_matching_statuses_once(sim, brand):
    keyword = mastodon_keyword(sim, brand, "northwind -refund lang:en")
    kept = sim.add_post(
        text="<b>Northwind</b> latte &amp; croissant: perfect",
        author=MAYA,
        created_at=ago(minutes=3),
    )
    sim.add_post(text="Northwind, I want a refund", author=OMAR, created_at=ago(minutes=2))
    sim.add_post(
        text="Northwind Kaffee ist super", author=OMAR, lang="de", created_at=ago(minutes=1)
    )
    sim.add_post(text="unrelated tea talk", author=MAYA, created_at=ago(minutes=1))
    assert isinstance(client_for_keyword(keyword), MastodonClient)

    outcome = keyword_poll(keyword_id=keyword.pk, max_pages=5)

    assert (outcome.error, outcome.stored) == ("", 1)
    assert list(
        Mention.objects.values_list("platform", "external_id", "text", "author__username", "url")
    ) == [
        (
            "mastodon",
            f"{host(sim)}/{kept['id']}",
            "<b>Northwind</b> latte &amp; croissant: perfect",
            "maya",
            kept["url"],
        )
    ]
    assert queries(sim, SEARCH)[0]["q"] == "northwind"
    newest = PollCursor.objects.get(keyword=keyword).since_id

    again = keyword_poll(keyword_id=keyword.pk, max_pages=5)

    assert (again.error, again.stored) == ("", 0)
    assert Mention.objects.count() == 1
    assert queries(sim, SEARCH)[-1]["min_id"] == newest


@pytest.mark.django_db
def test_a_new_keyword_polls_the_newest_page_and_backfills_the_rest(sim, brand):
    keyword = mastodon_keyword(sim, brand, "northwind")
    start = ago(hours=2)
    posts = [
        sim.add_post(text=f"northwind {n}", author=MAYA, created_at=start + timedelta(seconds=n))
        for n in range(45)
    ]

    first = keyword_poll(keyword_id=keyword.pk, max_pages=5)
    history = keyword_backfill_page(keyword_id=keyword.pk)

    assert (first.stored, history) == (40, 5)
    stored = set(Mention.objects.values_list("external_id", flat=True))
    assert stored == {f"{host(sim)}/{p['id']}" for p in posts}
    cursor = PollCursor.objects.get(keyword=keyword)
    assert (cursor.since_id, cursor.backfill_next_token) == (posts[-1]["id"], "")


@pytest.mark.django_db
def test_a_desk_reply_whose_answer_was_lost_is_found_not_posted_again(sim, brand, agent, settings):
    keyword = mastodon_keyword(sim, brand, "northwind")
    sim.add_post(text="northwind lost my order", author=MAYA, created_at=ago(minutes=3))
    keyword_poll(keyword_id=keyword.pk, max_pages=5)
    mention = Mention.objects.get()
    Mention.objects.filter(pk=mention.pk).update(status=MentionStatus.REPLYING)
    reply = Reply.objects.create(
        mention=mention, agent=agent, text="@maya@fosstodon.example On it!"
    )
    settings.X_REQUEST_TIMEOUT_SECONDS = 0.3
    sim.slow_next(1.0)

    with pytest.raises(PlatformOutcomeUnknown):
        reply_post(reply_id=reply.pk, give_up_on_transient=False)
    reply.refresh_from_db()
    assert (reply.status, reply.outcome_unknown) == (ReplyStatus.QUEUED, True)
    sent = reply_post(reply_id=reply.pk, give_up_on_transient=False)

    (received,) = sim.received_posts
    assert (sent.status, sent.external_id) == (ReplyStatus.SENT, f"{host(sim)}/{received['id']}")
    assert Mention.objects.get().status == MentionStatus.REPLIED


@pytest.mark.django_db
def test_a_reply_written_on_mastodon_itself_is_linked_to_its_mention(sim, brand):
    keyword = mastodon_keyword(sim, brand, "northwind")
    status = sim.add_post(text="northwind lost my order", author=MAYA, created_at=ago(minutes=3))
    keyword_poll(keyword_id=keyword.pk, max_pages=5)
    native = sim.add_post(text="@maya@fosstodon.example Sent you a DM", in_reply_to_id=status["id"])
    account_cursors_ensure(due_at=timezone.now())
    cursor = AccountCursor.objects.get(source=keyword.source)

    outcome = account_posts_read(cursor_id=cursor.pk, max_pages=3)

    assert (outcome.error, outcome.linked) == ("", 1)
    reply = Reply.objects.get()
    assert (reply.origin, reply.external_id, reply.text) == (
        ReplyOrigin.PLATFORM, f"{host(sim)}/{native['id']}", "@maya Sent you a DM",
    )  # fmt: skip
    assert Mention.objects.get().status == MentionStatus.REPLIED


@pytest.mark.django_db
def test_client_for_source_reads_the_token_and_defaults_to_mastodon_social(brand):
    source = Source(brand=brand, platform=Platform.MASTODON, name="m", credentials={})
    client = client_for_source(source)
    assert (client.base_url, client.host, client.access_token) == (
        "https://mastodon.social", "mastodon.social", "",
    )  # fmt: skip


# --- the simulator on its own ------------------------------------------------------------------


def test_the_simulator_answers_like_mastodon_where_the_client_does_not_look(sim):
    sim.add_post(text="northwind", author=MAYA)
    anonymous = requests.get(f"{sim.base_url}/api/v2/search", params={"q": "northwind"}, timeout=5)
    assert anonymous.json() == {"accounts": [], "statuses": [], "hashtags": []}
    assert anonymous.headers["X-RateLimit-Limit"] == "300"
    blank = requests.post(
        f"{sim.base_url}/api/v1/statuses",
        data={"status": "  "},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    )
    assert (blank.status_code, blank.json()) == (
        422,
        {"error": "Validation failed: Text can't be blank"},
    )
    missing = requests.get(f"{sim.base_url}/api/v1/accounts/lookup?acct=nobody", timeout=5)
    assert (missing.status_code, missing.json()) == (404, {"error": "Record not found"})
    seeded = requests.post(
        f"{sim.base_url}/_sim/posts", json={"text": "via control", "author": OMAR}, timeout=5
    )
    assert seeded.status_code == 201 and seeded.json()["data"]["content"] == "<p>via control</p>"


def test_the_command_line_serves_demo_posts():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "listening.simulators.mastodon_api", "--port", str(port),
         "--access-token", "cli-token", "--seed-count", "5", "--generate-every", "0", "--seed", "1"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                answer = requests.get(
                    f"http://127.0.0.1:{port}/api/v1/accounts/lookup?acct=NorthwindHelp", timeout=1
                )
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the simulator did not start"
                time.sleep(0.1)
        statuses = requests.get(f"http://127.0.0.1:{port}/api/v1/timelines/tag/x", timeout=5).json()
        assert answer.json()["acct"] == "NorthwindHelp" and statuses == []
        page = MastodonClient(
            base_url=f"http://127.0.0.1:{port}", access_token="cli-token", timeout=5
        ).search_page(query="northwindhelp", since_id=None, next_token=None)
        assert page.posts and page.rejected == []
    finally:
        process.terminate()
        process.wait(timeout=10)
