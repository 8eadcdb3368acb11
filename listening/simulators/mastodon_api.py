"""A local Mastodon instance's client API, in Mastodon's wire format, for tests and demos.

Mastodon.py talks to it unmodified (`api_base_url` is the simulator's address). It answers
what Earshot's Mastodon client calls, as Mastodon 4.5 does (docs: mastodon/documentation,
and the server's own controllers where the docs are silent):

- `GET /api/v1/instance`, `GET /api/v2/instance`: what Mastodon.py reads to learn the version.
- `GET /api/v2/search?q=&type=statuses`: full-text status search. Like Mastodon, only a
  signed-in user gets statuses back (anonymous callers get an empty list, not an error), and
  only public statuses of accounts that opted into search (`indexable`), plus the user's own
  and those mentioning them. Every word must appear (ES `operator: and`, without stemming
  here). Newest first; `min_id`/`max_id` become `after:`/`before:` at whole-second precision
  as in StatusesSearchService, so a cursor's own second comes back again at the lower end and
  is cut off at the upper end. Boosts are never indexed.
- `GET /api/v1/timelines/tag/:hashtag`, `GET /api/v1/accounts/:id/statuses`: id-paginated
  (`max_id`, `since_id`, `min_id` with its ascending window), with a `Link` header.
- `GET /api/v1/accounts/lookup`, `GET /api/v1/accounts/verify_credentials`,
  `GET /api/v1/statuses/:id` (and its `/source`), `GET /api/v1/statuses?id[]=`.
- `POST /api/v1/statuses`: 500 characters (a URL counts 23), `Idempotency-Key` kept an hour
  per account, `{"error": ...}` bodies with Mastodon's words.

Every API answer carries `X-RateLimit-Limit/Remaining/Reset` (an ISO 8601 time): 300 calls per
5 minutes per token (per address without one), 429 `{"error": "Too many requests"}` beyond.
Status ids are Mastodon snowflakes: the creation time in milliseconds, shifted left 16 bits.

Not modelled: accounts and hashtag search, `resolve` of remote URLs, stemming and search
operators, `any[]`/`all[]`/`none[]` of tag timelines, filters, media, polls, edits, deletes,
federation itself (remote accounts and statuses are simply stored), streaming.

Stdlib only, and no Django, like the X simulator.
"""

from __future__ import annotations

import copy
import hashlib
import html
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

from listening.simulators.base import (
    JSON,
    Answer,
    ApiError,
    PlatformSimulator,
    RateWindow,
    Request,
    json_answer,
    serve_with_demo_posts,
    simulator_arguments,
)

VERSION = "4.5.0"
API_VERSION = 7  # the `mastodon` API version 4.5.0 announces in /api/v2/instance
DEFAULT_DOMAIN = "mastodon.example"
MAX_CHARACTERS = 500
CHARACTERS_RESERVED_PER_URL = 23
DEFAULT_LIMIT = 20
MAX_LIMIT = 40  # Mastodon caps `limit` at twice the default
RATE_LIMIT = 300
RATE_WINDOW_SECONDS = 300
IDEMPOTENCY_SECONDS = 3600
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

INVALID_TOKEN = "The access token is invalid"
OUTSIDE_SCOPES = "This action is outside the authorized scopes"
NOT_FOUND = "Record not found"
TOO_MANY_REQUESTS = "Too many requests"
TEXT_BLANK = "Validation failed: Text can't be blank"
TEXT_TOO_LONG = f"Validation failed: Text character limit of {MAX_CHARACTERS} exceeded"
REPLY_TARGET_MISSING = "The post you are trying to reply to does not appear to exist."
RESOLVE_NEEDS_USER = (
    "Search queries that resolve remote resources are not supported without authentication"
)
OFFSET_NEEDS_USER = "Search queries pagination is not supported without authentication"
ERROR_WORDS = {
    400: "The request you submitted was invalid or malformed.",
    401: INVALID_TOKEN,
    403: OUTSIDE_SCOPES,
    404: NOT_FOUND,
    422: "Validation failed",
    429: TOO_MANY_REQUESTS,
    500: "We're sorry, but something went wrong on our end.",
    503: "The page could not be served due to a temporary server failure.",
}

_WORD_RE = re.compile(r"\w+")
_URL_RE = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]]")
_MENTION_RE = re.compile(r"(?<![\w/])@(\w+)(?:@([\w.-]+\w))?")
_HASHTAG_RE = re.compile(r"(?<![\w/&#])#(\w*[^\W\d_]\w*)")
_TOKEN_RE = re.compile(f"{_URL_RE.pattern}|{_MENTION_RE.pattern}|{_HASHTAG_RE.pattern}")
_LEADING_DIGITS_RE = re.compile(r"^\s*(\d+)")


# --- small pure helpers -------------------------------------------------------------------


def mastodon_time(value: datetime) -> str:
    """Mastodon renders times in UTC with milliseconds: 2019-12-05T11:34:47.196Z."""
    value = as_utc(value)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def snowflake_ms(status_id: int) -> int:
    return status_id >> 16


def snowflake_time(status_id: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=snowflake_ms(status_id))


def ruby_to_i(value: str | None) -> int:
    """String#to_i: the leading digits, else 0 (how Mastodon reads an id it is handed)."""
    match = _LEADING_DIGITS_RE.match(value or "")
    return int(match.group(1)) if match else 0


def _stable_fraction(key: str) -> float:
    return int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) / 16**12


def _weighted_length(text: str) -> int:
    """Mastodon's count: every URL weighs 23 characters, whatever its length."""
    return len(_URL_RE.sub("x" * CHARACTERS_RESERVED_PER_URL, text))


def _words(text: str) -> set[str]:
    return {word.casefold() for word in _WORD_RE.findall(text)}


def _limit(request: Request) -> int:
    """`limit_param`: absent → 20; otherwise |to_i|, at most 40."""
    if "limit" not in request.query:
        return DEFAULT_LIMIT
    return min(abs(ruby_to_i(request.query["limit"].lstrip("-"))), MAX_LIMIT)


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "t", "on", "yes")


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> ApiError:
    return ApiError(json_answer(status, {"error": message}, headers))


def _parse_time(value: datetime | str | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return as_utc(value) if value else None
    return as_utc(datetime.fromisoformat(value))


# --- storage --------------------------------------------------------------------------------


@dataclass
class _Account:
    id: str
    username: str
    domain: str  # "" for a local account
    display_name: str
    followers_count: int
    following_count: int
    statuses_count: int
    indexable: bool
    discoverable: bool
    bot: bool
    created_at: datetime
    note: str = ""
    last_status_at: datetime | None = None


@dataclass
class _Status:
    id: int
    account_id: str
    text: str  # what the author typed; `content` is rendered from it
    created_at: datetime
    language: str | None
    visibility: str
    spoiler_text: str
    sensitive: bool
    in_reply_to_id: int | None
    in_reply_to_account_id: str | None
    reblog_of_id: int | None
    remote_id: str | None  # the id in a remote status's own uri
    tags: list[str]
    mentioned_account_ids: list[str]
    replies_count: int = 0
    reblogs_count: int = 0
    favourites_count: int = 0
    application: str | None = None


@dataclass
class _Raw:
    """An item served verbatim wherever statuses are listed: for malformed-item tests."""

    sort_id: int
    item: Any


@dataclass
class _Token:
    account_id: str
    scopes: frozenset[str]


@dataclass
class _Idempotent:
    status_id: int
    stored_at: datetime


@dataclass
class _Listing:
    """What a timeline request asks for, read the way Mastodon's `paginate_by_id` reads it."""

    limit: int
    max_id: int | None = None
    since_id: int | None = None
    min_id: int | None = None


class MastodonApiSimulator(PlatformSimulator):
    """One Mastodon instance: its local accounts, the remote ones it knows, their statuses."""

    name = "Mastodon"
    server_version = "Mastodon"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        access_token: str = "sim-mastodon-token",
        brand_username: str = "NorthwindHelp",
        brand_display_name: str = "Northwind Help",
        domain: str = DEFAULT_DOMAIN,
        rate_limit: int = RATE_LIMIT,
        rate_window_seconds: int = RATE_WINDOW_SECONDS,
        max_characters: int = MAX_CHARACTERS,
        public_hashtag_timelines: bool = True,
    ) -> None:
        self.access_token = access_token
        self.brand_username = brand_username
        self.brand_display_name = brand_display_name
        self.domain = domain
        self.rate_limit = rate_limit
        self.rate_window_seconds = rate_window_seconds
        self.max_characters = max_characters
        self.public_hashtag_timelines = public_hashtag_timelines
        super().__init__(host, port)

    # -- content --

    def reset_content(self) -> None:
        self._accounts: dict[str, _Account] = {}
        self._accounts_by_acct: dict[str, str] = {}
        self._statuses: dict[int, _Status] = {}
        self._raw: list[_Raw] = []
        self._tokens: dict[str, _Token] = {}
        self._windows: dict[tuple[str, str], RateWindow] = {}
        self._idempotency: dict[tuple[str, str], _Idempotent] = {}
        self._sequence = 0
        self._next_account_id = 100
        brand = self.upsert_account(
            {"username": self.brand_username, "name": self.brand_display_name}
        )
        self.brand_account_id = brand["id"]
        self.add_token(self.access_token, scopes=("read", "write", "follow"))

    def add_token(
        self, token: str, *, scopes: Iterable[str] = ("read", "write"), username: str | None = None
    ) -> None:
        """Let `token` act for `username` (default: the brand) with these OAuth scopes."""
        with self._lock:
            account_id = (
                self.brand_account_id
                if username is None
                else self._accounts_by_acct[username.lower()]
            )
            self._tokens[token] = _Token(account_id, frozenset(scopes))

    def upsert_account(self, author: Mapping[str, Any]) -> dict[str, Any]:
        """An account by `username` (+ `domain` for a remote one); returns it as the API shows it.

        Takes X-style author dicts as the demo generator makes them (`name`, `followers_count`,
        `tweet_count`) as well as Mastodon's own keys (`display_name`, `statuses_count`).
        """
        username = str(author["username"]).lstrip("@")
        domain = str(author.get("domain") or "").lower()
        if domain == self.domain:
            domain = ""
        acct = f"{username}@{domain}" if domain else username
        with self._lock:
            account_id = self._accounts_by_acct.get(acct.lower())
            if account_id is None:
                account_id = str(self._next_account_id)
                self._next_account_id += 1
                self._accounts_by_acct[acct.lower()] = account_id
            spread = _stable_fraction(acct)
            known = self._accounts.get(account_id)
            self._accounts[account_id] = _Account(
                id=account_id,
                username=username,
                domain=domain,
                display_name=str(author.get("display_name", author.get("name", username))),
                followers_count=int(author.get("followers_count", int(10 ** (1 + 3 * spread)))),
                following_count=int(author.get("following_count", int(40 + 400 * spread))),
                statuses_count=int(
                    author.get("statuses_count", author.get("tweet_count", int(50 + 5000 * spread)))
                ),
                indexable=bool(author.get("indexable", True)),
                discoverable=bool(author.get("discoverable", True)),
                bot=bool(author.get("bot", False)),
                created_at=_parse_time(author.get("created_at"))
                or datetime(2017, 4, 1, tzinfo=UTC) + timedelta(days=int(2900 * spread)),
                note=str(author.get("note", "")),
                last_status_at=known.last_status_at if known else None,
            )
            return self._render_account(self._accounts[account_id])

    def add_post(
        self,
        *,
        text: str = "",
        author: Mapping[str, Any] | None = None,
        created_at: datetime | str | None = None,
        lang: str | None = "en",
        visibility: str = "public",
        spoiler_text: str = "",
        sensitive: bool = False,
        in_reply_to_id: str | int | None = None,
        reblog_of_id: str | int | None = None,
        replies_count: int = 0,
        reblogs_count: int = 0,
        favourites_count: int = 0,
        **_ignored: Any,
    ) -> dict[str, Any]:
        """Store a status by `author` (upserted; default the brand) and return it as rendered.

        `in_reply_to_id` and `reblog_of_id` are local status ids. Other keys (the demo
        generator's `id`, say) are ignored.
        """
        created = _parse_time(created_at) or self.now()
        with self._lock:
            account = (
                self._accounts[self.brand_account_id]
                if author is None
                else self._accounts[self.upsert_account(author)["id"]]
            )
            parent = self._statuses.get(int(in_reply_to_id)) if in_reply_to_id else None
            if in_reply_to_id and parent is None:
                raise ValueError(f"no status {in_reply_to_id} to reply to")
            boosted = self._statuses.get(int(reblog_of_id)) if reblog_of_id else None
            if reblog_of_id and boosted is None:
                raise ValueError(f"no status {reblog_of_id} to boost")
            status_id = self._new_id(created)
            status = _Status(
                id=status_id,
                account_id=account.id,
                text="" if boosted else text,
                created_at=created,
                language=None if boosted else lang,
                visibility=visibility,
                spoiler_text="" if boosted else spoiler_text,
                sensitive=sensitive,
                in_reply_to_id=parent.id if parent else None,
                in_reply_to_account_id=parent.account_id if parent else None,
                reblog_of_id=boosted.id if boosted else None,
                remote_id=self._remote_id(status_id) if account.domain else None,
                tags=[] if boosted else _tags(text),
                mentioned_account_ids=[] if boosted else self._mentioned(text),
                replies_count=replies_count,
                reblogs_count=reblogs_count,
                favourites_count=favourites_count,
                application=None if account.domain else "Web",
            )
            self._statuses[status_id] = status
            if account.last_status_at is None or created > account.last_status_at:
                account.last_status_at = created
            if parent is not None:
                parent.replies_count += 1
            if boosted is not None:
                boosted.reblogs_count += 1
            return self._render_status(status)

    def add_raw_status(self, item: Any, *, created_at: datetime | str | None = None) -> None:
        """Serve `item` verbatim, placed by `created_at`, in every search and tag timeline."""
        created = _parse_time(created_at) or self.now()
        with self._lock:
            self._raw.append(_Raw(self._new_id(created), copy.deepcopy(item)))

    def status(self, status_id: str | int) -> dict[str, Any] | None:
        """A stored status as the API renders it, or None."""
        with self._lock:
            stored = self._statuses.get(int(status_id))
            return self._render_status(stored) if stored else None

    def _new_id(self, created: datetime) -> int:
        # Mastodon::Snowflake: milliseconds in the upper bits, a sequence in the lower 16.
        self._sequence += 1
        ms = (as_utc(created) - _EPOCH) // timedelta(milliseconds=1)
        return (ms << 16) | (self._sequence & 0xFFFF)

    @staticmethod
    def _remote_id(status_id: int) -> str:
        # The remote server numbered it itself: same moment, different low bits.
        return str(status_id ^ 0x5A5A)

    def _mentioned(self, text: str) -> list[str]:
        found: list[str] = []
        for match in _MENTION_RE.finditer(text):
            account_id = self._account_for_mention(match.group(1), match.group(2))
            if account_id and account_id not in found:
                found.append(account_id)
        return found

    def _account_for_mention(self, username: str, domain: str | None) -> str | None:
        if domain and domain.lower() != self.domain:
            return self._accounts_by_acct.get(f"{username}@{domain}".lower())
        return self._accounts_by_acct.get(username.lower())

    # -- rendering --

    def _account_urls(self, account: _Account) -> tuple[str, str]:
        host = account.domain or self.domain
        return f"https://{host}/@{account.username}", f"https://{host}/users/{account.username}"

    def _render_account(self, account: _Account) -> dict[str, Any]:
        url, uri = self._account_urls(account)
        avatar = f"https://{self.domain}/avatars/original/missing.png"
        last_status = account.last_status_at
        return {
            "id": account.id,
            "username": account.username,
            "acct": f"{account.username}@{account.domain}" if account.domain else account.username,
            "display_name": account.display_name,
            "locked": False,
            "bot": account.bot,
            "discoverable": account.discoverable,
            "indexable": account.indexable,
            "group": False,
            "created_at": as_utc(account.created_at)
            .replace(hour=0, minute=0, second=0, microsecond=0)
            .strftime("%Y-%m-%dT00:00:00.000Z"),
            "note": f"<p>{html.escape(account.note)}</p>" if account.note else "",
            "url": url,
            "uri": uri,
            "avatar": avatar,
            "avatar_static": avatar,
            "header": f"https://{self.domain}/headers/original/missing.png",
            "header_static": f"https://{self.domain}/headers/original/missing.png",
            "followers_count": account.followers_count,
            "following_count": account.following_count,
            "statuses_count": account.statuses_count,
            "last_status_at": last_status.strftime("%Y-%m-%d") if last_status else None,
            "hide_collections": False,
            "noindex": not account.indexable,
            "emojis": [],
            "roles": [],
            "fields": [],
        }

    def _status_urls(self, status: _Status, account: _Account) -> tuple[str, str]:
        host = account.domain or self.domain
        number = status.remote_id or str(status.id)
        uri = f"https://{host}/users/{account.username}/statuses/{number}"
        if status.reblog_of_id is not None:
            return uri + "/activity", uri + "/activity"
        return f"https://{host}/@{account.username}/{number}", uri

    def _render_status(self, status: _Status) -> dict[str, Any]:
        account = self._accounts[status.account_id]
        url, uri = self._status_urls(status, account)
        boosted = self._statuses.get(status.reblog_of_id) if status.reblog_of_id else None
        return {
            "id": str(status.id),
            "created_at": mastodon_time(status.created_at),
            "in_reply_to_id": str(status.in_reply_to_id) if status.in_reply_to_id else None,
            "in_reply_to_account_id": status.in_reply_to_account_id,
            "sensitive": status.sensitive,
            "spoiler_text": status.spoiler_text,
            "visibility": status.visibility,
            "language": status.language,
            "uri": uri,
            "url": url,
            "replies_count": status.replies_count,
            "reblogs_count": status.reblogs_count,
            "favourites_count": status.favourites_count,
            "quotes_count": 0,
            "edited_at": None,
            "content": self._render_content(status.text),
            "reblog": self._render_status(boosted) if boosted else None,
            "application": {"name": status.application, "website": None}
            if status.application
            else None,
            "account": self._render_account(account),
            "media_attachments": [],
            "mentions": [
                self._render_mention(self._accounts[a]) for a in status.mentioned_account_ids
            ],
            "tags": [
                {"name": tag, "url": f"https://{self.domain}/tags/{tag}"} for tag in status.tags
            ],
            "emojis": [],
            "quote": None,
            "card": None,
            "poll": None,
        }

    def _render_mention(self, account: _Account) -> dict[str, Any]:
        url, _ = self._account_urls(account)
        acct = f"{account.username}@{account.domain}" if account.domain else account.username
        return {"id": account.id, "username": account.username, "url": url, "acct": acct}

    def _render_content(self, text: str) -> str:
        """TextFormatter, in short: escaped text, links, mentions and hashtags, <p> and <br />."""
        if not text:
            return ""
        paragraphs = [p for p in re.split(r"\n\s*\n", text.replace("\r\n", "\n")) if p.strip()]
        return "".join(
            "<p>"
            + "<br />".join(self._render_line(line) for line in p.strip("\n").split("\n"))
            + "</p>"
            for p in paragraphs
        )

    def _render_line(self, line: str) -> str:
        out: list[str] = []
        position = 0
        for match in _TOKEN_RE.finditer(line):
            out.append(html.escape(line[position : match.start()]))
            out.append(self._render_token(match.group(0)))
            position = match.end()
        out.append(html.escape(line[position:]))
        return "".join(out)

    def _render_token(self, token: str) -> str:
        if token.startswith("http"):
            scheme, _, rest = token.partition("://")
            shown, hidden = (rest[:30], rest[30:]) if len(rest) > 30 else (rest, "")
            css = "ellipsis" if hidden else ""
            return (
                f'<a href="{html.escape(token)}" target="_blank" rel="nofollow noopener" '
                f'translate="no"><span class="invisible">{html.escape(scheme)}://</span>'
                f'<span class="{css}">{html.escape(shown)}</span>'
                f'<span class="invisible">{html.escape(hidden)}</span></a>'
            )
        if token.startswith("#"):
            tag = token[1:]
            href = f"https://{self.domain}/tags/{quote(tag.lower())}"
            return f'<a href="{href}" class="mention hashtag" rel="tag">#<span>{html.escape(tag)}</span></a>'
        mention = _MENTION_RE.fullmatch(token)
        account_id = (
            self._account_for_mention(mention.group(1), mention.group(2)) if mention else None
        )
        if account_id is None:
            return html.escape(token)
        account = self._accounts[account_id]
        url, _ = self._account_urls(account)
        return (
            f'<span class="h-card" translate="no"><a href="{url}" class="u-url mention">'
            f"@<span>{html.escape(account.username)}</span></a></span>"
        )

    # -- HTTP --

    def routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("GET", r"/api/v1/instance/?", self._instance_v1),
            ("GET", r"/api/v2/instance/?", self._instance_v2),
            ("GET", r"/api/v2/search/?", self._search),
            ("GET", r"/api/v1/timelines/tag/(?P<hashtag>[^/]+)/?", self._tag_timeline),
            ("GET", r"/api/v1/accounts/lookup/?", self._account_lookup),
            ("GET", r"/api/v1/accounts/verify_credentials/?", self._verify_credentials),
            ("GET", r"/api/v1/accounts/(?P<account_id>[^/]+)/statuses/?", self._account_statuses),
            ("GET", r"/api/v1/statuses/?", self._statuses_index),
            ("GET", r"/api/v1/statuses/(?P<status_id>[^/]+)/?", self._status_show),
            ("GET", r"/api/v1/statuses/(?P<status_id>[^/]+)/source/?", self._status_source),
            ("POST", r"/api/v1/statuses/?", self._create_status),
        ]

    def error_answer(self, status: int) -> Answer:
        return json_answer(status, {"error": ERROR_WORDS.get(status, "Error")})

    def not_found(self, request: Request) -> Answer:
        return json_answer(404, {"error": NOT_FOUND})

    def _caller(
        self, request: Request, limits: dict[str, str], *, scope: str, user_required: bool
    ) -> _Token | None:
        """Doorkeeper: a token, when given, must be valid and carry `scope` (or its family)."""
        token = request.bearer_token
        if not token:
            if user_required:
                raise _error(401, "This method requires an authenticated user", limits)
            return None
        with self._lock:
            found = self._tokens.get(token)
        if found is None:
            raise _error(401, INVALID_TOKEN, limits)
        if scope not in found.scopes and scope.split(":")[0] not in found.scopes:
            raise _error(403, OUTSIDE_SCOPES, limits)
        return found

    def _spend(self, request: Request, bucket: str = "api") -> dict[str, str]:
        """Rack::Attack: one call from the caller's window; 429 when none is left."""
        caller = request.bearer_token or "ip:127.0.0.1"
        now = self.now()
        with self._lock:
            window = self._windows.get((bucket, caller))
            if window is None:
                window = self._windows[(bucket, caller)] = RateWindow(
                    self.rate_limit, self.rate_window_seconds
                )
            allowed = window.spend(now)
            headers = {
                "X-RateLimit-Limit": str(window.limit),
                "X-RateLimit-Remaining": str(window.remaining),
                "X-RateLimit-Reset": datetime.fromtimestamp(window.reset_at, tz=UTC)
                .isoformat(timespec="microseconds")
                .replace("+00:00", "Z"),
            }
        if not allowed:
            raise _error(429, TOO_MANY_REQUESTS, headers)
        return headers

    def _answer(
        self, request: Request, body: Any, limits: dict[str, str], **headers: str
    ) -> Answer:
        try:
            return json_answer(200, body, {**limits, **headers})
        except UnicodeEncodeError:
            # A raw item holding a lone surrogate cannot be UTF-8: send it as a \ud800 escape.
            return Answer(200, json.dumps(body).encode(), JSON, {**limits, **headers})

    # instance

    def _instance_v1(self, request: Request) -> Answer:
        limits = self._spend(request)
        with self._lock:
            brand = self._render_account(self._accounts[self.brand_account_id])
        return self._answer(
            request,
            {
                "uri": self.domain,
                "title": "Earshot's Mastodon simulator",
                "short_description": "A local stand-in for a Mastodon server.",
                "description": "A local stand-in for a Mastodon server.",
                "email": f"admin@{self.domain}",
                "version": VERSION,
                "urls": {"streaming_api": f"wss://{self.domain}"},
                "stats": {"user_count": 1, "status_count": len(self._statuses), "domain_count": 1},
                "thumbnail": None,
                "languages": ["en"],
                "registrations": False,
                "approval_required": False,
                "invites_enabled": False,
                "configuration": self._configuration(),
                "contact_account": brand,
                "rules": [],
            },
            limits,
        )

    def _instance_v2(self, request: Request) -> Answer:
        limits = self._spend(request)
        with self._lock:
            brand = self._render_account(self._accounts[self.brand_account_id])
        feed_access = "public" if self.public_hashtag_timelines else "authenticated"
        configuration = {
            **self._configuration(),
            "urls": {"streaming": f"wss://{self.domain}", "status": None},
            "translation": {"enabled": False},
            "timelines_access": {
                "live_feeds": {"local": "public", "remote": "public"},
                "hashtag_feeds": {"local": feed_access, "remote": feed_access},
                "trending_link_feeds": {"local": "public", "remote": "public"},
            },
        }
        return self._answer(
            request,
            {
                "domain": self.domain,
                "title": "Earshot's Mastodon simulator",
                "version": VERSION,
                "source_url": "https://github.com/mastodon/mastodon",
                "description": "A local stand-in for a Mastodon server.",
                "usage": {"users": {"active_month": 1}},
                "thumbnail": {"url": f"https://{self.domain}/packs/media/images/preview.png"},
                "icon": [],
                "languages": ["en"],
                "configuration": configuration,
                "registrations": {"enabled": False, "approval_required": False, "message": None},
                "api_versions": {"mastodon": API_VERSION},
                "contact": {"email": f"admin@{self.domain}", "account": brand},
                "rules": [],
            },
            limits,
        )

    def _configuration(self) -> dict[str, Any]:
        return {
            "accounts": {"max_featured_tags": 10, "max_pinned_statuses": 5},
            "statuses": {
                "max_characters": self.max_characters,
                "max_media_attachments": 4,
                "characters_reserved_per_url": CHARACTERS_RESERVED_PER_URL,
            },
            "media_attachments": {"supported_mime_types": ["image/jpeg", "image/png"]},
            "polls": {
                "max_options": 4,
                "max_characters_per_option": 50,
                "min_expiration": 300,
                "max_expiration": 2629746,
            },
        }

    # search

    def _search(self, request: Request) -> Answer:
        limits = self._spend(request)
        caller = self._caller(request, limits, scope="read:search", user_required=False)
        query = request.query.get("q", "")
        if not query.strip():
            raise _error(400, "param is missing or the value is empty: q", limits)
        if caller is None and request.query.get("offset"):
            raise _error(401, OFFSET_NEEDS_USER, limits)
        if caller is None and _truthy(request.query.get("resolve")):
            raise _error(401, RESOLVE_NEEDS_USER, limits)
        kind = request.query.get("type")
        statuses: list[Any] = []
        if kind in (None, "", "statuses") and caller is not None:
            statuses = self._search_statuses(request, query, caller)
        return self._answer(request, {"accounts": [], "statuses": statuses, "hashtags": []}, limits)

    def _search_statuses(self, request: Request, query: str, caller: _Token) -> list[Any]:
        wanted = _words(query)
        limit = _limit(request)
        offset = ruby_to_i(request.query.get("offset"))
        # StatusesSearchService turns min_id/max_id into after:/before: a snowflake's time
        # cut to the second (iso8601 without fraction), compared with created_at.
        after = before = None
        if "min_id" in request.query:
            after = _whole_second(snowflake_time(ruby_to_i(request.query["min_id"])))
        if "max_id" in request.query:
            before = _whole_second(snowflake_time(ruby_to_i(request.query["max_id"])))
        now = self.now()
        with self._lock:
            entries: list[tuple[int, Any]] = []
            for status in self._statuses.values():
                if status.reblog_of_id is not None or status.created_at > now:
                    continue
                if not self._searchable_by(status, caller):
                    continue
                if not wanted <= _words(f"{status.spoiler_text} {status.text}"):
                    continue
                if after is not None and not status.created_at > after:
                    continue
                if before is not None and not status.created_at < before:
                    continue
                entries.append((status.id, status))
            for raw in self._raw:
                created = snowflake_time(raw.sort_id)
                if created > now:
                    continue
                if (after is not None and not created > after) or (
                    before is not None and not created < before
                ):
                    continue
                entries.append((raw.sort_id, raw))
            entries.sort(key=lambda entry: entry[0], reverse=True)
            return [self._render_entry(entry) for _, entry in entries[offset : offset + limit]]

    def _searchable_by(self, status: _Status, caller: _Token) -> bool:
        if (
            status.account_id == caller.account_id
            or caller.account_id in status.mentioned_account_ids
        ):
            return True
        return status.visibility == "public" and self._accounts[status.account_id].indexable

    def _render_entry(self, entry: _Status | _Raw) -> Any:
        return copy.deepcopy(entry.item) if isinstance(entry, _Raw) else self._render_status(entry)

    # timelines

    def _listing(self, request: Request) -> _Listing:
        query = request.query
        return _Listing(
            limit=_limit(request),
            max_id=ruby_to_i(query["max_id"]) if query.get("max_id") else None,
            since_id=ruby_to_i(query["since_id"]) if query.get("since_id") else None,
            min_id=ruby_to_i(query["min_id"]) if query.get("min_id") else None,
        )

    def _paginate(
        self, request: Request, entries: list[tuple[int, Any]], listing: _Listing
    ) -> tuple[list[Any], str]:
        """paginate_by_id: newest first down from max_id to since_id, or with min_id the
        `limit` entries just above it (then shown newest first). Returns items and Link."""
        entries = [
            e
            for e in entries
            if (listing.max_id is None or e[0] < listing.max_id)
            and (listing.since_id is None or e[0] > listing.since_id)
            and (listing.min_id is None or e[0] > listing.min_id)
        ]
        if listing.min_id is not None:
            page = sorted(entries, key=lambda e: e[0])[: listing.limit]
            page.reverse()
        else:
            page = sorted(entries, key=lambda e: e[0], reverse=True)[: listing.limit]
        items = [self._render_entry(entry) for _, entry in page]
        link = ""
        if page:
            base = (
                f"http://{request.headers.get('Host') or f'{self.host}:{self.port}'}{request.path}"
            )
            link = (
                f'<{base}?max_id={page[-1][0]}>; rel="next", '
                f'<{base}?min_id={page[0][0]}>; rel="prev"'
            )
        return items, link

    def _tag_timeline(self, request: Request, hashtag: str) -> Answer:
        limits = self._spend(request)
        self._caller(
            request, limits, scope="read:statuses", user_required=not self.public_hashtag_timelines
        )
        tag = unquote(hashtag).lower()
        now = self.now()
        with self._lock:
            entries: list[tuple[int, Any]] = [
                (s.id, s)
                for s in self._statuses.values()
                if tag in s.tags and s.visibility == "public" and s.created_at <= now
            ]
            entries += [(r.sort_id, r) for r in self._raw if snowflake_time(r.sort_id) <= now]
            items, link = self._paginate(request, entries, self._listing(request))
        return self._answer(request, items, limits, **({"Link": link} if link else {}))

    def _account_statuses(self, request: Request, account_id: str) -> Answer:
        limits = self._spend(request)
        caller = self._caller(request, limits, scope="read:statuses", user_required=False)
        now = self.now()
        with self._lock:
            if account_id not in self._accounts:
                raise _error(404, NOT_FOUND, limits)
            own = caller is not None and caller.account_id == account_id
            visible = ("public", "unlisted", "private", "direct") if own else ("public", "unlisted")
            exclude_replies = _truthy(request.query.get("exclude_replies"))
            exclude_reblogs = _truthy(request.query.get("exclude_reblogs"))
            entries: list[tuple[int, Any]] = [
                (s.id, s)
                for s in self._statuses.values()
                if s.account_id == account_id
                and s.visibility in visible
                and s.created_at <= now
                and not (
                    exclude_replies and s.in_reply_to_id and s.in_reply_to_account_id != account_id
                )
                and not (exclude_reblogs and s.reblog_of_id)
            ]
            items, link = self._paginate(request, entries, self._listing(request))
        return self._answer(request, items, limits, **({"Link": link} if link else {}))

    # accounts and statuses

    def _account_lookup(self, request: Request) -> Answer:
        limits = self._spend(request)
        acct = (request.query.get("acct") or "").lstrip("@")
        username, _, domain = acct.partition("@")
        with self._lock:
            account_id = self._account_for_mention(username, domain or None) if username else None
            if account_id is None:
                raise _error(404, NOT_FOUND, limits)
            return self._answer(request, self._render_account(self._accounts[account_id]), limits)

    def _verify_credentials(self, request: Request) -> Answer:
        limits = self._spend(request)
        caller = self._caller(request, limits, scope="read:accounts", user_required=True)
        with self._lock:
            assert caller is not None
            return self._answer(
                request, self._render_account(self._accounts[caller.account_id]), limits
            )

    def _status_show(self, request: Request, status_id: str) -> Answer:
        limits = self._spend(request)
        self._caller(request, limits, scope="read:statuses", user_required=False)
        with self._lock:
            status = self._statuses.get(ruby_to_i(status_id))
            if status is None or status.visibility == "direct":
                raise _error(404, NOT_FOUND, limits)
            return self._answer(request, self._render_status(status), limits)

    def _status_source(self, request: Request, status_id: str) -> Answer:
        """What the author typed, for editing: only the author's own token may read it."""
        limits = self._spend(request)
        caller = self._caller(request, limits, scope="read:statuses", user_required=True)
        assert caller is not None
        with self._lock:
            status = self._statuses.get(ruby_to_i(status_id))
            if status is None or status.account_id != caller.account_id:
                raise _error(404, NOT_FOUND, limits)
            source = {
                "id": str(status.id),
                "text": status.text,
                "spoiler_text": status.spoiler_text,
            }
            return self._answer(request, source, limits)

    def _statuses_index(self, request: Request) -> Answer:
        limits = self._spend(request)
        self._caller(request, limits, scope="read:statuses", user_required=False)
        ids = request.query_lists.get("id[]", [])
        with self._lock:
            found = [self._statuses.get(ruby_to_i(i)) for i in ids]
            return self._answer(
                request,
                [self._render_status(s) for s in found if s and s.visibility != "direct"],
                limits,
            )

    def _create_status(self, request: Request) -> Answer:
        limits = self._spend(request)
        caller = self._caller(request, limits, scope="write:statuses", user_required=True)
        assert caller is not None
        form = request.form()
        key = request.headers.get("Idempotency-Key") or ""
        now = self.now()
        with self._lock:
            if key:
                earlier = self._idempotency.get((caller.account_id, key))
                if earlier and now - earlier.stored_at < timedelta(seconds=IDEMPOTENCY_SECONDS):
                    # The same request again: Mastodon answers with the status it made then.
                    return self._answer(
                        request, self._render_status(self._statuses[earlier.status_id]), limits
                    )
            parent_id = form.get("in_reply_to_id") or ""
            parent = self._statuses.get(ruby_to_i(parent_id)) if parent_id else None
            if parent_id and (parent is None or parent.visibility == "direct"):
                raise _error(404, REPLY_TARGET_MISSING, limits)
            text = form.get("status", "")
            if not text.strip():
                raise _error(422, TEXT_BLANK, limits)
            if _weighted_length(text) > self.max_characters:
                message = (
                    f"Validation failed: Text character limit of {self.max_characters} exceeded"
                )
                raise _error(422, message, limits)
            visibility = form.get("visibility") or "public"
            if visibility not in ("public", "unlisted", "private", "direct"):
                raise _error(
                    422, "Validation failed: Visibility is not included in the list", limits
                )
            status = self.add_post(
                text=text,
                author=None
                if caller.account_id == self.brand_account_id
                else self._author_of(caller),
                created_at=now,
                lang=form.get("language") or "en",
                visibility=visibility,
                spoiler_text=form.get("spoiler_text", ""),
                sensitive=_truthy(form.get("sensitive")),
                in_reply_to_id=parent.id if parent else None,
            )
            if key:
                self._idempotency[(caller.account_id, key)] = _Idempotent(int(status["id"]), now)
            self._received_posts.append(
                {
                    "id": status["id"],
                    "status": text,
                    "in_reply_to_id": str(parent.id) if parent else None,
                    "idempotency_key": key or None,
                    "received_at": now,
                }
            )
        return self._answer(request, status, limits)

    def _author_of(self, caller: _Token) -> dict[str, Any]:
        account = self._accounts[caller.account_id]
        return {
            "username": account.username,
            "domain": account.domain,
            "name": account.display_name,
        }

    # -- control --

    def _control(self, request: Request) -> Answer:
        """Adds POST /_sim/raw_statuses {"item": ..., "created_at": ...} to the base's."""
        if (request.method, request.path) == ("POST", "/_sim/raw_statuses"):
            payload = request.json()
            if not isinstance(payload, dict) or "item" not in payload:
                return json_answer(400, {"error": 'the body must be {"item": ...}'})
            self.add_raw_status(payload["item"], created_at=payload.get("created_at"))
            return json_answer(201, {"ok": True})
        return super()._control(request)


def _tags(text: str) -> list[str]:
    tags: list[str] = []
    for match in _HASHTAG_RE.finditer(text):
        tag = match.group(1).lower()
        if tag not in tags:
            tags.append(tag)
    return tags


def _whole_second(value: datetime) -> datetime:
    return value.replace(microsecond=0)


# --- command line -----------------------------------------------------------------------------

# Demo customers live on a few instances besides this one, as on the fediverse.
DEMO_REMOTE_DOMAINS = ("fosstodon.example", "hachyderm.example", "social.example", "")


def main(argv: list[str] | None = None) -> int:
    from listening.simulators.generator import iter_mentions

    parser = simulator_arguments(
        "A local Mastodon instance with demo posts about the brand", default_port=8766
    )
    parser.add_argument("--access-token", default="demo-mastodon-token")
    parser.add_argument("--domain", default=DEFAULT_DOMAIN, help="the instance's own domain")
    args = parser.parse_args(argv)
    simulator = MastodonApiSimulator(
        args.host,
        args.port,
        access_token=args.access_token,
        brand_username=args.brand_handle,
        brand_display_name=args.brand_name,
        domain=args.domain,
    )
    mentions = iter_mentions(
        brand_name=args.brand_name, brand_handle=args.brand_handle, seed=args.seed
    )

    def add(post: dict[str, Any], created_at: datetime) -> None:
        author = dict(post["author"])
        spread = _stable_fraction(str(author.get("username")))
        author["domain"] = DEMO_REMOTE_DOMAINS[int(spread * len(DEMO_REMOTE_DOMAINS))]
        simulator.add_post(
            text=post["text"], author=author, lang=post.get("lang"), created_at=created_at
        )

    return serve_with_demo_posts(simulator, args, mentions, add)


if __name__ == "__main__":
    raise SystemExit(main())
