"""RSS and Atom feeds: the client (requests + feedparser) against the feeds simulator, over HTTP."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import feedparser
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
from listening.clients.feeds import FeedClient
from listening.clients.registry import client_for_source
from listening.models import Mention, Platform, PollCursor, Source, TrackedKeyword
from listening.query import FEED_SYNTAX, parse_query
from listening.services.polling import keyword_poll
from listening.simulators.feeds_api import FeedsSimulator
from tests.conftest import REPO_ROOT

NOW = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def feeds_server() -> Iterator[FeedsSimulator]:
    simulator = FeedsSimulator()
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def feeds(feeds_server: FeedsSimulator) -> Iterator[FeedsSimulator]:
    feeds_server.now = lambda: NOW
    feeds_server.reset()
    yield feeds_server
    feeds_server.now = lambda: datetime.now(UTC)


def client_for(sim: FeedsSimulator, slug: str = "news", **options) -> FeedClient:
    # The simulator is on 127.0.0.1: a private address, refused unless allowed.
    options.setdefault("allow_private_address", True)
    client = FeedClient(feed_url=sim.feed_url(slug), timeout=options.pop("timeout", 2.0), **options)
    client.now = lambda: NOW
    return client


def fetch(client: FeedClient, query: str = "northwind", since_id: str | None = None):
    return client.search_page(query=query, since_id=since_id, next_token=None)


def fetches(sim: FeedsSimulator) -> list[tuple[str, str]]:
    return [(method, path) for method, path, _, _ in sim.requests_log]


# --- entries ----------------------------------------------------------------------------------


def test_an_rss_item_is_normalised_field_by_field(feeds):
    item = feeds.add_post(
        feed="news",
        title="Northwind opens a roastery",
        summary="<p>Big <b>news</b> &amp; a <a href='https://x.example/'>tour</a>.</p><p>Come!</p>",
        link="https://northwind.example/roastery",
        id="https://northwind.example/?p=42",
        author="Ana Ruiz",
        author_email="press@northwind.example",
        published=NOW - timedelta(hours=2),
    )

    page = fetch(client_for(feeds))

    (post,) = page.posts
    assert post.external_id == item["id"] == "https://northwind.example/?p=42"
    assert post.text == "Northwind opens a roastery\n\nBig news & a tour.\n\nCome!"
    assert post.posted_at == NOW - timedelta(hours=2)
    assert post.url == "https://northwind.example/roastery"
    assert post.lang == "en"  # the channel's en-us
    assert post.conversation_id == post.external_id
    assert (post.referenced_posts, post.public_metrics, post.in_reply_to_user_id) == ([], {}, "")
    assert post.original is None
    feed_url = feeds.feed_url("news")
    assert post.author_external_id == f"{feed_url}#author=Ana Ruiz"
    author = page.authors[post.author_external_id]
    assert (author.username, author.name, author.followers_count, author.verified) == (
        "Ana Ruiz",
        "Ana Ruiz",
        0,
        False,
    )
    assert author.url == "https://northwind.example/"  # the site the feed belongs to
    assert page.next_token is None and page.rejected == [] and page.rate_limit is None


def test_an_atom_entry_is_normalised_and_an_authorless_entry_is_the_feeds(feeds):
    signed = feeds.add_post(
        feed="blog", title="Roasting with Northwind", summary="A <em>long</em> read",
        author="Ben Ode", published=NOW - timedelta(days=1),
    )  # fmt: skip
    unsigned = feeds.add_post(
        feed="blog", title="Northwind beans, tested", summary="Plain text <not a tag>",
        summary_type="text", published=NOW - timedelta(hours=1),
    )  # fmt: skip

    page = fetch(client_for(feeds, "blog"))

    newest, oldest = page.posts
    assert (newest.external_id, oldest.external_id) == (unsigned["id"], signed["id"])
    assert newest.external_id.startswith("tag:northwind.example,2026:")
    assert newest.text == "Northwind beans, tested\n\nPlain text <not a tag>"
    assert oldest.text == "Roasting with Northwind\n\nA long read"
    assert newest.lang == oldest.lang == "en"  # xml:lang="en-gb"
    assert newest.url == unsigned["link"] and newest.posted_at == NOW - timedelta(hours=1)
    feed_url = feeds.feed_url("blog")
    # No author: the feed itself speaks, by its title.
    assert newest.author_external_id == feed_url
    the_feed = page.authors[feed_url]
    assert (the_feed.username, the_feed.name, the_feed.url) == (
        "The Roasting Blog",
        "The Roasting Blog",
        "https://roasting.example/",
    )
    assert page.authors[oldest.author_external_id].username == "Ben Ode"


def test_the_whole_feed_is_fetched_and_the_words_are_matched_here(feeds):
    remote, local = parse_query("northwind cafe").split_for(FEED_SYNTAX)
    assert (remote, local) == ("northwind cafe", None)  # polling would filter nothing
    kept = feeds.add_post(title="Northwind's new cafe", published=NOW - timedelta(hours=3))
    feeds.add_post(title="Northwind roastery", published=NOW - timedelta(hours=2))
    feeds.add_post(
        title="A cafe elsewhere", summary="not the brand", published=NOW - timedelta(hours=1)
    )

    page = fetch(client_for(feeds), query=remote)

    assert [post.external_id for post in page.posts] == [kept["id"]]
    # A feed has no search: nothing of the query goes over the wire.
    assert feeds.requests_log[0][1:3] == ("/feeds/news", {})


def test_ids_are_namespaced_by_feed_hashed_when_long_and_links_must_be_web_addresses(feeds):
    feed_url = feeds.feed_url("news")
    feeds.add_raw_entry(
        "<item><title>Northwind one</title><guid isPermaLink='false'>42</guid>"
        "<link>javascript:alert(1)</link></item>"
    )
    feeds.add_raw_entry(
        "<item><title>Northwind two</title><pubDate>Mon, 02 Mar 2026 10:00:00 GMT</pubDate></item>"
    )
    long_id = "urn:x:" + "9" * 300
    feeds.add_raw_entry(f"<item><title>Northwind three</title><guid>{long_id}</guid></item>")
    feeds.add_raw_entry(
        "<item><title>Northwind four</title><link>https://n.example/4</link></item>"
    )

    page = fetch(client_for(feeds))

    ids = {post.text: (post.external_id, post.url) for post in page.posts}
    assert ids["Northwind one"] == (f"{feed_url}#42", "")
    two = hashlib.sha256(
        f"{feed_url}\nNorthwind two\nMon, 02 Mar 2026 10:00:00 GMT".encode()
    ).hexdigest()
    assert ids["Northwind two"] == (f"sha256:{two}", "")
    three = hashlib.sha256(long_id.encode()).hexdigest()
    assert ids["Northwind three"] == (f"sha256:{three}", "")
    assert ids["Northwind four"] == ("https://n.example/4", "https://n.example/4")
    # Entries without a date are dated when they are read.
    assert {post.posted_at for post in page.posts if post.text != "Northwind two"} == {NOW}


# --- conditional GET --------------------------------------------------------------------------


def test_an_unchanged_feed_answers_304_and_keeps_the_cursor(feeds):
    feeds.add_post(title="Northwind news", published=NOW - timedelta(hours=1))
    client = client_for(feeds)
    first = fetch(client)
    cursor = json.loads(first.newest_id)
    assert set(cursor) == {"etag", "modified"}
    assert cursor["modified"] == "Mon, 02 Mar 2026 12:00:00 GMT"

    second = fetch(client, since_id=first.newest_id)

    assert second.posts == [] and second.rejected == [] and second.next_token is None
    assert second.newest_id == first.newest_id
    assert len(feeds.requests_log) == 2


def test_a_changed_feed_is_read_again_with_a_new_cursor(feeds):
    feeds.add_post(title="Northwind news", published=NOW - timedelta(hours=1))
    client = client_for(feeds)
    first = fetch(client)
    feeds.now = lambda: NOW + timedelta(minutes=5)
    newer = feeds.add_post(title="Northwind more news", published=NOW + timedelta(minutes=5))

    second = fetch(client, since_id=first.newest_id)

    assert [p.external_id for p in second.posts] == [newer["id"], first.posts[0].external_id]
    assert second.newest_id != first.newest_id
    assert json.loads(second.newest_id)["modified"] == "Mon, 02 Mar 2026 12:05:00 GMT"


def test_last_modified_alone_is_enough_for_a_304(feeds):
    feeds.configure("news", etag=False)
    feeds.add_post(title="Northwind news")
    client = client_for(feeds)
    first = fetch(client)
    assert json.loads(first.newest_id) == {"modified": "Mon, 02 Mar 2026 12:00:00 GMT"}

    second = fetch(client, since_id=first.newest_id)

    assert second.posts == [] and second.newest_id == first.newest_id


def test_a_feed_without_validators_is_read_whole_each_time(feeds):
    feeds.configure("news", etag=False, last_modified=False)
    item = feeds.add_post(title="Northwind news")
    client = client_for(feeds)
    first = fetch(client)
    assert first.newest_id == "{}"

    second = fetch(client, since_id=first.newest_id)

    assert [p.external_id for p in second.posts] == [item["id"]]  # storage keeps it once


# --- malformed feeds --------------------------------------------------------------------------


def test_a_malformed_feed_keeps_what_could_be_read_and_names_empty_entries(feeds):
    good = feeds.add_post(title="Northwind is fine", published=NOW - timedelta(hours=1))
    feeds.add_raw_entry(
        "<item><guid>https://n.example/empty</guid></item>", published=NOW - timedelta(hours=2)
    )
    feeds.add_raw_entry(
        "<item><title>Northwind & broken</title><pubDate>Mon, 02 Mar 2026 09:00:00 GMT</pubDate>"
        "</item>",
        published=NOW - timedelta(hours=3),
    )

    page = fetch(client_for(feeds))

    # The unescaped "&" makes the feed malformed (bozo); feedparser still reads every entry.
    assert [p.text for p in page.posts] == ["Northwind is fine", "Northwind & broken"]
    assert page.posts[0].external_id == good["id"]
    (rejected,) = page.rejected
    assert rejected.reason == "the entry has neither a title nor a summary"
    assert rejected.raw["id"] == "https://n.example/empty"
    assert page.newest_id is not None and "etag" in json.loads(page.newest_id)


def test_a_feed_from_which_nothing_can_be_read_is_named_and_read_again_next_time(feeds):
    feeds.fail_next(
        200,
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>Cut <off',
        content_type="application/rss+xml",
    )

    page = fetch(client_for(feeds), since_id='{"etag":"\\"old\\""}')

    assert page.posts == []
    (rejected,) = page.rejected
    assert rejected.reason.startswith("the feed is malformed and no entry could be read from it: ")
    assert rejected.raw.startswith('<?xml version="1.0"?><rss')
    assert page.newest_id == '{"etag":"\\"old\\""}'  # not moved: read it whole next time


def test_a_web_page_is_not_a_feed_and_the_message_names_the_feed_it_links_to(feeds):
    feeds.fail_next(
        200,
        b'<!DOCTYPE html><html><head><link rel="alternate" type="application/rss+xml" '
        b'href="/feed.xml"></head><body>Welcome</body></html>',
        content_type="text/html; charset=utf-8",
    )
    url = feeds.feed_url("news")

    with pytest.raises(RequestRejected) as rejected:
        fetch(client_for(feeds))

    assert str(rejected.value) == (
        f"{url} is not an RSS or Atom feed: it answered a web page (text/html). The page links "
        f"to a feed at {feeds.base_url}/feed.xml: use that address."
    )


def test_a_hostile_web_page_is_still_answered_quickly_and_plainly(feeds):
    # A page html.parser or a careless pattern would take minutes over.
    page = b"<!DOCTYPE html><html><head>" + b"<link " + b"a" * 200_000 + b"<a" * 100_000
    feeds.fail_next(200, page, content_type="text/html")
    with pytest.raises(RequestRejected, match=r"it answered a web page \(text/html\)\.$"):
        fetch(client_for(feeds))


def test_a_feed_served_as_text_html_is_still_a_feed(feeds):
    feeds.fail_next(
        200,
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        b"<item><title>Northwind</title><guid>https://n.example/1</guid></item></channel></rss>",
        content_type="text/html",
    )
    (post,) = fetch(client_for(feeds)).posts
    assert post.external_id == "https://n.example/1"


def test_xml_that_is_no_feed_is_rejected_and_garbage_is_a_transient_failure(feeds):
    url = feeds.feed_url("news")
    feeds.fail_next(
        200, b'<?xml version="1.0"?><urlset><url>x</url></urlset>', content_type="application/xml"
    )
    with pytest.raises(
        RequestRejected,
        match=rf"^{url} is not an RSS or Atom feed: its answer is neither \(application/xml\)\.$",
    ):
        fetch(client_for(feeds))
    feeds.fail_next(200, b"\x00\x01\x02 not xml", content_type="application/rss+xml")
    with pytest.raises(
        PlatformUnavailable,
        match=rf"^{url} answered something that cannot be read as RSS or Atom \(.*\); will retry$",
    ):
        fetch(client_for(feeds))


def test_a_feed_larger_than_5_mb_is_refused_unread(feeds):
    feeds.fail_next(
        200, b"<rss>" + b"x" * (5 * 1024 * 1024) + b"</rss>", content_type="application/rss+xml"
    )
    with pytest.raises(RequestRejected, match="is larger than 5 MB, the most Earshot reads"):
        fetch(client_for(feeds))


RSS_TYPE = "application/rss+xml; charset=utf-8"


@pytest.mark.parametrize(
    ("author", "read_as"),
    [
        ("<author>" + "x" * 100_000 + "</author>", "Stall"),
        ("<dc:creator>" + ("x" * 99 + "<b/>") * 1000 + "</dc:creator>", "Stall"),
        (
            "<managingEditor><![CDATA[</managingEditor>" + "x" * 100_000 + "]]></managingEditor>",
            "Stall",
        ),
        ("<itunes:author>" + "x." * 50_000, "Stall"),  # never closed
        # The prolog declares &big; as 5,000 letters: declarations are dropped, so it stays.
        ("<author>" + "&big;" * 15 + "</author>", "&big;" * 15),
    ],
    ids=["long", "nested-tags", "end-tag-in-cdata", "unclosed", "entity"],
)
def test_an_author_element_that_would_stall_feedparser_is_emptied(feeds, author, read_as):
    # feedparser's e-mail pattern backtracks for minutes over a long author text.
    feeds.add_feed("stall", kind="rss", title="Stall")
    good = feeds.add_post(
        feed="stall", title="Northwind fine", author="Goodwin", published=NOW - timedelta(hours=1)
    )
    feeds.add_raw_entry(
        f"<item><title>Northwind stall</title><guid>https://n.example/s</guid>{author}</item>",
        feed="stall",
        published=NOW - timedelta(hours=2),
    )
    body = requests.get(feeds.feed_url("stall"), timeout=2).content
    entity = b'<!DOCTYPE rss [<!ENTITY big "' + b"y" * 5000 + b'">]>'
    feeds.fail_next(200, body.replace(b"<rss", entity + b"<rss", 1), content_type=RSS_TYPE)

    page = fetch(client_for(feeds, "stall"))

    by_id = {post.external_id: post for post in page.posts}
    assert page.authors[by_id[good["id"]].author_external_id].username == "Goodwin"
    stalled = by_id["https://n.example/s"]
    assert stalled.text == "Northwind stall"
    # An emptied author element makes the entry the feed's own ("Stall").
    assert page.authors[stalled.author_external_id].username == read_as


_hostile_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from([
        "\u0000", "&#xD800;", "&#0;", "\u202e\u200fabc", "x" * 100_000, "<![CDATA[", "]]>",
        "&undefined;", "<b>", "</item>", "<!--", "-1", "Mon, 99 Foo 9999 99:99:99 GMT",
        "javascript:alert(1)", "\ufeff", "<?xml version='1.0'?>",
    ]),
)  # fmt: skip
_hostile_entry = st.one_of(
    _hostile_text,
    st.builds(
        lambda t, d, g, p, a, c: (
            f"<item><title>{t}</title><description>{d}</description><guid>{g}</guid>"
            f"<pubDate>{p}</pubDate><author>{a}</author><dc:creator>{c}</dc:creator></item>"
        ),
        *[_hostile_text] * 6,
    ),
)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    entries=st.lists(_hostile_entry, max_size=5),
    kind=st.sampled_from(["rss", "atom"]),
    mangle=st.sampled_from(["none", "none", "none", "truncate", "bytes", "replace"]),
    garbage=st.binary(max_size=200),
)
def test_hostile_entries_never_escape_as_anything_but_a_platform_error(
    feeds, entries, kind, mangle, garbage
):
    feeds.reset()
    feeds.add_feed("hostile", kind=kind, title="Hostile")
    good = feeds.add_post(
        feed="hostile", title="Northwind good entry", summary="All fine here",
        author="Goodwin", published=NOW - timedelta(hours=1),
    )  # fmt: skip
    for fragment in entries:
        # Older than the good entry: it comes first in the document, as a feed's newest does.
        feeds.add_raw_entry(fragment, feed="hostile", published=NOW - timedelta(hours=2))
    if mangle != "none":
        body = requests.get(feeds.feed_url("hostile"), timeout=2).content
        feeds.fail_next(
            200,
            {"truncate": body[: len(body) // 2], "bytes": garbage + body, "replace": garbage}[
                mangle
            ],
            content_type="application/rss+xml",
        )

    try:
        page = fetch(client_for(feeds, "hostile"))
    except PlatformError:
        return
    for post in page.posts:
        assert post.author_external_id in page.authors
        assert "\x00" not in post.text and post.text.encode("utf-8")
        assert len(post.external_id) <= 255 and len(post.url) <= 1000
        assert post.posted_at.tzinfo is not None
    for author in page.authors.values():
        assert len(author.username) <= 100 and len(author.external_id) <= 255
    assert page.next_token is None
    assert page.newest_id is None or len(page.newest_id) <= 500
    if mangle == "none":
        good_post = next(p for p in page.posts if p.external_id == good["id"])
        assert good_post.text == "Northwind good entry\n\nAll fine here"
        assert page.authors[good_post.author_external_id].username == "Goodwin"
        assert good_post.posted_at == NOW - timedelta(hours=1)


# --- errors -----------------------------------------------------------------------------------


def test_a_feed_behind_a_login_needs_its_credentials(feeds):
    feeds.configure("news", username="reader", password="s3cret")
    feeds.add_post(title="Northwind members only")
    url = feeds.feed_url("news")

    with pytest.raises(AuthenticationFailed) as refused:
        fetch(client_for(feeds))
    assert str(refused.value) == (
        f"The feed at {url} refused the login (401 Unauthorized). Set or correct its username "
        "and password under Sources."
    )
    with pytest.raises(AuthenticationFailed):
        fetch(client_for(feeds, username="reader", password="wrong"))

    (post,) = fetch(client_for(feeds, username="reader", password="s3cret")).posts
    assert post.text == "Northwind members only"


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (403, "refused the request (403 Forbidden)."),
        (404, "was not found (404 Not Found): check the address."),
        (410, "is gone (410 Gone): its publisher removed it."),
        (400, "refused the request (400 Bad Request)."),
    ],
)
def test_refusals_are_rejected_requests_in_plain_words(feeds, status, message):
    feeds.fail_next(status)
    with pytest.raises(RequestRejected) as rejected:
        fetch(client_for(feeds))
    assert str(rejected.value) == f"The feed at {feeds.feed_url('news')} {message}"
    assert len(feeds.requests_log) == 1


def test_an_unknown_feed_is_a_404(feeds):
    client = FeedClient(
        feed_url=feeds.base_url + "/feeds/nope", timeout=2, allow_private_address=True
    )
    with pytest.raises(RequestRejected, match=r"was not found \(404 Not Found\)"):
        fetch(client)


def test_a_spent_budget_is_a_429_with_the_reset_from_retry_after(feeds):
    feeds.configure("news", rate_limit=1, rate_window_seconds=120)
    client = client_for(feeds)
    fetch(client)

    with pytest.raises(RateLimited) as limited:
        fetch(client)

    assert limited.value.reset_at == NOW + timedelta(seconds=120)
    assert str(limited.value) == (
        f"The feed at {feeds.feed_url('news')} asks to be read less often (429 Too Many "
        "Requests); next call allowed at 12:02:00 UTC"
    )


def test_a_429_without_retry_after_waits_a_quarter_of_an_hour(feeds):
    feeds.fail_next(429)
    with pytest.raises(RateLimited) as limited:
        fetch(client_for(feeds))
    assert limited.value.reset_at == NOW + timedelta(minutes=15)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (lambda sim: sim.fail_next(500), r"answered 500 Internal Server Error; will retry$"),
        (lambda sim: sim.fail_next(503), r"answered 503 Service Unavailable; will retry$"),
        (
            lambda sim: sim.cut_next(),
            r"^Could not reach the feed at .*: ConnectionError; will retry$",
        ),
        (lambda sim: sim.slow_next(1.5), r"did not answer in time; will retry$"),
    ],
    ids=["500", "503", "cut", "timeout"],
)
def test_transient_failures_are_platform_unavailable(feeds, fault, message):
    fault(feeds)
    with pytest.raises(PlatformUnavailable, match=message):
        fetch(client_for(feeds, timeout=0.5))
    assert len(feeds.requests_log) == 1


# --- read-only --------------------------------------------------------------------------------


def test_a_feed_is_read_only_and_says_so_without_fetching_it(feeds):
    client = client_for(feeds)
    assert client.can_reply is False and client.platform == Platform.RSS
    assert client.syntax is FEED_SYNTAX
    with pytest.raises(
        RequestRejected,
        match="^RSS and Atom feeds have no write API: answer on the platform and mark the mention handled$",
    ):
        client.post_reply(text="Thanks!", in_reply_to_id="x")
    with pytest.raises(RequestRejected, match="no write API"):
        client.find_reply(author_username="a", text="Thanks!", in_reply_to_id="x")
    with pytest.raises(RequestRejected, match="^A feed has no brand account"):
        client.own_posts_page(since_id=None, next_token=None)
    assert feeds.requests_log == [] and feeds.received_posts == []


# --- through the database ---------------------------------------------------------------------


@pytest.mark.django_db
def test_polling_stores_exact_mentions_filters_locally_and_a_304_stores_nothing(feeds, brand):
    feeds.now = lambda: datetime.now(UTC)
    now = datetime.now(UTC).replace(microsecond=0)
    praise = feeds.add_post(
        title="Northwind's new roastery is lovely", summary="<p>Worth the trip.</p>",
        author="Ana Ruiz", published=now - timedelta(hours=3),
    )  # fmt: skip
    feeds.add_post(title="Northwind refund policy explained", published=now - timedelta(hours=2))
    feeds.add_post(title="Coffee prices rise", published=now - timedelta(hours=1))
    source = Source.objects.create(
        brand=brand, platform=Platform.RSS, name="Northwind news", base_url=feeds.feed_url("news"),
        allow_private_address=True,
    )  # fmt: skip
    keyword = TrackedKeyword.objects.create(
        brand=brand, platform=Platform.RSS, source=source, query="northwind -refund"
    )
    PollCursor.objects.create(keyword=keyword)

    outcome = keyword_poll(keyword_id=keyword.pk, max_pages=5)

    assert outcome.ok and outcome.stored == 1 and outcome.pages == 1
    (mention,) = Mention.objects.select_related("author")
    assert (mention.platform, mention.external_id, mention.text, mention.url) == (
        "rss",
        praise["id"],
        "Northwind's new roastery is lovely\n\nWorth the trip.",
        praise["link"],
    )
    assert (mention.author.username, mention.author.url) == (
        "Ana Ruiz",
        "https://northwind.example/",
    )
    assert mention.posted_at == now - timedelta(hours=3) and mention.lang == "en"
    cursor = PollCursor.objects.get(keyword=keyword)
    assert set(json.loads(cursor.since_id)) == {"etag", "modified"}

    again = keyword_poll(keyword_id=keyword.pk, max_pages=5)

    assert again.ok and again.stored == 0 and Mention.objects.count() == 1
    assert PollCursor.objects.get(keyword=keyword).since_id == cursor.since_id
    assert len(feeds.requests_log) == 2


@pytest.mark.django_db
def test_the_registry_builds_the_client_from_the_source(feeds, brand):
    feeds.configure("news", username="reader", password="s3cret")
    feeds.add_post(title="Northwind members only")
    source = Source(
        brand=brand, platform=Platform.RSS, name="Members", base_url=feeds.feed_url("news"),
        credentials={"username": "reader", "password": "s3cret"}, allow_private_address=True,
    )  # fmt: skip
    client = client_for_source(source)
    assert client.feed_url == feeds.feed_url("news")
    assert [p.text for p in fetch(client).posts] == ["Northwind members only"]

    blank = client_for_source(Source(brand=brand, platform=Platform.RSS, name="No address"))
    with pytest.raises(RequestRejected, match="^The feed source has no address"):
        fetch(blank)
    assert len(feeds.requests_log) == 1


# --- the command line -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_simulator_runs_from_the_command_line_with_an_rss_and_an_atom_feed():
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "listening.simulators.feeds_api", "--port", str(port),
         "--seed-count", "4", "--generate-every", "0", "--seed", "3"],
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                news = requests.get(f"http://127.0.0.1:{port}/feeds/news", timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the simulator did not start"
                time.sleep(0.1)
        blog = requests.get(f"http://127.0.0.1:{port}/feeds/blog", timeout=1)
        parsed_news, parsed_blog = feedparser.parse(news.content), feedparser.parse(blog.content)
        assert (parsed_news.version, parsed_blog.version) == ("rss20", "atom10")
        assert len(parsed_news.entries) == len(parsed_blog.entries) == 2
        assert not parsed_news.bozo and not parsed_blog.bozo
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_other_processes_add_entries_through_the_control_endpoint(feeds):
    answer = requests.post(
        feeds.base_url + "/_sim/posts",
        json={"feed": "blog", "title": "Northwind via control", "author": "Ctl",
              "published": "2026-03-02T11:00:00Z"},
        timeout=2,
    )  # fmt: skip
    assert answer.status_code == 201

    (post,) = fetch(client_for(feeds, "blog")).posts

    assert (post.text, post.posted_at) == ("Northwind via control", NOW - timedelta(hours=1))
    refused = requests.post(feeds.base_url + "/_sim/posts", json={"feed": "nope"}, timeout=2)
    assert refused.status_code == 400 and "no feed 'nope'" in refused.text
