"""Credentials entered in the app: saving them without ever showing them back, and testing
them with one cheap call to the platform, explained in plain words.

A secret is only ever written (typed in, encrypted at rest by the model's fields) or shown
masked (`secret_mask`: "••••" and the last four of a long one). A blank input keeps what is
stored; "clear" forgets it. The connection test names the credential at fault and never
repeats a secret: the client's words are scrubbed of every value it was given.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import socket
import ssl
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import requests
import urllib3.exceptions
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from config.encryption import MASK, secret_mask
from listening.clients.base import (
    AuthenticationFailed,
    ConnectionCheck,
    PlatformClient,
    PlatformError,
    RateLimited,
)
from listening.clients.registry import (
    SOURCE_CREDENTIAL_FIELDS,
    X_CREDENTIAL_FIELDS,
    CredentialField,
    client_for_brand_on_x,
    client_for_source,
)
from listening.models import Brand, Platform, PollCursor, Source

logger = logging.getLogger(__name__)

# Values shorter than this are not scrubbed from messages: "a" would eat every word.
MIN_SCRUBBED_LENGTH = 4
_CHAIN_DEPTH = 25
_WILL_RETRY_RE = re.compile(r";? will retry\.?$")


# --- saving -----------------------------------------------------------------------------------


def credentials_merged(
    *,
    fields: Iterable[CredentialField],
    stored: dict[str, Any],
    typed: dict[str, str],
    cleared: Iterable[str],
) -> dict[str, str]:
    """The credentials to keep: `stored`, with what was typed over it.

    A secret typed blank keeps its stored value; one in `cleared` is forgotten. A name (not
    a secret) is what was typed: blank removes it. Keys the platform's form does not show
    (set through Django's admin) are kept as they are.
    """
    merged = {key: value for key, value in stored.items() if isinstance(value, str)}
    cleared = set(cleared)
    for credential in fields:
        value = typed.get(credential.key, "")
        if credential.key in cleared:
            merged.pop(credential.key, None)
        elif value:
            merged[credential.key] = value
        elif not credential.secret:
            merged.pop(credential.key, None)
    return merged


def source_save(
    *, source: Source, typed_credentials: dict[str, str], cleared: Iterable[str]
) -> Source:
    """Save `source` (its other fields as the form set them) with the typed credentials
    merged over the stored ones (`credentials_merged`). Runs the model's checks first, the
    feed address check among them.

    A credential left as it was keeps its very ciphertext: only what changed is encrypted
    anew (the field would otherwise re-encrypt every value on each save).
    """
    stored = _stored_credentials(source)
    source.credentials = credentials_merged(
        fields=SOURCE_CREDENTIAL_FIELDS[source.platform],
        stored=stored,
        typed=typed_credentials,
        cleared=cleared,
    )
    unchanged = {key for key, value in source.credentials.items() if stored.get(key) == value}
    source.full_clean()
    with transaction.atomic():
        before = _raw_credentials(source.pk) if source.pk else {}
        source.save()
        _keep_ciphertexts(source.pk, before, unchanged)
    logger.info(
        "Source %s (%s) saved; credentials set: %s",
        source.pk,
        source.platform,
        ", ".join(sorted(source.credentials)) or "none",
    )
    return source


def _raw_credentials(source_id: int) -> dict[str, Any]:
    """The stored credentials as they are at rest (leaves are ciphertexts), locked."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT credentials::text FROM listening_source WHERE id = %s FOR UPDATE", [source_id]
        )
        row = cursor.fetchone()
    raw = json.loads(row[0]) if row and row[0] else {}
    return raw if isinstance(raw, dict) else {}


def _keep_ciphertexts(source_id: int, before: dict[str, Any], unchanged: set[str]) -> None:
    after = _raw_credentials(source_id)
    kept = {
        key: before[key] if key in unchanged and key in before else value
        for key, value in after.items()
    }
    if kept != after:
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE listening_source SET credentials = %s::jsonb WHERE id = %s",
                [json.dumps(kept), source_id],
            )


def source_with_typed_values(
    *, source: Source, typed_credentials: dict[str, str], cleared: Iterable[str]
) -> Source:
    """`source` as it would be saved (unsaved: its credentials merged in memory only)."""
    source.credentials = credentials_merged(
        fields=SOURCE_CREDENTIAL_FIELDS[source.platform],
        stored=_stored_credentials(source),
        typed=typed_credentials,
        cleared=cleared,
    )
    return source


def brand_x_credentials_save(
    *, brand: Brand, x_handle: str, typed_credentials: dict[str, str], cleared: Iterable[str]
) -> Brand:
    """Save the brand's X handle and its own X credentials (blank: the deployment's); those
    left as they were are not written again."""
    stored = {f.key: getattr(brand, f.key) for f in X_CREDENTIAL_FIELDS}
    brand_with_x_values(
        brand=brand, x_handle=x_handle, typed_credentials=typed_credentials, cleared=cleared
    )
    # Only what changed is written: a credential left as it was keeps its very ciphertext.
    changed = [key for key, value in stored.items() if getattr(brand, key) != value]
    brand.save(update_fields=["x_handle", *changed])
    logger.info(
        "Brand %s X credentials saved; its own: %s",
        brand.pk,
        ", ".join(f.key for f in X_CREDENTIAL_FIELDS if getattr(brand, f.key)) or "none",
    )
    return brand


def brand_with_x_values(
    *, brand: Brand, x_handle: str, typed_credentials: dict[str, str], cleared: Iterable[str]
) -> Brand:
    """`brand` with the typed X values over its stored ones, in memory only."""
    merged = credentials_merged(
        fields=X_CREDENTIAL_FIELDS,
        stored={f.key: getattr(brand, f.key) for f in X_CREDENTIAL_FIELDS},
        typed=typed_credentials,
        cleared=cleared,
    )
    brand.x_handle = x_handle
    for credential in X_CREDENTIAL_FIELDS:
        setattr(brand, credential.key, merged.get(credential.key, ""))
    return brand


def _stored_credentials(source: Source) -> dict[str, Any]:
    if not source.pk:
        return {}
    stored = Source.objects.get(pk=source.pk).credentials
    return stored if isinstance(stored, dict) else {}


# --- testing --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectionReport:
    """A connection test's outcome, in words for the admin who asked."""

    ok: bool
    message: str
    warnings: tuple[str, ...] = ()
    tested_at: Any = field(default_factory=timezone.now)


def source_connection_test(*, source: Source) -> ConnectionReport:
    """One cheap authenticated call with `source`'s credentials (saved or not): OK with the
    account, or what went wrong. Stores nothing; logs the outcome, never a secret."""
    secrets = [
        value
        for credential in SOURCE_CREDENTIAL_FIELDS.get(source.platform, ())
        if credential.secret and isinstance(value := source.credentials.get(credential.key), str)
    ]
    return _tested(
        lambda: client_for_source(source),
        platform=source.get_platform_display(),
        what=f"source {source.pk or '(unsaved)'} {source.name!r}",
        secrets=secrets,
    )


def brand_x_connection_test(*, brand: Brand) -> ConnectionReport:
    """The brand's X credentials (its own, else the deployment's) tested as polling and
    replies use them: a search with the bearer token, then users/me with the user keys."""
    secrets = [getattr(brand, f.key) for f in X_CREDENTIAL_FIELDS] + [
        settings.X_BEARER_TOKEN,
        settings.X_CONSUMER_KEY,
        settings.X_CONSUMER_SECRET,
        settings.X_ACCESS_TOKEN,
        settings.X_ACCESS_TOKEN_SECRET,
    ]
    return _tested(
        lambda: client_for_brand_on_x(brand),
        platform="X",
        what=f"brand {brand.pk or '(unsaved)'} X credentials",
        secrets=secrets,
    )


def _tested(
    build: Callable[[], PlatformClient], *, platform: str, what: str, secrets: list[str]
) -> ConnectionReport:
    address = ""
    try:
        client = build()
        address = _address_of(client)
        check: ConnectionCheck = client.check_connection()
    except PlatformError as exc:
        message = _scrubbed(explain_failure(exc, platform=platform, address=address), secrets)
        logger.warning("Connection test of %s failed (%s): %s", what, type(exc).__name__, message)
        return ConnectionReport(ok=False, message=message)
    except Exception as exc:  # a library's own surprise: still an answer, never a 500
        logger.error(
            "Connection test of %s failed unexpectedly: %s",
            what,
            _scrubbed(f"{type(exc).__name__}: {exc}", secrets),
        )
        return ConnectionReport(
            ok=False,
            message=f"The test failed unexpectedly ({type(exc).__name__}); the server log "
            "has the details.",
        )
    message = _scrubbed(f"Connected to {platform} as {check.account}.", secrets)
    warnings = tuple(_scrubbed(warning, secrets) for warning in check.warnings)
    logger.info("Connection test of %s succeeded: %s %s", what, message, " ".join(warnings))
    return ConnectionReport(ok=True, message=message, warnings=warnings)


def explain_failure(exc: PlatformError, *, platform: str, address: str) -> str:
    """What went wrong, in words: unreachable hosts, timeouts and TLS failures by what the
    network said; a rate limit by when it ends; anything else in the client's own words
    (which name the credential at fault)."""
    if isinstance(exc, RateLimited):
        reset = timezone.localtime(exc.reset_at)
        return (
            f"Rate limited until {reset:%H:%M} {reset.tzname()}: {platform} takes no more "
            "calls with these credentials before then. Test again after that."
        )
    if isinstance(exc, AuthenticationFailed):
        return str(exc)
    words = _network_words(exc)
    if words:
        return f"Could not reach {address or platform} ({words})."
    # Polling's "will retry" means nothing to a person pressing a button.
    return _WILL_RETRY_RE.sub(".", str(exc))


def _network_words(exc: BaseException) -> str | None:
    chain = list(_causes(exc))
    for cause in chain:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"its TLS certificate could not be verified: {cause.verify_message}"
    for cause in chain:
        if isinstance(cause, ssl.SSLError):
            reason = (cause.reason or str(cause)).replace("_", " ").lower()
            return f"the TLS handshake failed: {reason}"
    for cause in chain:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror | urllib3.exceptions.NameResolutionError):
            return "its name does not resolve"
    timeout_types = (
        requests.Timeout,
        httpx.TimeoutException,
        urllib3.exceptions.TimeoutError,
        TimeoutError,
    )
    for cause in chain:
        if isinstance(cause, timeout_types):
            return f"no answer within {settings.X_REQUEST_TIMEOUT_SECONDS:g} seconds"
    for cause in chain:
        if isinstance(
            cause,
            ConnectionResetError
            | ConnectionAbortedError
            | http.client.RemoteDisconnected
            | httpx.RemoteProtocolError,
        ):
            return "the connection was cut before an answer"
    text = " ".join(str(cause) for cause in chain)
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "name resolution" in text.lower():
        return "its name does not resolve"
    return None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and everything it wraps: causes, contexts, and the errors libraries keep as an
    argument or attribute (urllib3's `reason`, requests' first argument)."""
    seen: set[int] = set()
    pending: list[Any] = [exc]
    while pending and len(seen) < _CHAIN_DEPTH:
        current = pending.pop(0)
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [current.__cause__, current.__context__, getattr(current, "reason", None)]
        pending += [getattr(current, "original", None), *current.args]


def _address_of(client: Any) -> str:
    for attribute in ("feed_url", "service_url", "oauth_url", "base_url"):
        url = getattr(client, attribute, "")
        if isinstance(url, str) and url:
            return urlsplit(url if "://" in url else f"https://{url}").netloc or url
    return ""


def _scrubbed(text: str, secrets: Iterable[str | None]) -> str:
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SCRUBBED_LENGTH}, key=len)[
        ::-1
    ]:
        text = text.replace(secret, MASK)
    return text


# --- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShownCredential:
    label: str
    # A secret's mask ("••••1a2b", "••••" for a short one), a name as it is, or "".
    shown: str
    secret: bool
    # X only: blank on the brand, so the deployment's own is used (if it has one).
    from_deployment: bool = False


@dataclass(frozen=True, slots=True)
class BrandXRow:
    brand: Brand
    credentials: list[ShownCredential]
    last_error: str


@dataclass(frozen=True, slots=True)
class SourceRow:
    source: Source
    credentials: list[ShownCredential]
    last_error: str


@dataclass(frozen=True, slots=True)
class SourcesOverview:
    brands: list[BrandXRow]
    sources: list[SourceRow]


def shown_credentials(
    *, fields: Iterable[CredentialField], stored: dict[str, Any]
) -> list[ShownCredential]:
    """What an admin may see of stored credentials: secrets masked, names in full."""
    shown = []
    for credential in fields:
        value = stored.get(credential.key)
        value = value if isinstance(value, str) else ""
        shown.append(
            ShownCredential(
                label=credential.label,
                shown=secret_mask(value) if credential.secret else value,
                secret=credential.secret,
            )
        )
    return shown


def sources_overview() -> SourcesOverview:
    """Every brand's X account and every source, credentials masked, with the latest poll
    error of their keywords (four queries, whatever the number of rows)."""
    errors: dict[tuple[str, int], str] = {}
    failing = (
        PollCursor.objects.exclude(last_error="")
        .order_by("last_error_at")
        .values_list("keyword__brand_id", "keyword__platform", "keyword__source_id", "last_error")
    )
    for brand_id, platform, source_id, last_error in failing:  # the latest one wins
        if platform == Platform.X:
            errors[("brand", brand_id)] = last_error
        elif source_id is not None:
            errors[("source", source_id)] = last_error
    deployment = {
        "x_bearer_token": settings.X_BEARER_TOKEN,
        "x_consumer_key": settings.X_CONSUMER_KEY,
        "x_consumer_secret": settings.X_CONSUMER_SECRET,
        "x_access_token": settings.X_ACCESS_TOKEN,
        "x_access_token_secret": settings.X_ACCESS_TOKEN_SECRET,
    }
    brands = []
    for brand in Brand.objects.order_by("name"):
        credentials = []
        for credential in X_CREDENTIAL_FIELDS:
            own = getattr(brand, credential.key)
            credentials.append(
                ShownCredential(
                    label=credential.label,
                    shown=secret_mask(own or deployment[credential.key]),
                    secret=True,
                    from_deployment=not own,
                )
            )
        brands.append(
            BrandXRow(
                brand=brand, credentials=credentials, last_error=errors.get(("brand", brand.pk), "")
            )
        )
    sources = [
        SourceRow(
            source=source,
            credentials=shown_credentials(
                fields=SOURCE_CREDENTIAL_FIELDS.get(source.platform, ()),
                stored=source.credentials if isinstance(source.credentials, dict) else {},
            ),
            last_error=errors.get(("source", source.pk), ""),
        )
        for source in Source.objects.select_related("brand")
    ]
    return SourcesOverview(brands=brands, sources=sources)
