"""Credentials entered in the app: shown back only masked, kept when left blank, and tested
against each platform's simulator, whose real error answers become plain words."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from listening.clients.base import PlatformUnavailable, RequestRejected
from listening.clients.bluesky import SESSIONS
from listening.clients.x import BEARER_REFUSED, USER_KEYS_REFUSED, XClient, XCredentials
from listening.models import Brand, Platform, Source
from listening.services.sources import explain_failure
from listening.simulators.bluesky_api import BlueskySimulator
from listening.simulators.feeds_api import FeedsSimulator
from listening.simulators.hackernews_api import HackerNewsApiSimulator
from listening.simulators.mastodon_api import MastodonApiSimulator
from listening.simulators.reddit_api import RedditApiSimulator
from listening.simulators.x_api import TOO_MANY_REQUESTS
from tests.conftest import SIM_ACCESS_TOKEN, SIM_BEARER, SIM_CONSUMER_KEY, log_in

pytestmark = pytest.mark.django_db

MASTODON_TOKEN = "mastodon-token-0123456789-abcd"
BLUESKY_HANDLE = "northwindhelp.bsky.social"
BLUESKY_APP_PASSWORD = "abcd-efgh-ijkl-mnop"
REDDIT = {
    "client_id": "app-42",
    "client_secret": "reddit-client-secret-0123456789",
    "username": "NorthwindHelp",
    "password": "reddit-password-9876543210",
}
FEED_USER, FEED_PASSWORD = "reader", "feed-password-0123456789"


# --- simulators ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mastodon_server() -> Iterator[MastodonApiSimulator]:
    with MastodonApiSimulator(access_token=MASTODON_TOKEN, brand_username="NorthwindHelp") as sim:
        yield sim


@pytest.fixture
def mastodon_sim(mastodon_server: MastodonApiSimulator) -> MastodonApiSimulator:
    mastodon_server.reset()
    return mastodon_server


@pytest.fixture(scope="module")
def bluesky_server() -> Iterator[BlueskySimulator]:
    with BlueskySimulator(handle=BLUESKY_HANDLE, app_password=BLUESKY_APP_PASSWORD) as sim:
        yield sim


@pytest.fixture
def bluesky_sim(bluesky_server: BlueskySimulator) -> Iterator[BlueskySimulator]:
    bluesky_server.reset()
    SESSIONS.clear()
    yield bluesky_server
    SESSIONS.clear()


@pytest.fixture(scope="module")
def reddit_server() -> Iterator[RedditApiSimulator]:
    with RedditApiSimulator(**REDDIT) as sim:
        yield sim


@pytest.fixture
def reddit_sim(reddit_server: RedditApiSimulator) -> RedditApiSimulator:
    reddit_server.reset()
    return reddit_server


@pytest.fixture(scope="module")
def hn_server() -> Iterator[HackerNewsApiSimulator]:
    with HackerNewsApiSimulator() as sim:
        yield sim


@pytest.fixture
def hn_sim(hn_server: HackerNewsApiSimulator) -> HackerNewsApiSimulator:
    hn_server.reset()
    return hn_server


@pytest.fixture(scope="module")
def feeds_server() -> Iterator[FeedsSimulator]:
    with FeedsSimulator() as sim:
        sim.add_feed("private", title="Members' news", username=FEED_USER, password=FEED_PASSWORD)
        yield sim


@pytest.fixture
def feeds_sim(feeds_server: FeedsSimulator) -> FeedsSimulator:
    feeds_server.clear_logs()
    return feeds_server


@pytest.fixture
def as_admin(client, admin_user):
    client.force_login(admin_user)
    return client


def closed_port() -> int:
    """A local port nothing listens on: connecting to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stored_column(table: str, column: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column}::text FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def press_test(client, url: str, fields: dict | None = None, *, htmx: bool = True) -> str:
    """Press "Test connection" on a form (fields given) or a row (none); the answer's text."""
    data = {**(fields or {}), "action": "test"} if fields is not None else {}
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    response = client.post(url, data, **headers)
    assert response.status_code == 200
    return response.content.decode()


def mastodon_fields(brand: Brand, base_url: str, **overrides: str) -> dict:
    return {
        "brand": brand.pk,
        "name": "Mastodon",
        "base_url": base_url,
        "account_handle": "NorthwindHelp",
        "is_active": "on",
        "credential_access_token": MASTODON_TOKEN,
        **overrides,
    }


def x_fields(**overrides: str) -> dict:
    return {
        "x_handle": "NorthwindHelp",
        "credential_x_bearer_token": SIM_BEARER,
        "credential_x_consumer_key": SIM_CONSUMER_KEY,
        "credential_x_consumer_secret": "test-consumer-secret",
        "credential_x_access_token": SIM_ACCESS_TOKEN,
        "credential_x_access_token_secret": "test-access-secret",
        **overrides,
    }


# --- X ------------------------------------------------------------------------------------


def test_a_wrong_bearer_token_is_explained_and_never_echoed(as_admin, brand, x_sim, caplog):
    wrong = "AAAAwrong-bearer-token-typed-0000"
    caplog.set_level(logging.DEBUG)

    page = press_test(
        as_admin,
        reverse("listening:brand-x", args=[brand.pk]),
        x_fields(credential_x_bearer_token=wrong),
    )

    assert BEARER_REFUSED in page
    assert "X rejected the bearer token (401 Unauthorized)" in page
    assert wrong not in page and wrong not in caplog.text
    assert "Connection test of brand" in caplog.text  # the reason is logged
    brand.refresh_from_db()
    assert brand.x_bearer_token == ""  # a test saves nothing
    assert [path for _, path, _, _ in x_sim.requests_log] == ["/2/tweets/search/recent"]


def test_the_right_x_credentials_answer_ok_with_the_account(as_admin, brand, x_sim):
    page = press_test(as_admin, reverse("listening:brand-x", args=[brand.pk]), x_fields())

    assert "Connected to X as @NorthwindHelp (Northwind Help)." in page
    assert "<html" not in page  # only the result, swapped in by htmx
    assert "lacks the write scope" not in page
    assert [path for _, path, _, _ in x_sim.requests_log] == [
        "/2/tweets/search/recent",
        "/2/users/me",
    ]


def test_a_wrong_access_token_names_the_user_keys(as_admin, brand, x_sim):
    page = press_test(
        as_admin,
        reverse("listening:brand-x", args=[brand.pk]),
        x_fields(credential_x_access_token="not-the-access-token"),
    )

    assert USER_KEYS_REFUSED in page
    assert "Connected" not in page


def test_a_read_only_token_is_ok_but_says_it_cannot_reply(as_admin, brand, x_sim):
    x_sim.access_level = "read"

    page = press_test(as_admin, reverse("listening:brand-x-test", args=[brand.pk]))

    assert "Connected to X as @NorthwindHelp" in page
    assert "This token lacks the write scope needed to reply: X gives it read access." in page


def test_the_simulator_refuses_a_read_only_reply_with_xs_recorded_body(x_sim):
    x_sim.access_level = "read"
    tweet = x_sim.add_tweet(text="Where is my order?", author={"id": "5", "username": "c"})
    client = XClient(
        XCredentials(
            bearer_token=SIM_BEARER,
            consumer_key=SIM_CONSUMER_KEY,
            consumer_secret="s",
            access_token=SIM_ACCESS_TOKEN,
            access_token_secret="s",
        ),
        base_url=x_sim.base_url,
    )

    with pytest.raises(RequestRejected, match="appropriate oauth1 app permissions"):
        client.post_reply(text="On its way!", in_reply_to_id=tweet["id"])

    assert x_sim.received_posts == []


def test_a_rate_limit_says_until_when(as_admin, brand, x_sim):
    reset_at = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=12)
    x_sim.fail_next(
        429, TOO_MANY_REQUESTS, headers={"x-rate-limit-reset": str(int(reset_at.timestamp()))}
    )

    page = press_test(as_admin, reverse("listening:brand-x-test", args=[brand.pk]))

    local = timezone.localtime(reset_at)
    assert f"Rate limited until {local:%H:%M} {local.tzname()}" in page


def test_a_row_test_without_javascript_comes_back_as_a_message(as_admin, brand, x_sim):
    response = as_admin.post(reverse("listening:brand-x-test", args=[brand.pk]), follow=True)

    assert response.redirect_chain == [(reverse("listening:sources"), 302)]
    assert "Northwind Coffee on X: Connected to X as @NorthwindHelp" in response.content.decode()


def test_the_x_form_keeps_a_blank_secret_and_clears_a_ticked_one(as_admin, brand, x_sim):
    brand.x_bearer_token = "brand-own-bearer-token-1a2b"
    brand.x_access_token = "brand-own-access-token-3c4d"
    brand.save()
    kept = stored_column("listening_brand", "x_bearer_token", brand.pk)

    response = as_admin.post(
        reverse("listening:brand-x", args=[brand.pk]),
        {"x_handle": "@NorthwindCare", "clear_x_access_token": "on"},
    )

    assert response.status_code == 302
    brand.refresh_from_db()
    assert stored_column("listening_brand", "x_bearer_token", brand.pk) == kept
    assert (brand.x_handle, brand.x_bearer_token, brand.x_access_token) == (
        "NorthwindCare",
        "brand-own-bearer-token-1a2b",
        "",
    )
    page = as_admin.get(reverse("listening:sources")).content.decode()
    assert "brand-own-bearer-token-1a2b" not in page
    assert "••••1a2b" in page
    edit = as_admin.get(reverse("listening:brand-x", args=[brand.pk])).content.decode()
    assert "brand-own-bearer-token-1a2b" not in edit and "Stored: ••••1a2b" in edit


def test_typing_a_secret_and_ticking_clear_is_refused(as_admin, brand, x_sim):
    brand.x_bearer_token = "brand-own-bearer-token-1a2b"
    brand.save()

    response = as_admin.post(
        reverse("listening:brand-x", args=[brand.pk]),
        {
            "x_handle": "NorthwindHelp",
            "credential_x_bearer_token": "new-one-5e6f7a8b9c",
            "clear_x_bearer_token": "on",
        },
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "Type a new value or clear the stored one, not both." in page
    assert "new-one-5e6f7a8b9c" not in page
    brand.refresh_from_db()
    assert brand.x_bearer_token == "brand-own-bearer-token-1a2b"


# --- Mastodon -----------------------------------------------------------------------------


def test_a_wrong_mastodon_token_is_explained(as_admin, brand, mastodon_sim):
    url = reverse("listening:source-add", args=[Platform.MASTODON])

    page = press_test(
        as_admin,
        url,
        mastodon_fields(brand, mastodon_sim.base_url, credential_access_token="wrong-token-1234"),
    )

    assert "Mastodon refused the access token (401: The access token is invalid)." in page
    assert "wrong-token-1234" not in page
    assert not Source.objects.exists()


def test_the_right_mastodon_token_answers_with_the_account(as_admin, brand, mastodon_sim):
    url = reverse("listening:source-add", args=[Platform.MASTODON])

    page = press_test(as_admin, url, mastodon_fields(brand, mastodon_sim.base_url))

    host = mastodon_sim.base_url.removeprefix("http://")
    assert f"Connected to Mastodon as @NorthwindHelp on {host}" in page
    assert not Source.objects.exists()


def test_an_unreachable_instance_says_connection_refused(as_admin, brand, mastodon_sim):
    port = closed_port()
    url = reverse("listening:source-add", args=[Platform.MASTODON])

    page = press_test(as_admin, url, mastodon_fields(brand, f"http://127.0.0.1:{port}"))

    assert f"Could not reach 127.0.0.1:{port} (connection refused)." in page


def test_an_instance_that_does_not_answer_in_time_says_so(as_admin, brand, mastodon_sim, settings):
    settings.X_REQUEST_TIMEOUT_SECONDS = 0.5
    mastodon_sim.slow_next(2)
    url = reverse("listening:source-add", args=[Platform.MASTODON])

    page = press_test(as_admin, url, mastodon_fields(brand, mastodon_sim.base_url))

    host = mastodon_sim.base_url.removeprefix("http://")
    assert f"Could not reach {host} (no answer within 0.5 seconds)." in page


def test_a_tls_failure_is_named(as_admin, brand, mastodon_sim):
    # The simulator speaks plain HTTP: a TLS handshake with it fails.
    address = mastodon_sim.base_url.replace("http://", "https://")
    url = reverse("listening:source-add", args=[Platform.MASTODON])

    page = press_test(as_admin, url, mastodon_fields(brand, address))

    host = address.removeprefix("https://")
    assert f"Could not reach {host} (the TLS handshake failed: " in page


def test_a_malformed_answer_is_named(as_admin, brand, mastodon_sim):
    mastodon_sim.fail_next(
        200, b"<html><body>Welcome to nginx</body></html>", content_type="text/html"
    )
    url = reverse("listening:source-add", args=[Platform.MASTODON])

    page = press_test(as_admin, url, mastodon_fields(brand, mastodon_sim.base_url))

    assert "Mastodon answered the connection test with a body that is not valid JSON" in page


def test_a_saved_source_is_tested_from_its_row(as_admin, brand, mastodon_sim):
    source = Source.objects.create(
        brand=brand,
        platform=Platform.MASTODON,
        name="Mastodon",
        base_url=mastodon_sim.base_url,
        credentials={"access_token": MASTODON_TOKEN},
    )

    page = press_test(as_admin, reverse("listening:source-test", args=[source.pk]))

    assert "Connected to Mastodon as @NorthwindHelp" in page
    assert MASTODON_TOKEN not in page


# --- Bluesky, Reddit, Hacker News, feeds -----------------------------------------------------


def bluesky_fields(brand: Brand, base_url: str, password: str) -> dict:
    return {
        "brand": brand.pk,
        "name": "Bluesky",
        "base_url": base_url,
        "is_active": "on",
        "credential_identifier": BLUESKY_HANDLE,
        "credential_app_password": password,
    }


def test_bluesky_a_wrong_app_password_then_the_right_one(as_admin, brand, bluesky_sim):
    url = reverse("listening:source-add", args=[Platform.BLUESKY])

    wrong = press_test(
        as_admin, url, bluesky_fields(brand, bluesky_sim.base_url, "zzzz-zzzz-zzzz-zzzz")
    )
    right = press_test(
        as_admin, url, bluesky_fields(brand, bluesky_sim.base_url, BLUESKY_APP_PASSWORD)
    )

    assert (
        f"Bluesky refused the login of {BLUESKY_HANDLE} (401 AuthenticationRequired: Invalid "
        "identifier or password). Check the handle and app password under Sources." in wrong
    )
    assert "zzzz-zzzz-zzzz-zzzz" not in wrong
    host = bluesky_sim.base_url.removeprefix("http://")
    assert f"Connected to Bluesky as @{BLUESKY_HANDLE} on {host}." in right
    assert [path for _, path, _, _ in bluesky_sim.requests_log] == [
        "/xrpc/com.atproto.server.createSession",
        "/xrpc/com.atproto.server.createSession",
    ]


def reddit_fields(brand: Brand, base_url: str, **overrides: str) -> dict:
    return {
        "brand": brand.pk,
        "name": "Reddit",
        "base_url": base_url,
        "is_active": "on",
        **{f"credential_{key}": value for key, value in REDDIT.items()},
        **overrides,
    }


def test_reddit_a_wrong_password_then_the_right_one(as_admin, brand, reddit_sim):
    url = reverse("listening:source-add", args=[Platform.REDDIT])

    wrong = press_test(
        as_admin,
        url,
        reddit_fields(brand, reddit_sim.base_url, credential_password="nope-nope-nope"),
    )
    right = press_test(as_admin, url, reddit_fields(brand, reddit_sim.base_url))

    assert "Reddit refused to sign in the account (invalid_grant)" in wrong
    assert "nope-nope-nope" not in wrong
    assert "Connected to Reddit as u/NorthwindHelp." in right


def test_reddit_a_wrong_client_secret_names_the_app(as_admin, brand, reddit_sim):
    url = reverse("listening:source-add", args=[Platform.REDDIT])

    page = press_test(
        as_admin,
        url,
        reddit_fields(brand, reddit_sim.base_url, credential_client_secret="bad-secret-xyz"),
    )

    assert "Check the source&#x27;s client id and secret" in page or "client id or secret" in page
    assert "Connected" not in page


def test_hacker_news_needs_no_credentials_and_answers(as_admin, brand, hn_sim):
    url = reverse("listening:source-add", args=[Platform.HACKER_NEWS])
    fields = {"brand": brand.pk, "name": "HN", "base_url": hn_sim.base_url, "is_active": "on"}

    page = press_test(as_admin, url, fields)

    assert "Connected to Hacker News as Hacker News search (public: no account needed)." in page
    assert [path for _, path, _, _ in hn_sim.requests_log] == ["/api/v1/search_by_date"]


def feed_fields(brand: Brand, base_url: str, *, password: str, private: bool = True) -> dict:
    fields = {
        "brand": brand.pk,
        "name": "Members' news",
        "base_url": f"{base_url}/feeds/private",
        "is_active": "on",
        "credential_username": FEED_USER,
        "credential_password": password,
    }
    if private:
        fields["allow_private_address"] = "on"
    return fields


def test_a_feed_login_wrong_then_right(as_admin, brand, feeds_sim):
    url = reverse("listening:source-add", args=[Platform.RSS])

    wrong = press_test(as_admin, url, feed_fields(brand, feeds_sim.base_url, password="guess-1234"))
    right = press_test(
        as_admin, url, feed_fields(brand, feeds_sim.base_url, password=FEED_PASSWORD)
    )

    assert "refused the login (401 Unauthorized)" in wrong
    assert "guess-1234" not in wrong
    assert (
        f"Connected to RSS / Atom feed as the feed at {feeds_sim.base_url}/feeds/private" in right
    )


def test_a_feed_on_a_private_address_is_refused_before_any_request(as_admin, brand, feeds_sim):
    url = reverse("listening:source-add", args=[Platform.RSS])

    tested = press_test(
        as_admin, url, feed_fields(brand, feeds_sim.base_url, password=FEED_PASSWORD, private=False)
    )
    saved = as_admin.post(
        url, feed_fields(brand, feeds_sim.base_url, password=FEED_PASSWORD, private=False)
    )

    assert "Not tested: fix the form first." in tested
    assert "127.0.0.1 resolves to 127.0.0.1, a private, loopback" in tested
    assert saved.status_code == 200
    assert "a private, loopback, link-local or reserved address" in saved.content.decode()
    assert feeds_sim.requests_log == []
    assert not Source.objects.exists()


# --- saving, showing, and who may -----------------------------------------------------------


def test_a_form_shows_exactly_its_platforms_credentials_never_filled(as_admin, brand):
    source = Source.objects.create(
        brand=brand, platform=Platform.REDDIT, name="Reddit", credentials=dict(REDDIT)
    )

    page = as_admin.get(reverse("listening:source-edit", args=[source.pk])).content.decode()

    for key in ("client_id", "client_secret", "password"):
        assert f'type="password" name="credential_{key}"' in page
        assert f'name="clear_{key}"' in page
    assert 'value="NorthwindHelp"' in page  # a username is a name, not a secret
    assert "credential_access_token" not in page and "credential_app_password" not in page
    for key in ("client_id", "client_secret", "password"):
        assert REDDIT[key] not in page
    assert "Stored: ••••6789" in page  # the client secret's last four
    assert "Stored: ••••." in page  # the client id is too short to show any of it


def test_saving_keeps_a_blank_secret_and_the_page_never_shows_a_new_one(as_admin, brand):
    source = Source.objects.create(
        brand=brand, platform=Platform.REDDIT, name="Reddit", credentials=dict(REDDIT)
    )
    before = stored_column("listening_source", "credentials", source.pk)
    fields = {
        "brand": brand.pk,
        "name": "Reddit",
        "is_active": "on",
        "credential_username": "NorthwindHelp",
        "credential_subreddit": "coffee",
    }

    kept = as_admin.post(reverse("listening:source-edit", args=[source.pk]), fields)

    assert kept.status_code == 302
    after = stored_column("listening_source", "credentials", source.pk)

    before_json, after_json = json.loads(before), json.loads(after)
    for key in ("client_id", "client_secret", "password"):
        assert after_json[key] == before_json[key]  # the very same ciphertext
    source.refresh_from_db()
    assert source.credentials == {**REDDIT, "subreddit": "coffee"}

    new_secret = "brand-new-client-secret-7e8f"
    replaced = as_admin.post(
        reverse("listening:source-edit", args=[source.pk]),
        {**fields, "credential_client_secret": new_secret},
    )

    assert replaced.status_code == 302
    source.refresh_from_db()
    assert source.credentials == {**REDDIT, "subreddit": "coffee", "client_secret": new_secret}
    for url in (reverse("listening:sources"), reverse("listening:source-edit", args=[source.pk])):
        page = as_admin.get(url).content.decode()
        assert new_secret not in page
        assert "••••7e8f" in page
    assert new_secret not in stored_column("listening_source", "credentials", source.pk)


def test_clear_forgets_a_stored_secret_and_keeps_the_rest(as_admin, brand):
    source = Source.objects.create(
        brand=brand,
        platform=Platform.RSS,
        name="Members' news",
        base_url="https://news.example/feed",
        allow_private_address=True,  # no name lookup for an address that does not exist
        credentials={"username": FEED_USER, "password": FEED_PASSWORD},
    )

    response = as_admin.post(
        reverse("listening:source-edit", args=[source.pk]),
        {
            "brand": brand.pk,
            "name": "Members' news",
            "base_url": "https://news.example/feed",
            "allow_private_address": "on",
            "credential_username": FEED_USER,
            "clear_password": "on",
        },
    )

    assert response.status_code == 302
    source.refresh_from_db()
    assert source.credentials == {"username": FEED_USER}


def test_a_required_secret_cannot_be_cleared(as_admin, brand):
    source = Source.objects.create(
        brand=brand, platform=Platform.REDDIT, name="Reddit", credentials=dict(REDDIT)
    )

    response = as_admin.post(
        reverse("listening:source-edit", args=[source.pk]),
        {
            "brand": brand.pk,
            "name": "Reddit",
            "credential_username": "NorthwindHelp",
            "clear_password": "on",
        },
    )

    assert response.status_code == 200
    assert "Reddit needs the password." in response.content.decode()
    source.refresh_from_db()
    assert source.credentials == REDDIT


def test_an_admin_adds_a_source_and_it_is_listed_masked(as_admin, brand, mastodon_sim):
    response = as_admin.post(
        reverse("listening:source-add", args=[Platform.MASTODON]),
        mastodon_fields(brand, mastodon_sim.base_url),
    )

    assert response.status_code == 302
    source = Source.objects.get()
    assert (source.platform, source.credentials) == (
        Platform.MASTODON,
        {"access_token": MASTODON_TOKEN},
    )
    page = as_admin.get(reverse("listening:sources")).content.decode()
    assert MASTODON_TOKEN not in page and "••••abcd" in page
    assert mastodon_sim.requests_log == []  # saving calls nobody


def test_an_unknown_platform_is_not_found(as_admin):
    assert as_admin.get(reverse("listening:source-add", args=["x"])).status_code == 404
    assert as_admin.get(reverse("listening:source-add", args=["myspace"])).status_code == 404


@pytest.mark.parametrize("role", ["agent", "supervisor", None])
def test_only_admins_see_or_change_credentials(
    client, brand, x_sim, role, agent, supervisor, outsider
):
    brand.x_bearer_token = "brand-own-bearer-token-1a2b"
    brand.save()
    source = Source.objects.create(
        brand=brand, platform=Platform.REDDIT, name="Reddit", credentials=dict(REDDIT)
    )
    client.force_login({"agent": agent, "supervisor": supervisor, None: outsider}[role])

    answers = [
        client.get(reverse("listening:sources")).status_code,
        client.get(reverse("listening:source-edit", args=[source.pk])).status_code,
        client.get(reverse("listening:brand-x", args=[brand.pk])).status_code,
        client.post(
            reverse("listening:source-edit", args=[source.pk]),
            {"brand": brand.pk, "name": "Stolen", "credential_password": "mine-now-1234"},
        ).status_code,
        client.post(
            reverse("listening:source-add", args=[Platform.RSS]),
            {"brand": brand.pk, "name": "Sneaky", "base_url": "https://example.com/feed"},
        ).status_code,
        client.post(
            reverse("listening:brand-x", args=[brand.pk]),
            {"x_handle": "Stolen", "clear_x_bearer_token": "on"},
        ).status_code,
        client.post(reverse("listening:brand-x-test", args=[brand.pk])).status_code,
        client.post(reverse("listening:source-test", args=[source.pk])).status_code,
    ]

    assert answers == [403] * 8
    source.refresh_from_db()
    brand.refresh_from_db()
    assert (source.name, source.credentials) == ("Reddit", REDDIT)
    assert (brand.x_handle, brand.x_bearer_token) == (
        "NorthwindHelp",
        "brand-own-bearer-token-1a2b",
    )
    assert Source.objects.count() == 1
    assert x_sim.requests_log == []


def test_admins_find_the_page_in_the_navigation(as_admin, agent, client):
    assert (
        f'href="{reverse("listening:sources")}"'
        in as_admin.get(reverse("listening:keywords")).content.decode()
    )


def test_a_server_error_is_reported_without_polling_words(as_admin, brand, mastodon_sim):
    mastodon_sim.fail_next(500)
    url = reverse("listening:source-add", args=[Platform.MASTODON])

    page = press_test(as_admin, url, mastodon_fields(brand, mastodon_sim.base_url))

    assert "Mastodon answered 500 to the connection test (" in page
    assert "will retry" not in page


def test_a_saved_feed_now_on_a_private_address_is_not_fetched(as_admin, brand, feeds_sim):
    # Saved while its name resolved elsewhere; the client checks again before each request.
    source = Source.objects.create(
        brand=brand, platform=Platform.RSS, name="News", base_url=f"{feeds_sim.base_url}/feeds/news"
    )

    page = press_test(as_admin, reverse("listening:source-test", args=[source.pk]))

    assert "Not fetched: 127.0.0.1 resolves to 127.0.0.1, a private, loopback" in page
    assert feeds_sim.requests_log == []


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_in_a_browser_the_typed_values_are_tested_in_place_and_stay_typed(
    browser, live_server, x_sim, brand, admin_user
):
    page = log_in(browser, live_server.url, "adam")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Sources").click()
    page.get_by_role("link", name="Northwind Coffee").click()
    bearer = page.get_by_label("Bearer token")
    bearer.fill("typed-wrong-bearer-0000")

    page.get_by_role("button", name="Test connection").click()

    expect(page.locator("#connection-test")).to_contain_text(
        "X rejected the bearer token (401 Unauthorized)"
    )
    expect(bearer).to_have_value("typed-wrong-bearer-0000")  # swapped in place, not reloaded
    brand.refresh_from_db()
    assert brand.x_bearer_token == ""

    page.get_by_role("link", name="← All sources").click()
    page.locator(f"#brand-x-{brand.pk}").get_by_role("button", name="Test connection").click()

    expect(page.locator(f"#brand-x-result-{brand.pk}")).to_contain_text(
        "Connected to X as @NorthwindHelp (Northwind Help)."
    )


def test_a_server_that_echoes_the_token_does_not_get_it_shown(as_admin, brand, mastodon_sim):
    mastodon_sim.fail_next(401, {"error": f"The access token {MASTODON_TOKEN} is invalid"})
    url = reverse("listening:source-add", args=[Platform.MASTODON])

    page = press_test(as_admin, url, mastodon_fields(brand, mastodon_sim.base_url))

    assert "Mastodon refused the access token (401: The access token •••• is invalid)." in page
    assert MASTODON_TOKEN not in page


def test_a_name_that_does_not_resolve_is_said_so():
    # What requests raises for an unknown host, as the clients pass it on.
    try:
        try:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        except socket.gaierror as lookup:
            raise requests.ConnectionError(lookup) from lookup
    except requests.ConnectionError as failure:
        error = PlatformUnavailable("Could not reach X for the search: ConnectionError")
        error.__cause__ = failure

    words = explain_failure(error, platform="X", address="api.example")

    assert words == "Could not reach api.example (its name does not resolve)."


def test_an_address_holding_a_password_is_refused(as_admin, brand):
    url = reverse("listening:source-add", args=[Platform.RSS])

    response = as_admin.post(
        url,
        {
            "brand": brand.pk,
            "name": "Feed",
            "base_url": "https://reader:hunter22@news.example/feed",
        },
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "Put the username and password in their own fields below" in page
    assert not Source.objects.exists()
