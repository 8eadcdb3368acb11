"""A local X API v2 server speaking X's wire format, for tests, demos and development.

Earshot's X client drives it through tweepy, unmodified: the client rewrites the host of
https://api.twitter.com to `base_url`, so the paths here are exactly X's. Bodies, headers and
error shapes follow the recorded exchanges, error bodies and OpenAPI excerpt in ../shared/xapi.
Paths under /_sim/ are the simulator's own control surface, for processes other than the one
that owns the simulator object (a demo's web and worker processes, a browser test).

Stdlib only, and no Django: it must run in a test process, a Procfile line or a CI job alike.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import csv
import hashlib
import json
import logging
import random
import re
import signal
import sys
import threading
import time
import unicodedata
from bisect import bisect_left, insort
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from listening.simulators import x_query

logger = logging.getLogger("earshot.x_sim")

TWITTER_EPOCH_MS = 1288834974657
X_HOST = "https://api.twitter.com"
JSON = "application/json; charset=utf-8"
PROBLEM_JSON = "application/problem+json"
INVALID_REQUEST_TYPE = "https://api.twitter.com/2/problems/invalid-request"
MAX_QUERY_LENGTH = 512  # recent search, Basic/self-serve access
MAX_POST_LENGTH = 280
TWCS_TIME_FORMAT = "%a %b %d %H:%M:%S %z %Y"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ID_RE = re.compile(r"^[0-9]{1,19}$")
_OAUTH_PARAM_RE = re.compile(r'([A-Za-z0-9_]+)="([^"]*)"')

UNAUTHORIZED = {
    "title": "Unauthorized",
    "type": "about:blank",
    "status": 401,
    "detail": "Unauthorized",
}
TOO_MANY_REQUESTS = {
    "title": "Too Many Requests",
    "type": "about:blank",
    "status": 429,
    "detail": "Too Many Requests",
}
APP_ONLY_FORBIDDEN = {
    "title": "Unsupported Authentication",
    "detail": "Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.  "
    "Supported authentication types are [OAuth 1.0a User Context, OAuth 2.0 User Context].",
    "type": "https://api.twitter.com/2/problems/unsupported-authentication",
    "status": 403,
}
# What X answers a user-context write when the app's permissions are Read only (the access
# token was generated before Read and write was set): recorded in public issue threads.
OAUTH1_PERMISSIONS_FORBIDDEN = {
    "title": "Forbidden",
    "status": 403,
    "detail": "Your client app is not configured with the appropriate oauth1 app permissions "
    "for this endpoint.",
    "type": "https://api.twitter.com/2/problems/oauth1-permissions",
}
REPLY_TARGET_MISSING = "You attempted to reply to a Tweet that is deleted or not visible to you."
TEXT_TOO_LONG = (
    "Your Tweet text is too long. For more information on how Twitter determines text length "
    "see https://github.com/twitter/twitter-text."
)

SEARCH_PARAMETERS = (
    "query", "start_time", "end_time", "since_id", "until_id", "max_results", "next_token",
    "pagination_token", "sort_order", "expansions", "tweet.fields", "media.fields",
    "poll.fields", "user.fields", "place.fields",
)  # fmt: skip
TWEET_FIELDS = (
    "attachments", "author_id", "card_uri", "context_annotations", "conversation_id",
    "created_at", "edit_controls", "edit_history_tweet_ids", "entities", "geo", "id",
    "in_reply_to_user_id", "lang", "non_public_metrics", "note_tweet", "organic_metrics",
    "possibly_sensitive", "promoted_metrics", "public_metrics", "referenced_tweets",
    "reply_settings", "source", "text", "withheld",
)  # fmt: skip
USER_FIELDS = (
    "affiliation", "connection_status", "created_at", "description", "entities", "id",
    "location", "most_recent_tweet_id", "name", "pinned_tweet_id", "profile_banner_url",
    "profile_image_url", "protected", "public_metrics", "receives_your_dm", "subscription_type",
    "url", "username", "verified", "verified_type", "withheld",
)  # fmt: skip
EXPANSIONS = (
    "attachments.poll_ids", "attachments.media_keys", "author_id", "edit_history_tweet_ids",
    "entities.mentions.username", "geo.place_id", "in_reply_to_user_id", "referenced_tweets.id",
    "referenced_tweets.id.author_id",
)  # fmt: skip
# Fields the simulator stores; other valid fields are accepted and, as on X, simply absent.
# Likewise only the author_id and in_reply_to_user_id expansions produce includes.
_RENDERED_TWEET_FIELDS = (
    "author_id", "created_at", "conversation_id", "lang", "public_metrics", "referenced_tweets",
    "in_reply_to_user_id",
)  # fmt: skip
DEFAULT_TWEET_METRICS = {
    "retweet_count": 0, "reply_count": 0, "like_count": 0, "quote_count": 0,
    "bookmark_count": 0, "impression_count": 0,
}  # fmt: skip
DEFAULT_BRAND_USER = {"id": "1700000000000000001", "username": "EarshotBrand", "name": "Earshot"}


# --- small pure helpers -------------------------------------------------------------------


def x_time(value: datetime) -> str:
    """X renders `created_at` to the second, always with a `.000` millisecond part."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def snowflake_id(created_at: datetime, sequence: int = 0) -> str:
    ms = (as_utc(created_at) - _EPOCH) // timedelta(milliseconds=1)
    return str(((ms - TWITTER_EPOCH_MS) << 22) | sequence)


def as_utc(value: datetime) -> datetime:
    # A naive datetime is taken to be UTC, as X's own timestamps are.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _stable_fraction(key: str) -> float:
    """A number in [0, 1) fixed by `key`: made-up but reproducible account data."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) / 16**12


def handle_user_id(handle: str) -> str:
    """A stable numeric id for an account known only by its handle (TWCS brands, the CLI brand)."""
    return str(10**17 + int(hashlib.sha256(handle.lower().encode()).hexdigest()[:13], 16))


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("an RFC 3339 time needs an offset or Z")
    return parsed.astimezone(UTC)


def _micros(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(microseconds=1)


def _encode_cursor(key: tuple[int, int, int]) -> str:
    # Opaque and lower-case alphanumeric like X's tokens; it does not expire, as on X.
    raw = ".".join(map(str, key)).encode()
    return base64.b32hexencode(raw).decode().rstrip("=").lower()


def _decode_cursor(token: str) -> tuple[int, int, int]:
    padded = token.upper() + "=" * (-len(token) % 8)
    created, sort_id, seq = base64.b32hexdecode(padded).decode().split(".")
    return int(created), int(sort_id), int(seq)


def _oauth_params(credential: str) -> dict[str, str]:
    return {name: unquote(value) for name, value in _OAUTH_PARAM_RE.findall(credential)}


# --- answers and errors -------------------------------------------------------------------


@dataclass
class _Answer:
    status: int
    body: bytes
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


def _json_answer(status: int, body: Any, headers: Mapping[str, str] | None = None) -> _Answer:
    return _Answer(status, json.dumps(body, ensure_ascii=False).encode(), JSON, dict(headers or {}))


class _ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any], content_type: str = JSON) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers: dict[str, str] = {}

    def answer(self) -> _Answer:
        answer = _json_answer(self.status, self.body, self.headers)
        answer.content_type = self.content_type
        return answer


def _param_error(name: str, value: str, message: str) -> dict[str, Any]:
    return {"parameters": {name: [value]}, "message": message}


def _invalid_request(errors: list[dict[str, Any]]) -> _ApiError:
    return _ApiError(
        400,
        {
            "errors": errors,
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": INVALID_REQUEST_TYPE,
        },
    )


def _forbidden(detail: str) -> _ApiError:
    return _ApiError(
        403, {"detail": detail, "type": "about:blank", "title": "Forbidden", "status": 403}
    )


def _unauthorized() -> _ApiError:
    return _ApiError(401, UNAUTHORIZED, PROBLEM_JSON)


# --- storage ------------------------------------------------------------------------------


@dataclass
class _Entry:
    """One searchable item: a stored tweet, or a raw item served exactly as given."""

    created_at: datetime
    key: tuple[int, int, int]  # (created µs, numeric id or 0, insertion order): the sort order
    numeric_id: int | None
    item: Any
    raw: bool
    post: x_query.Post | None  # None: a raw item without text, served whatever the query


@dataclass
class _Window:
    reset_at: int
    remaining: int


@dataclass
class _SearchParams:
    node: x_query.Node
    max_results: int = 10
    since_id: int | None = None
    until_id: int | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    cursor: tuple[int, int, int] | None = None
    tweet_fields: set[str] = field(default_factory=set)
    user_fields: set[str] = field(default_factory=set)
    expansions: set[str] = field(default_factory=set)


class XApiSimulator:
    """An X API v2 stand-in: recent search, create post, users/me, with X's auth and limits."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        bearer_token: str = "sim-bearer",
        consumer_key: str = "sim-consumer-key",
        access_token: str = "sim-access-token",
        brand_user: Mapping[str, Any] | None = None,
        rate_limit: int = 450,
        rate_window_seconds: int = 900,
        max_age: timedelta = timedelta(days=7),
        post_rate_limit: int = 100,
    ) -> None:
        self.host = host
        self.port = port
        self.bearer_token = bearer_token
        self.consumer_key = consumer_key
        self.access_token = access_token
        self.brand_user = {**DEFAULT_BRAND_USER, **(brand_user or {})}
        self.rate_limit = rate_limit
        self.rate_window_seconds = rate_window_seconds
        self.max_age = max_age
        self.post_rate_limit = post_rate_limit
        # The simulator's clock: tests replace it to move time (visibility, rate-limit windows).
        self.now: Callable[[], datetime] = lambda: datetime.now(UTC)
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    # -- lifecycle --

    def start(self) -> XApiSimulator:
        if self._server is None:
            self._server = _Server((self.host, self.port), _Handler)
            self._server.simulator = self
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join()
            self._server = self._thread = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> XApiSimulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget every tweet, user, post, log, rate-limit window and queued failure; the
        user-context token gets its read-write access back."""
        with self._lock:
            self._entries: list[_Entry] = []
            self._tweets: dict[str, _Entry] = {}
            self._users: dict[str, dict[str, Any]] = {}
            self._windows: dict[tuple[str, str], _Window] = {}
            # Each queued fault is (path or None for any X path, the fault), used up in order
            # by the first request it applies to.
            self._failures: list[tuple[str | None, _Answer]] = []
            # Answers held back this many seconds AFTER the request was carried out: the
            # platform accepted the post, but the client's read times out.
            self._slow_answers: list[tuple[str | None, float]] = []
            # Connections to cut without an answer: True once the request was carried out
            # (the post exists, the client never hears so), False before.
            self._cuts: list[tuple[str | None, bool]] = []
            # Outages: every request to the path (None: any) is answered so until the
            # deadline (time.monotonic()), as X does through an incident or a 429 storm.
            self._outages: list[tuple[float, str | None, Callable[[], _Answer]]] = []
            self._received_posts: list[dict[str, Any]] = []
            self._requests_log: list[tuple[str, str, dict[str, str], datetime]] = []
            self._insertions = 0
            # What the user-context access token may do, as X's `x-access-level` header
            # says: "read" (an app set to Read only) cannot post.
            self.access_level = "read-write"
            self._snowflake_sequences: dict[int, int] = {}
            self._upsert_user(self.brand_user)

    @property
    def _brand(self) -> dict[str, Any]:
        return self._users[str(self.brand_user["id"])]

    # -- what tests look at --

    @property
    def received_posts(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._received_posts)

    @property
    def requests_log(self) -> list[tuple[str, str, dict[str, str], datetime]]:
        with self._lock:
            return list(self._requests_log)

    def tweet(self, tweet_id: str) -> dict[str, Any] | None:
        """The stored tweet with every field, whether or not a search could see it now."""
        with self._lock:
            entry = self._tweets.get(tweet_id)
            return copy.deepcopy(entry.item) if entry else None

    def clear_logs(self) -> None:
        with self._lock:
            self._received_posts.clear()
            self._requests_log.clear()

    def slow_next(self, seconds: float, count: int = 1, *, path: str | None = None) -> None:
        """Carry out the next `count` requests (to `path`, or any), then wait `seconds`
        before answering each."""
        with self._lock:
            self._slow_answers.extend([(path, seconds)] * count)

    def cut_next(
        self, *, after_carrying_out: bool, count: int = 1, path: str | None = None
    ) -> None:
        """Hang up on the next `count` requests (to `path`, or any) without answering,
        before or after doing them."""
        with self._lock:
            self._cuts.extend([(path, after_carrying_out)] * count)

    def fail_next(
        self,
        status: int,
        body: dict[str, Any] | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        count: int = 1,
        *,
        path: str | None = None,
    ) -> None:
        """Answer the next `count` X API requests (to `path`, or any) with this status and
        body, touching nothing. A bytes body is sent as it is (a cut-off JSON, an HTML page)."""
        answer = _failure_answer(status, body, headers)
        with self._lock:
            self._failures.extend((path, copy.copy(answer)) for _ in range(count))

    def fail_for(
        self,
        seconds: float,
        status: int,
        body: dict[str, Any] | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        path: str | None = None,
    ) -> None:
        """Answer every request (to `path`, or any) with this status for `seconds`: an outage.

        A 429 without headers carries X's x-rate-limit-* headers, resetting when it ends.
        """
        deadline = time.monotonic() + seconds
        if status == HTTPStatus.TOO_MANY_REQUESTS and headers is None:
            reset_at = int(self.now().timestamp() + seconds) + 1
            headers = _limit_headers(self.rate_limit, 0, reset_at)
        if status == HTTPStatus.TOO_MANY_REQUESTS and body is None:
            body = TOO_MANY_REQUESTS
        answer = _failure_answer(status, body, headers)
        with self._lock:
            self._outages.append((deadline, path, lambda: copy.copy(answer)))

    @property
    def faults_pending(self) -> int:
        """Queued failures, slow answers and cuts not yet used up (outages not counted)."""
        with self._lock:
            return len(self._failures) + len(self._slow_answers) + len(self._cuts)

    def clear_faults(self) -> None:
        """Forget every queued failure, slow answer, cut and outage not yet used up."""
        with self._lock:
            self._failures.clear()
            self._slow_answers.clear()
            self._cuts.clear()
            self._outages.clear()

    # -- content --

    def add_tweet(
        self,
        *,
        text: str,
        author: Mapping[str, Any],
        created_at: datetime | None = None,
        id: str | None = None,
        conversation_id: str | None = None,
        in_reply_to_user_id: str | None = None,
        referenced_tweets: list[Mapping[str, Any]] | None = None,
        lang: str = "en",
        public_metrics: Mapping[str, int] | None = None,
    ) -> dict[str, Any]:
        """Store a tweet by `author` (upserted); returns it with every field X could render."""
        created = as_utc(created_at) if created_at is not None else self.now()
        with self._lock:
            user = self._upsert_user(author)
            tweet_id = self._new_snowflake(created) if id is None else str(id)
            if tweet_id in self._tweets:
                raise ValueError(f"tweet {tweet_id} is already stored")
            tweet: dict[str, Any] = {
                "id": tweet_id,
                "text": text,
                "author_id": user["id"],
                "created_at": x_time(created),
                "conversation_id": str(conversation_id or tweet_id),
                "lang": lang,
                "public_metrics": {**DEFAULT_TWEET_METRICS, **(public_metrics or {})},
                "edit_history_tweet_ids": [tweet_id],
            }
            if referenced_tweets:
                tweet["referenced_tweets"] = [
                    {"type": r["type"], "id": str(r["id"])} for r in referenced_tweets
                ]
            if in_reply_to_user_id:
                tweet["in_reply_to_user_id"] = str(in_reply_to_user_id)
            kinds = {ref["type"] for ref in tweet.get("referenced_tweets", [])}
            post = x_query.Post(
                text=text,
                username=user["username"],
                author_id=user["id"],
                lang=lang,
                is_retweet="retweeted" in kinds or text.startswith("RT @"),
                is_reply="replied_to" in kinds,
                is_quote="quoted" in kinds,
            )
            numeric_id = int(tweet_id) if tweet_id.isdigit() else None
            self._tweets[tweet_id] = self._insert(created, tweet, numeric_id, raw=False, post=post)
            return copy.deepcopy(tweet)

    def add_raw_item(self, item: Any, created_at: datetime) -> None:
        """Serve `item` verbatim in `data[]` (when its text, if any, matches): for bad-item tests."""
        raw_id = item.get("id") if isinstance(item, dict) else None
        numeric_id = int(raw_id) if isinstance(raw_id, str) and raw_id.isdigit() else None
        text = item.get("text") if isinstance(item, dict) else None
        post = x_query.Post(text=text) if isinstance(text, str) else None
        with self._lock:
            self._insert(as_utc(created_at), copy.deepcopy(item), numeric_id, raw=True, post=post)

    def load_twcs_csv(self, path: str | Path, *, shift_to: datetime | None = None) -> int:
        """Load TWCS rows, shifted as one block so the newest lands at `shift_to` (default now).

        Tweet ids are kept; customers become users named by their number, brands users named
        by their handle; replies point at their parent and the root of their chain.
        """
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        if not rows:
            return 0
        times = {
            row["tweet_id"]: datetime.strptime(row["created_at"], TWCS_TIME_FORMAT) for row in rows
        }
        offset = as_utc(shift_to or self.now()) - max(times.values())
        by_id = {row["tweet_id"]: row for row in rows}
        with self._lock:
            for row in rows:
                parent_id = row["in_response_to_tweet_id"].strip() or None
                parent = by_id.get(parent_id) if parent_id else None
                self.add_tweet(
                    text=row["text"],
                    author=_twcs_author(row["author_id"]),
                    created_at=times[row["tweet_id"]] + offset,
                    id=row["tweet_id"],
                    conversation_id=_twcs_root(row["tweet_id"], by_id),
                    in_reply_to_user_id=_twcs_author(parent["author_id"])["id"] if parent else None,
                    referenced_tweets=[{"type": "replied_to", "id": parent_id}]
                    if parent_id
                    else None,
                )
        return len(rows)

    def _upsert_user(self, author: Mapping[str, Any]) -> dict[str, Any]:
        user_id = str(author["id"])
        username = str(author.get("username") or user_id)
        metrics = author.get("public_metrics") or author
        created_at = author.get("created_at")
        if isinstance(created_at, datetime):
            created_at = x_time(created_at)
        user = {
            "id": user_id,
            "name": str(author.get("name") or username),
            "username": username,
            "created_at": created_at
            or x_time(
                datetime(2009, 1, 1, tzinfo=UTC) + timedelta(days=4800 * _stable_fraction(user_id))
            ),
            "description": str(author.get("description", "")),
            "protected": False,
            "verified": bool(author.get("verified", False)),
            "public_metrics": {
                name: int(metrics.get(name, 0))
                for name in ("followers_count", "following_count", "tweet_count", "listed_count")
            },
        }
        self._users[user_id] = user
        return user

    def _insert(
        self,
        created_at: datetime,
        item: Any,
        numeric_id: int | None,
        *,
        raw: bool,
        post: x_query.Post | None,
    ) -> _Entry:
        self._insertions += 1
        key = (_micros(created_at), numeric_id or 0, self._insertions)
        entry = _Entry(created_at, key, numeric_id, item, raw, post)
        insort(self._entries, entry, key=lambda e: e.key)
        return entry

    def _new_snowflake(self, created_at: datetime) -> str:
        # Real snowflakes embed their creation time; a per-millisecond sequence keeps them unique.
        ms = (created_at - _EPOCH) // timedelta(milliseconds=1)
        while True:
            sequence = self._snowflake_sequences.get(ms, 0)
            self._snowflake_sequences[ms] = sequence + 1
            tweet_id = snowflake_id(created_at, sequence)
            if tweet_id not in self._tweets:
                return tweet_id

    # -- HTTP --

    def handle(
        self, method: str, path: str, query: dict[str, str], headers: Mapping[str, str], body: bytes
    ) -> _Answer | None:
        """Answer one request (None: hang up); the HTTP handler is a thin shell around this."""
        if path.startswith("/_sim/"):
            return self._control(method, path, body)
        with self._lock:
            self._requests_log.append((method, path, dict(query), self.now()))
            cut_after = _take(self._cuts, path)
            if cut_after is False:
                return None
            if (outage := self._outage_answer(path)) is not None:
                return outage
            if (failure := _take(self._failures, path)) is not None:
                return failure
        routes = {
            ("GET", "/2/tweets/search/recent"): self._search_recent,
            ("POST", "/2/tweets"): self._create_tweet,
            ("GET", "/2/users/me"): self._users_me,
        }
        route = routes.get((method, path))
        try:
            if route is None:
                raise _ApiError(
                    404, {"errors": [{"message": "Sorry, that page does not exist", "code": 34}]}
                )
            answer = route(query, headers, body)
        except _ApiError as error:
            answer = error.answer()
        with self._lock:
            delay = _take(self._slow_answers, path) or 0.0
        if delay:
            time.sleep(delay)
        return None if cut_after else answer

    def _outage_answer(self, path: str) -> _Answer | None:
        now = time.monotonic()
        self._outages = [outage for outage in self._outages if outage[0] > now]
        for _deadline, outage_path, answer in self._outages:
            if outage_path is None or outage_path == path:
                return answer()
        return None

    def _require_bearer(self, headers: Mapping[str, str]) -> str:
        scheme, _, credential = (headers.get("Authorization") or "").partition(" ")
        if scheme != "Bearer" or credential != self.bearer_token:
            raise _unauthorized()
        return credential

    def _require_user_context(self, headers: Mapping[str, str]) -> str:
        """OAuth 1.0a user context, as tweepy sends it; the signature itself is not verified."""
        scheme, _, credential = (headers.get("Authorization") or "").partition(" ")
        if scheme == "Bearer" and credential == self.bearer_token:
            raise _ApiError(403, APP_ONLY_FORBIDDEN, PROBLEM_JSON)
        if scheme == "OAuth":
            params = _oauth_params(credential)
            if (
                params.get("oauth_consumer_key") == self.consumer_key
                and params.get("oauth_token") == self.access_token
                and params.get("oauth_signature")
            ):
                return self.access_token
        raise _unauthorized()

    def _spend(self, bucket: str, token: str, limit: int) -> dict[str, str]:
        """Take one request from the window's budget; raises 429 when none is left."""
        now = int(self.now().timestamp())
        window = self._windows.get((bucket, token))
        if window is None or now >= window.reset_at:
            window = self._windows[(bucket, token)] = _Window(now + self.rate_window_seconds, limit)
        if window.remaining <= 0:
            error = _ApiError(429, TOO_MANY_REQUESTS)
            error.headers = _limit_headers(limit, 0, window.reset_at)
            raise error
        window.remaining -= 1
        return _limit_headers(limit, window.remaining, window.reset_at)

    def _search_recent(
        self, query: dict[str, str], headers: Mapping[str, str], body: bytes
    ) -> _Answer:
        token = self._require_bearer(headers)
        with self._lock:
            limits = self._spend("search", token, self.rate_limit)
            try:
                result = self._search(_search_params(query, earliest=self.now() - self.max_age))
            except _ApiError as error:
                error.headers.update(limits)
                raise
        return _json_answer(200, result, {**limits, "x-access-level": "read"})

    def _search(self, params: _SearchParams) -> dict[str, Any]:
        now = self.now()
        oldest = now - self.max_age
        matched: list[_Entry] = []
        # Entries are sorted by key; a next_token is a key, so later pages start right there
        # instead of walking past every newer entry again.
        end = len(self._entries)
        if params.cursor is not None:
            end = bisect_left(self._entries, params.cursor, key=lambda e: e.key)
        for index in range(end - 1, -1, -1):  # newest first
            entry = self._entries[index]
            if entry.created_at < oldest:
                break  # everything further on is older still
            if entry.created_at > now or not _passes(entry, params):
                continue
            matched.append(entry)
            if len(matched) > params.max_results:
                break
        page = matched[: params.max_results]
        if not page:
            return {"meta": {"result_count": 0}}
        body: dict[str, Any] = {
            "data": [
                entry.item if entry.raw else _render_tweet(entry.item, params.tweet_fields)
                for entry in page
            ]
        }
        if includes := self._includes(page, params):
            body["includes"] = includes
        ids = [
            entry.item["id"]
            for entry in page
            if isinstance(entry.item, dict) and "id" in entry.item
        ]
        meta: dict[str, Any] = {"newest_id": ids[0], "oldest_id": ids[-1]} if ids else {}
        meta["result_count"] = len(page)
        if len(matched) > params.max_results:
            meta["next_token"] = _encode_cursor(page[-1].key)
        body["meta"] = meta
        return body

    def _includes(self, page: list[_Entry], params: _SearchParams) -> dict[str, Any]:
        wanted = [
            name for name in ("author_id", "in_reply_to_user_id") if name in params.expansions
        ]
        users: dict[str, dict[str, Any]] = {}
        for entry in page:
            for user_id in (entry.item.get(name) for name in wanted if not entry.raw):
                if user_id in self._users and user_id not in users:
                    users[user_id] = _render_user(self._users[user_id], params.user_fields)
        return {"users": list(users.values())} if users else {}

    def _create_tweet(
        self, query: dict[str, str], headers: Mapping[str, str], body: bytes
    ) -> _Answer:
        token = self._require_user_context(headers)
        if "write" not in self.access_level:
            raise _ApiError(403, OAUTH1_PERMISSIONS_FORBIDDEN, PROBLEM_JSON)
        with self._lock:
            limits = self._spend("create", token, self.post_rate_limit)
            try:
                text, parent_id = _read_create_request(body)
                parent = self._tweets.get(parent_id) if parent_id else None
                if parent_id and (parent is None or parent.raw or parent.created_at > self.now()):
                    raise _forbidden(REPLY_TARGET_MISSING)
            except _ApiError as error:
                error.headers.update(limits)
                raise
            created = self.now()
            # The brand's stored account is upserted unchanged: X knows who is posting.
            tweet = self.add_tweet(
                author=self._brand,
                text=text,
                created_at=created,
                conversation_id=parent.item["conversation_id"] if parent else None,
                in_reply_to_user_id=parent.item["author_id"] if parent else None,
                referenced_tweets=[{"type": "replied_to", "id": parent_id}] if parent else None,
            )
            if parent is not None:
                parent.item["public_metrics"]["reply_count"] += 1
            self._received_posts.append(
                {
                    "id": tweet["id"],
                    "text": text,
                    "in_reply_to_tweet_id": parent_id,
                    "received_at": created,
                }
            )
        data = {"id": tweet["id"], "text": text, "edit_history_tweet_ids": [tweet["id"]]}
        headers_out = {
            **limits,
            "x-access-level": "read-write",
            "location": f"{X_HOST}/2/tweets/{tweet['id']}",
        }
        return _json_answer(201, {"data": data}, headers_out)

    def _users_me(self, query: dict[str, str], headers: Mapping[str, str], body: bytes) -> _Answer:
        token = self._require_user_context(headers)
        with self._lock:
            limits = self._spend("users_me", token, 75)
            fields = set(query.get("user.fields", "").split(",")) - {""}
            return _json_answer(
                200,
                {"data": _render_user(self._brand, fields)},
                {**limits, "x-access-level": self.access_level},
            )

    def _control(self, method: str, path: str, body: bytes) -> _Answer:
        """/_sim/*: not part of X. Lets other processes seed tweets and read what was posted."""
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return _json_answer(400, {"error": "the body must be a JSON object"})
        if (method, path) == ("POST", "/_sim/tweets"):
            if isinstance(payload.get("created_at"), str):
                payload["created_at"] = _parse_time(payload["created_at"])
            try:
                return _json_answer(201, {"data": self.add_tweet(**payload)})
            except (TypeError, KeyError, ValueError) as exc:
                return _json_answer(400, {"error": str(exc)})
        if (method, path) == ("GET", "/_sim/posts"):
            posts = [
                {**post, "received_at": x_time(post["received_at"])} for post in self.received_posts
            ]
            return _json_answer(200, {"data": posts})
        if (method, path) == ("POST", "/_sim/fail"):
            self.fail_next(
                int(payload["status"]), payload.get("body"), count=int(payload.get("count", 1))
            )
            return _json_answer(200, {"ok": True})
        if (method, path) == ("POST", "/_sim/reset"):
            self.reset()
            return _json_answer(200, {"ok": True})
        return _json_answer(404, {"error": f"no control endpoint {method} {path}"})


# --- rendering and request reading ----------------------------------------------------------


def _limit_headers(limit: int, remaining: int, reset_at: int) -> dict[str, str]:
    return {
        "x-rate-limit-limit": str(limit),
        "x-rate-limit-remaining": str(remaining),
        "x-rate-limit-reset": str(reset_at),
    }


def _take(queue: list[tuple[str | None, Any]], path: str) -> Any:
    """Use up the first queued fault that applies to `path`; None when none does."""
    for index, (wanted, fault) in enumerate(queue):
        if wanted is None or wanted == path:
            del queue[index]
            return fault
    return None


def _failure_answer(
    status: int, body: dict[str, Any] | bytes | None, headers: Mapping[str, str] | None
) -> _Answer:
    if body is None:
        phrase = HTTPStatus(status).phrase
        body = {"title": phrase, "detail": phrase, "type": "about:blank", "status": status}
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return _Answer(status, payload, JSON, dict(headers or {}))


def _list_param(
    query: dict[str, str], name: str, allowed: tuple[str, ...], bad: Callable[[str, str, str], None]
) -> set[str]:
    values = {value for value in query.get(name, "").split(",") if value}
    for value in sorted(values - set(allowed)):
        bad(name, value, f"is not one of [{','.join(allowed)}]")
    return values


def _search_params(query: dict[str, str], *, earliest: datetime) -> _SearchParams:
    """Validate like X: every problem of the request is reported in one 400."""
    errors: list[dict[str, Any]] = []

    def bad(name: str, value: str, problem: str) -> None:
        message = f"The `{name}` query parameter value [{value}] {problem}"
        errors.append(_param_error(name, value, message))

    for name, value in query.items():
        if name not in SEARCH_PARAMETERS:
            known = ",".join(SEARCH_PARAMETERS)
            errors.append(
                _param_error(name, value, f"The query parameter [{name}] is not one of [{known}]")
            )
    params = _SearchParams(node=x_query.Or(()))
    text = query.get("query", "")
    if not text:
        errors.append(_param_error("query", text, "The `query` query parameter can not be empty"))
    elif len(text) > MAX_QUERY_LENGTH:
        bad("query", text, f"is too long: queries are limited to {MAX_QUERY_LENGTH} characters")
    else:
        try:
            params.node = x_query.parse_query(text)
        except x_query.QueryError as exc:
            message = f"There were errors processing your request: {exc}"
            errors.append(_param_error("query", text, message))
    if (value := query.get("max_results")) is not None:
        if value.isdigit() and 10 <= int(value) <= 100:
            params.max_results = int(value)
        else:
            bad("max_results", value, "is not between 10 and 100")
    for name in ("since_id", "until_id"):
        if (value := query.get(name)) is not None:
            if _ID_RE.match(value):
                setattr(params, name, int(value))
            else:
                bad(name, value, "does not match ^[0-9]{1,19}$")
    for name in ("start_time", "end_time"):
        if (value := query.get(name)) is not None:
            try:
                setattr(params, name, _parse_time(value))
            except ValueError:
                bad(name, value, "is not a valid RFC 3339 date-time")
    if params.start_time is not None and params.start_time < earliest:
        problem = f"'start_time' must be on or after {earliest:%Y-%m-%dT%H:%MZ}"
        errors.append({"message": f"Invalid 'start_time':'{query['start_time']}'. {problem}"})
    if params.start_time and params.end_time and params.end_time <= params.start_time:
        problem = "'end_time' must be a minimum of 10 ms after the 'start_time'"
        errors.append({"message": f"Invalid 'end_time':'{query['end_time']}'. {problem}"})
    # Accepted, but results always come newest first: relevancy ranking is not simulated.
    if (value := query.get("sort_order")) is not None and value not in ("recency", "relevancy"):
        bad("sort_order", value, "is not one of [recency,relevancy]")
    params.tweet_fields = _list_param(query, "tweet.fields", TWEET_FIELDS, bad)
    params.user_fields = _list_param(query, "user.fields", USER_FIELDS, bad)
    params.expansions = _list_param(query, "expansions", EXPANSIONS, bad)
    # Pairs that X's OpenAPI spec declares mutually exclusive.
    for first, second in (
        ("since_id", "start_time"),
        ("until_id", "end_time"),
        ("next_token", "pagination_token"),
    ):
        if first in query and second in query:
            errors.append({"message": f"At most one of `{second}`, `{first}` may be provided."})
    name = "next_token" if "next_token" in query else "pagination_token"
    if (token := query.get(name)) is not None:
        try:
            params.cursor = _decode_cursor(token)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            bad(name, token, "is not valid")
    if errors:
        raise _invalid_request(errors)
    return params


def _passes(entry: _Entry, params: _SearchParams) -> bool:
    if params.cursor is not None and entry.key >= params.cursor:
        return False
    if params.start_time is not None and entry.created_at < params.start_time:
        return False
    if params.end_time is not None and entry.created_at >= params.end_time:
        return False
    # A raw item without a numeric id cannot be placed by id, so id bounds do not hide it.
    if entry.numeric_id is not None:
        if params.since_id is not None and entry.numeric_id <= params.since_id:
            return False
        if params.until_id is not None and entry.numeric_id >= params.until_id:
            return False
    return entry.post is None or x_query.matches(params.node, entry.post)


def _render_tweet(tweet: dict[str, Any], fields: set[str]) -> dict[str, Any]:
    # id, text and edit_history_tweet_ids come always; the rest only when asked for and present.
    rendered = {
        "id": tweet["id"],
        "text": tweet["text"],
        "edit_history_tweet_ids": list(tweet["edit_history_tweet_ids"]),
    }
    for name in _RENDERED_TWEET_FIELDS:
        if name in fields and name in tweet:
            rendered[name] = copy.deepcopy(tweet[name])
    return rendered


def _render_user(user: dict[str, Any], fields: set[str]) -> dict[str, Any]:
    rendered = {"id": user["id"], "name": user["name"], "username": user["username"]}
    for name in sorted(fields):
        if name in user and name not in rendered:
            rendered[name] = copy.deepcopy(user[name])
    return rendered


def _read_create_request(body: bytes) -> tuple[str, str | None]:
    """The text and reply target of a POST /2/tweets body, or X's refusal of it."""
    try:
        payload = json.loads(body or b"null")
    except ValueError:
        raise _invalid_request([{"message": "Request body is not valid JSON"}]) from None
    if not isinstance(payload, dict):
        raise _invalid_request([{"message": "Request body must be a JSON object"}])
    text = payload.get("text", "")
    reply = payload.get("reply")
    parent_id = reply.get("in_reply_to_tweet_id") if isinstance(reply, dict) else None
    if "reply" in payload and not (isinstance(parent_id, str) and _ID_RE.match(parent_id)):
        name = "reply.in_reply_to_tweet_id"
        message = f"The `{name}` field value [{parent_id}] does not match ^[0-9]{{1,19}}$"
        raise _invalid_request([_param_error(name, str(parent_id), message)])
    if not isinstance(text, str) or not text.strip():
        message = "Post text must not be empty when no media, poll or quote is attached"
        raise _invalid_request([_param_error("text", str(text), message)])
    # X weighs characters (URLs count 23, CJK 2); code points after NFC are close enough here.
    if len(unicodedata.normalize("NFC", text)) > MAX_POST_LENGTH:
        raise _forbidden(TEXT_TOO_LONG)
    return text, parent_id


# --- TWCS -----------------------------------------------------------------------------------


def _twcs_author(author_id: str) -> dict[str, Any]:
    """Customers are anonymised numbers; brands are handles. Counts are made up but stable."""
    spread = _stable_fraction(author_id)
    if author_id.isdigit():
        # Mostly small accounts, with a long tail of large ones.
        followers = int(10 ** (1 + 5 * spread**4))
        return {
            "id": author_id,
            "username": author_id,
            "name": f"Customer {author_id}",
            "followers_count": followers,
            "following_count": int(50 + 900 * spread),
            "tweet_count": int(200 + 20000 * spread**2),
            "listed_count": followers // 200,
            "verified": False,
        }
    return {
        "id": handle_user_id(author_id),
        "username": author_id,
        "name": author_id,
        "followers_count": int(10 ** (4.5 + 1.5 * spread)),
        "following_count": int(100 + 5000 * spread),
        "tweet_count": int(50000 + 500000 * spread),
        "listed_count": int(500 + 3000 * spread),
        "verified": True,
    }


def _twcs_root(tweet_id: str, by_id: Mapping[str, Mapping[str, str]]) -> str:
    """The first tweet of the chain; a parent missing from the file is the furthest we know."""
    seen = {tweet_id}
    current = tweet_id
    while (parent := by_id[current]["in_response_to_tweet_id"].strip()) and parent not in seen:
        if parent not in by_id:
            return parent
        seen.add(parent)
        current = parent
    return current


# --- HTTP shell -----------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    simulator: XApiSimulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up before a slow answer came is what slow_next is for: no
        # traceback on the terminal for it. Anything else is still printed.
        if isinstance(sys.exc_info()[1], ConnectionError):
            logger.info("%s hung up before the answer was sent", client_address[0])
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "earshot-x-simulator"
    sys_version = ""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {
            name: values[-1] for name, values in parse_qs(url.query, keep_blank_values=True).items()
        }
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            answer = self.server.simulator.handle(method, url.path, query, self.headers, body)
        except Exception:
            # A simulator bug must still answer, as X's own failures do, rather than hang up.
            logger.exception("simulator failed on %s %s", method, self.path)
            phrase = "Internal Server Error"
            answer = _json_answer(
                500, {"title": phrase, "detail": phrase, "type": "about:blank", "status": 500}
            )
        if answer is None:
            self.close_connection = True
            return
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.send_header("api-version", "2.167")
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s %s", self.address_string(), format % args)


# --- CLI ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    from listening.simulators.generator import iter_mentions

    parser = argparse.ArgumentParser(
        prog="python -m listening.simulators.x_api", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--bearer-token", default="sim-bearer")
    parser.add_argument("--consumer-key", default="sim-consumer-key")
    parser.add_argument("--access-token", default="sim-access-token")
    parser.add_argument("--brand-name", default="Northwind Coffee")
    parser.add_argument("--brand-handle", default="NorthwindHelp")
    parser.add_argument(
        "--seed-count", type=int, default=25, help="mentions spread over the last hour"
    )
    parser.add_argument("--generate-every", type=float, default=4.0, help="seconds; 0 turns it off")
    parser.add_argument(
        "--seed", type=int, default=None, help="makes the generated mentions repeatable"
    )
    parser.add_argument("--rate-limit", type=int, default=450)
    parser.add_argument(
        "--twcs", type=Path, default=None, help="also load a TWCS csv, shifted to now"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    simulator = XApiSimulator(
        host=args.host,
        port=args.port,
        bearer_token=args.bearer_token,
        consumer_key=args.consumer_key,
        access_token=args.access_token,
        brand_user={
            "id": handle_user_id(args.brand_handle),
            "username": args.brand_handle,
            "name": args.brand_name,
        },
        rate_limit=args.rate_limit,
    )
    if args.twcs is not None:
        logger.info("loaded %d TWCS tweets", simulator.load_twcs_csv(args.twcs))
    mentions = iter_mentions(
        brand_name=args.brand_name, brand_handle=args.brand_handle, seed=args.seed
    )
    spread = random.Random(args.seed)
    now = simulator.now()
    for offset in sorted((spread.uniform(0, 3600) for _ in range(args.seed_count)), reverse=True):
        simulator.add_tweet(**next(mentions), created_at=now - timedelta(seconds=offset))

    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    simulator.start()
    logger.info("X API simulator for @%s on %s", args.brand_handle, simulator.base_url)
    next_at = time.monotonic() + args.generate_every
    try:
        while not stopping.wait(0.2):
            if args.generate_every > 0 and time.monotonic() >= next_at:
                tweet = simulator.add_tweet(**next(mentions))
                logger.info("generated mention %s: %s", tweet["id"], tweet["text"][:60])
                next_at += args.generate_every
    finally:
        simulator.stop()
    logger.info("stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
