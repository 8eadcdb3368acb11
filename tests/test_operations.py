"""Operations (issue 7): dumps that hold no secret and restore (README's backup and restore),
feeds fetched from the address that was checked (DNS rebinding), a worker that finishes its
task when asked to stop, and the web container's health probe."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from pathlib import Path
from typing import IO

import psycopg2
import pytest
import redis
import requests
from celery import Celery
from cryptography import x509
from cryptography.fernet import InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from config.celery import app as celery_app
from config.encryption import credential_fernet
from config.probe import probe, probe_host
from listening.clients.base import PlatformUnavailable, RequestRejected
from listening.clients.feeds import FeedClient
from listening.models import Brand, Mention, Platform, Source, TrackedKeyword
from tests.conftest import (
    POLL_TASK,
    REPO_ROOT,
    SIM_BEARER,
    _database_url,
    _wait_for_worker,
    add_stream,
    listening_started,
    search_requests,
    wait_until,
)

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


@pytest.mark.django_db(transaction=True)
def test_a_custom_format_dump_restores_and_its_credentials_open_only_with_the_keys(
    tmp_path: Path, settings
):
    """README's backup and restore: pg_dump -Fc, pg_restore into an empty database."""
    brand, source = brand_with_secrets()
    database_url = _database_url(connection.settings_dict)
    dump = tmp_path / "earshot.dump"
    subprocess.run(["pg_dump", "-Fc", "--file", str(dump), database_url], check=True, timeout=120)
    restored = f"{connection.settings_dict['NAME']}_restored_{uuid.uuid4().hex[:6]}"
    restored_url = database_url.rsplit("/", 1)[0] + "/" + restored
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{restored}"')
    try:
        subprocess.run(
            ["pg_restore", "--no-owner", "--dbname", restored_url, str(dump)],
            check=True, timeout=120,
        )  # fmt: skip
        with psycopg2.connect(restored_url) as restored_db, restored_db.cursor() as cursor:
            cursor.execute("SELECT x_bearer_token FROM listening_brand WHERE id = %s", [brand.pk])
            (token,) = cursor.fetchone()
            cursor.execute("SELECT credentials FROM listening_source WHERE id = %s", [source.pk])
            (credentials,) = cursor.fetchone()
        restored_db.close()
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)')

    assert credential_fernet().decrypt(token.encode()).decode() == BRAND_SECRETS["x_bearer_token"]
    assert {
        key: credential_fernet().decrypt(value.encode()).decode()
        for key, value in credentials.items()
    } == SOURCE_SECRETS
    # Restored under other keys (FIELD_ENCRYPTION_KEYS not kept), the credentials stay shut.
    settings.SALT_KEY = ["a-key-that-was-never-used"]
    with pytest.raises(InvalidToken):
        credential_fernet().decrypt(token.encode())


# --- feeds: the connection goes to the address that was checked -------------------------------

PUBLIC_ADDRESS = "93.184.216.34"  # public, so the check passes; never really connected to
RSS_BODY = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>News</title>
<item><guid>n-1</guid><title>Northwind opens a roastery</title><link>https://news.example/1</link>
<pubDate>Mon, 02 Nov 2026 10:00:00 GMT</pubDate></item></channel></rss>"""


class _FeedServer:
    """A feed on 127.0.0.1 that records the Host header of every request it gets; over TLS
    with `certificate` (PEM files), recording the server name (SNI) each handshake asked for."""

    def __init__(self, certificate: tuple[Path, Path] | None = None) -> None:
        hosts = self.hosts = []
        self.server_names: list[str | None] = []

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
        if certificate is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*certificate)
            context.sni_callback = lambda _sock, name, _ctx: self.server_names.append(name)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
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


def self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A certificate for `name` alone, signed by itself: (certificate, key) PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "feed.pem", tmp_path / "feed.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def tls_feed(tmp_path: Path, monkeypatch) -> Iterator[_FeedServer]:
    """A feed served over TLS as secure.example, whose certificate requests trusts (alone)."""
    certificate = self_signed(tmp_path, "secure.example")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
    server = _FeedServer(certificate)
    yield server
    server.stop()


def test_https_to_the_pinned_address_still_checks_the_certificate_for_the_name(
    monkeypatch, tls_feed
):
    network = _Network(monkeypatch)
    network.answers["secure.example"] = [PUBLIC_ADDRESS]
    network.route_public_to = tls_feed.port
    client = FeedClient(feed_url=f"https://secure.example:{tls_feed.port}/feed", timeout=2)

    page = client.search_page(query="northwind", since_id=None, next_token=None)

    assert len(page.posts) == 1
    assert network.connects == [(PUBLIC_ADDRESS, tls_feed.port)]
    assert tls_feed.server_names == ["secure.example"]  # SNI: the name, not the address
    assert tls_feed.hosts == [f"secure.example:{tls_feed.port}"]


def test_https_refuses_a_certificate_for_another_name(monkeypatch, tls_feed):
    network = _Network(monkeypatch)
    network.answers["other.example"] = [PUBLIC_ADDRESS]
    network.route_public_to = tls_feed.port  # other.example's address serves secure.example's
    client = FeedClient(feed_url=f"https://other.example:{tls_feed.port}/feed", timeout=2)

    with pytest.raises(PlatformUnavailable, match="SSLError"):
        client.search_page(query="northwind", since_id=None, next_token=None)

    assert tls_feed.hosts == []


# --- graceful shutdown: SIGTERM lets the running task finish ----------------------------------


def start_prefork_worker(queue: str, simulator) -> tuple[subprocess.Popen, IO[str], str]:
    """`celery worker` as production runs it (the prefork pool; one child here), on the test
    database and the X simulator; returns once it answers a ping."""
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(connection.settings_dict),
        "CELERY_QUEUE": queue,
        "X_API_BASE_URL": simulator.base_url,
        "X_BEARER_TOKEN": SIM_BEARER,
        "EARSHOT_DEVELOPMENT": "1",
    }
    (REPO_ROOT / "var").mkdir(exist_ok=True)
    log = open(REPO_ROOT / "var" / "test-graceful-worker.log", "w")  # noqa: SIM115
    hostname = f"{queue}@localhost"
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--hostname", hostname,
         "--pool", "prefork", "--concurrency", "1", "--queues", queue, "--loglevel", "info",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait_for_worker(hostname, process, celery_app)
    except RuntimeError:
        process.kill()
        process.wait(timeout=10)
        log.close()
        raise
    return process, log, log.name


def unacknowledged_tasks(queue: str) -> int:
    """Messages of `queue` a worker took and has not acknowledged: kombu's Redis transport
    keeps each in its "unacked" hash, as [message, exchange, routing key], until then, and
    delivers it again if the worker goes away without acknowledging."""
    held = redis.Redis.from_url(os.environ["REDIS_URL"]).hvals("unacked")
    return sum(1 for value in held if json.loads(value)[2] == queue)


@pytest.mark.django_db(transaction=True)
def test_sigterm_lets_the_running_task_finish_and_nothing_runs_twice(x_sim, keyword):
    listening_started(keyword)
    posts = add_stream(x_sim, 40, "graceful")
    x_sim.slow_next(4)  # the poll's search is carried out, its answer takes 4 s
    queue = f"graceful-{uuid.uuid4().hex[:8]}"
    worker, log, log_path = start_prefork_worker(queue, x_sim)
    try:
        Celery("graceful", broker=os.environ["REDIS_URL"]).send_task(
            POLL_TASK, args=[keyword.pk], queue=queue
        )
        wait_until(lambda: len(search_requests(x_sim)) == 2)  # the task is waiting on X
        assert Mention.objects.count() == 0 and unacknowledged_tasks(queue) == 1

        worker.send_signal(signal.SIGTERM)
        exit_code = worker.wait(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)
        log.close()

    assert exit_code == 0
    said = Path(log_path).read_text()
    # Asked to stop while the task ran; the task then finished.
    assert said.index("worker: Warm shutdown") < said.index("succeeded in")
    # The task ran to its end: every post stored, once, and its message acknowledged.
    assert sorted(Mention.objects.values_list("external_id", flat=True)) == sorted(
        post["id"] for post in posts
    )
    assert unacknowledged_tasks(queue) == 0
    assert redis.Redis.from_url(os.environ["REDIS_URL"]).llen(queue) == 0

    # A worker started on the same queue finds nothing to do again.
    rerun, rerun_log, _ = start_prefork_worker(queue, x_sim)
    try:
        time.sleep(2)
    finally:
        rerun.terminate()
        rerun.wait(timeout=30)
        rerun_log.close()
    assert len(search_requests(x_sim)) == 2
    assert Mention.objects.count() == len(posts)


# --- the web container's probe ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served_as(live_server, settings, monkeypatch):
    """The live server answering only to earshot.example.com, as production would; the probe
    reads ALLOWED_HOSTS from its environment, as in the container."""
    settings.ALLOWED_HOSTS = ["earshot.example.com"]
    monkeypatch.setenv("ALLOWED_HOSTS", "earshot.example.com,localhost")
    return f"{live_server.url}/healthz"


@pytest.mark.django_db(transaction=True)
def test_the_probe_is_healthy_when_the_web_reaches_its_services(served_as):
    healthy, said = probe(served_as)
    assert healthy, said
    assert said.endswith("answered 200: ok")


@pytest.mark.django_db(transaction=True)
def test_a_polling_stall_alone_leaves_the_container_healthy(served_as, keyword):
    TrackedKeyword.objects.filter(pk=keyword.pk).update(
        created_at=timezone.now() - timedelta(hours=2)
    )
    answer = requests.get(served_as, headers={"Host": "earshot.example.com"}, timeout=10)
    assert (answer.status_code, answer.json()["failing"]) == (503, ["polling"])

    healthy, said = probe(served_as)

    assert healthy, said
    assert said.endswith("answered 503: failing")


@pytest.mark.django_db(transaction=True)
def test_the_probe_fails_when_redis_is_unreachable(served_as, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"

    healthy, said = probe(served_as)

    assert not healthy
    assert said.endswith("answered 503: failing redis")


@pytest.mark.django_db(transaction=True)
def test_the_probe_names_an_allowed_host(served_as, monkeypatch):
    monkeypatch.setenv("ALLOWED_HOSTS", "elsewhere.example")  # Django refuses this Host

    healthy, said = probe(served_as)

    assert not healthy
    assert "answered 400, not the health report" in said


def test_the_probe_fails_when_nothing_answers():
    healthy, said = probe(f"http://127.0.0.1:{free_port()}/healthz")
    assert not healthy and said.startswith("no answer from")


@pytest.mark.parametrize(
    ("allowed", "host"),
    [("", "localhost"), ("*", "localhost"), (".example.com,x", "example.com"), ("a.b", "a.b")],
)
def test_the_probe_asks_as_the_first_allowed_host(monkeypatch, allowed, host):
    monkeypatch.setenv("ALLOWED_HOSTS", allowed)
    assert probe_host() == host
