"""Operations (issue 7): dumps that hold no secret, feeds fetched from the address that was
checked, and a worker that finishes its task when asked to stop."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from pathlib import Path

import pytest
import requests
from django.core.management import call_command
from django.db import connection

from config.encryption import credential_fernet
from listening.clients.base import PlatformUnavailable, RequestRejected
from listening.clients.feeds import FeedClient
from listening.models import Brand, Platform, Source
from tests.conftest import _database_url

BRAND_SECRETS = {
    "x_bearer_token": "opsecret-bearer-1a2b3c4d5e",
    "x_consumer_key": "opsecret-ckey-6f7a8b9c0d",
    "x_consumer_secret": "opsecret-csecret-1e2f3a4b",
    "x_access_token": "opsecret-atoken-5c6d7e8f",
    "x_access_token_secret": "opsecret-asecret-9a0b1c2d",
}
SOURCE_SECRETS = {"client_id": "opsecret-client-11235", "password": "opsecret-password-81321"}
SECRETS = [*BRAND_SECRETS.values(), *SOURCE_SECRETS.values()]


def brand_with_secrets() -> tuple[Brand, Source]:
    brand = Brand.objects.create(name="Eastwind Cocoa", x_handle="EastwindCocoa", **BRAND_SECRETS)
    source = Source.objects.create(
        brand=brand, platform=Platform.REDDIT, name="Reddit", credentials=dict(SOURCE_SECRETS)
    )
    return brand, source


def dumpdata(*labels: str) -> str:
    out = StringIO()
    call_command("dumpdata", *labels, format="json", indent=1, stdout=out)
    return out.getvalue()


# --- dumps hold ciphertext, never a secret ------------------------------------------------------


@pytest.mark.django_db
def test_dumpdata_writes_credentials_as_ciphertext():
    brand, source = brand_with_secrets()

    dumped = dumpdata("listening.brand", "listening.source")

    assert [secret for secret in SECRETS if secret in dumped] == []
    rows = {row["model"]: row["fields"] for row in json.loads(dumped)}
    for field in BRAND_SECRETS:
        assert rows["listening.brand"][field].startswith("gAAAAA")
    assert set(rows["listening.source"]["credentials"]) == set(SOURCE_SECRETS)
    assert all(v.startswith("gAAAAA") for v in rows["listening.source"]["credentials"].values())
    # What is not a secret stays readable.
    assert rows["listening.brand"]["name"] == "Eastwind Cocoa"


@pytest.mark.django_db
def test_dumpdata_keeps_an_unset_credential_empty():
    brand = Brand.objects.create(name="Plain", x_bearer_token="")

    fields = json.loads(dumpdata("listening.brand"))[0]["fields"]

    assert fields["x_bearer_token"] == ""
    assert brand.x_bearer_token == ""


@pytest.mark.django_db
def test_loaddata_reads_the_ciphertext_back_and_stores_it_encrypted(tmp_path: Path):
    brand, source = brand_with_secrets()
    fixture = tmp_path / "credentials.json"
    fixture.write_text(dumpdata("listening.brand", "listening.source"))
    Source.objects.all().delete()
    Brand.objects.all().delete()

    call_command("loaddata", str(fixture), stdout=StringIO())

    loaded = Brand.objects.get(pk=brand.pk)
    assert {field: getattr(loaded, field) for field in BRAND_SECRETS} == BRAND_SECRETS
    assert Source.objects.get(pk=source.pk).credentials == SOURCE_SECRETS
    with connection.cursor() as cursor:
        cursor.execute("SELECT x_bearer_token FROM listening_brand WHERE id = %s", [brand.pk])
        (bearer,) = cursor.fetchone()
        cursor.execute("SELECT credentials::text FROM listening_source WHERE id = %s", [source.pk])
        (credentials,) = cursor.fetchone()
    # Encrypted once, not twice: the stored token opens straight to the secret.
    assert bearer.startswith("gAAAAA")
    assert [secret for secret in SECRETS if secret in bearer + credentials] == []
    assert credential_fernet().decrypt(bearer.encode()).decode() == BRAND_SECRETS["x_bearer_token"]


@pytest.mark.django_db(transaction=True)
def test_pg_dump_holds_no_plaintext_secret(tmp_path: Path):
    brand_with_secrets()
    dump = tmp_path / "earshot.sql"

    subprocess.run(
        ["pg_dump", "--no-owner", "--file", str(dump),
         _database_url(connection.settings_dict).replace("postgres://", "postgresql://", 1)],
        check=True, timeout=120,
    )  # fmt: skip

    text = dump.read_text()
    assert "COPY public.listening_brand" in text  # the dump did reach the table
    assert text.count("gAAAAA") >= len(SECRETS)
    assert [secret for secret in SECRETS if secret in text] == []


# --- feeds: the connection goes to the address that was checked -------------------------------

PUBLIC_ADDRESS = "93.184.216.34"  # public, so the check passes; never really connected to
RSS_BODY = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>News</title>
<item><guid>n-1</guid><title>Northwind opens a roastery</title><link>https://news.example/1</link>
<pubDate>Mon, 02 Nov 2026 10:00:00 GMT</pubDate></item></channel></rss>"""


class _FeedServer:
    """A feed on 127.0.0.1 that records the Host header of every request it gets."""

    def __init__(self) -> None:
        hosts = self.hosts = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                hosts.append(self.headers.get("Host"))
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("Content-Length", str(len(RSS_BODY)))
                self.end_headers()
                self.wfile.write(RSS_BODY)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def feed_server() -> Iterator[_FeedServer]:
    server = _FeedServer()
    yield server
    server.stop()


class _Network:
    """The network edge, faked: a resolver with chosen answers for chosen names, and connects
    to PUBLIC_ADDRESS either refused (nothing leaves this machine) or routed to a local port."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.answers: dict[str, list[str]] = {}
        self.lookups: list[str] = []
        self.connects: list[tuple[str, int]] = []
        self.route_public_to: int | None = None
        real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

        def getaddrinfo(host, port, *args, **kwargs):
            if host in self.answers:
                self.lookups.append(host)
                queue = self.answers[host]
                address = queue.pop(0) if len(queue) > 1 else queue[0]
                return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port)))]
            return real_getaddrinfo(host, port, *args, **kwargs)

        def connect(sock, address):
            self.connects.append((address[0], address[1]))
            if address[0] == PUBLIC_ADDRESS:
                if self.route_public_to is None:
                    raise ConnectionRefusedError("the test network reaches no public address")
                address = ("127.0.0.1", self.route_public_to)
            return real_connect(sock, address)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(socket.socket, "connect", connect)


def test_a_name_that_rebinds_to_loopback_after_the_check_is_never_connected_to(
    monkeypatch, feed_server
):
    network = _Network(monkeypatch)
    # The attacker's DNS: a public address to the first question, loopback to every later one.
    network.answers["rebind.example"] = [PUBLIC_ADDRESS, "127.0.0.1"]
    client = FeedClient(feed_url=f"http://rebind.example:{feed_server.port}/feed", timeout=2)

    with pytest.raises(PlatformUnavailable, match="Could not reach the feed"):
        client.search_page(query="northwind", since_id=None, next_token=None)

    assert network.lookups == ["rebind.example"]  # asked once: no second answer to act on
    assert network.connects == [(PUBLIC_ADDRESS, feed_server.port)]
    assert feed_server.hosts == []  # the local feed never heard from Earshot


def test_a_name_that_answers_loopback_at_fetch_time_is_refused_before_connecting(
    monkeypatch, feed_server
):
    network = _Network(monkeypatch)
    network.answers["rebind.example"] = ["127.0.0.1"]
    client = FeedClient(feed_url=f"http://rebind.example:{feed_server.port}/feed", timeout=2)

    with pytest.raises(RequestRejected, match=r"^Not fetched: rebind\.example resolves to 127"):
        client.search_page(query="northwind", since_id=None, next_token=None)

    assert network.connects == [] and feed_server.hosts == []


def test_the_pinned_connection_still_names_the_host(monkeypatch, feed_server):
    network = _Network(monkeypatch)
    network.answers["news.example"] = [PUBLIC_ADDRESS]
    network.route_public_to = feed_server.port  # as if the public address served the feed
    client = FeedClient(feed_url=f"http://news.example:{feed_server.port}/feed", timeout=2)

    page = client.search_page(query="northwind", since_id=None, next_token=None)

    assert [post.external_id for post in page.posts] == [
        f"http://news.example:{feed_server.port}/n-1"
    ]
    assert network.connects == [(PUBLIC_ADDRESS, feed_server.port)]
    assert feed_server.hosts == [f"news.example:{feed_server.port}"]


def test_https_keeps_the_name_for_sni_and_the_certificate_check(monkeypatch):
    network = _Network(monkeypatch)
    network.answers["secure.example"] = [PUBLIC_ADDRESS]
    adapter = FeedClient(feed_url="https://secure.example/feed")._session.get_adapter(
        "https://secure.example/feed"
    )
    request = requests.Request("GET", "https://secure.example/feed").prepare()

    host_params, pool_kwargs = adapter.build_connection_pool_key_attributes(request, True)

    assert host_params["host"] == PUBLIC_ADDRESS
    assert pool_kwargs["server_hostname"] == pool_kwargs["assert_hostname"] == "secure.example"
    assert request.headers["Host"] == "secure.example"
