"""Operations (issue 7): dumps that hold no secret, feeds fetched from the address that was
checked, and a worker that finishes its task when asked to stop."""

from __future__ import annotations

import json
import subprocess
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from config.encryption import credential_fernet
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
