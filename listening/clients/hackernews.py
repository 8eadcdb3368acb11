"""Hacker News through Algolia's HN Search API (hn.algolia.com), read-only.

There is no SDK to speak of: `requests` against `GET /api/v1/search_by_date`, stories and
comments newest first. HN has no write API, and Earshot no HN brand account, so a mention
found here is answered on news.ycombinator.com and marked handled.

Cursors. Algolia lets a query page through at most 1,000 hits (algolia/hn-search#230), so a
round walks *time windows* of `created_at_i` instead of deep pages:

- `since_id` is `"T:id,id"`: the newest second seen and the ids seen in that second. The next
  round asks for `created_at_i>=T` and drops those ids, so a post made in the same second T
  but indexed after the last poll is still found, and nothing is returned twice.
- A round's first request has no upper bound; its newest second `H` then pins the window
  (`created_at_i<=H`) so posts arriving mid-round cannot shift the pages under it (they are
  the next round's). Pages are followed with `page=N` while Algolia can reach them; when
  the window holds more hits than the cap lets through, the window is narrowed to end at the
  oldest second of the last reachable page (`created_at_i<=T'`, minus the ids already seen
  in T') and paging starts again at 0. Nothing in between is skipped.
- Where an id list would not fit in a cursor (≤ 500 characters), it is left out: a post may
  then come twice, which storage ignores, rather than never.

A first poll (no cursor) looks back FIRST_POLL_LOOKBACK (7 days, as X's recent search does).
Algolia matches more loosely than Earshot (prefixes, typos): hits whose text and link lack the
query's words are dropped here, so a keyword matches the same posts on every platform.

Not handled: a post that reaches Algolia's index after a later post was already polled
(indexing lag) is older than the cursor and is missed; HN's index is normally current
within seconds.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from django.conf import settings

from listening.clients.base import (
    AuthenticationFailed,
    ConnectionCheck,
    FetchedAuthor,
    FetchedPost,
    PlatformError,
    PlatformUnavailable,
    PostedReply,
    RateLimited,
    RejectedItem,
    RequestRejected,
    SearchPage,
)
from listening.clients.text import html_to_text, plain_text_tidy
from listening.query import (
    HACKER_NEWS_SYNTAX,
    Query,
    QueryablePost,
    QuerySyntaxError,
    parse_query,
)

logger = logging.getLogger(__name__)

HN_SEARCH_API = "https://hn.algolia.com"
SEARCH_PATH = "/api/v1/search_by_date"
ITEM_URL = "https://news.ycombinator.com/item?id={id}"
USER_URL = "https://news.ycombinator.com/user?id={username}"
HITS_PER_PAGE = 100
# Algolia's `paginationLimitedTo` for the HN index: hits beyond it are unreachable by page.
PAGINATION_CAP = 1000
# A first poll has no cursor: look back as far as X's recent search does, not to 2006.
FIRST_POLL_LOOKBACK = timedelta(days=7)
# Algolia sends no reset time with a 429. HN allows 10,000 requests an hour per IP; a spent
# budget frees up as that hour rolls on, so try again in a minute: one refused request a
# minute costs nothing, and polling resumes as soon as the budget allows.
RATE_LIMIT_PAUSE = timedelta(seconds=60)
CURSOR_MAX_LENGTH = 500
NO_WRITE_API = "Hacker News has no write API: answer on the platform and mark the mention handled"
USER_AGENT = "Earshot social listening (+https://news.ycombinator.com)"

# HN usernames: 2 to 15 letters, digits, dashes and underscores (a little wider here, so an
# old account with an odd name still passes).
_USERNAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_ITEM_ID_RE = re.compile(r"^[0-9]{1,12}$")
# The earliest plausible item time (HN began in 2006), and how far ahead of our clock an
# item may be stamped (clock skew) before it is taken for garbage: a time far in the future
# would carry the cursor past every post to come.
_EARLIEST = 1_000_000_000
CLOCK_SKEW = timedelta(hours=1)


# --- text -------------------------------------------------------------------------------------
# Shared with the feeds client (listening/clients/feeds.py), which imports them from here.

# --- cursors ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Bound:
    """One end of a time window: `second`, minus the items of that second already seen."""

    second: int
    seen_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Window:
    """Where a round stands: hits with lower.second <= created_at_i <= upper.second."""

    lower: _Bound | None
    upper: _Bound | None
    page: int = 0

    def numeric_filters(self) -> str:
        filters = []
        if self.lower is not None:
            filters.append(f"created_at_i>={self.lower.second}")
        if self.upper is not None:
            filters.append(f"created_at_i<={self.upper.second}")
        return ",".join(filters)

    def already_seen(self, second: int, object_id: str) -> bool:
        return any(
            bound is not None and bound.second == second and object_id in bound.seen_ids
            for bound in (self.lower, self.upper)
        )


def encode_since(bound: _Bound) -> str:
    """`"T:id,id"`; when the ids would make it too long, `"T:"`: that second's posts come
    again (storage keeps them once) rather than a late one of them never."""
    encoded = f"{bound.second}:{','.join(bound.seen_ids)}"
    return encoded if len(encoded) <= CURSOR_MAX_LENGTH else f"{bound.second}:"


def decode_since(since_id: str | None) -> _Bound | None:
    if not since_id:
        return None
    second, _, ids = since_id.partition(":")
    seen = tuple(i for i in ids.split(",") if i)
    if not second.isdigit() or not all(_ITEM_ID_RE.match(i) for i in seen):
        logger.warning("Ignoring an unreadable Hacker News cursor %.80r", since_id)
        return None
    return _Bound(int(second), seen)


def encode_window(window: _Window) -> str:
    """The next_token: the window as compact JSON, dropping id lists that would not fit."""

    def as_json(lower_ids: bool, upper_ids: bool) -> str:
        payload: dict[str, Any] = {"p": window.page}
        for key, bound, with_ids in (
            ("lo", window.lower, lower_ids),
            ("hi", window.upper, upper_ids),
        ):
            if bound is not None:
                payload[key] = [bound.second, list(bound.seen_ids) if with_ids else []]
        return json.dumps(payload, separators=(",", ":"))

    for lower_ids, upper_ids in ((True, True), (True, False), (False, False)):
        token = as_json(lower_ids, upper_ids)
        if len(token) <= CURSOR_MAX_LENGTH:
            return token
    return token  # two numbers and a page always fit


def decode_window(token: str) -> _Window | None:
    try:
        payload = json.loads(token)
        bounds = [
            _Bound(int(payload[key][0]), tuple(str(i) for i in payload[key][1]))
            if key in payload
            else None
            for key in ("lo", "hi")
        ]
        return _Window(lower=bounds[0], upper=bounds[1], page=int(payload["p"]))
    except (ValueError, TypeError, KeyError, IndexError):
        logger.warning("Ignoring an unreadable Hacker News paging token %.80r", token)
        return None


# --- hits -------------------------------------------------------------------------------------


def hit_second(raw: Any, *, latest: int) -> int | None:
    """A hit's `created_at_i` if it is a plausible time no later than `latest`, else None."""
    if not isinstance(raw, dict):
        return None
    value = raw.get("created_at_i")
    if isinstance(value, int) and not isinstance(value, bool) and _EARLIEST <= value <= latest:
        return value
    return None


def _optional_id(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if value is None:
        return ""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | str)
        or not _ITEM_ID_RE.match(str(value))
    ):
        raise ValueError(f"{key} {value!r} is not an HN item id")
    return str(value)


def _optional_html(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{key} is a {type(value).__name__}, not text")
    return html_to_text(value)


def _count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53:
        return value
    return None


def parse_hit(raw: Any, *, latest: int) -> tuple[FetchedPost, FetchedAuthor]:
    """One hit as a post and its author; raises ValueError with a readable reason.

    `latest` is the latest believable `created_at_i` (now, give or take clock skew)."""
    if not isinstance(raw, dict):
        raise ValueError(f"hit is a {type(raw).__name__}, not an object")
    object_id = raw.get("objectID")
    if not isinstance(object_id, str) or not _ITEM_ID_RE.match(object_id):
        raise ValueError(f"objectID {object_id!r} is not an HN item id")
    author = raw.get("author")
    if not isinstance(author, str) or not _USERNAME_RE.match(author):
        raise ValueError(f"author {author!r} is not an HN username")
    second = hit_second(raw, latest=latest)
    if second is None:
        raise ValueError(
            f"created_at_i {raw.get('created_at_i')!r} is not a plausible time in seconds"
        )
    tags = raw.get("_tags") if isinstance(raw.get("_tags"), list) else []
    is_comment = "comment" in tags or ("story" not in tags and raw.get("comment_text") is not None)
    story_id = _optional_id(raw, "story_id")
    references: list[dict[str, str]] = []
    if is_comment:
        text = _optional_html(raw, "comment_text")
        if parent_id := _optional_id(raw, "parent_id"):
            references.append({"type": "replied_to", "id": parent_id})
    else:
        title = raw.get("title")
        if title is not None and not isinstance(title, str):
            raise ValueError(f"title is a {type(title).__name__}, not text")
        text = "\n\n".join(
            part
            for part in (plain_text_tidy(title or ""), _optional_html(raw, "story_text"))
            if part
        )
        story_id = object_id  # a story is its own thread
    if not text:
        raise ValueError("the hit has no title or text")
    metrics = {
        name: count
        for name in ("points", "num_comments")
        if (count := _count(raw.get(name))) is not None
    }
    post = FetchedPost(
        external_id=object_id,
        text=text,
        author_external_id=author,
        posted_at=datetime.fromtimestamp(second, tz=UTC),
        conversation_id=story_id,
        lang="",  # HN says nothing of a post's language
        in_reply_to_user_id="",  # a hit names its parent, not the parent's author
        referenced_posts=references,
        public_metrics=metrics,
        url=ITEM_URL.format(id=object_id),
    )
    profile = FetchedAuthor(
        external_id=author,
        username=author,
        name=author,
        followers_count=0,  # HN has karma, not followers
        verified=False,
        url=USER_URL.format(username=author),
    )
    return post, profile


# --- the client -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Stamp:
    """When a hit says it was made, and its id where readable: what cursors are made of."""

    second: int
    object_id: str | None


def _stamps(hits: list[Any], *, latest: int) -> list[_Stamp]:
    stamps = []
    for raw in hits:
        second = hit_second(raw, latest=latest)
        if second is not None:
            object_id = raw.get("objectID")
            readable = isinstance(object_id, str) and _ITEM_ID_RE.match(object_id)
            stamps.append(_Stamp(second, object_id if readable else None))
    return stamps


def _ids_in(stamps: list[_Stamp], second: int) -> tuple[str, ...]:
    return tuple(s.object_id for s in stamps if s.second == second and s.object_id)


def _words_of(query: str) -> Query | None:
    try:
        return parse_query(query) if query.strip() else None
    except QuerySyntaxError:
        return None  # not ours to judge here: Algolia's answer is taken as it is


def _page_of(hits: list[Any], *, window: _Window, wanted: Query | None, latest: int) -> SearchPage:
    page = SearchPage(posts=[], authors={}, newest_id=None, next_token=None)
    for raw in hits:
        try:
            post, author = parse_hit(raw, latest=latest)
        except (TypeError, ValueError) as exc:
            page.rejected.append(RejectedItem(raw=raw, reason=str(exc)))
            continue
        if window.already_seen(int(post.posted_at.timestamp()), post.external_id):
            continue
        link = raw.get("url") if isinstance(raw.get("url"), str) else ""
        if wanted is not None and not wanted.matches(QueryablePost(text=f"{post.text}\n{link}")):
            continue  # Algolia's prefix or typo match, not a match of the words
        page.posts.append(post)
        page.authors[author.external_id] = author
    page.posts.sort(key=lambda p: (p.posted_at, int(p.external_id)), reverse=True)
    return page


def _newest_cursor(
    stamps: list[_Stamp], *, since: _Bound | None, since_id: str | None
) -> str | None:
    """The round's since cursor: its newest second and the ids seen in that second."""
    if not stamps:
        return since_id or None
    newest = max(s.second for s in stamps)
    ids = _ids_in(stamps, newest)
    if since is not None and since.second == newest:
        ids = (*since.seen_ids, *(i for i in ids if i not in since.seen_ids))
    return encode_since(_Bound(newest, ids))


def _next_window(
    body: dict[str, Any], window: _Window, stamps: list[_Stamp], page: SearchPage
) -> _Window | None:
    """The next request of this round, or None when the window is read to its end."""
    nb_hits, nb_pages = body.get("nbHits"), body.get("nbPages")
    if not isinstance(nb_hits, int) or not isinstance(nb_pages, int) or not stamps:
        return None
    if window.page + 1 < nb_pages:
        return _Window(lower=window.lower, upper=window.upper, page=window.page + 1)
    reachable = min((window.page + 1) * HITS_PER_PAGE, PAGINATION_CAP)
    if nb_hits <= reachable:
        return None
    # More hits than Algolia lets us page to: continue from the oldest second read.
    oldest = min(s.second for s in stamps)
    if window.upper is not None and oldest == window.upper.second:
        # Every reachable hit shares one second: those beyond the cap cannot be read.
        page.rejected.append(
            RejectedItem(
                raw={"created_at_i": oldest, "nbHits": nb_hits},
                reason=f"more than {PAGINATION_CAP} hits in the second {oldest}: Algolia "
                "cannot page to the rest of them",
            )
        )
        return _Window(lower=window.lower, upper=_Bound(oldest - 1), page=0)
    return _Window(lower=window.lower, upper=_Bound(oldest, _ids_in(stamps, oldest)), page=0)


class HackerNewsClient:
    """Stories and comments that mention a brand, from Algolia's HN Search API."""

    platform = "hackernews"
    syntax = HACKER_NEWS_SYNTAX
    can_reply = False

    def __init__(self, *, base_url: str = "", timeout: float | None = None) -> None:
        self.base_url = (base_url or HN_SEARCH_API).rstrip("/")
        self.timeout = settings.X_REQUEST_TIMEOUT_SECONDS if timeout is None else timeout
        self._session = requests.Session()
        self._session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        # The client's clock: where a first poll starts, which item times are believable.
        self.now: Callable[[], datetime] = lambda: datetime.now(UTC)

    def search_page(
        self, *, query: str, since_id: str | None, next_token: str | None
    ) -> SearchPage:
        """One page of stories and comments matching `query` (plain words), newest first.

        Algolia also matches a last word as a prefix, words with typos, and words in URLs
        and author names; hits whose title, text or link do not contain `query`'s words as
        Earshot matches them are left out, so a keyword finds the same posts here as on
        every other platform.
        """
        now = self.now()
        latest = int((now + CLOCK_SKEW).timestamp())
        window = decode_window(next_token) if next_token else None
        first_page = window is None
        if window is None:
            lower = decode_since(since_id) or _Bound(int((now - FIRST_POLL_LOOKBACK).timestamp()))
            window = _Window(lower=lower, upper=None)
        body = self._search(query, window)
        hits = body["hits"]
        stamps = _stamps(hits, latest=latest)
        page = _page_of(hits, window=window, wanted=_words_of(query), latest=latest)
        if first_page:
            page.newest_id = _newest_cursor(stamps, since=window.lower, since_id=since_id)
            if stamps:
                # Pin the round's end: what arrives from now on is the next round's.
                newest = max(s.second for s in stamps)
                window = _Window(lower=window.lower, upper=_Bound(newest), page=0)
        following = _next_window(body, window, stamps, page)
        page.next_token = encode_window(following) if following else None
        return page

    def _search(self, query: str, window: _Window) -> dict[str, Any]:
        params: dict[str, str | int] = {
            "query": query,
            "tags": "(story,comment)",
            "hitsPerPage": HITS_PER_PAGE,
            "page": window.page,
        }
        if filters := window.numeric_filters():
            params["numericFilters"] = filters
        with _translated_errors():
            response = self._session.get(
                self.base_url + SEARCH_PATH, params=params, timeout=self.timeout
            )
            _raise_for_status(response, now=self.now())
            try:
                body = response.json()
            except ValueError as exc:
                raise PlatformUnavailable(
                    "Hacker News search answered with a body that is not valid JSON; will retry"
                ) from exc
        if not isinstance(body, dict) or not isinstance(body.get("hits"), list):
            raise PlatformUnavailable(
                "Hacker News search answered with JSON that is not a search result (no hits "
                "list); will retry"
            )
        return body

    def check_connection(self) -> ConnectionCheck:
        """One search for the newest story: the API needs no credentials, so this shows the
        address is the HN Search API and answers."""
        with _translated_errors():
            response = self._session.get(
                self.base_url + SEARCH_PATH,
                params={"tags": "story", "hitsPerPage": 1},
                timeout=self.timeout,
            )
            _raise_for_status(response, now=self.now())
            try:
                body = response.json()
            except ValueError as exc:
                raise PlatformUnavailable(
                    "Hacker News search answered the connection test with a body that is not "
                    "valid JSON"
                ) from exc
        if not isinstance(body, dict) or not isinstance(body.get("hits"), list):
            raise PlatformUnavailable(
                "Hacker News search answered the connection test with JSON that is not a "
                "search result (no hits list): is the address the HN Search API?"
            )
        return ConnectionCheck(account="Hacker News search (public: no account needed)")

    def own_posts_page(self, *, since_id: str | None, next_token: str | None) -> SearchPage:
        raise RequestRejected(
            "Earshot has no brand account on Hacker News, so there are no own posts to read"
        )

    def post_reply(self, *, text: str, in_reply_to_id: str) -> PostedReply:
        raise RequestRejected(NO_WRITE_API)

    def find_reply(
        self, *, author_username: str, text: str, in_reply_to_id: str
    ) -> PostedReply | None:
        raise RequestRejected(NO_WRITE_API)


def _algolia_message(response: requests.Response) -> str:
    """Algolia's own words for an error: `{"message": ..., "status": ...}`, else the text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip()
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"][:300]
    return ""


def _retry_after(response: requests.Response, now: datetime) -> datetime:
    """A Retry-After a proxy in front may add, else RATE_LIMIT_PAUSE (Algolia sends none)."""
    value = response.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return now + timedelta(seconds=int(value))
    if value:
        try:
            return parsedate_to_datetime(value).astimezone(UTC)
        except (TypeError, ValueError):
            pass
    return now + RATE_LIMIT_PAUSE


def _raise_for_status(response: requests.Response, *, now: datetime) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = _algolia_message(response)
    said = f"{status}{': ' + detail if detail else ''}"
    if status == 429:
        reset_at = _retry_after(response, now)
        raise RateLimited(
            f"Hacker News search rate limit reached ({said}); next call allowed at "
            f"{reset_at:%H:%M:%S} UTC",
            reset_at=reset_at,
        )
    if status == 401:
        raise AuthenticationFailed(
            f"Hacker News search refused the request ({said}). It needs no credentials: "
            "check that the source's address is the HN Search API (https://hn.algolia.com)."
        )
    if status in (400, 403, 404, 422):
        raise RequestRejected(f"Hacker News search refused the request ({said})")
    raise PlatformUnavailable(f"Hacker News search answered {said}; will retry")


@contextmanager
def _translated_errors() -> Iterator[None]:
    try:
        yield
    except PlatformError:
        raise
    except requests.Timeout as exc:
        raise PlatformUnavailable("Hacker News search did not answer in time; will retry") from exc
    except requests.RequestException as exc:
        raise PlatformUnavailable(
            f"Could not reach Hacker News search: {type(exc).__name__}; will retry"
        ) from exc


def client_for_source(source: Any) -> HackerNewsClient:
    """The client for a Hacker News `Source`.

    Reads no `source.credentials` key: the HN Search API is public. `source.base_url` is the
    API's address (blank: https://hn.algolia.com); `source.account_handle` is not used.
    """
    return HackerNewsClient(base_url=source.base_url)
