"""A local Bluesky service speaking the AT Protocol's XRPC, for tests, demos and development.

It plays both parts Earshot talks to through one address, as https://bsky.social does: the
PDS/entryway (sessions, writing records) and the AppView calls it proxies (search, profiles,
posts, author feeds). The `atproto` SDK runs against it unmodified: `Client(base_url=...)`
calls `<base>/xrpc/<nsid>`. What it follows (docs/sources.md, the lexicons):

- `com.atproto.server.createSession` / `refreshSession`: HS256 JWTs (access 2 h, refresh
  90 days, rotated on refresh), createSession limited to 30 per 5 min and 300 per day per
  account; a wrong password is 401 AuthenticationRequired.
- Every other call carries `Authorization: Bearer <accessJwt>`; an expired token is
  400 ExpiredToken, one that does not verify 400 InvalidToken. Search without a token is the
  403 the public AppView has answered since 2025-01; other calls without one are 401.
- `app.bsky.feed.searchPosts` (q with words and "phrases", sort, since/until on sortAt,
  lang, author, limit 1-100, an offset cursor like the search service's), `getPosts` and
  `actor.getProfiles` (25 at most), `getAuthorFeed` (a `<ms>::<cid>` cursor).
- `com.atproto.repo.createRecord` of an `app.bsky.feed.post` (300 graphemes, 3000 bytes).
- `ratelimit-*` headers on every answer (3000 requests per 5 min per IP), 429 RateLimitExceeded.

Stdlib only, and no Django, like every simulator (see `base.py`).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
import secrets
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http import HTTPStatus
from typing import Any

from listening.simulators.base import (
    Answer,
    ApiError,
    PlatformSimulator,
    RateWindow,
    Request,
    json_answer,
    serve_with_demo_posts,
    simulator_arguments,
)

POST_COLLECTION = "app.bsky.feed.post"
DEFAULT_HANDLE = "northwindhelp.bsky.social"
DEFAULT_APP_PASSWORD = "sim0-app0-pass-word"
SERVICE_DID = "did:web:bsky.social"
ACCESS_TOKEN_LIFETIME = timedelta(hours=2)
REFRESH_TOKEN_LIFETIME = timedelta(days=90)
MAX_POST_GRAPHEMES = 300
MAX_POST_BYTES = 3000
MAX_SEARCH_LIMIT = 100
MAX_FEED_LIMIT = 100
MAX_ACTORS_OR_URIS = 25
# The search service may not page through a whole result set (searchPosts lexicon).
MAX_SEARCH_OFFSET = 10_000
SEARCH_FORBIDDEN = b"Request forbidden by administrative rules."
FEED_FILTERS = (
    "posts_with_replies",
    "posts_no_replies",
    "posts_with_media",
    "posts_and_author_threads",
    "posts_with_video",
)
ERROR_NAMES = {
    400: "InvalidRequest",
    401: "AuthenticationRequired",
    403: "Forbidden",
    404: "NotFound",
    413: "PayloadTooLarge",
    429: "RateLimitExceeded",
    500: "InternalServerError",
    501: "MethodNotImplemented",
    502: "UpstreamFailure",
    503: "NotEnoughResources",
    504: "UpstreamTimeout",
}
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TOKEN_RE = re.compile(r"\w+")
_PHRASE_RE = re.compile(r'"([^"]*)"')


# --- small pure helpers -------------------------------------------------------------------


def iso_time(value: datetime) -> str:
    """How the AppView renders times: UTC, milliseconds, Z."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def as_utc(value: datetime | str) -> datetime:
    """A datetime or ISO string as an aware UTC datetime, cut to milliseconds as rendered."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def plc_did(key: str) -> str:
    """A stable did:plc (24 base32 characters, as PLC's are) for a handle or id."""
    digest = hashlib.sha256(key.lower().encode()).digest()
    return "did:plc:" + base64.b32encode(digest).decode().lower()[:24]


def record_cid(value: Any) -> str:
    """A CIDv1 look-alike (dag-cbor, sha-256, base32): stable for the same content."""
    digest = hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).digest()
    return "bafyrei" + base64.b32encode(digest).decode().lower().rstrip("=")[:52]


def tid(moment: datetime, clock_id: int) -> str:
    """A record key as the PDS makes them: 13 sortable base32 characters of µs + clock id."""
    value = ((moment - _EPOCH) // timedelta(microseconds=1)) << 10 | (clock_id & 0x3FF)
    chars = []
    for _ in range(13):
        chars.append(_TID_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def grapheme_count(text: str) -> int:
    """Extended grapheme clusters, approximated with the stdlib: combining marks, variation
    selectors, skin tones, tags and ZWJ sequences join the character before them, and
    regional indicators pair into flags."""
    count = 0
    joined_by_zwj = False
    lone_regional_indicator = False
    for char in text:
        code = ord(char)
        regional = 0x1F1E6 <= code <= 0x1F1FF
        extends = (
            unicodedata.category(char) in ("Mn", "Me", "Mc")
            or 0xFE00 <= code <= 0xFE0F
            or 0x1F3FB <= code <= 0x1F3FF
            or 0xE0020 <= code <= 0xE007F
            or code == 0x200D
        )
        if count and (extends or joined_by_zwj or (regional and lone_regional_indicator)):
            lone_regional_indicator = False
        else:
            count += 1
            lone_regional_indicator = regional
        joined_by_zwj = code == 0x200D
    return count


def _bsky_social_handle(username: str) -> str:
    """An X-style username as a bsky.social handle: handles allow letters, digits and -."""
    return re.sub(r"[^a-z0-9-]+", "-", username.lower()).strip("-") + ".bsky.social"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def xrpc_error(status: int, error: str, message: str, headers: Mapping[str, str] | None = None):
    return ApiError(json_answer(status, {"error": error, "message": message}, headers))


def invalid_request(message: str) -> ApiError:
    return xrpc_error(400, "InvalidRequest", message)


def _search_terms(q: str) -> tuple[list[tuple[str, ...]], list[str]]:
    """The phrases and words of a searchPosts `q`, as token tuples and tokens."""
    phrases = [tuple(_TOKEN_RE.findall(p.casefold())) for p in _PHRASE_RE.findall(q)]
    words = _TOKEN_RE.findall(_PHRASE_RE.sub(" ", q).casefold())
    return [p for p in phrases if p], words


def _text_matches(text: str, phrases: list[tuple[str, ...]], words: list[str]) -> bool:
    tokens = _TOKEN_RE.findall(text.casefold())
    present = set(tokens)
    if not all(word in present for word in words):
        return False
    return all(
        any(tuple(tokens[i : i + len(p)]) == p for i in range(len(tokens) - len(p) + 1))
        for p in phrases
    )


def _parse_since(value: str, name: str) -> datetime:
    """searchPosts takes a datetime, or just a date (YYYY-MM-DD)."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise invalid_request(f"Error: {name} must be an valid atproto datetime") from None
    if parsed.tzinfo is None:
        raise invalid_request(f"Error: {name} must be an valid atproto datetime")
    return parsed.astimezone(UTC)


def _int_param(request: Request, name: str, default: int, maximum: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid_request(f"Error: {name} must be an integer") from None
    if value < 1:
        raise invalid_request(f"Error: {name} can not be less than 1")
    if value > maximum:
        raise invalid_request(f"Error: {name} can not be greater than {maximum}")
    return value


def _required_param(request: Request, name: str) -> str:
    value = request.query.get(name)
    if not value:
        raise invalid_request(f'Error: Params must have the property "{name}"')
    return value


# --- storage ------------------------------------------------------------------------------


@dataclass
class Account:
    did: str
    handle: str
    display_name: str = ""
    followers_count: int = 0
    follows_count: int = 0
    posts_count: int = 0
    verified: bool = False
    app_password: str | None = None  # None: nobody can log in as this account
    email: str = ""
    created_at: datetime = field(default_factory=lambda: datetime(2024, 2, 6, tzinfo=UTC))

    def basic_view(self) -> dict[str, Any]:
        view: dict[str, Any] = {"did": self.did, "handle": self.handle}
        if self.display_name:
            view["displayName"] = self.display_name
        view["avatar"] = (
            f"https://cdn.bsky.app/img/avatar/plain/{self.did}/{record_cid(self.did)}@jpeg"
        )
        view["labels"] = []
        view["createdAt"] = iso_time(self.created_at)
        if self.verified:
            view["verification"] = {
                "verifications": [],
                "verifiedStatus": "valid",
                "trustedVerifierStatus": "none",
            }
        return view

    def detailed_view(self) -> dict[str, Any]:
        return {
            **self.basic_view(),
            "description": "",
            "followersCount": self.followers_count,
            "followsCount": self.follows_count,
            "postsCount": self.posts_count,
            "indexedAt": iso_time(self.created_at),
        }


@dataclass
class StoredPost:
    """A post the AppView has indexed, or a raw item served in search results as given."""

    uri: str
    sort_at: datetime
    cid: str = ""
    author_did: str = ""
    record: dict[str, Any] = field(default_factory=dict)
    indexed_at: datetime = _EPOCH
    counts: dict[str, int] = field(default_factory=dict)
    raw: Any = None
    is_raw: bool = False

    @property
    def parent_uri(self) -> str | None:
        reply = self.record.get("reply") or {}
        return (reply.get("parent") or {}).get("uri")


@dataclass
class _Session:
    did: str
    refresh_ids: set[str] = field(default_factory=set)


# --- the simulator ------------------------------------------------------------------------


class BlueskySimulator(PlatformSimulator):
    """The PDS/entryway and AppView calls Earshot makes, on 127.0.0.1."""

    name = "Bluesky"
    server_version = "earshot-bluesky-simulator"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        handle: str = DEFAULT_HANDLE,
        app_password: str = DEFAULT_APP_PASSWORD,
        display_name: str = "Northwind Help",
        email: str = "social@northwind.example",
        rate_limit: int = 3000,
        rate_window_seconds: int = 300,
        session_limit: int = 30,
        session_window_seconds: int = 300,
        session_daily_limit: int = 300,
        access_token_lifetime: timedelta = ACCESS_TOKEN_LIFETIME,
    ) -> None:
        # Set before the base's __init__, which calls reset() and so reset_content().
        self.brand_handle = handle
        self.app_password = app_password
        self.display_name = display_name
        self.email = email
        self.rate_limit = rate_limit
        self.rate_window_seconds = rate_window_seconds
        self.session_limit = session_limit
        self.session_window_seconds = session_window_seconds
        self.session_daily_limit = session_daily_limit
        self.access_token_lifetime = access_token_lifetime
        super().__init__(host, port)

    # -- content --

    def reset_content(self) -> None:
        self._accounts: dict[str, Account] = {}
        self._posts: dict[str, StoredPost] = {}
        self._raw_items: list[StoredPost] = []
        self._clock_ids: dict[int, int] = {}
        self._raw_sequence = 0
        # Faults for one method only (the base's fail_next/slow_next take the next request,
        # whatever it is; a reply makes a getPosts before its createRecord).
        self._method_faults: dict[str, list[Answer]] = {}
        self._method_delays: dict[str, list[float]] = {}
        self._window = RateWindow(self.rate_limit, self.rate_window_seconds)
        self._session_windows: dict[str, tuple[RateWindow, RateWindow]] = {}
        self._sessions: dict[str, _Session] = {}
        # A new secret: tokens issued before a reset no longer verify (InvalidToken).
        self._jwt_secret = secrets.token_bytes(32)
        self.brand = self.add_account(
            handle=self.brand_handle,
            display_name=self.display_name,
            app_password=self.app_password,
            email=self.email,
            followers_count=1520,
            verified=True,
        )

    def add_account(
        self,
        *,
        handle: str,
        did: str | None = None,
        display_name: str = "",
        followers_count: int = 0,
        follows_count: int = 0,
        verified: bool = False,
        app_password: str | None = None,
        email: str = "",
    ) -> Account:
        """Create (or update) an account; returns it."""
        account = Account(
            did=did or plc_did(handle),
            handle=handle.lower(),
            display_name=display_name,
            followers_count=int(followers_count),
            follows_count=int(follows_count),
            verified=bool(verified),
            app_password=app_password,
            email=email,
        )
        with self._lock:
            previous = self._accounts.get(account.did)
            if previous is not None:
                account.posts_count = previous.posts_count
            self._accounts[account.did] = account
        return account

    def account(self, actor: str) -> Account | None:
        """The account with this DID, handle or email (case-insensitive), if any."""
        with self._lock:
            if actor in self._accounts:
                return self._accounts[actor]
            wanted = actor.lower().removeprefix("@")
            return next(
                (a for a in self._accounts.values() if wanted in (a.handle, a.email.lower())),
                None,
            )

    def _author_account(self, author: Mapping[str, Any] | Account | None) -> Account:
        """An author given as an Account, a Bluesky-shaped dict (did, handle, displayName)
        or the demo generator's X-shaped one (id, username, name, followers_count)."""
        if isinstance(author, Account):
            return author
        if not author:
            return self.brand
        handle = author.get("handle") or _bsky_social_handle(str(author["username"]))
        did = author.get("did") or plc_did(str(author.get("id") or handle))
        known = self.account(did)
        if known is not None and set(author) <= {"did", "handle"}:
            return known
        return self.add_account(
            handle=handle,
            did=did,
            display_name=str(
                author.get("displayName") or author.get("display_name") or author.get("name") or ""
            ),
            followers_count=int(author.get("followers_count") or author.get("followersCount") or 0),
            follows_count=int(author.get("following_count") or author.get("followsCount") or 0),
            verified=bool(author.get("verified", False)),
        )

    def add_post(
        self,
        *,
        text: str,
        author: Mapping[str, Any] | Account | None = None,
        created_at: datetime | str | None = None,
        indexed_at: datetime | str | None = None,
        lang: str | None = None,
        langs: list[str] | None = None,
        reply_to: str | None = None,
        quote_of: str | None = None,
        rkey: str | None = None,
        like_count: int = 0,
        repost_count: int = 0,
        reply_count: int = 0,
        quote_count: int = 0,
    ) -> dict[str, Any]:
        """Index a post by `author` (the brand when None); returns its postView.

        `reply_to` is the parent's at:// URI (the root is read from the parent when known);
        `quote_of` embeds another post. `indexed_at` defaults to `created_at` (indexed as it
        was written), or to now for a post dated in the future.
        """
        now = as_utc(self.now())
        created = as_utc(created_at) if created_at is not None else now
        indexed = as_utc(indexed_at) if indexed_at is not None else min(created, now)
        account = self._author_account(author)
        record: dict[str, Any] = {"$type": POST_COLLECTION, "createdAt": iso_time(created)}
        record["text"] = text
        if langs is not None or lang is not None:
            record["langs"] = list(langs) if langs is not None else [lang]
        with self._lock:
            if reply_to is not None:
                record["reply"] = self._reply_refs(reply_to)
            if quote_of is not None:
                quoted = self._posts.get(quote_of)
                record["embed"] = {
                    "$type": "app.bsky.embed.record",
                    "record": {
                        "uri": quote_of,
                        "cid": quoted.cid if quoted else record_cid(quote_of),
                    },
                }
            post = self._store_post(
                account,
                record,
                rkey=rkey,
                indexed_at=indexed,
                counts={
                    "replyCount": reply_count,
                    "repostCount": repost_count,
                    "likeCount": like_count,
                    "quoteCount": quote_count,
                },
            )
            return self._post_view(post)

    def add_raw_search_item(self, item: Any, *, sort_at: datetime | None = None) -> None:
        """Serve `item` verbatim among search results (whatever the query), at `sort_at`."""
        with self._lock:
            self._raw_sequence += 1
            self._raw_items.append(
                StoredPost(
                    uri=f"raw:{self._raw_sequence}",
                    sort_at=as_utc(sort_at or self.now()),
                    raw=copy.deepcopy(item),
                    is_raw=True,
                )
            )

    def fail_next_call(
        self,
        nsid: str,
        status: int,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        content_type: str = "application/json; charset=utf-8",
    ) -> None:
        """Answer the next call of the XRPC method `nsid` (only) like this, touching nothing.

        `body`: bytes sent as is, a JSON value, or None for the platform's error body."""
        if body is None:
            answer = self.error_answer(status)
        elif isinstance(body, bytes):
            answer = Answer(status, body, content_type)
        else:
            answer = json_answer(status, body)
        answer.headers.update(headers or {})
        with self._lock:
            self._method_faults.setdefault(nsid, []).append(answer)

    def slow_next_call(self, nsid: str, seconds: float) -> None:
        """Carry out the next call of the XRPC method `nsid`, then wait before answering."""
        with self._lock:
            self._method_delays.setdefault(nsid, []).append(seconds)

    def post(self, uri: str) -> dict[str, Any] | None:
        """The postView of a stored post, if there is one."""
        with self._lock:
            post = self._posts.get(uri)
            return self._post_view(post) if post else None

    def _reply_refs(self, parent_uri: str) -> dict[str, Any]:
        parent = self._posts.get(parent_uri)
        parent_ref = {"uri": parent_uri, "cid": parent.cid if parent else record_cid(parent_uri)}
        root_ref = (
            (parent.record.get("reply") or {}).get("root") if parent else None
        ) or parent_ref
        return {"root": dict(root_ref), "parent": parent_ref}

    def _store_post(
        self,
        account: Account,
        record: dict[str, Any],
        *,
        rkey: str | None,
        indexed_at: datetime,
        counts: dict[str, int] | None = None,
    ) -> StoredPost:
        created = as_utc(record["createdAt"])
        if rkey is None:
            micros = (created - _EPOCH) // timedelta(microseconds=1)
            clock_id = self._clock_ids.get(micros, 0)
            self._clock_ids[micros] = clock_id + 1
            rkey = tid(created, clock_id)
        uri = f"at://{account.did}/{POST_COLLECTION}/{rkey}"
        post = StoredPost(
            uri=uri,
            # The AppView sorts by sortAt: createdAt, unless that is after indexing (a
            # post dated in the future).
            sort_at=min(created, indexed_at),
            cid=record_cid({"record": record, "uri": uri}),
            author_did=account.did,
            record=record,
            indexed_at=indexed_at,
            counts={"replyCount": 0, "repostCount": 0, "likeCount": 0, "quoteCount": 0}
            | (counts or {}),
        )
        self._posts[uri] = post
        account.posts_count += 1
        parent = self._posts.get(post.parent_uri or "")
        if parent is not None:
            parent.counts["replyCount"] += 1
        return post

    # -- rendering --

    def _post_view(self, post: StoredPost) -> dict[str, Any]:
        author = self._accounts[post.author_did]
        view: dict[str, Any] = {
            "uri": post.uri,
            "cid": post.cid,
            "author": author.basic_view(),
            "record": copy.deepcopy(post.record),
        }
        embed = post.record.get("embed") or {}
        if embed.get("$type") == "app.bsky.embed.record":
            view["embed"] = self._quote_view(embed["record"]["uri"])
        view.update(
            {
                "bookmarkCount": 0,
                "replyCount": post.counts["replyCount"],
                "repostCount": post.counts["repostCount"],
                "likeCount": post.counts["likeCount"],
                "quoteCount": post.counts["quoteCount"],
                "indexedAt": iso_time(post.indexed_at),
                "labels": [],
            }
        )
        return view

    def _quote_view(self, uri: str) -> dict[str, Any]:
        quoted = self._posts.get(uri)
        if quoted is None:
            record = {"$type": "app.bsky.embed.record#viewNotFound", "uri": uri, "notFound": True}
        else:
            record = {
                "$type": "app.bsky.embed.record#viewRecord",
                "uri": quoted.uri,
                "cid": quoted.cid,
                "author": self._accounts[quoted.author_did].basic_view(),
                "value": copy.deepcopy(quoted.record),
                "labels": [],
                "indexedAt": iso_time(quoted.indexed_at),
            }
        return {"$type": "app.bsky.embed.record#view", "record": record}

    def _feed_item(self, post: StoredPost) -> dict[str, Any]:
        item: dict[str, Any] = {"post": self._post_view(post)}
        reply = post.record.get("reply")
        if reply:
            item["reply"] = {
                "root": self._ref_view(reply["root"]["uri"]),
                "parent": self._ref_view(reply["parent"]["uri"]),
            }
        return item

    def _ref_view(self, uri: str) -> dict[str, Any]:
        post = self._posts.get(uri)
        if post is None:
            return {"$type": "app.bsky.feed.defs#notFoundPost", "uri": uri, "notFound": True}
        return {"$type": "app.bsky.feed.defs#postView", **self._post_view(post)}

    # -- errors and limits --

    def error_answer(self, status: int) -> Answer:
        name = ERROR_NAMES.get(status, HTTPStatus(status).phrase.replace(" ", ""))
        message = "Rate Limit Exceeded" if status == 429 else HTTPStatus(status).phrase
        return json_answer(status, {"error": name, "message": message})

    def not_found(self, request: Request) -> Answer:
        # The PDS is an Express app: outside /xrpc/ it answers Express's own HTML 404.
        body = f"<pre>Cannot {request.method} {request.path}</pre>".encode()
        return Answer(404, body, "text/html; charset=utf-8")

    @staticmethod
    def _limit_headers(window: RateWindow) -> dict[str, str]:
        return {
            "ratelimit-limit": str(window.limit),
            "ratelimit-remaining": str(max(window.remaining, 0)),
            "ratelimit-reset": str(int(window.reset_at)),
            "ratelimit-policy": f"{window.limit};w={window.seconds}",
        }

    def _spend(self, *windows: RateWindow) -> dict[str, str]:
        """Spend one call from each window; the headers of the tightest; 429 if one is spent."""
        now = self.now()
        with self._lock:
            for window in windows:
                if not window.spend(now):
                    headers = self._limit_headers(window)
                    raise xrpc_error(429, "RateLimitExceeded", "Rate Limit Exceeded", headers)
            return self._limit_headers(min(windows, key=lambda w: w.remaining))

    # -- tokens --

    def _jwt(self, payload: dict[str, Any], typ: str) -> str:
        header = _b64url(json.dumps({"typ": typ, "alg": "HS256"}).encode())
        body = _b64url(json.dumps(payload, separators=(",", ":")).encode())
        signature = hmac.new(self._jwt_secret, f"{header}.{body}".encode(), hashlib.sha256)
        return f"{header}.{body}.{_b64url(signature.digest())}"

    def _token_payload(self, token: str) -> dict[str, Any]:
        """The verified claims of one of our JWTs; 400 InvalidToken / ExpiredToken if not."""
        try:
            header, body, signature = token.split(".")
            expected = hmac.new(self._jwt_secret, f"{header}.{body}".encode(), hashlib.sha256)
            if not hmac.compare_digest(_b64url_decode(signature), expected.digest()):
                raise ValueError("bad signature")
            payload = json.loads(_b64url_decode(body))
            expires = int(payload["exp"])
        except (ValueError, KeyError, TypeError):
            raise xrpc_error(400, "InvalidToken", "Token could not be verified") from None
        if expires <= self.now().timestamp():
            raise xrpc_error(400, "ExpiredToken", "Token has expired")
        return payload

    def _issue_session(self, account: Account) -> dict[str, str]:
        now = int(self.now().timestamp())
        session = self._sessions.setdefault(account.did, _Session(account.did))
        refresh_id = secrets.token_urlsafe(24)
        session.refresh_ids.add(refresh_id)
        access = {
            "scope": "com.atproto.appPass",
            "sub": account.did,
            "iat": now,
            "exp": now + int(self.access_token_lifetime.total_seconds()),
            "aud": SERVICE_DID,
        }
        refresh = {
            "scope": "com.atproto.refresh",
            "sub": account.did,
            "aud": SERVICE_DID,
            "jti": refresh_id,
            "iat": now,
            "exp": now + int(REFRESH_TOKEN_LIFETIME.total_seconds()),
        }
        return {
            "accessJwt": self._jwt(access, "at+jwt"),
            "refreshJwt": self._jwt(refresh, "refresh+jwt"),
        }

    def _viewer(self, request: Request, *, required: bool, search: bool = False) -> Account | None:
        """The account whose access token the request carries (None when anonymous)."""
        token = request.bearer_token
        if not token:
            if search:
                # What the public AppView answers anonymous searches since 2025-01.
                raise ApiError(Answer(403, SEARCH_FORBIDDEN, "text/plain; charset=utf-8"))
            if required:
                raise xrpc_error(401, "AuthenticationRequired", "Authentication Required")
            return None
        payload = self._token_payload(token)
        if payload.get("scope") not in ("com.atproto.appPass", "com.atproto.access"):
            raise xrpc_error(400, "InvalidToken", "Bad token scope")
        account = self._accounts.get(str(payload.get("sub")))
        if account is None:
            raise xrpc_error(400, "InvalidToken", "Token could not be verified")
        return account

    def _did_doc(self, account: Account, request: Request) -> dict[str, Any]:
        # The account's PDS is this server: atproto's client follows this endpoint.
        host = request.headers.get("Host") or f"{self.host}:{self.port}"
        return {
            "@context": ["https://www.w3.org/ns/did/v1"],
            "id": account.did,
            "alsoKnownAs": [f"at://{account.handle}"],
            "verificationMethod": [],
            "service": [
                {
                    "id": "#atproto_pds",
                    "type": "AtprotoPersonalDataServer",
                    "serviceEndpoint": f"http://{host}",
                }
            ],
        }

    # -- routes --

    def routes(self):
        return [
            ("GET", r"/xrpc/(?P<nsid>[^/]+)", self._xrpc),
            ("POST", r"/xrpc/(?P<nsid>[^/]+)", self._xrpc),
        ]

    def _methods(self) -> dict[str, tuple[str, Any]]:
        return {
            "com.atproto.server.createSession": ("POST", self._create_session),
            "com.atproto.server.refreshSession": ("POST", self._refresh_session),
            "com.atproto.server.getSession": ("GET", self._get_session),
            "com.atproto.repo.createRecord": ("POST", self._create_record),
            "app.bsky.feed.searchPosts": ("GET", self._search_posts),
            "app.bsky.feed.getPosts": ("GET", self._get_posts),
            "app.bsky.feed.getAuthorFeed": ("GET", self._get_author_feed),
            "app.bsky.actor.getProfiles": ("GET", self._get_profiles),
            "app.bsky.actor.getProfile": ("GET", self._get_profile),
            "_health": ("GET", lambda request: ({"version": "0.4.0-earshot"}, None)),
        }

    def _xrpc(self, request: Request, nsid: str) -> Answer:
        """Every XRPC call: method check, the per-IP budget, the call, limit headers on all."""
        method = self._methods().get(nsid)
        if method is None:
            return json_answer(
                501, {"error": "MethodNotImplemented", "message": "Method Not Implemented"}
            )
        http_method, handler = method
        if http_method != request.method:
            raise invalid_request(
                f"Incorrect HTTP method ({request.method}) expected {http_method}"
            )
        with self._lock:
            faults = self._method_faults.get(nsid)
            if faults:
                return faults.pop(0)
        headers: dict[str, str] = {}
        try:
            headers = self._spend(self._window)
            body, more_windows = handler(request)
        except ApiError as error:
            error.answer.headers = {**headers, **error.answer.headers}
            raise
        with self._lock:
            delays = self._method_delays.get(nsid)
            delay = delays.pop(0) if delays else 0.0
        if delay:
            time.sleep(delay)  # carried out already: only the answer is late
        return json_answer(200, body, {**headers, **(more_windows or {})})

    def _create_session(self, request: Request):
        payload = request.json()
        if not isinstance(payload, dict):
            raise invalid_request("Input must be an object")
        identifier, password = payload.get("identifier"), payload.get("password")
        if not isinstance(identifier, str) or not identifier:
            raise invalid_request('Input must have the property "identifier"')
        if not isinstance(password, str):
            raise invalid_request('Input must have the property "password"')
        with self._lock:
            # Counted per identifier before the password is checked, as on the PDS.
            windows = self._session_windows.setdefault(
                identifier.lower(),
                (
                    RateWindow(self.session_limit, self.session_window_seconds),
                    RateWindow(self.session_daily_limit, 86_400),
                ),
            )
            limit_headers = self._spend(*windows)
            account = self.account(identifier)
            if account is None or account.app_password is None or password != account.app_password:
                raise xrpc_error(401, "AuthenticationRequired", "Invalid identifier or password")
            tokens = self._issue_session(account)
        return {
            **tokens,
            "handle": account.handle,
            "did": account.did,
            "didDoc": self._did_doc(account, request),
            "email": account.email,
            "emailConfirmed": True,
            "emailAuthFactor": False,
            "active": True,
        }, limit_headers

    def _refresh_session(self, request: Request):
        if not request.bearer_token:
            raise xrpc_error(401, "AuthenticationRequired", "Authentication Required")
        with self._lock:
            payload = self._token_payload(request.bearer_token)
            if payload.get("scope") != "com.atproto.refresh":
                raise xrpc_error(400, "InvalidToken", "Invalid token type")
            session = self._sessions.get(str(payload.get("sub")))
            if session is None or payload.get("jti") not in session.refresh_ids:
                raise xrpc_error(400, "ExpiredToken", "Token has been revoked")
            # Refresh tokens are single use: the new pair replaces this one.
            session.refresh_ids.discard(payload["jti"])
            account = self._accounts[session.did]
            tokens = self._issue_session(account)
        return {
            **tokens,
            "handle": account.handle,
            "did": account.did,
            "didDoc": self._did_doc(account, request),
            "active": True,
        }, None

    def _get_session(self, request: Request):
        account = self._viewer(request, required=True)
        assert account is not None
        return {
            "handle": account.handle,
            "did": account.did,
            "email": account.email,
            "emailConfirmed": True,
            "active": True,
        }, None

    def _search_posts(self, request: Request):
        self._viewer(request, required=True, search=True)
        q = request.query.get("q")
        if q is None:
            raise invalid_request('Error: Params must have the property "q"')
        limit = _int_param(request, "limit", 25, MAX_SEARCH_LIMIT)
        sort = request.query.get("sort", "latest")
        if sort not in ("latest", "top"):
            raise invalid_request("Error: sort must be one of latest, top")
        since = _parse_since(request.query["since"], "since") if "since" in request.query else None
        until = _parse_since(request.query["until"], "until") if "until" in request.query else None
        offset = 0
        if (cursor := request.query.get("cursor")) is not None:
            if not cursor.isdigit():
                raise invalid_request("invalid cursor")
            offset = int(cursor)
        lang = request.query.get("lang", "").lower()
        author = self.account(request.query["author"]) if "author" in request.query else None
        phrases, words = _search_terms(q)
        with self._lock:
            hits = [
                post
                for post in [*self._posts.values(), *self._raw_items]
                if (since is None or post.sort_at >= since)
                and (until is None or post.sort_at < until)
                and (post.is_raw or self._post_matches(post, phrases, words, lang, author))
            ]
            # "top" ranking is not simulated: both orders are newest first.
            hits.sort(key=lambda post: (post.sort_at, post.uri), reverse=True)
            window = hits[offset : offset + limit] if offset < MAX_SEARCH_OFFSET else []
            body: dict[str, Any] = {
                "posts": [post.raw if post.is_raw else self._post_view(post) for post in window]
            }
        if offset + limit < len(hits) and offset + limit < MAX_SEARCH_OFFSET:
            body["cursor"] = str(offset + limit)
        body["hitsTotal"] = len(hits)
        return body, None

    def _post_matches(
        self,
        post: StoredPost,
        phrases: list[tuple[str, ...]],
        words: list[str],
        lang: str,
        author: Account | None,
    ) -> bool:
        if author is not None and post.author_did != author.did:
            return False
        if lang and lang not in [str(code).lower() for code in post.record.get("langs") or []]:
            return False
        return _text_matches(str(post.record.get("text", "")), phrases, words)

    def _get_posts(self, request: Request):
        self._viewer(request, required=False)
        uris = request.query_lists.get("uris") or []
        if not uris:
            raise invalid_request('Error: Params must have the property "uris"')
        if len(uris) > MAX_ACTORS_OR_URIS:
            raise invalid_request(
                f"Error: uris must not have more than {MAX_ACTORS_OR_URIS} elements"
            )
        with self._lock:
            # Missing posts (deleted, never existed) are left out, not errors.
            posts = [self._post_view(self._posts[uri]) for uri in uris if uri in self._posts]
        return {"posts": posts}, None

    def _get_profiles(self, request: Request):
        self._viewer(request, required=False)
        actors = request.query_lists.get("actors") or []
        if not actors:
            raise invalid_request('Error: Params must have the property "actors"')
        if len(actors) > MAX_ACTORS_OR_URIS:
            raise invalid_request(
                f"Error: actors must not have more than {MAX_ACTORS_OR_URIS} elements"
            )
        profiles = [account.detailed_view() for a in actors if (account := self.account(a))]
        return {"profiles": profiles}, None

    def _get_profile(self, request: Request):
        self._viewer(request, required=False)
        account = self.account(_required_param(request, "actor"))
        if account is None:
            raise invalid_request("Profile not found")
        return account.detailed_view(), None

    def _get_author_feed(self, request: Request):
        self._viewer(request, required=False)
        account = self.account(_required_param(request, "actor"))
        if account is None:
            raise invalid_request("Profile not found")
        limit = _int_param(request, "limit", 50, MAX_FEED_LIMIT)
        feed_filter = request.query.get("filter", "posts_with_replies")
        if feed_filter not in FEED_FILTERS:
            raise invalid_request(f"Error: filter must be one of {', '.join(FEED_FILTERS)}")
        before: tuple[int, str] | None = None
        if (cursor := request.query.get("cursor")) is not None:
            millis, _, cid = cursor.partition("::")
            if not millis.isdigit() or not cid:
                raise invalid_request("Malformed cursor")
            before = (int(millis), cid)
        with self._lock:
            posts = sorted(
                (
                    post
                    for post in self._posts.values()
                    if post.author_did == account.did
                    and not (feed_filter == "posts_no_replies" and post.parent_uri)
                ),
                key=self._feed_key,
                reverse=True,
            )
            if before is not None:
                posts = [post for post in posts if self._feed_key(post) < before]
            page = posts[:limit]
            body: dict[str, Any] = {"feed": [self._feed_item(post) for post in page]}
        if len(posts) > limit:
            millis, cid = self._feed_key(page[-1])
            body["cursor"] = f"{millis}::{cid}"
        return body, None

    @staticmethod
    def _feed_key(post: StoredPost) -> tuple[int, str]:
        return (post.sort_at - _EPOCH) // timedelta(milliseconds=1), post.cid

    def _create_record(self, request: Request):
        account = self._viewer(request, required=True)
        assert account is not None
        payload = request.json()
        if not isinstance(payload, dict):
            raise invalid_request("Input must be an object")
        repo, collection = payload.get("repo"), payload.get("collection")
        if not isinstance(repo, str) or not repo:
            raise invalid_request('Input must have the property "repo"')
        if self.account(repo) is not account:
            # Only the session's own repository can be written to.
            raise xrpc_error(401, "AuthenticationRequired", "Authentication Required")
        if collection != POST_COLLECTION:
            raise invalid_request(f"The simulator only stores {POST_COLLECTION} records")
        record = payload.get("record")
        _validate_post_record(record)
        rkey = payload.get("rkey")
        with self._lock:
            if rkey is not None and f"at://{account.did}/{POST_COLLECTION}/{rkey}" in self._posts:
                raise invalid_request(f"Record already exists at rkey {rkey}")
            post = self._store_post(account, record, rkey=rkey, indexed_at=as_utc(self.now()))
            self._received_posts.append(
                {
                    "uri": post.uri,
                    "cid": post.cid,
                    "repo": repo,
                    "collection": collection,
                    "record": copy.deepcopy(record),
                    "received_at": iso_time(self.now()),
                }
            )
        return {
            "uri": post.uri,
            "cid": post.cid,
            "commit": {"cid": record_cid(post.cid), "rev": tid(as_utc(self.now()), 0)},
            "validationStatus": "valid",
        }, None


def _validate_post_record(record: Any) -> None:
    """The lexicon checks the PDS applies to an app.bsky.feed.post, in its words."""
    prefix = "Invalid app.bsky.feed.post record:"
    if not isinstance(record, dict):
        raise invalid_request(f"{prefix} Record must be an object")
    if record.get("$type") != POST_COLLECTION:
        raise invalid_request(f"{prefix} Record/$type must be {POST_COLLECTION}")
    text = record.get("text")
    if not isinstance(text, str):
        raise invalid_request(f'{prefix} Record must have the property "text"')
    if grapheme_count(text) > MAX_POST_GRAPHEMES:
        raise invalid_request(
            f"{prefix} Record/text must not be longer than {MAX_POST_GRAPHEMES} graphemes"
        )
    if len(text.encode("utf-8", "surrogatepass")) > MAX_POST_BYTES:
        raise invalid_request(f"{prefix} Record/text must not be longer than {MAX_POST_BYTES}")
    created = record.get("createdAt")
    try:
        if not isinstance(created, str) or datetime.fromisoformat(created).tzinfo is None:
            raise ValueError(created)
    except ValueError:
        raise invalid_request(
            f"{prefix} Record/createdAt must be an valid atproto datetime"
        ) from None
    reply = record.get("reply")
    if reply is not None:
        for part in ("root", "parent"):
            ref = reply.get(part) if isinstance(reply, dict) else None
            if not isinstance(ref, dict):
                raise invalid_request(f'{prefix} Record/reply must have the property "{part}"')
            for key in ("uri", "cid"):
                if not isinstance(ref.get(key), str) or not ref[key]:
                    raise invalid_request(
                        f'{prefix} Record/reply/{part} must have the property "{key}"'
                    )


# --- command line -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    from listening.simulators.generator import iter_mentions

    parser = simulator_arguments(
        "A local Bluesky (AT Protocol) service with demo posts", default_port=8767
    )
    parser.add_argument(
        "--identifier",
        default=None,
        help="the brand account's handle (default: <brand-handle>.bsky.social)",
    )
    parser.add_argument("--app-password", default=DEFAULT_APP_PASSWORD)
    args = parser.parse_args(argv)
    handle = (args.identifier or f"{args.brand_handle.lstrip('@')}.bsky.social").lower()
    simulator = BlueskySimulator(
        args.host,
        args.port,
        handle=handle,
        app_password=args.app_password,
        display_name=args.brand_name,
    )
    posts = iter_mentions(
        brand_name=args.brand_name, brand_handle=args.brand_handle, seed=args.seed
    )
    # The generator writes X-style @-mentions; on Bluesky a mention is the full handle.
    x_mention = re.compile(re.escape("@" + args.brand_handle.lstrip("@")) + r"\b", re.IGNORECASE)

    def add(post: dict[str, Any], created_at: datetime) -> None:
        simulator.add_post(
            text=x_mention.sub("@" + handle, post["text"]),
            author=post["author"],
            lang=post.get("lang"),
            created_at=created_at,
        )

    return serve_with_demo_posts(simulator, args, posts, add)


if __name__ == "__main__":
    raise SystemExit(main())
