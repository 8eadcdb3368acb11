"""Issue 7's security: credentials encrypted at rest, login throttling, CSP, CSRF, deploy
settings, JSON logs, SSRF and XSS."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from axes.models import AccessAttempt
from django.contrib.auth import authenticate
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from encrypted_fields.fields import EncryptedCharField as LibraryEncryptedCharField
from playwright.sync_api import expect

from config.addresses import fetch_address_problem, web_address
from config.encryption import secret_mask
from config.security import client_ip_address
from listening.clients.base import RequestRejected
from listening.clients.registry import client_for_source
from listening.models import Author, Brand, Mention, Platform, PollCursor, Source, TrackedKeyword
from listening.services.credentials import credentials_rotate
from listening.services.polling import keyword_poll
from listening.simulators.feeds_api import FeedsSimulator
from tests.conftest import PASSWORD, REPO_ROOT, _database_url, log_in
from tests.factories import make_author, make_mention

BRAND_SECRETS = {
    "x_bearer_token": "xsecret-bearer-7f3a9c1e5b",
    "x_consumer_key": "xsecret-ckey-2b8d4f6a0c",
    "x_consumer_secret": "xsecret-csecret-9e1c3a5f7d",
    "x_access_token": "xsecret-atoken-4d6f8b0a2c",
    "x_access_token_secret": "xsecret-asecret-6a8c0e2b4f",
}
SOURCE_SECRETS = {
    "client_id": "srcsecret-client-id-31415",
    "client_secret": "srcsecret-client-secret-92653",
    "password": "srcsecret-password-58979",
}


def stored(table: str, column: str, pk: int) -> str:
    """The column's value as PostgreSQL holds it, read past the model."""
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT "{column}"::text FROM "{table}" WHERE id = %s', [pk])
        return cursor.fetchone()[0]


def secret_brand(name: str = "Southwind Tea") -> Brand:
    return Brand.objects.create(name=name, x_handle="SouthwindTea", **BRAND_SECRETS)


def reddit_source(brand: Brand, name: str = "Reddit") -> Source:
    return Source.objects.create(
        brand=brand, platform=Platform.REDDIT, name=name, credentials=dict(SOURCE_SECRETS)
    )


def staff_admin(user):
    user.is_staff = user.is_superuser = True
    user.save()
    return user


# --- encryption at rest -------------------------------------------------------------------------


@pytest.mark.django_db
def test_credentials_round_trip_and_only_tokens_reach_the_database():
    brand = secret_brand()
    brand.x_consumer_key = ""
    brand.save()
    source = reddit_source(brand)

    brand.refresh_from_db()
    source.refresh_from_db()

    assert brand.x_bearer_token == BRAND_SECRETS["x_bearer_token"]
    assert brand.x_consumer_key == ""
    assert source.credentials == SOURCE_SECRETS
    assert stored("listening_brand", "x_bearer_token", brand.pk).startswith("gAAAAA")
    assert stored("listening_brand", "x_consumer_key", brand.pk) == ""
    raw = json.loads(stored("listening_source", "credentials", source.pk))
    assert set(raw) == set(SOURCE_SECRETS)  # keys stay readable, values do not
    assert all(value.startswith("gAAAAA") for value in raw.values())
    assert Source.objects.get(pk=source.pk).credentials["password"] == SOURCE_SECRETS["password"]


@pytest.mark.django_db
def test_what_earshot_writes_the_library_reads():
    # Earshot derives its keys once per configuration; the format stays the library's own.
    brand = secret_brand()
    plain_field = LibraryEncryptedCharField(max_length=200)
    token = stored("listening_brand", "x_access_token", brand.pk)
    assert plain_field.to_python(token) == BRAND_SECRETS["x_access_token"]


def _text_columns() -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "JOIN information_schema.tables USING (table_schema, table_name) "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND data_type IN "
            "('text', 'character varying', 'character', 'json', 'jsonb')"
        )
        return cursor.fetchall()


def dump_scan(needles: list[str]) -> tuple[list[tuple[str, str, str]], int]:
    """Like reading a pg_dump: every text and JSON column of every table, as text. Returns
    the (table, column, needle) of each needle found, and how many Fernet tokens were seen."""
    found, tokens = [], 0
    with connection.cursor() as cursor:
        for table, column in _text_columns():
            cursor.execute(f'SELECT "{column}"::text FROM "{table}" WHERE "{column}" IS NOT NULL')
            for (value,) in cursor.fetchall():
                tokens += value.count("gAAAAA")
                found += [(table, column, needle) for needle in needles if needle in value]
    return found, tokens


@pytest.mark.django_db
def test_a_dump_of_the_database_holds_no_plaintext_secret(client, admin_user):
    brand = secret_brand()
    reddit_source(brand)
    client.force_login(staff_admin(admin_user))
    # Set through Django's admin too, which keeps a history of changes.
    response = client.post(
        reverse("admin:listening_source_add"),
        {
            "brand": brand.pk,
            "platform": Platform.MASTODON,
            "name": "Mastodon",
            "base_url": "https://mastodon.example",
            "account_handle": "",
            "credentials": json.dumps({"access_token": "admintyped-token-27182818"}),
            "is_active": "on",
        },
    )
    assert response.status_code == 302
    # And a failed login, whose attempt django-axes records.
    Client().post(reverse("login"), {"username": "adam", "password": "failedlogin-pw-16180"})
    assert AccessAttempt.objects.filter(username="adam").exists()

    needles = [
        *BRAND_SECRETS.values(),
        *SOURCE_SECRETS.values(),
        "admintyped-token-27182818",
        "failedlogin-pw-16180",
    ]
    found, tokens = dump_scan(needles)

    assert found == []
    assert tokens >= len(BRAND_SECRETS) + len(SOURCE_SECRETS) + 1  # the scan did see them
    assert Source.objects.get(name="Mastodon").credentials == {
        "access_token": "admintyped-token-27182818"
    }


@pytest.mark.django_db
def test_rotation_rewrites_every_value_under_the_first_key(settings):
    settings.SALT_KEY = ["old-field-key"]
    brand = secret_brand()
    source = reddit_source(brand)
    before = stored("listening_brand", "x_bearer_token", brand.pk)

    # A new key goes first; the old one still opens what was written with it.
    settings.SALT_KEY = ["new-field-key", "old-field-key"]
    assert Brand.objects.get(pk=brand.pk).x_bearer_token == BRAND_SECRETS["x_bearer_token"]
    out = StringIO()
    call_command("rotate_credentials", stdout=out)
    assert out.getvalue().startswith(f"{len(BRAND_SECRETS) + len(SOURCE_SECRETS)} credential")
    assert "Every credential opens with the first key now." in out.getvalue()
    assert stored("listening_brand", "x_bearer_token", brand.pk) != before

    # The old key can go: everything opens with the new one alone...
    settings.SALT_KEY = ["new-field-key"]
    brand.refresh_from_db()
    source.refresh_from_db()
    assert {name: getattr(brand, name) for name in BRAND_SECRETS} == BRAND_SECRETS
    assert source.credentials == SOURCE_SECRETS
    # ...and no longer with the old one.
    settings.SALT_KEY = ["old-field-key"]
    assert Brand.objects.get(pk=brand.pk).x_bearer_token.startswith("gAAAAA")


@pytest.mark.django_db
def test_rotating_secret_key_goes_through_its_fallbacks(settings):
    settings.SECRET_KEY = "o" * 50
    brand = secret_brand()
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "n" * 50, ["o" * 50]
    call_command("rotate_credentials", stdout=StringIO())
    settings.SECRET_KEY_FALLBACKS = []
    assert Brand.objects.get(pk=brand.pk).x_consumer_secret == BRAND_SECRETS["x_consumer_secret"]


@pytest.mark.django_db
def test_a_value_no_key_opens_is_named_and_left_as_it_was(settings, caplog):
    settings.SALT_KEY = ["a-key-since-lost"]
    brand = secret_brand()
    lost = stored("listening_brand", "x_bearer_token", brand.pk)
    settings.SALT_KEY = ["the-only-key-now"]

    with pytest.raises(CommandError, match=rf"listening\.Brand {brand.pk} x_bearer_token"):
        call_command("rotate_credentials", stdout=StringIO())

    assert stored("listening_brand", "x_bearer_token", brand.pk) == lost
    # Read through the model, it is passed on as stored, and the log says why (not what).
    assert Brand.objects.get(pk=brand.pk).x_bearer_token == lost
    assert "could not be decrypted with any configured key" in caplog.text
    assert BRAND_SECRETS["x_bearer_token"] not in caplog.text


@pytest.mark.django_db
def test_plaintext_left_by_raw_sql_is_encrypted_by_a_rotation(brand):
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE listening_brand SET x_bearer_token = 'raw-sql-bearer-1234' WHERE id = %s",
            [brand.pk],
        )
    outcome = credentials_rotate()
    assert (outcome.encrypted, outcome.unreadable) == (1, [])
    assert stored("listening_brand", "x_bearer_token", brand.pk).startswith("gAAAAA")
    assert Brand.objects.get(pk=brand.pk).x_bearer_token == "raw-sql-bearer-1234"


@pytest.mark.django_db(transaction=True)
def test_the_migration_encrypts_the_credentials_stored_before_it():
    executor = MigrationExecutor(connection)
    executor.migrate([("listening", "0011_private_cases_and_approvals")])
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO listening_brand (name, x_handle, x_bearer_token, x_consumer_key, "
            "x_consumer_secret, x_access_token, x_access_token_secret, dm_link, "
            "replies_need_approval, created_at) VALUES ('Old', '', 'old-plain-bearer-5678', "
            "'', '', '', '', '', false, now()) RETURNING id"
        )
        brand_id = cursor.fetchone()[0]
        cursor.execute(
            "INSERT INTO listening_source (brand_id, platform, name, base_url, account_handle, "
            "credentials, is_active, created_at) VALUES (%s, 'mastodon', 'M', '', '', "
            """'{"access_token": "old-plain-token-8765"}', true, now()) RETURNING id""",
            [brand_id],
        )
        source_id = cursor.fetchone()[0]

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert stored("listening_brand", "x_bearer_token", brand_id).startswith("gAAAAA")
    assert "old-plain-token-8765" not in stored("listening_source", "credentials", source_id)
    assert Brand.objects.get(pk=brand_id).x_bearer_token == "old-plain-bearer-5678"
    source = Source.objects.get(pk=source_id)
    assert source.credentials == {"access_token": "old-plain-token-8765"}
    assert source.allow_private_address is False


# --- the admin shows masks, never secrets -------------------------------------------------------


def test_masks_show_at_most_the_last_four_of_a_long_secret():
    assert secret_mask("xsecret-bearer-7f3a9c1e5b") == "••••1e5b"
    assert secret_mask("short-pw") == "••••"
    assert secret_mask("") == ""


def _brand_form(brand: Brand, **changes: str) -> dict[str, str]:
    data = {
        "name": brand.name,
        "x_handle": brand.x_handle,
        "dm_link": "",
        **{name: "" for name in BRAND_SECRETS},
        "keywords-TOTAL_FORMS": "0",
        "keywords-INITIAL_FORMS": "0",
        "keywords-MIN_NUM_FORMS": "0",
        "keywords-MAX_NUM_FORMS": "1000",
    }
    return {**data, **changes}


def _source_form(source: Source, credentials: str) -> dict[str, str]:
    return {
        "brand": source.brand_id,
        "platform": source.platform,
        "name": source.name,
        "base_url": source.base_url,
        "account_handle": source.account_handle,
        "credentials": credentials,
        "is_active": "on",
    }


@pytest.mark.django_db
def test_the_admin_never_renders_a_full_secret(client, admin_user):
    brand = secret_brand()
    source = reddit_source(brand)
    client.force_login(staff_admin(admin_user))

    pages = [
        reverse("admin:listening_brand_change", args=[brand.pk]),
        reverse("admin:listening_brand_changelist"),
        reverse("admin:listening_source_change", args=[source.pk]),
        reverse("admin:listening_source_changelist"),
    ]
    html = {url: client.get(url).content.decode() for url in pages}

    for url, page in html.items():
        for secret in [*BRAND_SECRETS.values(), *SOURCE_SECRETS.values()]:
            assert secret not in page, (url, secret)
    brand_page, source_page = html[pages[0]], html[pages[2]]
    assert "Stored: ••••1e5b. Leave blank to keep it." in brand_page
    assert 'type="password" name="x_bearer_token"' in brand_page
    assert "&quot;client_secret&quot;: &quot;••••2653&quot;" in source_page


@pytest.mark.django_db
def test_a_blank_secret_input_keeps_the_stored_value(client, admin_user):
    brand = secret_brand()
    client.force_login(staff_admin(admin_user))
    url = reverse("admin:listening_brand_change", args=[brand.pk])

    response = client.post(
        url,
        _brand_form(
            brand, x_handle="SouthwindHelp", x_bearer_token="new-bearer-000111222",
            remove_x_access_token_secret="on",
        ),
    )  # fmt: skip

    assert response.status_code == 302
    brand.refresh_from_db()
    assert brand.x_handle == "SouthwindHelp"
    assert brand.x_bearer_token == "new-bearer-000111222"
    assert brand.x_consumer_key == BRAND_SECRETS["x_consumer_key"]  # blank: kept
    assert brand.x_access_token == BRAND_SECRETS["x_access_token"]
    assert brand.x_access_token_secret == ""  # removed

    both = client.post(url, _brand_form(brand, x_consumer_key="x", remove_x_consumer_key="on"))
    assert "Type a new value or remove the stored one, not both." in both.content.decode()
    assert Brand.objects.get(pk=brand.pk).x_consumer_key == BRAND_SECRETS["x_consumer_key"]


@pytest.mark.django_db
def test_source_credentials_keep_masked_values_and_take_new_ones(client, admin_user, brand):
    source = reddit_source(brand)
    client.force_login(staff_admin(admin_user))
    url = reverse("admin:listening_source_change", args=[source.pk])

    # As shown: every value masked. Changing one and dropping another.
    edited = {
        "client_id": secret_mask(SOURCE_SECRETS["client_id"]),
        "client_secret": "a-brand-new-client-secret",
        "subreddit": "northwind",
    }
    assert client.post(url, _source_form(source, json.dumps(edited))).status_code == 302
    source.refresh_from_db()
    assert source.credentials == {
        "client_id": SOURCE_SECRETS["client_id"],
        "client_secret": "a-brand-new-client-secret",
        "subreddit": "northwind",
    }

    assert client.post(url, _source_form(source, "")).status_code == 302  # blank: kept
    assert Source.objects.get(pk=source.pk).credentials == source.credentials

    bad = client.post(url, _source_form(source, '{"client_id": 42}'))
    assert "Credentials are a JSON object of text values" in bad.content.decode()
    assert Source.objects.get(pk=source.pk).credentials == source.credentials

    assert client.post(url, _source_form(source, "{}")).status_code == 302
    assert Source.objects.get(pk=source.pk).credentials == {}


@pytest.mark.django_db
def test_view_only_staff_cannot_open_the_pages_that_hold_secrets(client, outsider, brand):
    # Django's admin shows view-only users every field in full: they get no page at all.
    # (The admin role holds every permission there; staff without it, whatever Django
    # permissions they were given, are refused.)
    outsider.is_staff = True
    outsider.save()
    outsider.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_brand", "view_source"])
    )
    source = reddit_source(brand)
    client.force_login(outsider)
    assert client.get(reverse("admin:listening_brand_change", args=[brand.pk])).status_code == 403
    assert client.get(reverse("admin:listening_source_change", args=[source.pk])).status_code == 403


# --- login throttling ----------------------------------------------------------------------------


def _log_in(client: Client, password: str, address: str = "203.0.113.7"):
    return client.post(
        reverse("login"), {"username": "alice", "password": password}, REMOTE_ADDR=address
    )


@pytest.mark.django_db
def test_failed_logins_lock_out_that_username_from_that_address_until_the_cool_off(settings, agent):
    settings.AXES_FAILURE_LIMIT = 3
    start = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as clock:
        client = Client()
        for _ in range(2):
            refused = _log_in(client, "wrong password")
            assert refused.status_code == 200
            assert "didn't match" in refused.content.decode()

        third = _log_in(client, "wrong password")
        locked = _log_in(client, PASSWORD)  # the right password, too late

        assert third.status_code == locked.status_code == 429
        assert "Too many failed logins" in third.content.decode()
        page = locked.content.decode()
        assert "Too many failed logins" in page
        assert "After 3 failed logins for <strong>alice</strong> from your address" in page
        assert "for 15 minutes after the last attempt" in page
        assert "_auth_user_id" not in client.session
        # The same username from another address is not locked out.
        elsewhere = Client()
        assert _log_in(elsewhere, PASSWORD, address="198.51.100.20").status_code == 302

        clock.move_to(start + timedelta(minutes=14))
        assert _log_in(client, PASSWORD).status_code == 429
        # That try started the wait again: 15 minutes from it, not from the first lockout.
        clock.move_to(start + timedelta(minutes=14 + 15, seconds=1))
        after = _log_in(client, PASSWORD)
        assert after.status_code == 302 and after.url == reverse("responses:queue")
        assert client.session["_auth_user_id"] == str(agent.pk)


@pytest.mark.django_db
def test_logging_in_without_a_request_is_not_throttled(agent):
    # A shell or a management command has no client address to count failures for.
    assert authenticate(username="alice", password=PASSWORD) == agent
    assert authenticate(username="alice", password="wrong") is None


def test_failed_logins_count_for_the_client_behind_trusted_proxies(settings):
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.9"
    )
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_ip_address(request) == "10.0.0.2"
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_ip_address(request) == "203.0.113.9"  # not the one the client wrote
    settings.TRUSTED_PROXY_COUNT = 3
    assert client_ip_address(request) == "10.0.0.2"  # fewer entries than proxies: distrust


# --- content security policy and CSRF -----------------------------------------------------------


@pytest.mark.django_db
def test_every_page_gets_a_policy_without_inline_code(client):
    policy = client.get(reverse("login"))["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in policy


INLINE_CODE = [
    (re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I), "script"),
    (re.compile(r"<style\b", re.I), "<style>"),
    (re.compile(r"\sstyle\s*=", re.I), "style="),
    (re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I), "event handler"),
    (re.compile(r"javascript:", re.I), "javascript: URL"),
]


def test_no_template_carries_inline_script_or_style():
    found = [
        f"{path.relative_to(REPO_ROOT)}: {what}"
        for path in (REPO_ROOT / "templates").rglob("*.html")
        for pattern, what in INLINE_CODE
        if pattern.search(path.read_text())
    ]
    assert found == []


def _every_url() -> list[str]:
    def walk(resolver: URLResolver, prefix: str) -> list[str]:
        urls = []
        for entry in resolver.url_patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                if not route.startswith("admin/"):
                    urls += walk(entry, route)
            elif isinstance(entry, URLPattern):
                urls.append("/" + re.sub(r"<(?:int:|str:|slug:)?\w+>", "1", route))
        return urls

    return walk(get_resolver(), "")


@pytest.mark.django_db
def test_no_htmx_post_goes_through_without_the_csrf_token(agent, brand):
    mention = make_mention(brand=brand, text="Where is my order?")
    client = Client(enforce_csrf_checks=True)
    client.force_login(agent)
    urls = _every_url()
    assert "/mentions/1/claim/" in urls and "/healthz" in urls  # the walk found the routes

    answers = {url: client.post(url, HTTP_HX_REQUEST="true").status_code for url in urls}

    assert {url: status for url, status in answers.items() if status != 403} == {}
    mention.refresh_from_db()
    assert (mention.status, mention.claimed_by) == ("new", None)


# --- production settings -----------------------------------------------------------------------


def production_env(**overrides: str) -> dict[str, str]:
    from django.conf import settings

    # The test run's own environment, less what makes it development (conftest allows
    # Playwright's sync calls with DJANGO_ALLOW_ASYNC_UNSAFE, which no deployment may set).
    development = {
        "EARSHOT_DEVELOPMENT", "DEBUG", "SECRET_KEY", "FIELD_ENCRYPTION_KEYS",
        "DJANGO_ALLOW_ASYNC_UNSAFE", "LOG_FORMAT",
    }  # fmt: skip
    return {
        **{key: value for key, value in os.environ.items() if key not in development},
        "DATABASE_URL": _database_url(settings.DATABASES["default"]),
        "EARSHOT_DEVELOPMENT": "0",
        "DEBUG": "False",
        "SECRET_KEY": "k3Yp1-Zq8wX2vB7nM4cL9sD0fG5hJ6kT3rE1uY8iO2pA7-prod-only",
        "FIELD_ENCRYPTION_KEYS": "field-key-for-the-deploy-check-0123456789",
        "ALLOWED_HOSTS": "earshot.example.com",
        **overrides,
    }


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def test_the_deploy_check_is_clean_with_production_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO_ROOT, env=production_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


SHOW_SETTINGS = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps([s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, "
    "s.SECURE_SSL_REDIRECT, getattr(s, 'SECURE_PROXY_SSL_HEADER', None), s.LOG_FORMAT]))"
)


def test_production_is_https_only_and_development_is_not():
    production = run_python(
        SHOW_SETTINGS,
        {
            **production_env(SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto"),
            "DJANGO_SETTINGS_MODULE": "config.settings",
        },
    )
    assert json.loads(production.stdout) == [
        True, True, 31_536_000, True, ["HTTP_X_FORWARDED_PROTO", "https"], "json",
    ]  # fmt: skip
    development = run_python(
        SHOW_SETTINGS,
        {**production_env(EARSHOT_DEVELOPMENT="1"), "DJANGO_SETTINGS_MODULE": "config.settings"},
    )
    assert json.loads(development.stdout) == [False, False, 0, False, None, "plain"]


@pytest.mark.parametrize("missing", ["SECRET_KEY", "FIELD_ENCRYPTION_KEYS"])
def test_production_refuses_to_start_without_its_secrets(missing):
    env = {**production_env(), "DJANGO_SETTINGS_MODULE": "config.settings"}
    del env[missing]
    result = run_python("import django; django.setup()", env)
    assert result.returncode != 0
    assert f"ImproperlyConfigured: {missing} is not set." in result.stderr


def test_logs_are_json_lines_when_asked():
    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('earshot.test').warning('poll of %s failed', 'northwind')"
    )
    env = {**production_env(LOG_FORMAT="json"), "DJANGO_SETTINGS_MODULE": "config.settings"}
    (line,) = run_python(code, env).stderr.strip().splitlines()
    record = json.loads(line)
    assert {key: record[key] for key in ("message", "level", "logger")} == {
        "message": "poll of northwind failed",
        "level": "WARNING",
        "logger": "earshot.test",
    }
    assert datetime.fromisoformat(record["time"].replace(",", "."))

    env["LOG_FORMAT"] = "plain"
    plain = run_python(code, env).stderr.strip()
    assert plain.endswith("WARNING earshot.test poll of northwind failed")
    env["LOG_FORMAT"] = "xml"
    assert "LOG_FORMAT is 'xml': it must be plain or json." in run_python(code, env).stderr


# --- SSRF: where feeds may be fetched from ------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8770/feeds/news",
        "http://localhost/feed",
        "http://10.1.2.3/feed",
        "http://192.168.0.10/feed",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/feed",
        "http://0.0.0.0/feed",
        "http://[::1]/feed",
        "http://[::ffff:127.0.0.1]/feed",
        "http://[fe80::1]/feed",
        "http://240.0.0.1/feed",
    ],
)
def test_private_loopback_link_local_and_reserved_hosts_are_refused(url):
    problem = fetch_address_problem(url)
    assert problem and "a private, loopback, link-local or reserved address" in problem
    assert fetch_address_problem(url, allow_private_address=True) is None


@pytest.mark.parametrize("url", ["ftp://93.184.216.34/feed", "file:///etc/passwd", "gopher://x/"])
def test_only_web_addresses_are_fetched_even_when_private_ones_are_allowed(url):
    problem = fetch_address_problem(url, allow_private_address=True)
    assert (
        problem == f"{url} is not a web address: only http:// and https:// addresses are fetched."
    )


def test_a_public_address_is_fetched():
    assert fetch_address_problem("https://93.184.216.34/feed.xml") is None
    assert fetch_address_problem("http://[2606:2800:220:1:248:1893:25c8:1946]/feed") is None


@pytest.mark.django_db
def test_saving_a_feed_on_a_private_address_needs_the_admins_say_so(brand):
    source = Source(
        brand=brand, platform=Platform.RSS, name="Intranet", base_url="http://10.0.0.8/rss"
    )
    with pytest.raises(ValidationError) as refused:
        source.full_clean()
    assert refused.value.message_dict == {
        "base_url": [
            "10.0.0.8 resolves to 10.0.0.8, a private, loopback, link-local or reserved address. "
            'Earshot fetches only public addresses, unless the source\'s "Allow private address" '
            "is ticked (for a feed on your own network)."
        ]
    }
    source.allow_private_address = True
    source.full_clean()


@pytest.mark.django_db
def test_the_admin_explains_a_refused_feed_address_and_stores_nothing(client, admin_user, brand):
    client.force_login(staff_admin(admin_user))
    form = {
        "brand": brand.pk, "platform": Platform.RSS, "name": "Intranet news",
        "base_url": "http://127.0.0.1:9/feed", "account_handle": "", "credentials": "{}",
        "is_active": "on",
    }  # fmt: skip
    refused = client.post(reverse("admin:listening_source_add"), form)
    assert refused.status_code == 200
    assert "127.0.0.1 resolves to 127.0.0.1, a private" in refused.content.decode()
    assert not Source.objects.exists()

    allowed = client.post(
        reverse("admin:listening_source_add"), {**form, "allow_private_address": "on"}
    )
    assert allowed.status_code == 302
    assert Source.objects.get().allow_private_address is True


@pytest.fixture
def feeds():
    simulator = FeedsSimulator()
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.mark.django_db
def test_at_fetch_time_a_private_feed_is_refused_before_any_request(feeds, brand):
    feeds.add_post(title="Northwind opens a roastery")
    source = Source.objects.create(
        brand=brand, platform=Platform.RSS, name="News", base_url=feeds.feed_url("news")
    )  # saved past the admin's check, e.g. by a script
    with pytest.raises(RequestRejected, match=r"^Not fetched: 127\.0\.0\.1 resolves to 127"):
        client_for_source(source).search_page(query="northwind", since_id=None, next_token=None)
    assert feeds.requests_log == []

    keyword = TrackedKeyword.objects.create(
        brand=brand, platform=Platform.RSS, source=source, query="northwind"
    )
    PollCursor.objects.create(keyword=keyword)
    outcome = keyword_poll(keyword_id=keyword.pk, max_pages=1)
    assert not outcome.ok and outcome.stored == 0
    assert "Not fetched: 127.0.0.1 resolves to 127.0.0.1" in PollCursor.objects.get().last_error
    assert feeds.requests_log == [] and not Mention.objects.exists()

    Source.objects.filter(pk=source.pk).update(allow_private_address=True)
    assert keyword_poll(keyword_id=keyword.pk, max_pages=1).stored == 1


# --- XSS -------------------------------------------------------------------------------------------


def test_links_to_platforms_are_web_addresses_only():
    assert web_address("https://mastodon.example/@ana/1") == "https://mastodon.example/@ana/1"
    for hostile in (
        "javascript:alert(1)",
        " JavaScript:alert(1)",
        "data:text/html,x",
        "vbscript:x",
    ):
        assert web_address(hostile) == ""
    author = Author(platform="mastodon", username="ana", url="javascript:alert(1)")
    assert author.profile_url == ""
    assert Mention(platform="rss", url="javascript:alert(1)").platform_url == ""


HOSTILE_TEXT = (
    "<script>window.__xss = 'script'</script> Northwind "
    "<img src=x onerror=\"window.__xss = 'img'\"> "
    "<a href=\"javascript:window.__xss='link'\">my order</a> <svg onload=\"alert('svg')\">"
)


def hostile_mentions(brand: Brand) -> list[Mention]:
    on_x = make_mention(
        brand=brand,
        text=HOSTILE_TEXT,
        author=make_author(
            username="<script>window.__xss='user'</script>",
            name="<img src=x onerror=\"window.__xss='name'\">",
        ),
    )
    elsewhere = make_mention(
        brand=brand,
        text="<b onmouseover=\"window.__xss='b'\">hover</b> Northwind \"><script>alert(1)</script>",
        author=Author.objects.create(
            platform="mastodon", external_id="https://m.example/users/x", username="x@m.example",
            name="\"><svg onload=alert(2)>", url="javascript:window.__xss='profile'",
        ),
    )  # fmt: skip
    Mention.objects.filter(pk=elsewhere.pk).update(
        platform="mastodon", url="javascript:window.__xss='open-original'"
    )
    return [on_x, elsewhere]


def assert_nothing_ran(page, dialogs: list[str]) -> None:
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert dialogs == []
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
    assert hrefs and not [href for href in hrefs if href.strip().lower().startswith("javascript:")]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_hostile_mentions_are_shown_as_text_and_nothing_in_them_runs(
    browser, live_server, brand, agent
):
    on_x, elsewhere = hostile_mentions(brand)
    page = log_in(browser, live_server.url, "alice")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    expect(page.locator(f"#mention-{on_x.pk}")).to_contain_text(
        "<script>window.__xss = 'script'</script>"
    )
    expect(page.locator(f"#mention-{elsewhere.pk}")).to_contain_text('<b onmouseover="window.__xss')
    page.locator(f"#mention-{on_x.pk} .text a").hover()
    assert_nothing_ran(page, dialogs)

    for mention in (on_x, elsewhere):
        page.goto(reverse("responses:mention", args=[mention.pk]))
        expect(page.locator("main")).to_contain_text("Northwind")
        for link in page.get_by_role("link").all():
            link.hover()
        assert_nothing_ran(page, dialogs)
    expect(page.locator("main")).to_contain_text('"><svg onload=alert(2)>')


VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', event => window.__violations.push(
    `${event.violatedDirective} ${event.blockedURI} ${event.sourceFile}:${event.lineNumber}`));
"""


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_no_page_breaks_the_content_security_policy(browser, live_server, brand, admin_user):
    keyword = TrackedKeyword.objects.create(brand=brand, query="northwind")
    PollCursor.objects.create(keyword=keyword, last_success_at=datetime.now(UTC))
    mention = make_mention(brand=brand, keyword=keyword, text="Northwind, where is my order?")
    source = reddit_source(brand)
    staff_admin(admin_user)
    context = browser.new_context(base_url=live_server.url)
    context.add_init_script(VIOLATIONS)
    page = context.new_page()
    console = []
    page.on("console", lambda message: console.append(message.text))
    page.goto("/login/")
    page.get_by_label("Username").fill("adam")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/queue/")

    found = {}
    for path in [
        "/queue/",
        reverse("responses:mention", args=[mention.pk]),
        reverse("responses:report"),
        reverse("listening:health"),
        reverse("listening:keywords"),
        reverse("admin:index"),
        reverse("admin:listening_brand_change", args=[brand.pk]),
        reverse("admin:listening_source_change", args=[source.pk]),
    ]:
        page.goto(path)
        page.wait_for_load_state("networkidle")
        found[path] = page.evaluate("window.__violations")
    assert {path: v for path, v in found.items() if v} == {}
    assert [text for text in console if "Content Security Policy" in text] == []
