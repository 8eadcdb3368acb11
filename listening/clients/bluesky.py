"""Bluesky (the AT Protocol) through the `atproto` SDK. The only module of Earshot that
imports atproto.

An app password logs in once per account and process (`com.atproto.server.createSession` is
limited to 30 per 5 min per account); the session lives in memory and atproto refreshes it
before its access token expires. Reads go through `Client.invoke_query`, which keeps the raw
JSON and the `ratelimit-*` headers, so one malformed post never sinks a page; the reply is
written through atproto's typed `app.bsky.feed.post.create`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import httpx
from atproto import Client, Request, Session, SessionEvent, models
from atproto_client import exceptions as atproto_errors
from atproto_core.exceptions import AtProtocolError
from django.conf import settings

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
from listening.models import Platform
from listening.query import BLUESKY_SYNTAX

if TYPE_CHECKING:
    from listening.models import Source

logger = logging.getLogger(__name__)

DEFAULT_SERVICE = "https://bsky.social"
WEB_APP = "https://bsky.app"
POST_COLLECTION = "app.bsky.feed.post"
SEARCH_PAGE_SIZE = 100  # searchPosts' maximum
FEED_PAGE_SIZE = 100  # getAuthorFeed's maximum
PROFILES_PER_CALL = 25  # getProfiles' maximum
CURSOR_MAX_LENGTH = 500  # PollCursor's columns
# Columns of Author and Mention that these values go into.
MAX_ID_LENGTH = 255
MAX_USERNAME_LENGTH = 100
MAX_NAME_LENGTH = 200
# A createdAt before this is a broken or hostile clock, not a post: use the indexing time.
EARLIEST_PLAUSIBLE = datetime(2000, 1, 1, tzinfo=UTC)
# When a 429 names no reset time: Bluesky's limits count over 5-minute windows.
DEFAULT_RATE_LIMIT_WAIT = timedelta(minutes=5)
# The token errors a fresh login cures (the PDS's words for an expired or unknown session).
TOKEN_ERRORS = frozenset({"ExpiredToken", "InvalidToken", "AuthenticationRequired", "AuthMissing"})

_DID_RE = re.compile(r"^did:[a-z]+:[A-Za-z0-9._:%-]*[A-Za-z0-9._-]$")
_HANDLE_RE = re.compile(
    r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
)
_POST_URI_RE = re.compile(
    r"^at://(did:[a-z]+:[A-Za-z0-9._:%-]+)/app\.bsky\.feed\.post/([A-Za-z0-9._:~-]{1,512})$"
)
_LANG_RE = re.compile(r"^([A-Za-z]{2,3})(-[A-Za-z0-9]{1,8})*$")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BlueskyCredentials:
    identifier: str  # a handle (northwind.bsky.social), the account's email, or its DID
    app_password: str


# --- sessions -------------------------------------------------------------------------------


class _SessionStrings:
    """atproto session strings by account, shared by every client of this process.

    A client is built per poll and per reply; logging in each time would spend the account's
    createSession budget (30 per 5 min) in minutes. Keyed by service, identifier and a hash
    of the app password, so a changed password under Sources logs in afresh.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._strings: dict[tuple[str, str, str], str] = {}

    @staticmethod
    def key(service: str, credentials: BlueskyCredentials) -> tuple[str, str, str]:
        secret = hashlib.sha256(credentials.app_password.encode()).hexdigest()
        return service, credentials.identifier.lower(), secret

    def get(self, key: tuple[str, str, str]) -> str | None:
        with self._lock:
            return self._strings.get(key)

    def put(self, key: tuple[str, str, str], session_string: str) -> None:
        with self._lock:
            self._strings[key] = session_string

    def forget(self, key: tuple[str, str, str]) -> None:
        with self._lock:
            self._strings.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._strings.clear()


SESSIONS = _SessionStrings()


# --- reading the wire format ----------------------------------------------------------------


def _time(value: Any) -> datetime | None:
    """An atproto datetime (RFC 3339 with an offset), or None when it is not one."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value)
        return parsed.astimezone(UTC) if parsed.tzinfo is not None else None
    except (ValueError, OverflowError):  # an offset can push year 1 or 9999 out of range
        return None


def _latest_plausible() -> datetime:
    return datetime.now(UTC) + timedelta(days=1)


def render_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _post_uri(value: Any, what: str) -> re.Match[str]:
    if not isinstance(value, str) or len(value) > MAX_ID_LENGTH:
        raise ValueError(f"{what} is not an at:// post URI: {str(value)[:80]!r}")
    match = _POST_URI_RE.match(value)
    if match is None or match.group(2) in (".", ".."):
        raise ValueError(f"{what} is not an at:// post URI: {value[:80]!r}")
    return match


def post_web_url(handle: str, did: str, rkey: str) -> str:
    return f"{WEB_APP}/profile/{_profile_key(handle, did)}/post/{rkey}"


def _profile_key(handle: str, did: str) -> str:
    # The AppView says "handle.invalid" when a handle no longer resolves: link by DID then.
    return did if handle == "handle.invalid" else handle


def _parse_author(raw: Any) -> FetchedAuthor:
    if not isinstance(raw, dict):
        raise ValueError("author is missing or not an object")
    did, handle = raw.get("did"), raw.get("handle")
    if not isinstance(did, str) or len(did) > MAX_ID_LENGTH or not _DID_RE.match(did):
        raise ValueError(f"author.did is not a DID: {str(did)[:80]!r}")
    if isinstance(handle, str) and len(handle) > MAX_USERNAME_LENGTH:
        raise ValueError(f"author.handle is longer than the {MAX_USERNAME_LENGTH} characters kept")
    if not isinstance(handle, str) or not _HANDLE_RE.match(handle):
        raise ValueError(f"author.handle is not a handle: {str(handle)[:80]!r}")
    name = raw.get("displayName")
    verification = raw.get("verification")
    return FetchedAuthor(
        external_id=did,
        username=handle.lower(),
        name=clean_text(name)[:MAX_NAME_LENGTH] if isinstance(name, str) else "",
        followers_count=0,
        verified=isinstance(verification, dict) and verification.get("verifiedStatus") == "valid",
        url=f"{WEB_APP}/profile/{_profile_key(handle.lower(), did)}",
    )


def _reply_refs(record: dict[str, Any]) -> tuple[str, str] | None:
    """(parent URI, root URI) of a reply record, None for a post that starts a thread."""
    reply = record.get("reply")
    if reply is None:
        return None
    if not isinstance(reply, dict):
        raise ValueError("record.reply is not an object")
    refs = []
    for part in ("parent", "root"):
        ref = reply.get(part)
        uri = ref.get("uri") if isinstance(ref, dict) else None
        refs.append(_post_uri(uri, f"record.reply.{part}.uri").group(0))
    return refs[0], refs[1]


def _quoted_uri(embed: Any) -> str | None:
    """The post a quote post embeds (record or record-with-media view), if it is a post."""
    if not isinstance(embed, dict):
        return None
    record = embed.get("record")
    if embed.get("$type") == "app.bsky.embed.recordWithMedia#view" and isinstance(record, dict):
        record = record.get("record")
    uri = record.get("uri") if isinstance(record, dict) else None
    return uri if isinstance(uri, str) and _POST_URI_RE.match(uri) else None


def _lang(record: dict[str, Any]) -> str:
    """The first declared language's primary subtag ("en-GB" -> "en"), as lang: compares it;
    "und" when the post declares none, as X says of a post in no known language."""
    langs = record.get("langs")
    first = langs[0] if isinstance(langs, list) and langs else None
    match = _LANG_RE.match(first) if isinstance(first, str) and len(first) <= 16 else None
    return match.group(1).lower() if match else "und"


def _metrics(raw: dict[str, Any]) -> dict[str, int]:
    # X's names, so metrics read alike on every platform (a repost is a "retweet" here).
    names = {
        "replyCount": "reply_count",
        "repostCount": "retweet_count",
        "likeCount": "like_count",
        "quoteCount": "quote_count",
    }
    return {
        ours: value
        for theirs, ours in names.items()
        if type(value := raw.get(theirs)) is int and 0 <= value < 2**63
    }


@dataclass(frozen=True, slots=True)
class _ParsedPost:
    post: FetchedPost
    author: FetchedAuthor
    sort_at: datetime  # the AppView's order and `since`: createdAt, unless after indexedAt


def parse_post_view(raw: Any) -> _ParsedPost:
    """One app.bsky.feed.defs#postView; raises ValueError with a readable reason if malformed."""
    if not isinstance(raw, dict):
        raise ValueError(f"item is a {type(raw).__name__}, not an object")
    author = _parse_author(raw.get("author"))
    uri = _post_uri(raw.get("uri"), "uri")
    if uri.group(1) != author.external_id:
        raise ValueError(f"uri {uri.group(0)[:80]!r} is not in its author's repository")
    record = raw.get("record")
    if not isinstance(record, dict):
        raise ValueError("record is missing or not an object")
    if record.get("$type", POST_COLLECTION) != POST_COLLECTION:
        raise ValueError(f"record is a {str(record.get('$type'))[:80]!r}, not a post")
    text = record.get("text")
    if not isinstance(text, str):
        raise ValueError("record.text is missing or not a string")
    indexed_at = _time(raw.get("indexedAt"))
    # The AppView stamps indexedAt itself; one far off would poison the since cursor.
    if indexed_at is None or not EARLIEST_PLAUSIBLE <= indexed_at <= _latest_plausible():
        raise ValueError(f"indexedAt {str(raw.get('indexedAt'))[:40]!r} is not an indexing time")
    created_at = _time(record.get("createdAt"))
    if created_at is None or created_at < EARLIEST_PLAUSIBLE:
        created_at = indexed_at
    sort_at = min(created_at, indexed_at)
    reply = _reply_refs(record)
    references = []
    if reply is not None:
        references.append({"type": "replied_to", "id": reply[0]})
    if (quoted := _quoted_uri(raw.get("embed"))) is not None:
        references.append({"type": "quoted", "id": quoted})
    post = FetchedPost(
        external_id=uri.group(0),
        text=clean_text(text),
        author_external_id=author.external_id,
        posted_at=sort_at,
        conversation_id=reply[1] if reply else uri.group(0),
        lang=_lang(record),
        # The parent's repository is its author's DID.
        in_reply_to_user_id=_post_uri(reply[0], "parent").group(1) if reply else "",
        referenced_posts=references,
        public_metrics=_metrics(raw),
        url=post_web_url(author.username, author.external_id, uri.group(2)),
    )
    return _ParsedPost(post=post, author=author, sort_at=sort_at)


# --- the since cursor -----------------------------------------------------------------------
# `since` is inclusive ("posts after the indicated datetime (inclusive)", on sortAt): the
# cursor keeps the newest sortAt seen and the URIs seen at exactly that instant, so the next
# round asks from that instant and drops only what it has already had.


@dataclass(frozen=True, slots=True)
class _Since:
    at: datetime
    seen: frozenset[str]


def encode_since(parsed: list[_ParsedPost]) -> str | None:
    if not parsed:
        return None
    newest = max(item.sort_at for item in parsed)
    text = render_time(newest)
    for item in parsed:
        # sortAt is rendered to the millisecond: every post within it counts as seen there.
        if render_time(item.sort_at) == text:
            if len(text) + 1 + len(item.post.external_id) > CURSOR_MAX_LENGTH:
                break
            text += " " + item.post.external_id
    return text


def decode_since(value: str | None) -> _Since | None:
    if not value:
        return None
    moment, *uris = value.split(" ")
    at = _time(moment)
    if at is None:
        logger.warning("Ignoring a Bluesky cursor that is not ours: %.80r", value)
        return None
    return _Since(at=at, seen=frozenset(uris))


def _is_new(item: _ParsedPost, since: _Since | None) -> bool:
    if since is None:
        return True
    return render_time(item.sort_at) >= render_time(since.at) and (
        item.post.external_id not in since.seen
    )


# --- errors ---------------------------------------------------------------------------------


def _error_words(exc: atproto_errors.RequestErrorBase) -> tuple[int, str, str]:
    """(status, XRPC error name, message) of a refused request, as far as its body says."""
    response = exc.response
    if response is None:
        return 0, "", ""
    content = response.content
    error = getattr(content, "error", None)
    if isinstance(error, str):
        message = getattr(content, "message", None)
        return response.status_code, error, message if isinstance(message, str) else ""
    if isinstance(content, bytes):
        return (
            response.status_code,
            "",
            clean_text(content.decode("utf-8", "replace")).strip()[:200],
        )
    return response.status_code, "", ""


def _said(status: int, error: str, message: str) -> str:
    """ "400 InvalidRequest: why" for an XRPC error body, "403: text" for any other."""
    if error:
        return f"{status} {error}: {message}" if message else f"{status} {error}"
    return f"{status}: {message}" if message else str(status)


def _token_refused(exc: BaseException) -> bool:
    if not isinstance(exc, atproto_errors.BadRequestError | atproto_errors.UnauthorizedError):
        return False
    status, error, _ = _error_words(exc)
    return status in (400, 401) and error in TOKEN_ERRORS


def _sent_before_failing(exc: BaseException) -> bool:
    """Whether the request may have reached the server: anything but a failed connect."""
    cause = exc.__cause__ if isinstance(exc, AtProtocolError) else exc
    return not isinstance(cause, httpx.ConnectError | httpx.ConnectTimeout)


@contextmanager
def _translated_errors(action: str, *, write: bool = False) -> Iterator[None]:
    """Turns atproto's and httpx's exceptions into the platform-neutral ones of `base`.

    For a `write`, a timeout once the request left, a cut connection or a 5xx means Bluesky
    may have carried it out: that is PlatformOutcomeUnknown, never a plain retryable failure.
    """
    maybe = "; it may have been posted" if write else "; will retry"
    unknown_or_unavailable = PlatformOutcomeUnknown if write else PlatformUnavailable
    try:
        yield
    except PlatformError:
        raise
    except atproto_errors.RateLimitExceededError as exc:
        reset_at = exc.reset_at or datetime.now(UTC) + (
            timedelta(seconds=exc.retry_after) if exc.retry_after else DEFAULT_RATE_LIMIT_WAIT
        )
        policy = f" (policy {exc.policy})" if exc.policy else ""
        raise RateLimited(
            f"Bluesky rate limit reached for the {action}{policy}; next call allowed at "
            f"{reset_at:%H:%M:%S} UTC",
            reset_at=reset_at,
        ) from exc
    except atproto_errors.UnauthorizedError as exc:
        status, error, message = _error_words(exc)
        if status == 403:
            raise RequestRejected(
                f"Bluesky refused the {action} ({_said(status, error, message)}). Bluesky "
                "refuses search without a login, and some networks outright: check the "
                "source's address under Sources."
            ) from exc
        raise AuthenticationFailed(
            f"Bluesky refused the account's session ({_said(status, error, message)}). "
            "Check the handle and app password under Sources."
        ) from exc
    except atproto_errors.BadRequestError as exc:
        status, error, message = _error_words(exc)
        if error in TOKEN_ERRORS:
            raise AuthenticationFailed(
                f"Bluesky refused the account's session even after a new login "
                f"({_said(status, error, message)}). Check the handle and app password "
                "under Sources."
            ) from exc
        raise RequestRejected(
            f"Bluesky refused the {action} ({_said(status, error, message)})"
        ) from exc
    except atproto_errors.InvokeTimeoutError as exc:
        if not _sent_before_failing(exc):
            raise PlatformUnavailable(
                f"Could not connect to Bluesky for the {action} in time"
            ) from exc
        raise unknown_or_unavailable(f"Bluesky did not answer the {action} in time{maybe}") from exc
    except atproto_errors.RequestErrorBase as exc:
        # NetworkError (a transport failure, 409, 413, 502) and every other status.
        status, error, message = _error_words(exc)
        if status == 0:
            if not _sent_before_failing(exc):
                raise PlatformUnavailable(
                    f"Could not reach Bluesky for the {action}: {type(exc.__cause__).__name__}"
                ) from exc
            raise unknown_or_unavailable(
                f"The connection to Bluesky broke during the {action}{maybe}"
            ) from exc
        if status >= 500 and status != 501:
            raise unknown_or_unavailable(
                f"Bluesky answered {_said(status, error, message)} to the {action}{maybe}"
            ) from exc
        raise RequestRejected(
            f"Bluesky answered {_said(status, error, message)} to the {action}: check the "
            "source's address under Sources"
        ) from exc
    except httpx.HTTPError as exc:
        # atproto passes on transport errors it does not wrap (a connection cut mid-answer).
        if not _sent_before_failing(exc):
            raise PlatformUnavailable(
                f"Could not reach Bluesky for the {action}: {type(exc).__name__}"
            ) from exc
        raise unknown_or_unavailable(
            f"The connection to Bluesky broke during the {action} ({type(exc).__name__}){maybe}"
        ) from exc
    except ValueError as exc:
        # A 2xx whose body is not valid JSON (pydantic_core's from_json raises ValueError).
        raise unknown_or_unavailable(
            f"Bluesky answered the {action} with a body that is not valid JSON{maybe}"
        ) from exc
    except AtProtocolError as exc:
        # A 2xx atproto could not read into its model, a session it could not decode...
        raise unknown_or_unavailable(
            f"Bluesky's answer to the {action} could not be read ({type(exc).__name__}){maybe}"
        ) from exc


def _rate_limit(headers: dict[str, Any]) -> RateLimit | None:
    try:
        return RateLimit(
            limit=int(headers["ratelimit-limit"]),
            remaining=int(headers["ratelimit-remaining"]),
            reset_at=datetime.fromtimestamp(int(headers["ratelimit-reset"]), tz=UTC),
        )
    except (KeyError, ValueError, TypeError, OverflowError, OSError):
        return None


def _body(response: Any, action: str, key: str) -> dict[str, Any]:
    """The JSON object of a 2xx answer, which must hold a list under `key`."""
    content = response.content
    if not isinstance(content, dict) or not isinstance(content.get(key), list):
        raise PlatformUnavailable(
            f"Bluesky answered the {action} with something that is not its result (no {key!r} list)"
        )
    return content


# --- the client -----------------------------------------------------------------------------


class BlueskyClient:
    """One Bluesky account's view of the network: search, its own feed, replies as it."""

    platform = Platform.BLUESKY
    syntax = BLUESKY_SYNTAX
    can_reply = True

    def __init__(
        self,
        credentials: BlueskyCredentials,
        *,
        service_url: str = "",
        account_handle: str = "",
        timeout: float | None = None,
    ) -> None:
        self.credentials = credentials
        self.account_handle = account_handle.strip().removeprefix("@")
        self.service_url = (service_url or DEFAULT_SERVICE).rstrip("/")
        self._session_key = SESSIONS.key(self.service_url, credentials)
        self._did = ""
        self._handle = ""
        # The budget as the latest answer counted it: a page's follower look-ups spend it too.
        self._rate_limit: RateLimit | None = None
        request = Request(
            timeout=settings.X_REQUEST_TIMEOUT_SECONDS if timeout is None else timeout
        )
        self._client = Client(base_url=self.service_url, request=request)
        self._client.on_session_change(self._remember_session)

    # -- sessions --

    def _remember_session(self, event: SessionEvent, session: Session) -> None:
        self._did = session.did
        self._handle = session.handle
        if event in (SessionEvent.CREATE, SessionEvent.REFRESH):
            SESSIONS.put(self._session_key, session.export())

    def _log_in(self) -> None:
        """Resume this process's session for the account, or create one."""
        session_string = SESSIONS.get(self._session_key)
        with _translated_errors("login"):
            if session_string:
                self._client.login(session_string=session_string, fetch_bsky_profile=False)
                return
            if not self.credentials.identifier or not self.credentials.app_password:
                raise AuthenticationFailed(
                    "The Bluesky source has no identifier or app password: add them under "
                    "Sources (an app password, from Bluesky's Settings > Privacy and security)."
                )
            try:
                self._client.login(
                    self.credentials.identifier,
                    self.credentials.app_password,
                    fetch_bsky_profile=False,
                )
            except (atproto_errors.UnauthorizedError, atproto_errors.BadRequestError) as exc:
                status, error, message = _error_words(exc)
                raise AuthenticationFailed(
                    f"Bluesky refused the login of {self.credentials.identifier} "
                    f"({_said(status, error, message)}). Check the handle and app password "
                    "under Sources."
                ) from exc

    def check_connection(self) -> ConnectionCheck:
        """A fresh `com.atproto.server.createSession` with the identifier and app password:
        a session this process kept would say nothing about the password typed now."""
        SESSIONS.forget(self._session_key)
        self._did = ""
        self._log_in()
        handle = self._handle or self.credentials.identifier
        return ConnectionCheck(account=f"@{handle} on {urlsplit(self.service_url).netloc}")

    def _call(self, action: str, operation: Callable[[], T], *, write: bool = False) -> T:
        """Run `operation` logged in; if Bluesky refuses the session's token, log in once
        more and run it again (a refused token means the request was not carried out)."""
        with _translated_errors(action, write=write):
            if not self._did:
                self._log_in()
            try:
                return operation()
            except (atproto_errors.BadRequestError, atproto_errors.UnauthorizedError) as exc:
                if not _token_refused(exc):
                    raise
                logger.info("Bluesky refused the session of %s; logging in again", self._did)
                SESSIONS.forget(self._session_key)
                self._log_in()
                return operation()

    def _query(self, nsid: str, params: Any) -> Any:
        response = self._client.invoke_query(nsid, params=params)
        self._rate_limit = _rate_limit(response.headers) or self._rate_limit
        return response

    # -- reading --

    def search_page(
        self, *, query: str, since_id: str | None, next_token: str | None
    ) -> SearchPage:
        since = decode_since(since_id)
        params = models.AppBskyFeedSearchPosts.Params(
            q=query,
            sort="latest",
            limit=SEARCH_PAGE_SIZE,
            since=render_time(since.at) if since else None,
            cursor=next_token or None,
        )
        response = self._call("search", lambda: self._query("app.bsky.feed.searchPosts", params))
        body = _body(response, "search", "posts")
        parsed, rejected = [], []
        for raw in body["posts"]:
            try:
                parsed.append(parse_post_view(raw))
            except (ValueError, TypeError) as exc:
                rejected.append(RejectedItem(raw=raw, reason=str(exc)))
        cursor = body.get("cursor")
        page = self._page(
            [item for item in parsed if _is_new(item, since)],
            rejected=rejected,
            next_token=cursor if body["posts"] else None,
        )
        page.rate_limit = self._rate_limit
        return page

    def own_posts_page(self, *, since_id: str | None, next_token: str | None) -> SearchPage:
        """The brand account's posts and replies, newest first (`getAuthorFeed`), down to
        `since_id`. The account is `Source.account_handle`, else the logged-in one."""
        since = decode_since(since_id)
        response, actor = self._author_feed(next_token, actor=self.account_handle or None)
        body = _body(response, "read of the account's posts", "feed")
        parsed, rejected = [], []
        reached_seen = False
        for item in body["feed"]:
            raw = item.get("post") if isinstance(item, dict) else item
            if isinstance(item, dict) and item.get("reason") is not None:
                continue  # a repost or a pinned post: not a post of this page
            try:
                parsed_post = parse_post_view(raw)
            except (ValueError, TypeError) as exc:
                rejected.append(RejectedItem(raw=item, reason=str(exc)))
                continue
            if parsed_post.author.external_id != actor and parsed_post.author.username != actor:
                continue
            if _is_new(parsed_post, since):
                parsed.append(parsed_post)
            else:
                reached_seen = True
        cursor = body.get("cursor")
        page = self._page(
            parsed,
            rejected=rejected,
            next_token=cursor if body["feed"] and not reached_seen else None,
        )
        page.rate_limit = self._rate_limit
        return page

    def _author_feed(self, cursor: str | None, *, actor: str | None) -> tuple[Any, str]:
        def read() -> Any:
            params = models.AppBskyFeedGetAuthorFeed.Params(
                actor=actor or self._did,
                filter="posts_with_replies",
                limit=FEED_PAGE_SIZE,
                cursor=cursor or None,
            )
            return self._query("app.bsky.feed.getAuthorFeed", params)

        response = self._call("read of the account's posts", read)
        return response, (actor.lower() if actor else self._did)

    def _page(
        self, parsed: list[_ParsedPost], *, rejected: list[RejectedItem], next_token: Any
    ) -> SearchPage:
        if not isinstance(next_token, str) or not next_token:
            next_token = None
        elif len(next_token) > CURSOR_MAX_LENGTH:
            logger.warning("Bluesky sent a page cursor too long to keep; not paging further")
            next_token = None
        parsed.sort(key=lambda item: item.sort_at, reverse=True)
        authors = {item.author.external_id: item.author for item in parsed}
        return SearchPage(
            posts=[item.post for item in parsed],
            authors=self._with_followers(authors),
            newest_id=encode_since(parsed),
            next_token=next_token,
            rejected=rejected,
        )

    def _with_followers(self, authors: dict[str, FetchedAuthor]) -> dict[str, FetchedAuthor]:
        """Authors with their follower counts, from `getProfiles` (25 a call).

        Post views carry no counts, and Earshot's priority weighs an author's reach: a page of
        100 posts costs at most four more calls of the 3000 per 5 minutes. A failed lookup
        fails the page (it is fetched again), so a count is never written back as 0.
        """
        dids = list(authors)
        for start in range(0, len(dids), PROFILES_PER_CALL):
            params = models.AppBskyActorGetProfiles.Params(
                actors=dids[start : start + PROFILES_PER_CALL]
            )
            response = self._call(
                "profile look-up", lambda p=params: self._query("app.bsky.actor.getProfiles", p)
            )
            for profile in _body(response, "profile look-up", "profiles")["profiles"]:
                did = profile.get("did") if isinstance(profile, dict) else None
                if not isinstance(did, str) or did not in authors:
                    continue
                followers = profile.get("followersCount")
                if type(followers) is int and 0 <= followers < 2**31:
                    author = authors[did]
                    authors[did] = FetchedAuthor(
                        external_id=author.external_id,
                        username=author.username,
                        name=author.name,
                        followers_count=followers,
                        verified=author.verified,
                        url=author.url,
                    )
        return authors

    # -- writing --

    def post_reply(self, *, text: str, in_reply_to_id: str) -> PostedReply:
        """Reply to the post `in_reply_to_id` (an at:// URI) in its thread."""
        if not _POST_URI_RE.match(in_reply_to_id):
            raise RequestRejected(f"{in_reply_to_id!r} is not a Bluesky post to reply to")
        reply_ref = self._reply_ref(in_reply_to_id)
        created_at = datetime.now(UTC)
        record = models.AppBskyFeedPost.Record(
            text=text, created_at=render_time(created_at), reply=reply_ref
        )
        created = self._call(
            "reply",
            lambda: self._client.app.bsky.feed.post.create(repo=self._did, record=record),
            write=True,
        )
        return PostedReply(external_id=created.uri, text=text, posted_at=created_at)

    def _reply_ref(self, parent_uri: str) -> models.AppBskyFeedPost.ReplyRef:
        """The parent's and the thread root's strong refs (URI and CID), from `getPosts`."""
        params = models.AppBskyFeedGetPosts.Params(uris=[parent_uri])
        response = self._call(
            "look-up of the post to reply to",
            lambda: self._query("app.bsky.feed.getPosts", params),
        )
        posts = _body(response, "look-up of the post to reply to", "posts")["posts"]
        parent = next(
            (p for p in posts if isinstance(p, dict) and p.get("uri") == parent_uri), None
        )
        if parent is None:
            raise RequestRejected(
                "The post to reply to is no longer on Bluesky (deleted, or hidden from the "
                "brand's account)"
            )
        cid = parent.get("cid")
        if not isinstance(cid, str) or not cid:
            raise PlatformUnavailable("Bluesky described the post to reply to without its CID")
        parent_ref = models.ComAtprotoRepoStrongRef.Main(uri=parent_uri, cid=cid)
        record = parent.get("record") if isinstance(parent.get("record"), dict) else {}
        reply = record.get("reply") if isinstance(record.get("reply"), dict) else {}
        root = reply.get("root") if isinstance(reply.get("root"), dict) else {}
        if isinstance(root.get("uri"), str) and isinstance(root.get("cid"), str):
            root_ref = models.ComAtprotoRepoStrongRef.Main(uri=root["uri"], cid=root["cid"])
        else:
            root_ref = parent_ref  # the parent starts the thread
        return models.AppBskyFeedPost.ReplyRef(root=root_ref, parent=parent_ref)

    def find_reply(
        self, *, author_username: str, text: str, in_reply_to_id: str, max_pages: int = 3
    ) -> PostedReply | None:
        """Our reply to `in_reply_to_id` with exactly `text`, if Bluesky has it: how a reply
        whose createRecord timed out is found before anyone sends it again.

        Reads the feed of the logged-in account, which is the one `post_reply` writes as
        (`author_username` is not needed: the session knows who posted).
        """
        cursor = None
        for _ in range(max_pages):
            response, did = self._author_feed(cursor, actor=None)
            body = _body(response, "read of the account's posts", "feed")
            for item in body["feed"]:
                if not isinstance(item, dict) or item.get("reason") is not None:
                    continue
                try:
                    parsed = parse_post_view(item.get("post"))
                except (ValueError, TypeError):
                    continue
                post = parsed.post
                if (
                    post.author_external_id == did
                    and post.replied_to_id == in_reply_to_id
                    and post.text == text
                ):
                    return PostedReply(
                        external_id=post.external_id, text=post.text, posted_at=post.posted_at
                    )
            cursor = body.get("cursor")
            if not isinstance(cursor, str) or not cursor:
                return None
        return None


def client_for_source(source: Source) -> BlueskyClient:
    """The Bluesky client of `source` (a `Source` on Platform.BLUESKY).

    Reads `source.credentials["identifier"]` (the account's handle, e.g.
    northwindhelp.bsky.social, its email or its DID) and `source.credentials["app_password"]`
    (an app password, never the account's main password). `source.base_url` is the
    account's PDS or entryway; blank means https://bsky.social. `source.account_handle` is
    the brand's handle whose posts `own_posts_page` reads (blank: the logged-in account).
    """
    credentials = source.credentials or {}
    return BlueskyClient(
        BlueskyCredentials(
            identifier=str(credentials.get("identifier") or "").strip().removeprefix("@"),
            app_password=str(credentials.get("app_password") or ""),
        ),
        service_url=source.base_url,
        account_handle=source.account_handle,
    )
