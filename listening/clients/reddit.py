"""Reddit through PRAW (and prawcore beneath it). The only module of Earshot that imports praw.

PRAW is used unmodified, configured through its documented hooks. Three of its habits do not
fit a poller that must never wait inside a call, and each is switched off here:

- prawcore paces requests from the `X-Ratelimit-*` headers: when the budget runs faster
  than the window it sleeps up to 10 s before the next call, and up to the whole reset
  period once `remaining` reaches 0. Our requestor (praw's `requestor_class` hook) reads
  those headers into `page.rate_limit` and then removes them from the response, so
  prawcore's rate limiter never learns anything to sleep on. Earshot's scheduler honours
  the budget instead (a spent budget blocks the keyword until the reset), and a client
  that knows its budget is spent raises `RateLimited` rather than calling.
- prawcore retries a timeout, a dropped connection, a 5xx and a 401 up to twice, sleeping
  up to 2 s and then up to 4 s first. Retrying a comment after a read timeout could post
  it twice, so the requestor hands those answers straight back to this module as the
  internal `_NoAnswer` / `_UnretriedAnswer`; nothing is retried inside the client.
- prawcore ignores praw's `timeout` setting for API calls (it passes its own 16 s
  constant); the requestor applies `settings.X_REQUEST_TIMEOUT_SECONDS` to every request.

Cursors. Reddit pages a listing with `after`/`before` fullnames. `before=<fullname>` is no
polling cursor: when that post is deleted, removed or ages out of the listing Reddit
answers an empty listing forever, and it returns the oldest of the new posts first. So a
round pages newest first with `after` (the page's `next_token`), and `since_id` is the
newest post seen, as "<created_utc>@<fullname>": a round stops at the first post at or
below it, whether or not that post still exists.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import praw
import prawcore
import requests
from django.conf import settings
from praw.endpoints import API_PATH
from praw.exceptions import PRAWException
from prawcore.const import ACCESS_TOKEN_PATH
from urllib3.exceptions import NewConnectionError

from listening.clients.base import (
    AuthenticationFailed,
    ConnectionCheck,
    FetchedAuthor,
    FetchedPost,
    PlatformError,
    PlatformOutcomeUnknown,
    PlatformUnavailable,
    PostedReply,
    RateLimit,
    RateLimited,
    RejectedItem,
    RequestRejected,
    SearchPage,
)
from listening.clients.text import clean_text
from listening.query import REDDIT_SYNTAX

logger = logging.getLogger(__name__)

REDDIT_OAUTH_URL = "https://oauth.reddit.com"
REDDIT_WWW_URL = "https://www.reddit.com"
REDDIT_SHORT_URL = "https://redd.it"
MAX_RESULTS_PER_PAGE = 100
MAX_COMMENT_LENGTH = 10_000
# Newest first, within the last week: polls run every minute or so, and a first poll of a
# new keyword reads back a week at most (fewer pages if POLL_MAX_PAGES says so).
SEARCH_SORT = "new"
SEARCH_TIME_FILTER = "week"
# When a 429 names no reset, Reddit's budget is counted per minute: try again after one.
DEFAULT_RATE_LIMIT_WAIT = timedelta(minutes=1)
RATE_LIMIT_HEADERS = ("x-ratelimit-used", "x-ratelimit-remaining", "x-ratelimit-reset")

_FULLNAME_RE = re.compile(r"^t([1-6])_([0-9a-z]{1,13})$")
_USERNAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,30}$")
# One subreddit name, or several joined by "+" (r/Coffee+espresso).
_SUBREDDITS_RE = re.compile(r"^[A-Za-z0-9_]{2,21}(?:\+[A-Za-z0-9_]{2,21})*$")
_LANG_RE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?$")
DELETED_AUTHOR = "[deleted]"
# Longest permalink kept as a URL (Mention.url holds 1000 characters with the host).
_MAX_PERMALINK = 900
_WRITE_RATELIMIT_RE = re.compile(r"([0-9]{1,4}) (milliseconds?|seconds?|minutes?|hours?)")


@dataclass(frozen=True, slots=True)
class RedditCredentials:
    client_id: str
    client_secret: str
    username: str
    password: str
    user_agent: str = ""


def default_user_agent(username: str) -> str:
    """Reddit asks for `<platform>:<app ID>:<version> (by /u/<username>)`; generic ones are
    throttled hard."""
    return f"server:earshot:v1 (social listening by /u/{username or 'unknown'})"


# --- the transport: praw's requestor hook -------------------------------------------------


class _NoAnswer(Exception):
    """The request got no answer (timeout, refused or dropped connection); not retried."""

    def __init__(self, original: Exception, url: str) -> None:
        super().__init__(repr(original))
        self.original = original
        self.url = url


class _UnretriedAnswer(Exception):
    """An answer prawcore would retry after sleeping (5xx, 408, 401): the client decides."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class _BudgetSpent(Exception):
    """The last answer said the budget is spent: calling before `reset_at` would be refused."""

    def __init__(self, reset_at: datetime) -> None:
        super().__init__(reset_at.isoformat())
        self.reset_at = reset_at


@dataclass(slots=True)
class _RateBook:
    """What Reddit said of the request budget, shared by a client and its requestor."""

    # As the latest answer that named it said.
    rate_limit: RateLimit | None = None
    # As the very last answer said (None if it named none): what a 429 is read with.
    last_answer: RateLimit | None = None


class _EarshotRequestor(prawcore.Requestor):
    """prawcore's requestor with a timeout of ours, no retries, and its own rate-limit book.

    See the module docstring for why each of these is needed.
    """

    # prawcore's own retry triggers (its Session class attributes), so a new one is caught too.
    UNRETRIED_STATUSES = frozenset(prawcore.Session.RETRY_STATUSES) | {401}

    def __init__(self, *args: Any, book: _RateBook, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.book = book

    def request(self, *args: Any, timeout: float | None = None, **kwargs: Any) -> requests.Response:
        # prawcore calls request(method, url, **kwargs).
        url = str(args[1]) if len(args) > 1 else str(kwargs.get("url", ""))
        is_token_request = url.endswith(ACCESS_TOKEN_PATH)
        if not is_token_request:
            self._refuse_if_budget_spent()
        try:
            response = super().request(*args, timeout=self.timeout, **kwargs)
        except prawcore.RequestException as exc:
            raise _NoAnswer(exc.original_exception, url) from exc
        if not is_token_request:
            self._read_rate_limit(response)
        if response.status_code in self.UNRETRIED_STATUSES:
            raise _UnretriedAnswer(response)
        return response

    def _refuse_if_budget_spent(self) -> None:
        known = self.book.rate_limit
        if known and known.remaining <= 0 and datetime.now(UTC) < known.reset_at:
            raise _BudgetSpent(known.reset_at)

    def _read_rate_limit(self, response: requests.Response) -> None:
        headers = response.headers
        self.book.last_answer = None
        try:
            used = int(float(headers["x-ratelimit-used"]))
            remaining = float(headers["x-ratelimit-remaining"])
            reset_seconds = float(headers["x-ratelimit-reset"])
            if not all(map(math.isfinite, (remaining, reset_seconds))) or reset_seconds < 0:
                raise ValueError("not a usable rate limit")
            self.book.rate_limit = self.book.last_answer = RateLimit(
                limit=used + math.floor(remaining),
                remaining=math.floor(remaining),
                reset_at=datetime.now(UTC) + timedelta(seconds=min(reset_seconds, 86_400)),
            )
        except (KeyError, ValueError, OverflowError):
            pass
        # prawcore's rate limiter would sleep on these (and crash on odd ones): it never sees them.
        for name in RATE_LIMIT_HEADERS:
            headers.pop(name, None)


# --- reading Reddit's things --------------------------------------------------------------


def _fullname(value: Any, kind: str, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"missing or invalid field '{field}'")
    match = _FULLNAME_RE.match(value)
    if match is None or match.group(1) != kind[1]:
        shown = value if len(value) <= 40 else value[:40] + "…"
        raise ValueError(f"{field} {shown!r} is not a fullname of kind {kind} ({kind}_…)")
    return value


def _created(data: dict[str, Any]) -> float:
    value = data.get("created_utc")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"created_utc {_shown(value)} is not a Unix time")
    if not math.isfinite(value) or not 0 < value < 32_503_680_000:  # before year 3000
        raise ValueError(f"created_utc {value!r} is out of range")
    return float(value)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "…"


def _position(data: Any, kind: str) -> tuple[float, int] | None:
    """Where an item sits in a newest-first listing: (created_utc, base-36 id), if readable."""
    if not isinstance(data, dict):
        return None
    try:
        name = _fullname(data.get("name"), kind, "name")
        return _created(data), int(name[3:], 36)
    except ValueError:
        return None


def _author(data: dict[str, Any]) -> FetchedAuthor:
    username = data.get("author")
    if not isinstance(username, str) or not username:
        raise ValueError("missing or invalid field 'author'")
    if username == DELETED_AUTHOR:
        return FetchedAuthor(
            external_id=DELETED_AUTHOR, username=DELETED_AUTHOR, name="", followers_count=0,
            verified=False,
        )  # fmt: skip
    if not _USERNAME_RE.match(username):
        raise ValueError(f"author {_shown(username)} is not a Reddit username")
    author_fullname = data.get("author_fullname")
    external_id = username
    if author_fullname is not None:
        external_id = _fullname(author_fullname, "t2", "author_fullname")
    # Listings carry no follower counts: reading each profile would cost a call per author.
    return FetchedAuthor(
        external_id=external_id,
        username=username,
        name=username,
        followers_count=0,
        verified=False,
        url=f"{REDDIT_WWW_URL}/user/{username}",
    )


def _url(data: dict[str, Any], fallback_path: str) -> str:
    permalink = data.get("permalink")
    if (
        isinstance(permalink, str)
        and permalink.startswith("/")
        and len(permalink) <= _MAX_PERMALINK
        and permalink.isprintable()
        and " " not in permalink
    ):
        return REDDIT_WWW_URL + permalink
    return REDDIT_WWW_URL + fallback_path


def _optional_str(data: dict[str, Any], field: str) -> str:
    value = data.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"field '{field}' holds {type(value).__name__}, not text")
    return clean_text(value)


def _metrics(data: dict[str, Any], **fields: str) -> dict[str, int]:
    return {
        ours: data[theirs]
        for ours, theirs in fields.items()
        if isinstance(data.get(theirs), int) and not isinstance(data.get(theirs), bool)
    }


def _lang(data: dict[str, Any]) -> str:
    value = data.get("lang")
    return value.lower() if isinstance(value, str) and _LANG_RE.match(value) else ""


def _thing_data(raw: Any, kind: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError(f"item is a {type(raw).__name__}, not an object")
    if raw.get("kind") != kind:
        raise ValueError(f"item has kind {_shown(raw.get('kind'))}, not {kind}")
    data = raw.get("data")
    if not isinstance(data, dict):
        raise ValueError("item has no 'data' object")
    return data


def parse_submission(data: Any) -> tuple[FetchedPost, FetchedAuthor]:
    """A t3 thing's data as a post and its author; ValueError names what is wrong."""
    if not isinstance(data, dict):
        raise ValueError(f"submission is a {type(data).__name__}, not an object")
    name = _fullname(data.get("name"), "t3", "name")
    title = data.get("title")
    if not isinstance(title, str):
        raise ValueError("missing or invalid field 'title'")
    selftext = _optional_str(data, "selftext")
    created = _created(data)
    author = _author(data)
    text = clean_text(title) + (f"\n\n{selftext}" if selftext else "")
    references: list[dict[str, str]] = []
    if data.get("crosspost_parent") is not None:
        parent = _fullname(data["crosspost_parent"], "t3", "crosspost_parent")
        references.append({"type": "retweeted", "id": parent})
    post = FetchedPost(
        external_id=name,
        text=text,
        author_external_id=author.external_id,
        posted_at=datetime.fromtimestamp(created, tz=UTC),
        # A submission is the root of its own comment thread.
        conversation_id=name,
        lang=_lang(data),
        in_reply_to_user_id="",
        referenced_posts=references,
        public_metrics=_metrics(data, reply_count="num_comments", like_count="score"),
        url=_url(data, f"/comments/{name[3:]}/"),
    )
    return post, author


def parse_comment(data: Any) -> tuple[FetchedPost, FetchedAuthor]:
    """A t1 thing's data (a comment: one of the brand's replies) as a post and its author."""
    if not isinstance(data, dict):
        raise ValueError(f"comment is a {type(data).__name__}, not an object")
    name = _fullname(data.get("name"), "t1", "name")
    body = data.get("body")
    if not isinstance(body, str):
        raise ValueError("missing or invalid field 'body'")
    parent_id = data.get("parent_id")
    if not isinstance(parent_id, str) or not _FULLNAME_RE.match(parent_id):
        raise ValueError(f"parent_id {_shown(parent_id)} is not a fullname")
    link_id = _fullname(data.get("link_id"), "t3", "link_id")
    author = _author(data)
    post = FetchedPost(
        external_id=name,
        text=clean_text(body),
        author_external_id=author.external_id,
        posted_at=datetime.fromtimestamp(_created(data), tz=UTC),
        conversation_id=link_id,
        lang=_lang(data),
        in_reply_to_user_id="",
        referenced_posts=[{"type": "replied_to", "id": parent_id}],
        public_metrics=_metrics(data, like_count="score"),
        url=_url(data, f"/comments/{link_id[3:]}/_/{name[3:]}/"),
    )
    return post, author


def _with_original(post: FetchedPost, data: dict[str, Any], page: SearchPage) -> FetchedPost:
    """A crosspost with the original Reddit sent along in `crosspost_parent_list`."""
    parents = data.get("crosspost_parent_list")
    if not post.reposted_id or not isinstance(parents, list):
        return post
    for candidate in parents:
        if isinstance(candidate, dict) and candidate.get("name") == post.reposted_id:
            try:
                original, author = parse_submission(candidate)
            except ValueError as exc:
                # The crosspost itself is fine: keep it, without its original.
                logger.info("Crosspost %s: its original is unreadable (%s)", post.external_id, exc)
                return post
            page.authors.setdefault(author.external_id, author)
            return dataclasses.replace(post, original=original)
    return post


def encode_cursor(position: tuple[float, int], fullname: str) -> str:
    return f"{position[0]!r}@{fullname}"


def decode_cursor(since_id: str | None, kind: str) -> tuple[float, int] | None:
    """The (created_utc, id) a `since_id` stands for; None (read everything) if unreadable."""
    if not since_id:
        return None
    created, _, fullname = since_id.rpartition("@")
    position = _position({"created_utc": _number(created), "name": fullname}, kind)
    if position is None:
        logger.warning(
            "Ignoring an unreadable Reddit cursor %r: reading the whole listing", since_id
        )
    return position


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def parse_listing(
    body: Any,
    *,
    kind: str,
    since: tuple[float, int] | None,
    what: str,
) -> SearchPage:
    """A Listing of `kind` things as a page: newest first, only what is newer than `since`.

    Every readable item is kept, every unreadable one named. `next_token` is Reddit's
    `after` unless this page reached `since` (the round is then complete).
    """
    if not isinstance(body, dict) or body.get("kind") != "Listing":
        raise PlatformUnavailable(
            f"Reddit answered the {what} with something that is not a Listing"
        )
    listing = body.get("data")
    children = listing.get("children") if isinstance(listing, dict) else None
    if not isinstance(children, list):
        raise PlatformUnavailable(f"Reddit answered the {what} with a Listing without children")
    parse = parse_submission if kind == "t3" else parse_comment
    page = SearchPage(posts=[], authors={}, newest_id=None, next_token=None)
    reached_since = False
    newest: tuple[tuple[float, int], str] | None = None
    for raw in children:
        data = raw.get("data") if isinstance(raw, dict) else None
        position = _position(data, kind)
        if position is not None:
            if since is not None and position <= since:
                reached_since = True
                continue
            if newest is None or position > newest[0]:
                newest = (position, data["name"])
        try:
            post, author = parse(_thing_data(raw, kind))
        except ValueError as exc:
            page.rejected.append(RejectedItem(raw=raw, reason=str(exc)))
            continue
        page.authors.setdefault(author.external_id, author)
        page.posts.append(_with_original(post, data, page) if kind == "t3" else post)
    page.posts.sort(key=lambda post: (post.posted_at, int(post.external_id[3:], 36)), reverse=True)
    if newest is not None:
        page.newest_id = encode_cursor(*newest)
    after = listing.get("after")
    if not reached_since and children and isinstance(after, str) and _FULLNAME_RE.match(after):
        page.next_token = after
    return page


# --- the client ----------------------------------------------------------------------------


class RedditClient:
    """Search, the brand account's comments, and replies, for one Reddit script app."""

    platform = "reddit"
    syntax = REDDIT_SYNTAX
    can_reply = True

    def __init__(
        self,
        credentials: RedditCredentials,
        *,
        base_url: str = "",
        account_handle: str = "",
        subreddit: str = "all",
    ) -> None:
        self.credentials = credentials
        self.account_handle = account_handle or credentials.username
        self.subreddit = subreddit or "all"
        root = base_url.rstrip("/")
        self.oauth_url = root or REDDIT_OAUTH_URL
        self.www_url = root or REDDIT_WWW_URL
        self._reddit: praw.Reddit | None = None
        self._rate_book = _RateBook()

    @property
    def reddit(self) -> praw.Reddit:
        """Built on first use, inside error translation: praw refuses bad settings eagerly."""
        if self._reddit is None:
            for key in ("client_id", "client_secret", "username", "password"):
                if not getattr(self.credentials, key):
                    raise AuthenticationFailed(
                        f"The Reddit source has no {key}. Set it under Sources (a Reddit "
                        "script app's id and secret, and the account that owns the app)."
                    )
            timeout = settings.X_REQUEST_TIMEOUT_SECONDS
            self._reddit = praw.Reddit(
                client_id=self.credentials.client_id,
                client_secret=self.credentials.client_secret,
                username=self.credentials.username,
                password=self.credentials.password,
                user_agent=self.credentials.user_agent
                or default_user_agent(self.credentials.username),
                oauth_url=self.oauth_url,
                reddit_url=self.www_url,
                short_url=self.www_url if self.www_url != REDDIT_WWW_URL else REDDIT_SHORT_URL,
                # praw reads but never uses it; the requestor below applies the real one.
                timeout=max(1, math.ceil(timeout)),
                # Only Reddit.post sleeps on a RATELIMIT error (we call Reddit.request, which
                # never does); -1 keeps even a sub-second one from napping there.
                ratelimit_seconds=-1,
                check_for_updates=False,
                check_for_async=False,
                requestor_class=_EarshotRequestor,
                requestor_kwargs={"timeout": timeout, "book": self._rate_book},
            )
        return self._reddit

    @property
    def rate_limit(self) -> RateLimit | None:
        """The request budget as Reddit last stated it."""
        return self._rate_book.rate_limit

    def search_page(
        self, *, query: str, since_id: str | None, next_token: str | None
    ) -> SearchPage:
        params: dict[str, Any] = {
            "q": query,
            # As praw's Subreddit.search sends it: r/all searches everywhere anyway.
            "restrict_sr": self.subreddit.lower() != "all",
            "sort": SEARCH_SORT,
            "syntax": "lucene",
            "t": SEARCH_TIME_FILTER,
            "limit": MAX_RESULTS_PER_PAGE,
            "type": "link",
        }
        if next_token:
            params["after"] = next_token
        if not _SUBREDDITS_RE.match(self.subreddit):
            raise RequestRejected(
                f"The Reddit source's subreddit {self.subreddit!r} is not a subreddit name "
                "(letters, digits and _, several joined by +, or all). Fix it under Sources."
            )
        path = API_PATH["search"].format(subreddit=self.subreddit)
        return self._listing_page(path, params, kind="t3", since_id=since_id, what="search")

    def own_posts_page(self, *, since_id: str | None, next_token: str | None) -> SearchPage:
        """The brand account's newest comments (replies sent on Reddit itself among them)."""
        if not self.account_handle:
            raise RequestRejected(
                "The Reddit source has no account handle, so its own comments can't be read"
            )
        return self._comments_page(self.account_handle, since_id=since_id, next_token=next_token)

    def post_reply(self, *, text: str, in_reply_to_id: str) -> PostedReply:
        if not _FULLNAME_RE.match(in_reply_to_id) or in_reply_to_id[:3] not in ("t1_", "t3_"):
            raise RequestRejected(
                f"{in_reply_to_id!r} is not a Reddit post or comment, so it can't be answered"
            )
        if len(text) > MAX_COMMENT_LENGTH:
            raise RequestRejected(
                f"Reddit comments hold at most {MAX_COMMENT_LENGTH:,} characters; this reply "
                f"has {len(text):,}. Shorten it."
            )
        with _translated_errors("reply", write=True, client=self):
            body = self.reddit.request(
                method="POST",
                path=API_PATH["comment"],
                data={"thing_id": in_reply_to_id, "text": text},
            )
        return _posted_comment(body)

    def find_reply(
        self, *, author_username: str, text: str, in_reply_to_id: str, max_pages: int = 3
    ) -> PostedReply | None:
        """Our comment on `in_reply_to_id` saying `text`, if Reddit has it.

        How a reply whose POST got no answer is found before anyone sends it again. Replies
        are always posted as the source's `username`, so that account's comments are read
        (`author_username` only when the source names none: callers written for X pass the
        brand's X handle). Reddit trims the ends of a comment, so the ends are not compared.
        """
        account = self.credentials.username or author_username
        next_token = None
        for _ in range(max_pages):
            page = self._comments_page(account, since_id=None, next_token=next_token)
            for post in page.posts:
                if post.replied_to_id == in_reply_to_id and post.text.strip() == text.strip():
                    return PostedReply(
                        external_id=post.external_id, text=post.text, posted_at=post.posted_at
                    )
            next_token = page.next_token
            if not next_token:
                return None
        return None

    def check_connection(self) -> ConnectionCheck:
        """The app's sign-in (the password grant) and GET /api/v1/me as the account."""
        with _translated_errors("connection test", client=self):
            body = self.reddit.request(method="GET", path="api/v1/me")
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not _USERNAME_RE.match(name):
            raise PlatformUnavailable(
                "Reddit answered the connection test with something that is not an account"
            )
        return ConnectionCheck(account=f"u/{name}")

    def _comments_page(
        self, username: str, *, since_id: str | None, next_token: str | None
    ) -> SearchPage:
        if not _USERNAME_RE.match(username):
            raise RequestRejected(
                f"{username!r} is not a Reddit username, so its comments can't be read. "
                "Fix the source's account handle under Sources."
            )
        params: dict[str, Any] = {"sort": "new", "limit": MAX_RESULTS_PER_PAGE}
        if next_token:
            params["after"] = next_token
        path = API_PATH["user"].format(user=username) + "comments"
        return self._listing_page(
            path, params, kind="t1", since_id=since_id, what="read of our comments"
        )

    def _listing_page(
        self, path: str, params: dict[str, Any], *, kind: str, since_id: str | None, what: str
    ) -> SearchPage:
        with _translated_errors(what, client=self):
            body = self.reddit.request(method="GET", path=path, params=params)
        page = parse_listing(body, kind=kind, since=decode_cursor(since_id, kind), what=what)
        page.rate_limit = self.rate_limit
        return page


def _posted_comment(body: Any) -> PostedReply:
    """The comment in an /api/comment answer, or the refusal its `json.errors` holds."""
    answer = body.get("json") if isinstance(body, dict) else None
    if not isinstance(answer, dict):
        raise PlatformOutcomeUnknown("Reddit answered the reply with something unreadable")
    errors = answer.get("errors") or []
    if errors:
        raise _comment_refusal(errors)
    try:
        (thing,) = answer["data"]["things"]
        post, _ = parse_comment(thing["data"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PlatformOutcomeUnknown(
            "Reddit accepted the reply but its answer could not be read; look for it on Reddit"
        ) from exc
    return PostedReply(external_id=post.external_id, text=post.text, posted_at=post.posted_at)


def _comment_refusal(errors: Any) -> PlatformError:
    """Reddit's `[[code, message, field], ...]` as one exception, in Reddit's own words."""
    items = [e for e in errors if isinstance(e, list) and e] if isinstance(errors, list) else []
    words = (
        "; ".join(f"{item[0]}: {item[1]}" if len(item) > 1 else str(item[0]) for item in items)
        or str(errors)[:200]
    )
    for item in items:
        if item[0] == "RATELIMIT":
            wait = _write_wait(str(item[1]) if len(item) > 1 else "")
            reset_at = datetime.now(UTC) + wait
            return RateLimited(
                f"Reddit is limiting this account's comments ({words}); next reply allowed "
                f"at {reset_at:%H:%M:%S} UTC",
                reset_at=reset_at,
            )
    return RequestRejected(f"Reddit refused the reply ({words})")


_WAIT_UNITS = {
    "millisecond": timedelta(milliseconds=1),
    "second": timedelta(seconds=1),
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
}


def _write_wait(message: str) -> timedelta:
    """How long a RATELIMIT error ("... try again in 9 minutes.") asks us to wait."""
    match = _WRITE_RATELIMIT_RE.search(message)
    if match is None:
        return DEFAULT_RATE_LIMIT_WAIT
    return int(match.group(1)) * _WAIT_UNITS[match.group(2).removesuffix("s")]


# --- errors ----------------------------------------------------------------------------------


def _reddit_words(response: requests.Response | None) -> str:
    """The most specific human words in a Reddit error answer (not its bare status phrase)."""
    if response is None:
        return ""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip()
    if not isinstance(body, dict):
        return ""
    parts = [
        body[key] for key in ("message", "reason", "explanation", "error_description", "error")
        if isinstance(body.get(key), str) and body[key] and body[key] != response.reason
    ]  # fmt: skip
    return ": ".join(dict.fromkeys(parts))[:300]


def _auth_challenge(response: requests.Response) -> str:
    """The error Reddit names in `www-authenticate` (e.g. invalid_token), if any."""
    match = re.search(r'error="?([A-Za-z_]+)', response.headers.get("www-authenticate", ""))
    return match.group(1) if match else ""


def _status(response: requests.Response) -> str:
    return f"{response.status_code} {response.reason}".strip()


def _never_sent(exc: Exception) -> bool:
    """Whether the request surely never reached Reddit (so a write is safe to try again)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectionError) and isinstance(reason, NewConnectionError)


@contextmanager
def _translated_errors(
    action: str, *, write: bool = False, client: RedditClient | None = None
) -> Iterator[None]:
    """praw's, prawcore's and requests' failures as the platform-neutral ones of `base`.

    For a `write`, no answer (other than a failure to connect) or a server error means
    Reddit may have carried it out: PlatformOutcomeUnknown, never a plain retryable failure.
    The access-token request that may precede it is not the write itself.
    """
    try:
        yield
    except PlatformError:
        raise
    except _BudgetSpent as exc:
        raise RateLimited(
            f"Reddit's request budget for this app is spent; no {action} before "
            f"{exc.reset_at:%H:%M:%S} UTC",
            reset_at=exc.reset_at,
        ) from exc
    except _NoAnswer as exc:
        token = exc.url.endswith(ACCESS_TOKEN_PATH)
        what = (
            "did not answer in time"
            if isinstance(exc.original, requests.Timeout)
            else (f"could not be reached ({type(exc.original).__name__})")
        )
        if write and not token and not _never_sent(exc.original):
            raise PlatformOutcomeUnknown(
                f"Reddit {what} for the {action}; it may have been posted"
            ) from exc
        step = "sign-in" if token else action
        raise PlatformUnavailable(f"Reddit {what} for the {step}; will retry") from exc
    except _UnretriedAnswer as exc:
        raise _from_unretried(exc.response, action, write=write) from exc
    except prawcore.OAuthException as exc:
        detail = exc.error + (f": {exc.description}" if exc.description else "")
        raise AuthenticationFailed(
            f"Reddit refused to sign in the account ({detail}). Check the source's Reddit "
            "username and password (the account must be a developer of the script app)."
        ) from exc
    except prawcore.TooManyRequests as exc:
        answered = client._rate_book.last_answer if client else None
        raise _rate_limited(exc.response, action, answered) from exc
    except (prawcore.Forbidden, prawcore.InsufficientScope, prawcore.InvalidToken) as exc:
        challenge = _auth_challenge(exc.response)
        words = challenge or _reddit_words(exc.response)
        raise RequestRejected(
            f"Reddit refused the {action} ({_status(exc.response)}"
            f"{': ' + words if words else ''}). Check that the account may read "
            f"{'and post in ' if write else ''}this subreddit."
        ) from exc
    except prawcore.Redirect as exc:
        raise RequestRejected(
            f"Reddit has no such page for the {action} (it redirects to {exc.path}); check "
            "the source's subreddit and account handle."
        ) from exc
    except prawcore.BadJSON as exc:
        if write:
            raise PlatformOutcomeUnknown(
                f"Reddit answered the {action} with a body that is not valid JSON; it may "
                "have been posted"
            ) from exc
        raise PlatformUnavailable(
            f"Reddit answered the {action} with a body that is not valid JSON; will retry"
        ) from exc
    except prawcore.ResponseException as exc:
        # BadRequest, NotFound and the rest: Reddit refused this request as such.
        response = exc.response
        words = _reddit_words(response)
        if response.status_code == 429:  # the sign-in's, which prawcore reports as is
            answered = client._rate_book.last_answer if client else None
            raise _rate_limited(response, "sign-in", answered) from exc
        if str(response.url).endswith(ACCESS_TOKEN_PATH):
            raise AuthenticationFailed(
                f"Reddit refused the app's sign-in ({_status(response)}"
                f"{': ' + words if words else ''}). Check the source's client id and secret."
            ) from exc
        if response.status_code >= 500:
            raise _from_unretried(response, action, write=write) from exc
        raise RequestRejected(
            f"Reddit refused the {action} ({_status(response)}{': ' + words if words else ''})"
        ) from exc
    except (PRAWException, prawcore.PrawcoreException) as exc:
        raise RequestRejected(f"PRAW refused the {action}: {exc}") from exc
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # PRAW reading an error body it did not expect (e.g. a 400 without "reason").
        raise PlatformUnavailable(
            f"Reddit's answer to the {action} could not be read ({type(exc).__name__})"
        ) from exc


def _from_unretried(response: requests.Response, action: str, *, write: bool) -> PlatformError:
    words = _reddit_words(response)
    token = str(response.url).endswith(ACCESS_TOKEN_PATH)
    if response.status_code == 401:
        if token:
            return AuthenticationFailed(
                f"Reddit refused the app's client id or secret ({_status(response)}"
                f"{': ' + words if words else ''}). Update them under Sources."
            )
        challenge = _auth_challenge(response) or words
        return AuthenticationFailed(
            f"Reddit refused the access token ({_status(response)}"
            f"{': ' + challenge if challenge else ''}). Check the source's Reddit credentials."
        )
    what = f"Reddit answered {_status(response)} to the {'sign-in' if token else action}"
    if write and not token:
        return PlatformOutcomeUnknown(f"{what}; it may have been posted")
    return PlatformUnavailable(f"{what}; will retry")


def _rate_limited(
    response: requests.Response, action: str, answered: RateLimit | None
) -> RateLimited:
    """A 429 as RateLimited. Its X-Ratelimit-* headers were read (and hidden from prawcore)
    by our requestor, as `answered`; without them, Retry-After or a minute."""
    now = datetime.now(UTC)
    reset_at = answered.reset_at if answered else now + DEFAULT_RATE_LIMIT_WAIT
    if answered is None:
        try:
            seconds = float(response.headers["retry-after"])
            if math.isfinite(seconds) and 0 <= seconds <= 86_400:
                reset_at = now + timedelta(seconds=seconds)
        except (KeyError, ValueError):
            pass
    # Reddit throttles a generic User-Agent with a bare 429 that names no budget.
    hint = (
        ""
        if answered
        else (" Reddit answers so to a generic User-Agent too: check the source's user_agent.")
    )
    return RateLimited(
        f"Reddit rate limit reached for the {action} ({_status(response)}); next call "
        f"allowed at {reset_at:%H:%M:%S} UTC.{hint}",
        reset_at=reset_at,
    )


def client_for_source(source: Any) -> RedditClient:
    """The Reddit client of a `Source` (platform "reddit").

    Reads `source.credentials`: `client_id`, `client_secret` (a "script" app created at
    reddit.com/prefs/apps), `username` and `password` (an account listed as a developer of
    that app: replies are posted as it), `user_agent` (optional; by default one naming
    Earshot and the account, as Reddit asks) and `subreddit` (optional; where to search,
    default "all"; "a+b" searches several). `source.account_handle` is the brand's Reddit
    username whose comments are read back (blank: `username`). `source.base_url` blank means
    Reddit itself (https://oauth.reddit.com for the API, https://www.reddit.com to sign in);
    set, one server stands in for both (the simulator, a proxy).
    """
    credentials = source.credentials or {}

    def read(key: str) -> str:
        value = credentials.get(key, "")
        return value.strip() if isinstance(value, str) else ""

    return RedditClient(
        RedditCredentials(
            client_id=read("client_id"),
            client_secret=read("client_secret"),
            username=read("username"),
            password=credentials.get("password") or "",
            user_agent=read("user_agent"),
        ),
        base_url=source.base_url or "",
        account_handle=source.account_handle or "",
        subreddit=read("subreddit") or "all",
    )
