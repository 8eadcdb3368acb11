"""A local Reddit API speaking Reddit's wire format, for tests, demos and development.

PRAW runs against it unmodified, with `oauth_url` and `reddit_url` both set to its address
(Reddit serves the token endpoint from www.reddit.com and the API from oauth.reddit.com;
here one server answers both). What it models:

- `POST /api/v1/access_token`: a script app's password grant, HTTP Basic with the app's id
  and secret. A wrong id or secret is a 401; a wrong password, or an account that is not a
  developer of the app, is a 200 with `{"error": "invalid_grant"}`, as Reddit answers.
- `GET /r/{subreddit}/search` (also `/search`): Listing JSON of t3 things, newest first for
  `sort=new`, with `q` (Lucene-ish: words, "phrases", AND/OR/NOT, -word, parentheses,
  author:/subreddit:/title:/selftext:/self:), `restrict_sr`, `t`, `limit` (max 100,
  default 25), `after`/`before` fullname anchors (an anchor no longer in the listing gives an
  empty listing, as on Reddit), `raw_json` (without it, &, < and > come HTML-escaped) and a
  reachable depth of 250 results. `r/a+b` searches several; `all` everything. An unknown
  subreddit redirects (302) to subreddit search, a private one is 403, a banned one 404.
- `GET /user/{username}/comments`: the account's t1 comments, newest first.
- `POST /api/comment` (thing_id, text, api_type=json): the comment in
  `{"json": {"errors": [], "data": {"things": [...]}}}`, or Reddit's errors
  (NO_TEXT, TOO_LONG over 10,000 characters, DELETED_LINK, DELETED_COMMENT, THREAD_LOCKED).
- `GET /api/v1/me`: the signed-in account.
- Every API answer carries `X-Ratelimit-Used`, `X-Ratelimit-Remaining` (a float) and
  `X-Ratelimit-Reset` (seconds to the end of the window), counted per OAuth client id
  (default 1000 per 600 s: Reddit's 100 a minute averaged over ten minutes); past the
  budget, 429. An unknown or expired bearer token is a 401 with `www-authenticate:
  Bearer realm="reddit", error="invalid_token"`.
- A generic User-Agent (empty, or nothing but library names such as python-requests or
  PRAW) gets a bare 429 without rate-limit headers on every endpoint: Reddit "drastically
  limits" default User-Agents rather than refusing them, and a 429 is what clients see.

Not modelled: relevance, hot and top ranking beyond simple orderings, stemming, NSFW and
quarantine filters, comment trees and votes, edits, the search index's lag, flairs, media.
Paths under /_sim/ are the simulator's own control surface (see `PlatformSimulator`).

Stdlib only, and no Django.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import html
import json
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

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

MAX_COMMENT_LENGTH = 10_000
MAX_QUERY_LENGTH = 512
MAX_LIMIT = 100
DEFAULT_LIMIT = 25
SEARCH_DEPTH = 250  # how far search paging reaches, as API users report it
TOKEN_LIFETIME_SECONDS = 86_400
_FIRST_ID = int("1c00000", 36)  # about where Reddit's post ids stand (seven base-36 digits)
_SUBREDDIT_RE = re.compile(r"^[A-Za-z0-9_]{2,21}$")
_USERNAME_RE = re.compile(r"^[A-Za-z0-9_-]{3,20}$")
_FULLNAME_RE = re.compile(r"^t([1-6])_([0-9a-z]{1,13})$")
_PRODUCT_TOKEN_RE = re.compile(r"[^\s/()]+/[^\s()]+")
_GENERIC_AGENT_WORDS = frozenset(
    (
        "python", "requests", "urllib", "urllib3", "httpx", "aiohttp", "curl", "wget", "java",
        "go", "http", "client", "okhttp", "axios", "node", "fetch", "mozilla", "praw",
        "prawcore", "bot", "script", "test", "app", "reddit", "api",
    )
)  # fmt: skip
_TIME_FILTERS = {
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
    "month": timedelta(days=31),
    "year": timedelta(days=366),
}
DELETED = "[deleted]"


def to_base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, remainder = divmod(number, 36)
        text = digits[remainder] + text
        if not number:
            return text


def account_id(username: str) -> str:
    """A stable base-36 account id for a username (Reddit's own are sequential)."""
    return to_base36(int(hashlib.sha256(username.lower().encode()).hexdigest()[:10], 16))


def as_utc(value: datetime | str | float | int | None, default: datetime) -> datetime:
    if value is None:
        return default
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def reddit_error(
    status: int, message: str, *, reason: str = "", headers: Mapping[str, str] | None = None
) -> ApiError:
    """Reddit's error body: {"message": ..., "error": status} (plus "reason" where it gives one)."""
    body: dict[str, Any] = {"message": message, "error": status}
    if reason:
        body = {"reason": reason, **body}
    return ApiError(json_answer(status, body, headers))


def _slug(title: str) -> str:
    words = re.findall(r"[a-z0-9]+", title.lower())
    return "_".join(words)[:50].strip("_") or "_"


def _is_generic_agent(agent: str) -> bool:
    """Empty, or nothing but library product tokens and generic words."""
    rest = _PRODUCT_TOKEN_RE.sub(" ", agent)
    words = re.findall(r"[a-z0-9]+", rest.lower())
    return not words or all(word in _GENERIC_AGENT_WORDS or word.isdigit() for word in words)


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "on", "yes")


def _legacy_escaped(value: Any) -> Any:
    """Without raw_json=1 Reddit escapes &, < and > in text, for old HTML clients."""
    if isinstance(value, str):
        return html.escape(value, quote=False)
    if isinstance(value, dict):
        return {k: _legacy_escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_legacy_escaped(v) for v in value]
    return value


def _listing(children: list[Any], *, after: str | None, before: str | None) -> dict[str, Any]:
    return {
        "kind": "Listing",
        "data": {
            "after": after,
            "dist": len(children),
            "modhash": "",
            "geo_filter": "",
            "children": children,
            "before": before,
        },
    }


def _answer(body: Any, headers: Mapping[str, str]) -> Answer:
    """JSON as Reddit sends it (UTF-8); text with lone surrogates goes out as \\u escapes."""
    try:
        payload = json.dumps(body, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        payload = json.dumps(body).encode()
    return Answer(200, payload, JSON, dict(headers))


# --- search queries ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Term:
    tokens: tuple[str, ...]
    field: str = ""  # "" = title and selftext


@dataclass(frozen=True)
class _Not:
    child: Any


@dataclass(frozen=True)
class _All:
    children: tuple[Any, ...]


@dataclass(frozen=True)
class _Any:
    children: tuple[Any, ...]


_QUERY_LEXEME_RE = re.compile(r'\s*(?:(\()|(\))|(-?)(?:([a-z_]+):)?(?:"([^"]*)"?|([^\s()"]+)))')
_FIELDS = {"author", "subreddit", "title", "selftext", "self"}


def _tokens(text: str) -> tuple[str, ...]:
    return tuple(re.findall(r"\w+", text.casefold()))


def parse_search_query(q: str) -> Any:
    """Lucene-ish, as far as Reddit's search box goes: AND binds tighter than OR."""
    lexemes: list[Any] = []
    position = 0
    while position < len(q):
        match = _QUERY_LEXEME_RE.match(q, position)
        if match is None or match.end() == position:
            break
        position = match.end()
        opening, closing, minus, field_name, phrase, word = match.groups()
        if opening or closing:
            lexemes.append(opening or closing)
            continue
        if phrase is None and word in ("AND", "OR", "NOT") and not minus and not field_name:
            lexemes.append(word)
            continue
        text = phrase if phrase is not None else word or ""
        if field_name and field_name not in _FIELDS:
            text, field_name = f"{field_name}:{text}", ""
        term = _Term(_tokens(text) if field_name != "self" else (text.lower(),), field_name or "")
        lexemes.append(_Not(term) if minus else term)
    node, _ = _parse_or(lexemes, 0)
    return node


def _parse_or(lexemes: list[Any], index: int) -> tuple[Any, int]:
    branches = []
    node, index = _parse_and(lexemes, index)
    branches.append(node)
    while index < len(lexemes) and lexemes[index] == "OR":
        node, index = _parse_and(lexemes, index + 1)
        branches.append(node)
    return (branches[0] if len(branches) == 1 else _Any(tuple(branches))), index


def _parse_and(lexemes: list[Any], index: int) -> tuple[Any, int]:
    children: list[Any] = []
    negate = False
    while index < len(lexemes) and lexemes[index] not in ("OR", ")"):
        lexeme = lexemes[index]
        index += 1
        if lexeme == "AND":
            continue
        if lexeme == "NOT":
            negate = True
            continue
        if lexeme == "(":
            lexeme, index = _parse_or(lexemes, index)
            if index < len(lexemes) and lexemes[index] == ")":
                index += 1
        children.append(_Not(lexeme) if negate else lexeme)
        negate = False
    return _All(tuple(children)), index


@dataclass
class _Document:
    title: tuple[str, ...]
    selftext: tuple[str, ...]
    author: str
    subreddit: str
    is_self: bool


def _contains(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    if not needle:
        return True
    width = len(needle)
    return any(haystack[i : i + width] == needle for i in range(len(haystack) - width + 1))


def search_matches(node: Any, doc: _Document) -> bool:
    match node:
        case _Term(tokens, "author"):
            return " ".join(tokens) == doc.author.lower()
        case _Term(tokens, "subreddit"):
            return " ".join(tokens) == doc.subreddit.lower()
        case _Term(tokens, "self"):
            return doc.is_self == (tokens[0] in ("yes", "true", "1"))
        case _Term(tokens, "title"):
            return _contains(doc.title, tokens)
        case _Term(tokens, "selftext"):
            return _contains(doc.selftext, tokens)
        case _Term(tokens):
            return _contains(doc.title, tokens) or _contains(doc.selftext, tokens)
        case _Not(child):
            return not search_matches(child, doc)
        case _All(children):
            return all(search_matches(child, doc) for child in children)
        case _Any(children):
            return any(search_matches(child, doc) for child in children)
    return False


# --- storage -----------------------------------------------------------------------------


@dataclass
class _Entry:
    """One item of a listing: a stored thing, or a raw item served exactly as given."""

    created: datetime
    key: tuple[float, int, int]  # (created_utc, base-36 id as a number, insertion order)
    anchor: str  # the fullname `after`/`before` point at
    item: Any  # the whole thing {"kind", "data"} (raw: whatever was given)
    raw: bool
    doc: _Document | None = None
    subreddit: str = ""
    removed: bool = False
    locked: bool = False
    author: str = ""


@dataclass
class _Token:
    client_id: str
    username: str
    expires_at: datetime


@dataclass
class _Subreddit:
    name: str
    access: str = "public"  # public | private | banned
    id: str = field(default="")


class RedditApiSimulator(PlatformSimulator):
    """Reddit's OAuth API for one script app and its developer account."""

    name = "Reddit"
    server_version = "snooserv"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        client_id: str = "sim-client-id",
        client_secret: str = "sim-client-secret",
        username: str = "NorthwindHelp",
        password: str = "sim-password",
        rate_limit: int = 1000,
        rate_window_seconds: int = 600,
        token_lifetime_seconds: int = TOKEN_LIFETIME_SECONDS,
        search_depth: int = SEARCH_DEPTH,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.username = username
        self.password = password
        self.rate_limit = rate_limit
        self.rate_window_seconds = rate_window_seconds
        self.token_lifetime_seconds = token_lifetime_seconds
        self.search_depth = search_depth
        super().__init__(host, port)

    # -- content --

    def reset_content(self) -> None:
        self._entries: list[_Entry] = []  # submissions and raw search items
        self._comments: list[_Entry] = []
        self._by_name: dict[str, _Entry] = {}
        self._subreddits: dict[str, _Subreddit] = {}
        self._tokens: dict[str, _Token] = {}
        self._windows: dict[str, RateWindow] = {}
        self._next_id = _FIRST_ID
        self._insertions = 0

    def add_subreddit(self, name: str, *, access: str = "public") -> None:
        """Make a subreddit exist (posts create theirs); `access`: public, private, banned."""
        if not _SUBREDDIT_RE.match(name) or access not in ("public", "private", "banned"):
            raise ValueError(f"not a subreddit name or access: {name!r}, {access!r}")
        with self._lock:
            known = self._subreddits.get(name.lower())
            if known is None:
                sub_id = to_base36(int(hashlib.sha256(name.lower().encode()).hexdigest()[:8], 16))
                self._subreddits[name.lower()] = _Subreddit(name, access, sub_id)
            else:
                known.access = access

    def add_post(
        self,
        *,
        title: str | None = None,
        text: str | None = None,
        selftext: str = "",
        author: str | Mapping[str, Any] = "some_redditor",
        subreddit: str = "NorthwindCoffee",
        created_at: datetime | str | float | None = None,
        id: str | None = None,
        lang: str | None = None,
        crosspost_of: str | None = None,
        num_comments: int = 0,
        score: int = 1,
        locked: bool = False,
    ) -> dict[str, Any]:
        """Store a submission; returns its t3 data as Reddit renders it.

        `text` (the demo generator's field) stands for the title when no title is given.
        `author` is a username, a generator author dict, or "[deleted]". `crosspost_of` is
        the fullname of a stored post this one crossposts.
        """
        title = title if title is not None else (text or "")
        username = author.get("username", "") if isinstance(author, Mapping) else author
        with self._lock:
            created = as_utc(created_at, self.now())
            self.add_subreddit(subreddit)
            sub = self._subreddits[subreddit.lower()]
            post_id = id or self._new_id()
            name = f"t3_{post_id}"
            if name in self._by_name:
                raise ValueError(f"post {name} is already stored")
            permalink = f"/r/{sub.name}/comments/{post_id}/{_slug(title)}/"
            data: dict[str, Any] = {
                "subreddit": sub.name,
                "subreddit_name_prefixed": f"r/{sub.name}",
                "subreddit_id": f"t5_{sub.id}",
                "title": title,
                "selftext": selftext,
                "author": username,
                "name": name,
                "id": post_id,
                "created": created.timestamp(),
                "created_utc": created.timestamp(),
                "permalink": permalink,
                "url": f"https://www.reddit.com{permalink}",
                "domain": f"self.{sub.name}",
                "is_self": True,
                "num_comments": num_comments,
                "score": score,
                "ups": score,
                "upvote_ratio": 1.0,
                "over_18": False,
                "locked": locked,
                "stickied": False,
                "archived": False,
            }
            if username != DELETED:
                data["author_fullname"] = f"t2_{account_id(username)}"
            if lang is not None:
                data["lang"] = lang
            if crosspost_of is not None:
                parent = self._by_name.get(crosspost_of)
                if parent is None or parent.raw:
                    raise ValueError(f"no stored post {crosspost_of} to crosspost")
                data.update(
                    crosspost_parent=crosspost_of,
                    crosspost_parent_list=[copy.deepcopy(parent.item["data"])],
                    is_self=False,
                    selftext="",
                    url=parent.item["data"]["url"],
                    domain=parent.item["data"]["domain"],
                )
            doc = _Document(
                title=_tokens(title),
                selftext=_tokens(data["selftext"]),
                author=username,
                subreddit=sub.name,
                is_self=data["is_self"],
            )
            entry = self._insert(
                self._entries,
                created,
                int(post_id, 36),
                name,
                {"kind": "t3", "data": data},
                doc=doc,
                subreddit=sub.name,
                locked=locked,
                author=username,
            )
            self._by_name[name] = entry
            return copy.deepcopy(data)

    def add_raw_item(self, item: Any, *, created_at: datetime | None = None) -> None:
        """Serve `item` verbatim among search results (whatever the query or subreddit),
        placed by `created_at`: for malformed-item tests."""
        with self._lock:
            anchor = f"t3_{self._new_id()}"
            data = item.get("data") if isinstance(item, dict) else None
            name = data.get("name") if isinstance(data, dict) else None
            if isinstance(name, str) and _FULLNAME_RE.match(name) and name not in self._by_name:
                anchor = name
            self._insert(
                self._entries, as_utc(created_at, self.now()), 0, anchor, copy.deepcopy(item),
                raw=True,
            )  # fmt: skip

    def add_comment(
        self,
        *,
        parent_id: str,
        body: str,
        author: str | None = None,
        created_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Store a comment (one the brand wrote on Reddit itself, say); returns its t1 data."""
        with self._lock:
            parent = self._by_name.get(parent_id)
            if parent is None or parent.raw:
                raise ValueError(f"no stored thing {parent_id}")
            return self._store_comment(
                parent, body, author or self.username, as_utc(created_at, self.now())
            )

    def remove(self, fullname: str) -> None:
        """Delete or remove a post or comment: gone from listings, as an anchor too."""
        with self._lock:
            self._by_name[fullname].removed = True

    def thing(self, fullname: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._by_name.get(fullname)
            return copy.deepcopy(entry.item["data"]) if entry and not entry.raw else None

    def _new_id(self) -> str:
        self._next_id += 1
        return to_base36(self._next_id)

    def _insert(
        self,
        entries: list[_Entry],
        created: datetime,
        number: int,
        anchor: str,
        item: Any,
        **fields: Any,
    ) -> _Entry:
        self._insertions += 1
        entry = _Entry(
            created=created,
            key=(created.timestamp(), number, self._insertions),
            anchor=anchor,
            item=item,
            raw=fields.pop("raw", False),
            **fields,
        )
        entries.append(entry)
        entries.sort(key=lambda e: e.key, reverse=True)  # newest first
        return entry

    def _store_comment(
        self, parent: _Entry, body: str, author: str, created: datetime
    ) -> dict[str, Any]:
        parent_data = parent.item["data"]
        link_id = parent_data.get("link_id") or parent_data["name"]
        thread = self._by_name[link_id]
        thread_data = thread.item["data"]
        comment_id = self._new_id()
        name = f"t1_{comment_id}"
        data = {
            "subreddit": thread_data["subreddit"],
            "subreddit_id": thread_data["subreddit_id"],
            "subreddit_name_prefixed": thread_data["subreddit_name_prefixed"],
            "link_id": link_id,
            "link_title": thread_data["title"],
            "link_permalink": thread_data["url"],
            "link_author": thread_data["author"],
            "parent_id": parent_data["name"],
            "body": body,
            "author": author,
            "author_fullname": f"t2_{account_id(author)}",
            "name": name,
            "id": comment_id,
            "created": created.timestamp(),
            "created_utc": created.timestamp(),
            "permalink": f"{thread_data['permalink']}{comment_id}/",
            "score": 1,
            "ups": 1,
            "replies": "",
            "locked": False,
            "stickied": False,
        }
        entry = self._insert(
            self._comments,
            created,
            int(comment_id, 36),
            name,
            {"kind": "t1", "data": data},
            subreddit=thread_data["subreddit"],
            author=author,
        )
        self._by_name[name] = entry
        thread_data["num_comments"] += 1
        return copy.deepcopy(data)

    # -- HTTP --

    def routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("POST", r"/api/v1/access_token/?", self._access_token),
            ("GET", r"/api/v1/me/?", self._me),
            ("GET", r"/r/(?P<subreddit>[^/]+)/search(?:/|\.json)?", self._search),
            ("GET", r"/search(?:/|\.json)?", self._search),
            ("GET", r"/user/(?P<username>[^/]+)/comments(?:/|\.json)?", self._user_comments),
            ("POST", r"/api/comment/?", self._comment),
        ]

    def handle(self, request: Request) -> Answer | None:
        answer = super().handle(request)
        # prawcore asks for `Connection: close` on the token request. The shared HTTP shell
        # then hangs up without saying so, and a client would pool the dead connection;
        # Reddit answers with the header, so the client knows.
        if answer is not None and (request.headers.get("Connection") or "").lower() == "close":
            answer.headers["Connection"] = "close"
        return answer

    def error_answer(self, status: int) -> Answer:
        headers = {}
        if status == 401:
            headers["www-authenticate"] = 'Bearer realm="reddit", error="invalid_token"'
        return json_answer(status, {"message": HTTPStatus(status).phrase, "error": status}, headers)

    def _check_user_agent(self, request: Request) -> None:
        if _is_generic_agent(request.headers.get("User-Agent") or ""):
            raise reddit_error(429, "Too Many Requests")

    def _access_token(self, request: Request) -> Answer:
        self._check_user_agent(request)
        scheme, _, credential = (request.headers.get("Authorization") or "").partition(" ")
        try:
            decoded = base64.b64decode(credential, validate=True).decode()
        except ValueError:
            decoded = ""
        app_id, _, app_secret = decoded.partition(":")
        if scheme.lower() != "basic" or (app_id, app_secret) != (
            self.client_id,
            self.client_secret,
        ):
            raise reddit_error(401, "Unauthorized")
        form = request.form()
        grant = form.get("grant_type", "")
        if grant != "password":
            return json_answer(200, {"error": "unsupported_grant_type"})
        if (form.get("username", "").lower(), form.get("password", "")) != (
            self.username.lower(),
            self.password,
        ):
            return json_answer(200, {"error": "invalid_grant"})
        token = "sim-" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = _Token(
                client_id=app_id,
                username=self.username,
                expires_at=self.now() + timedelta(seconds=self.token_lifetime_seconds),
            )
        return json_answer(
            200,
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": self.token_lifetime_seconds,
                "scope": form.get("scope") or "*",
            },
        )

    def _gate(self, request: Request) -> tuple[_Token, dict[str, str]]:
        """User-Agent, bearer token and budget, in Reddit's order; the rate-limit headers."""
        self._check_user_agent(request)
        with self._lock:
            token = self._tokens.get(request.bearer_token)
            now = self.now()
            if token is None or token.expires_at <= now:
                raise ApiError(self.error_answer(401))
            window = self._windows.setdefault(
                token.client_id, RateWindow(self.rate_limit, self.rate_window_seconds)
            )
            allowed = window.spend(now)
            headers = {
                "x-ratelimit-used": str(window.limit - window.remaining),
                "x-ratelimit-remaining": f"{float(window.remaining):.1f}",
                "x-ratelimit-reset": str(max(0, math.ceil(window.reset_at - now.timestamp()))),
            }
        if not allowed:
            raise reddit_error(429, "Too Many Requests", headers=headers)
        return token, headers

    def _me(self, request: Request) -> Answer:
        token, headers = self._gate(request)
        user = {
            "name": token.username,
            "id": account_id(token.username),
            "created_utc": 1_500_000_000.0,
            "link_karma": 1,
            "comment_karma": 1,
            "is_employee": False,
            "verified": True,
        }
        return _answer(user, headers)

    def _search(self, request: Request, subreddit: str = "all") -> Answer:
        _, headers = self._gate(request)
        try:
            with self._lock:
                return _answer(self._search_body(request, subreddit), headers)
        except ApiError as error:
            error.answer.headers.update(headers)
            raise

    def _search_body(self, request: Request, subreddit: str) -> dict[str, Any]:
        names = subreddit.split("+")
        everywhere = any(name.lower() in ("all", "popular") for name in names)
        if not everywhere:
            for name in names:
                self._check_subreddit(name)
        query = request.query
        q = query.get("q", "")
        if len(q) > MAX_QUERY_LENGTH:
            raise reddit_error(400, "Bad Request")
        types = set((query.get("type") or "link").split(","))
        restrict = not everywhere and _truthy(query.get("restrict_sr"))
        wanted_subs = {name.lower() for name in names}
        span = _TIME_FILTERS.get(query.get("t", "all"))
        now = self.now()
        node = parse_search_query(q) if q.strip() else None
        matched = [
            entry
            for entry in self._entries
            if not entry.removed
            and entry.created <= now
            and (span is None or entry.created >= now - span)
            and (
                entry.raw
                or (
                    node is not None
                    and "link" in types
                    and (not restrict or entry.subreddit.lower() in wanted_subs)
                    and self._visible(entry)
                    and entry.doc is not None
                    and search_matches(node, entry.doc)
                )
            )
        ]
        matched = self._ordered(matched, query.get("sort", "relevance"))[: self.search_depth]
        return self._page(matched, request)

    def _visible(self, entry: _Entry) -> bool:
        sub = self._subreddits.get(entry.subreddit.lower())
        return sub is None or sub.access == "public"

    def _check_subreddit(self, name: str) -> None:
        sub = self._subreddits.get(name.lower()) if _SUBREDDIT_RE.match(name) else None
        if sub is None:
            answer = json_answer(302, {})
            answer.headers["location"] = f"/subreddits/search.json?q={quote(name)}"
            raise ApiError(answer)
        if sub.access == "private":
            raise reddit_error(403, "Forbidden", reason="private")
        if sub.access == "banned":
            raise reddit_error(404, "Not Found", reason="banned")

    @staticmethod
    def _ordered(entries: list[_Entry], sort: str) -> list[_Entry]:
        # Entries are kept newest first; "top" and "comments" reorder stored posts, raw
        # items count as zero. Relevance and hot are not ranked: they come newest first.
        def data_int(entry: _Entry, name: str) -> int:
            data = entry.item.get("data") if isinstance(entry.item, dict) else None
            value = data.get(name) if isinstance(data, dict) and not entry.raw else 0
            return value if isinstance(value, int) else 0

        if sort == "top":
            return sorted(entries, key=lambda e: data_int(e, "score"), reverse=True)
        if sort == "comments":
            return sorted(entries, key=lambda e: data_int(e, "num_comments"), reverse=True)
        return entries

    def _page(self, matched: list[_Entry], request: Request) -> dict[str, Any]:
        """One page of `matched` (in listing order) by limit and the after/before anchors."""
        query = request.query
        try:
            limit = min(MAX_LIMIT, max(1, int(query.get("limit", DEFAULT_LIMIT))))
        except ValueError:
            limit = DEFAULT_LIMIT
        anchors = [entry.anchor for entry in matched]
        after, before = query.get("after"), query.get("before")
        if after:
            if after not in anchors:
                return _listing([], after=None, before=None)
            start = anchors.index(after) + 1
            window = matched[start : start + limit]
            more = start + limit < len(matched)
        elif before:
            if before not in anchors:
                return _listing([], after=None, before=None)
            end = anchors.index(before)
            window = matched[max(0, end - limit) : end]
            more = True
        else:
            window = matched[:limit]
            more = limit < len(matched)
        children = [entry.item for entry in window]
        if query.get("raw_json") != "1":
            children = [
                entry.item if entry.raw else _legacy_escaped(entry.item) for entry in window
            ]
        return _listing(
            children,
            after=window[-1].anchor if window and more else None,
            before=window[0].anchor if window and (after or before) else None,
        )

    def _user_comments(self, request: Request, username: str) -> Answer:
        _, headers = self._gate(request)
        with self._lock:
            known = {entry.author.lower() for entry in self._comments} | {self.username.lower()}
            known |= {entry.author.lower() for entry in self._entries if not entry.raw}
            if not _USERNAME_RE.match(username) or username.lower() not in known:
                raise reddit_error(404, "Not Found", headers=headers)
            matched = [
                entry
                for entry in self._comments
                if entry.author.lower() == username.lower()
                and not entry.removed
                and entry.created <= self.now()
            ]
            return _answer(self._page(matched, request), headers)

    def _comment(self, request: Request) -> Answer:
        token, headers = self._gate(request)
        form = request.form()
        thing_id, text = form.get("thing_id", ""), form.get("text", "")

        def refused(code: str, message: str, field_name: str) -> Answer:
            return _answer({"json": {"errors": [[code, message, field_name]]}}, headers)

        with self._lock:
            parent = self._by_name.get(thing_id)
            if not _FULLNAME_RE.match(thing_id) or thing_id[:3] not in ("t1_", "t3_"):
                return refused("NO_THING_ID", "can't find that thing", "parent")
            if parent is None or parent.raw or parent.removed or parent.created > self.now():
                if thing_id.startswith("t1_"):
                    return refused("DELETED_COMMENT", "that comment has been deleted", "parent")
                return refused(
                    "DELETED_LINK", "the link you are commenting on has been deleted", "parent"
                )
            thread = self._by_name[parent.item["data"].get("link_id") or thing_id]
            if thread.locked:
                return refused("THREAD_LOCKED", "Comments are locked.", "parent")
            if not text.strip():
                return refused("NO_TEXT", "we need something here", "text")
            if len(text) > MAX_COMMENT_LENGTH:
                return refused("TOO_LONG", f"this is too long (max: {MAX_COMMENT_LENGTH})", "text")
            now = self.now()
            data = self._store_comment(parent, text, token.username, now)
            self._received_posts.append(
                {
                    "name": data["name"],
                    "thing_id": thing_id,
                    "text": text,
                    "author": token.username,
                    "received_at": now.isoformat(),
                }
            )
        if request.query.get("raw_json") != "1" and form.get("raw_json") != "1":
            data = _legacy_escaped(data)
        return _answer(
            {"json": {"errors": [], "data": {"things": [{"kind": "t1", "data": data}]}}}, headers
        )


# --- command line ----------------------------------------------------------------------------

_DEMO_SUBREDDITS = ("NorthwindCoffee", "Coffee", "mildlyinfuriating", "espresso", "AskReddit")


def main(argv: list[str] | None = None) -> int:
    from listening.simulators.generator import iter_mentions

    parser = simulator_arguments(
        "A local Reddit API (OAuth script app) with generated posts about a brand.",
        default_port=8769,
    )
    parser.add_argument("--client-id", default="demo-client-id")
    parser.add_argument("--client-secret", default="demo-client-secret")
    parser.add_argument(
        "--username", default=None, help="the app's account (default: brand handle)"
    )
    parser.add_argument("--password", default="demo-password")
    parser.add_argument("--rate-limit", type=int, default=1000, help="requests per 600 s")
    args = parser.parse_args(argv)
    simulator = RedditApiSimulator(
        host=args.host,
        port=args.port,
        client_id=args.client_id,
        client_secret=args.client_secret,
        username=args.username or args.brand_handle,
        password=args.password,
        rate_limit=args.rate_limit,
    )

    def add(post: dict[str, Any], created_at: datetime) -> None:
        text = post["text"]
        subreddit = _DEMO_SUBREDDITS[int(hashlib.sha256(text.encode()).hexdigest(), 16) % 5]
        simulator.add_post(
            title=text,
            author=post["author"]["username"],
            subreddit=subreddit,
            created_at=created_at,
        )

    posts = iter_mentions(
        brand_name=args.brand_name, brand_handle=args.brand_handle, seed=args.seed
    )
    return serve_with_demo_posts(simulator, args, posts, add)


if __name__ == "__main__":
    raise SystemExit(main())
