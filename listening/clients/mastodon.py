"""Mastodon through Mastodon.py. The only module of Earshot that imports Mastodon.py.

A source is one instance and, usually, the brand's account there. Keywords are heard in one
of two ways (see `client_for_source`): full-text status search, which Mastodon only runs for
a signed-in account, or, for a keyword that is a single #hashtag, the hashtag's timeline.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from mastodon import Mastodon
from mastodon.errors import (
    MastodonAPIError,
    MastodonError,
    MastodonIllegalArgumentError,
    MastodonNetworkError,
    MastodonRatelimitError,
    MastodonVersionError,
)
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
from listening.models import Platform, Source
from listening.query import MASTODON_SYNTAX

logger = logging.getLogger(__name__)

DEFAULT_INSTANCE = "https://mastodon.social"
PAGE_SIZE = 40  # the most Mastodon returns per page, for search and timelines alike
FIND_REPLY_PAGES = 3
USER_AGENT = "Earshot (social listening; Mastodon.py)"
# Mastodon's default window: what a 429 without a reset time is taken to mean.
RATE_WINDOW = timedelta(minutes=5)
# Column sizes of Mention and Author: a longer value could not be stored, so the item is
# refused (or, for a display name, cut) here rather than failing the whole page in SQL.
MAX_EXTERNAL_ID = 255
MAX_USERNAME = 100
MAX_NAME = 200
MAX_URL = 1000
MAX_LANG = 16

_HASHTAG_QUERY_RE = re.compile(r"#(\w+)")
_LOCAL_ID_RE = re.compile(r"[0-9A-Za-z_.-]{1,64}")
_DIGITS_RE = re.compile(r"[0-9]+")
_LANG_RE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*")


def client_for_source(source: Source) -> MastodonClient:
    """The Mastodon client for `source`.

    `source.base_url`: the instance, e.g. https://mastodon.social (blank: mastodon.social).
    `source.credentials["access_token"]`: a user token of the brand's account on that
    instance (scopes `read` and `write:statuses`). Word searches need it, because Mastodon
    only searches the text of posts for a signed-in account (on an instance with full-text
    search); so do replies and finding them. A keyword that is a single #hashtag reads the
    hashtag's timeline instead, which works without a token where the instance shows it
    publicly (the default). No other key is read.
    `source.account_handle`: the brand's account (`NorthwindHelp`, or `user@instance`),
    whose posts are read to link replies sent on Mastodon itself.
    """
    return MastodonClient(
        base_url=source.base_url or DEFAULT_INSTANCE,
        access_token=str((source.credentials or {}).get("access_token") or ""),
        account_handle=source.account_handle,
    )


class MastodonClient:
    """One instance, through Mastodon.py pointed at it.

    External ids are `host/id`: the instance's host and its own id of the status. Ids are
    per instance, so the host makes them unique across instances; and the local id is what
    every further call needs: a reply's `in_reply_to_id`, a reply's parent, a boost's
    original all arrive as local ids, so `replied_to` and `retweeted` references match the
    ids search gave their targets without one more request per post (a status `uri` would
    need a lookup for each). The price: a federated post heard through two instances is two
    mentions. Authors are keyed by their profile URL, the same from every instance.
    """

    platform = Platform.MASTODON
    syntax = MASTODON_SYNTAX
    can_reply = True

    def __init__(
        self,
        *,
        base_url: str,
        access_token: str = "",
        account_handle: str = "",
        timeout: float | None = None,
    ) -> None:
        base_url = base_url.strip().rstrip("/")
        # "mastodon.social" is taken to mean https://mastodon.social, as Mastodon.py does.
        self.base_url = base_url if "://" in base_url else f"https://{base_url}"
        self.host = urlsplit(self.base_url).netloc.lower()
        self.access_token = access_token
        self.account_handle = account_handle.strip().lstrip("@")
        self._account_ids: dict[str, str] = {}
        self._version_known = False
        # Mastodon.py returns parsed, retyped bodies; the raw answer (its headers, and the
        # items exactly as sent, so one bad item cannot sink a page) is kept from a hook.
        self._last_response: requests.Response | None = None
        session = requests.Session()
        session.hooks["response"].append(self._keep_response)
        self._api = Mastodon(
            api_base_url=self.base_url,
            access_token=access_token or None,
            # Never "wait" or "pace": both sleep. Polling honours X-RateLimit-Reset instead.
            ratelimit_method="throw",
            request_timeout=settings.X_REQUEST_TIMEOUT_SECONDS if timeout is None else timeout,
            # No per-endpoint gate: Mastodon.py learns the version once (`_learn_version`)
            # only where it needs it, for search cursors and timeline availability.
            version_check_mode="none",
            session=session,
            user_agent=USER_AGENT,
        )

    def _keep_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._last_response = response

    # -- reading --

    def search_page(
        self, *, query: str, since_id: str | None, next_token: str | None
    ) -> SearchPage:
        """A newest-first page of statuses matching `query` (Mastodon's plain words).

        A query that is one `#hashtag` reads the hashtag's timeline: it holds every public
        post with the tag the instance knows of, on instances without full-text search too.
        """
        hashtag = _HASHTAG_QUERY_RE.fullmatch(query.strip())
        if hashtag is None and not self.access_token:
            raise AuthenticationFailed(
                "Mastodon only searches the text of posts for a signed-in account: add the "
                "brand account's access token under Sources, or listen for a single #hashtag "
                "instead."
            )
        self._learn_version()
        if hashtag is not None:
            # since_id, not min_id: on a timeline min_id returns the page just above the
            # cursor (the oldest new posts), where a round wants the newest first.
            with self._call("read of the hashtag timeline"):
                self._api.timeline_hashtag(
                    hashtag.group(1),
                    since_id=since_id or None,
                    max_id=next_token or None,
                    limit=PAGE_SIZE,
                )
                items = self._last_json()
        else:
            with self._call("search"):
                self._api.search_v2(
                    query,
                    resolve=False,
                    result_type="statuses",
                    min_id=since_id or None,
                    max_id=_search_upper_bound(next_token),
                    limit=PAGE_SIZE,
                    exclude_unreviewed=False,
                )
                body = self._last_json()
            items = body.get("statuses") if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise PlatformUnavailable(
                    "Mastodon answered the search with something that is not a search result"
                )
        return self._page(items, since_id=since_id, next_token=next_token)

    def own_posts_page(self, *, since_id: str | None, next_token: str | None) -> SearchPage:
        """The brand account's statuses, newest first: its replies and boosts among them."""
        if not self.account_handle:
            raise RequestRejected(
                "The Mastodon source has no account handle, so the brand's own posts can't be "
                "read. Add it under Sources."
            )
        account_id = self._account_id(self.account_handle)
        with self._call("read of the brand's posts"):
            self._api.account_statuses(
                account_id, since_id=since_id or None, max_id=next_token or None, limit=PAGE_SIZE
            )
            items = self._last_json()
        return self._page(items, since_id=since_id, next_token=next_token)

    def _page(self, items: Any, *, since_id: str | None, next_token: str | None) -> SearchPage:
        if not isinstance(items, list):
            raise PlatformUnavailable(
                "Mastodon answered with something that is not a list of posts"
            )
        page = parse_statuses(items, host=self.host, since_id=since_id, next_token=next_token)
        page.rate_limit = _rate_limit(self._last_response)
        return page

    def _learn_version(self) -> None:
        """Have Mastodon.py read the instance's version (GET /api/v1/instance and /api/v2/
        instance) now, where a failure is reported as what it is: otherwise it does so in
        the middle of a search, swallows any error and refuses cursors as too new."""
        if self._version_known:
            return
        with self._call("check of the instance's version"):
            self._api.retrieve_mastodon_version(fail_hard=True)
        self._version_known = True

    def _account_id(self, handle: str) -> str:
        """The instance's id of the account `handle` (GET /api/v1/accounts/lookup), once."""
        if handle not in self._account_ids:
            with self._call(f"lookup of @{handle}"):
                self._api.account_lookup(handle)
                account = self._last_json()
            account_id = account.get("id") if isinstance(account, dict) else None
            if not isinstance(account_id, str) or not _LOCAL_ID_RE.fullmatch(account_id):
                raise PlatformUnavailable(
                    f"Mastodon's answer for @{handle} has no readable account id"
                )
            self._account_ids[handle] = account_id
        return self._account_ids[handle]

    # -- writing --

    def post_reply(self, *, text: str, in_reply_to_id: str) -> PostedReply:
        """Reply to the status `in_reply_to_id` (an external id from this instance).

        The Idempotency-Key is derived from the target and the text, so a retry of a post
        whose answer never came is the same post to Mastodon (it keeps keys for an hour).
        """
        parent = self._on_this_instance(in_reply_to_id)
        with self._call("reply", write=True):
            self._api.status_post(
                text, in_reply_to_id=parent, idempotency_key=idempotency_key(in_reply_to_id, text)
            )
            status = self._last_json()
        try:
            return PostedReply(
                external_id=f"{self.host}/{_valid_id(status.get('id'))}",
                text=text,
                posted_at=_parse_time(status.get("created_at")),
            )
        except (AttributeError, ValueError) as exc:
            raise PlatformOutcomeUnknown(
                "Mastodon accepted the reply but its answer could not be read; it is probably "
                "posted: look for it before sending again"
            ) from exc

    def find_reply(
        self,
        *,
        author_username: str,
        text: str,
        in_reply_to_id: str,
        max_pages: int = FIND_REPLY_PAGES,
    ) -> PostedReply | None:
        """The brand's reply to `in_reply_to_id` with exactly `text`, if Mastodon has it.

        Reads the source's account (whose token posts; `author_username` only when the
        source names none), newest first, and compares the typed text of each candidate
        (its `/source`: rendered HTML shortens mentions and links).
        """
        parent = self._on_this_instance(in_reply_to_id)
        handle = self.account_handle or author_username.strip().lstrip("@")
        if not handle:
            raise RequestRejected(
                "The Mastodon source has no account handle, so an earlier reply can't be looked "
                "for. Add it under Sources."
            )
        account_id = self._account_id(handle)
        max_id = None
        for _ in range(max_pages):
            with self._call("search for our reply"):
                self._api.account_statuses(
                    account_id, max_id=max_id, limit=PAGE_SIZE, exclude_reblogs=True
                )
                items = self._last_json()
            if not isinstance(items, list):
                raise PlatformUnavailable(
                    "Mastodon answered with something that is not a list of posts"
                )
            for item in items:
                if isinstance(item, dict) and item.get("in_reply_to_id") == parent:
                    found = self._typed_as(item, text)
                    if found is not None:
                        return found
            ids = [i for i in (_item_id(item) for item in items) if i]
            if len(items) < PAGE_SIZE or not ids:
                return None
            max_id = min(ids, key=_id_order)
        return None

    def _typed_as(self, status: dict[str, Any], text: str) -> PostedReply | None:
        local = _item_id(status)
        try:
            posted_at = _parse_time(status.get("created_at"))
        except ValueError:
            local = None
        if local is None:
            return None  # not readable as ours; a repeated post is still kept out by its key
        with self._call("read of our reply's text"):
            self._api.status_source(local)
            source = self._last_json()
        typed = source.get("text") if isinstance(source, dict) else None
        if not isinstance(typed, str) or _as_typed(typed) != _as_typed(text):
            return None
        return PostedReply(external_id=f"{self.host}/{local}", text=text, posted_at=posted_at)

    def _on_this_instance(self, external_id: str) -> str:
        """The instance's own id of the status `external_id`, which must be one of its."""
        host, _, local = external_id.partition("/")
        if host != self.host or not _LOCAL_ID_RE.fullmatch(local):
            raise RequestRejected(
                f"{external_id!r} is not a post of {self.host}: Earshot can only answer it "
                f"through the instance it was heard on"
            )
        return local

    # -- the connection test --

    def check_connection(self) -> ConnectionCheck:
        """GET /api/v1/accounts/verify_credentials with the source's token; without one, the
        instance's own information (hashtag timelines need nothing more)."""
        if not self.access_token:
            self._learn_version()
            return ConnectionCheck(
                account=f"{self.host}, without signing in",
                warnings=(
                    "No access token: only keywords that are a single #hashtag can be heard, "
                    "and replies cannot be sent from Earshot.",
                ),
            )
        with self._call("connection test"):
            self._api.account_verify_credentials()
            account = self._last_json()
        if not isinstance(account, dict) or not isinstance(account.get("acct"), str):
            raise PlatformUnavailable(
                "Mastodon answered the connection test with something that is not an account"
            )
        name = account.get("display_name") if isinstance(account.get("display_name"), str) else ""
        handle = clean_text(account["acct"])[:MAX_USERNAME]
        return ConnectionCheck(
            account=f"@{handle} on {self.host}"
            + (f" ({clean_text(name)[:MAX_NAME]})" if name else "")
        )

    # -- the library's answers and failures --

    def _last_json(self) -> Any:
        response = self._last_response
        if response is None:
            raise PlatformUnavailable("Mastodon.py made no request")
        try:
            return response.json()
        except (ValueError, RecursionError) as exc:
            raise PlatformUnavailable(
                "Mastodon answered with a body that is not valid JSON"
            ) from exc

    @contextmanager
    def _call(self, action: str, *, write: bool = False) -> Iterator[None]:
        """Turns Mastodon.py's and requests' exceptions into the platform-neutral ones.

        For a `write`, a timeout while waiting for the answer, a dropped connection or a
        server error means Mastodon may have carried it out: PlatformOutcomeUnknown.
        """
        if not self.host:
            raise RequestRejected(
                f"{self.base_url!r} is not an instance address such as https://mastodon.social: "
                "correct it under Sources."
            )
        self._last_response = None
        try:
            yield
        except PlatformError:
            raise
        except MastodonError as exc:
            raise _translated(
                exc,
                action,
                write=write,
                response=self._last_response,
                signed_in=bool(self.access_token),
            ) from exc
        except (AttributeError, TypeError, KeyError, ValueError, IndexError, RecursionError) as exc:
            # Mastodon.py stumbled over an answer it could not make sense of (a search body
            # that is a list, say): the body was not what Mastodon sends.
            if write:
                raise PlatformOutcomeUnknown(
                    f"Mastodon's answer to the {action} could not be read; it may have been "
                    "posted: look for it before sending again"
                ) from exc
            raise PlatformUnavailable(
                f"Mastodon answered the {action} with something Earshot cannot read; will retry"
            ) from exc


def _translated(
    exc: MastodonError,
    action: str,
    *,
    write: bool,
    response: requests.Response | None,
    signed_in: bool,
) -> PlatformError:
    if isinstance(exc, MastodonVersionError):
        if isinstance(exc.__cause__, MastodonError):
            return _translated(
                exc.__cause__, action, write=write, response=response, signed_in=signed_in
            )
        if exc.__cause__ is not None:
            return PlatformUnavailable(
                "Mastodon's instance information could not be read to learn its version; will retry"
            )
        return RequestRejected(f"The instance's Mastodon version cannot do the {action}: {exc}")
    if isinstance(exc, MastodonNetworkError):
        return _network_failure(exc.__context__, action, write=write)
    if isinstance(exc, MastodonRatelimitError):
        if response is not None and response.status_code == 429:
            reset_at = _header_time(response.headers.get("X-RateLimit-Reset"))
            reset_at = reset_at or datetime.now(UTC) + RATE_WINDOW
            return RateLimited(
                f"Mastodon rate limit reached for the {action} ({_error_words(response)}); "
                f"next call allowed at {reset_at:%H:%M:%S} UTC",
                reset_at=reset_at,
            )
        return PlatformUnavailable(
            f"Mastodon's rate-limit headers could not be read ({exc}); will retry"
        )
    if isinstance(exc, MastodonIllegalArgumentError):
        return RequestRejected(f"Mastodon.py refused the {action}: {exc}")
    if isinstance(exc, MastodonAPIError) and response is not None and response.status_code >= 400:
        return _refusal(response, action, write=write, signed_in=signed_in)
    if isinstance(exc, MastodonAPIError) and write:
        # A 2xx whose body is not JSON: the post was probably made.
        return PlatformOutcomeUnknown(
            f"Mastodon's answer to the {action} could not be read; it may have been posted: "
            "look for it before sending again"
        )
    if isinstance(exc, MastodonAPIError):
        return PlatformUnavailable(
            f"Mastodon answered the {action} with a body that is not valid JSON"
        )
    return PlatformUnavailable(f"Mastodon.py failed on the {action}: {exc}")


def _network_failure(cause: BaseException | None, action: str, *, write: bool) -> PlatformError:
    if isinstance(cause, requests.Timeout) and not isinstance(cause, requests.ConnectTimeout):
        what = "did not answer in time"
    else:
        what = f"could not be reached ({type(cause).__name__ if cause else 'network error'})"
    if write and not _never_sent(cause):
        return PlatformOutcomeUnknown(
            f"Mastodon {what} for the {action}; it may have been posted: look for it before "
            "sending again"
        )
    return PlatformUnavailable(f"Mastodon {what} for the {action}; will retry")


def _never_sent(cause: BaseException | None) -> bool:
    """Whether the request surely never reached the server (no connection was made)."""
    if isinstance(cause, requests.ConnectTimeout):
        return True
    reason = getattr(cause.args[0], "reason", None) if cause and cause.args else None
    return isinstance(cause, requests.ConnectionError) and isinstance(reason, NewConnectionError)


def _refusal(
    response: requests.Response, action: str, *, write: bool, signed_in: bool
) -> PlatformError:
    status, words = response.status_code, _error_words(response)
    if status == 401 and not signed_in:
        return AuthenticationFailed(
            f"Mastodon wants an access token for the {action} ({status}: {words}). Add the "
            "brand account's token under Sources."
        )
    if status == 401:
        return AuthenticationFailed(
            f"Mastodon refused the access token ({status}: {words}). Update it under Sources."
        )
    if status == 403 and "scope" in words:
        return RequestRejected(
            f"Mastodon refused the {action} (403: {words}). The access token needs the "
            "scopes read and write:statuses: make a new one and update it under Sources."
        )
    if status in (400, 403, 404, 410, 422):
        return RequestRejected(f"Mastodon refused the {action} ({status}: {words})")
    if status >= 500 and write:
        return PlatformOutcomeUnknown(
            f"Mastodon answered {status} to the {action} ({words}); it may have been posted: "
            "look for it before sending again"
        )
    return PlatformUnavailable(f"Mastodon answered {status} to the {action} ({words}); will retry")


def _error_words(response: requests.Response) -> str:
    """Mastodon's own words from an error body ({"error": ...}), else its status phrase."""
    try:
        body = response.json()
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"].strip():
        return clean_text(body["error"].strip())[:300]
    return response.reason or str(response.status_code)


def _rate_limit(response: requests.Response | None) -> RateLimit | None:
    if response is None:
        return None
    headers = response.headers
    reset_at = _header_time(headers.get("X-RateLimit-Reset"))
    try:
        limit = int(headers["X-RateLimit-Limit"])
        remaining = int(headers["X-RateLimit-Remaining"])
    except (KeyError, ValueError):
        return None
    return RateLimit(limit=limit, remaining=remaining, reset_at=reset_at) if reset_at else None


def _header_time(value: str | None) -> datetime | None:
    """X-RateLimit-Reset: an ISO 8601 time on Mastodon (epoch seconds on some other servers)."""
    if not value:
        return None
    try:
        if _DIGITS_RE.fullmatch(value.strip()):
            return datetime.fromtimestamp(int(value), tz=UTC)
        return _aware(datetime.fromisoformat(value.strip()))
    except (ValueError, OverflowError, OSError):
        return None


def _as_typed(text: str) -> str:
    # A form post may turn line ends into CRLF; Mastodon keeps the rest as typed.
    return text.replace("\r\n", "\n").strip()


def idempotency_key(in_reply_to_id: str, text: str) -> str:
    return hashlib.sha256(f"earshot-reply\n{in_reply_to_id}\n{text}".encode()).hexdigest()


# --- cursors ----------------------------------------------------------------------------------


def _id_order(status_id: str) -> tuple[int, str]:
    """Mastodon's advice for its string ids: order by length, then character by character."""
    return len(status_id), status_id


def _search_upper_bound(next_token: str | None) -> str | None:
    """The `max_id` to continue a search below `next_token`, the oldest id seen so far.

    Mastodon's search turns max_id into `before:<its second>`, which would drop the posts
    of that second older than it. So ask for everything before the NEXT second, and let
    `parse_statuses` drop what the previous page already had. An id that is not a Mastodon
    snowflake (another server's) is passed as it is.
    """
    if not next_token:
        return None
    if not _DIGITS_RE.fullmatch(next_token):
        return next_token
    second = (int(next_token) >> 16) // 1000
    return str(((second + 1) * 1000) << 16)


def _item_id(raw: Any) -> str | None:
    status_id = raw.get("id") if isinstance(raw, dict) else None
    return status_id if isinstance(status_id, str) and _LOCAL_ID_RE.fullmatch(status_id) else None


def parse_statuses(
    items: list[Any], *, host: str, since_id: str | None = None, next_token: str | None = None
) -> SearchPage:
    """A page of statuses, newest first, keeping every good item and naming each bad one.

    Items at or below `since_id`, or at or above `next_token`, were had already (search
    cursors are whole seconds) and are left out. `newest_id` is the newest id on the page,
    and `next_token`, on a full page, its oldest: the next page is read below it.
    """
    posts: list[FetchedPost] = []
    authors: dict[str, FetchedAuthor] = {}
    rejected: list[RejectedItem] = []
    ids: list[str] = []
    for raw in items:
        status_id = _item_id(raw)
        if status_id is not None:
            ids.append(status_id)
            if (since_id and _id_order(status_id) <= _id_order(since_id)) or (
                next_token and _id_order(status_id) >= _id_order(next_token)
            ):
                continue
        try:
            post, post_authors = parse_status(raw, host=host)
        except ValueError as exc:
            rejected.append(RejectedItem(raw=raw, reason=str(exc)))
            continue
        posts.append(post)
        authors.update(post_authors)
    newest = max([*ids, *([since_id] if since_id else [])], key=_id_order, default=None)
    oldest = min(ids, key=_id_order, default=None)
    more = (
        len(items) >= PAGE_SIZE
        and oldest is not None
        and (not next_token or _id_order(oldest) < _id_order(next_token))
    )
    return SearchPage(
        posts=posts,
        authors=authors,
        newest_id=newest,
        next_token=oldest if more else None,
        rejected=rejected,
    )


# --- one status ---------------------------------------------------------------------------------


def parse_status(raw: Any, *, host: str) -> tuple[FetchedPost, dict[str, FetchedAuthor]]:
    """One Status entity and the authors it names; ValueError with a readable reason."""
    if not isinstance(raw, dict):
        raise ValueError(f"item is a {type(raw).__name__}, not an object")
    status_id = _valid_id(raw.get("id"))
    posted_at = _parse_time(raw.get("created_at"))
    account = raw.get("account")
    author = _parse_account(account)
    authors = {author.external_id: author}
    references: list[dict[str, str]] = []
    original = None
    if raw.get("reblog") is not None:
        try:
            original, original_authors = parse_status(raw["reblog"], host=host)
        except ValueError as exc:
            raise ValueError(f"the boosted status is malformed: {exc}") from exc
        if original.reposted_id:
            raise ValueError("the boosted status is itself a boost")
        authors.update(original_authors)
        references.append({"type": "retweeted", "id": original.external_id})
        text = original.text
    else:
        text = _status_text(raw)
    if raw.get("in_reply_to_id") is not None:
        parent = _valid_id(raw["in_reply_to_id"], "in_reply_to_id")
        references.append({"type": "replied_to", "id": f"{host}/{parent}"})
    if (quoted := _quoted_id(raw.get("quote"))) is not None:
        references.append({"type": "quoted", "id": f"{host}/{quoted}"})
    external_id = f"{host}/{status_id}"
    if len(external_id) > MAX_EXTERNAL_ID:
        raise ValueError(f"id {status_id!r} makes an external id longer than {MAX_EXTERNAL_ID}")
    return (
        FetchedPost(
            external_id=external_id,
            text=text,
            author_external_id=author.external_id,
            posted_at=posted_at,
            # Mastodon names a reply's parent, not its thread's first post: the root is only
            # known for a post that starts a thread.
            conversation_id=external_id if raw.get("in_reply_to_id") is None else "",
            lang=_language(raw.get("language")),
            in_reply_to_user_id=_replied_to_account(raw, account),
            referenced_posts=references,
            public_metrics=_metrics(raw),
            url=_http_url(raw.get("url")) or _http_url(raw.get("uri")),
            original=original,
        ),
        authors,
    )


def _parse_account(raw: Any) -> FetchedAuthor:
    if not isinstance(raw, dict):
        raise ValueError("missing or invalid field 'account'")
    url = _http_url(raw.get("url"), max_length=MAX_EXTERNAL_ID)
    if not url:
        raise ValueError(
            f"account: missing or invalid field 'url' (an http(s) address of at most "
            f"{MAX_EXTERNAL_ID} characters)"
        )
    username = raw.get("username")
    if (
        not isinstance(username, str)
        or not 0 < len(username) <= MAX_USERNAME
        or not username.strip()
    ):
        raise ValueError(
            f"account: missing or invalid field 'username' (1-{MAX_USERNAME} characters)"
        )
    username = clean_text(username.strip())
    display_name = raw.get("display_name")
    name = clean_text(display_name).strip() if isinstance(display_name, str) else ""
    followers = raw.get("followers_count")
    return FetchedAuthor(
        external_id=url,
        username=username,
        name=(name or username)[:MAX_NAME],
        followers_count=followers if _is_count(followers) else 0,
        # Mastodon verifies links on a profile, not identities: nothing matches X's badge.
        verified=False,
        url=url,
    )


def _replied_to_account(status: dict[str, Any], account: dict[str, Any]) -> str:
    """The profile URL of the account replied to: the author, or one of the mentioned."""
    target = status.get("in_reply_to_account_id")
    if not isinstance(target, str) or not target:
        return ""
    if target == account.get("id"):
        return str(account["url"])
    for mention in status.get("mentions") or []:
        if isinstance(mention, dict) and mention.get("id") == target:
            return _http_url(mention.get("url"), max_length=MAX_EXTERNAL_ID)
    return ""


def _quoted_id(quote: Any) -> str | None:
    """Mastodon 4.5 quotes: the quoted status, when the quote was accepted."""
    if not isinstance(quote, dict) or quote.get("state") != "accepted":
        return None
    quoted = quote.get("quoted_status")
    return _item_id(quoted)


def _status_text(status: dict[str, Any]) -> str:
    content = status.get("content")
    if not isinstance(content, str):
        raise ValueError("missing or invalid field 'content'")
    text = content_text(content)
    # A content warning is part of what the author wrote, and often names the subject.
    spoiler = status.get("spoiler_text")
    if isinstance(spoiler, str) and spoiler.strip():
        text = f"{clean_text(spoiler).strip()}\n\n{text}".strip()
    return text


def _valid_id(value: Any, field: str = "id") -> str:
    if not isinstance(value, str) or not _LOCAL_ID_RE.fullmatch(value):
        raise ValueError(f"missing or invalid field '{field}': {_preview(value)}")
    return value


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"missing or invalid field 'created_at': {_preview(value)}")
    try:
        return _aware(datetime.fromisoformat(value))
    except ValueError as exc:
        raise ValueError(f"created_at {_preview(value)} is not a timestamp") from exc


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _language(value: Any) -> str:
    # Mastodon's null language is X's "und", so lang:und means the same everywhere.
    if isinstance(value, str) and len(value) <= MAX_LANG and _LANG_RE.fullmatch(value):
        return value
    return "und"


def _metrics(status: dict[str, Any]) -> dict[str, int]:
    # X's names, so the desk reads every platform's counts alike.
    names = {
        "replies_count": "reply_count",
        "reblogs_count": "retweet_count",
        "favourites_count": "like_count",
        "quotes_count": "quote_count",
    }
    return {ours: status[theirs] for theirs, ours in names.items() if _is_count(status.get(theirs))}


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def _http_url(value: Any, *, max_length: int = MAX_URL) -> str:
    if not isinstance(value, str) or len(value) > max_length or clean_text(value) != value:
        return ""
    if any(char.isspace() or ord(char) < 32 for char in value):
        return ""
    try:
        parts = urlsplit(value)
    except ValueError:
        return ""
    return value if parts.scheme in ("http", "https") and parts.netloc else ""


def _preview(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


# --- HTML to text -------------------------------------------------------------------------------


class _ContentText(HTMLParser):
    """Status HTML as the text a reader sees: paragraphs apart, <br> as a line break."""

    BLOCKS = frozenset(
        {"p", "div", "blockquote", "li", "ul", "ol", "pre", "h1", "h2", "h3", "h4", "h5", "h6"}
    )
    VOID = frozenset({"br", "img", "hr", "wbr", "input", "meta", "link", "source", "area", "col"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self.current: list[str] = []
        self.hidden_depth = 0
        self.pre_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.hidden_depth:
            self.hidden_depth += tag not in self.VOID
            return
        classes = (dict(attrs).get("class") or "").split()
        # Mastodon 4.5 prepends "RE: <link>" to quote posts for old clients, hidden in its
        # own web interface; scripts and styles are never text.
        if "quote-inline" in classes or tag in ("script", "style"):
            self.hidden_depth = 1
        elif tag == "br":
            self.current.append("\n")
        elif tag in self.BLOCKS:
            self.flush()
            self.pre_depth += tag == "pre"

    def handle_endtag(self, tag: str) -> None:
        if self.hidden_depth:
            self.hidden_depth -= tag not in self.VOID
            return
        if tag in self.BLOCKS:
            self.flush()
            self.pre_depth -= tag == "pre" and self.pre_depth > 0

    def handle_data(self, data: str) -> None:
        if not self.hidden_depth:
            self.current.append(data if self.pre_depth else re.sub(r"\s+", " ", data))

    def flush(self) -> None:
        text = "".join(self.current)
        self.current = []
        if not self.pre_depth:  # (flushed before a <pre> opens and before it closes)
            text = "\n".join(" ".join(line.split()) for line in text.split("\n"))
        text = text.strip("\n")
        if text.strip():
            self.paragraphs.append(text)


def content_text(content: str) -> str:
    """The plain text of a status's HTML `content`, entities unescaped."""
    parser = _ContentText()
    try:
        parser.feed(content)
        parser.close()
    except Exception as exc:  # html.parser is lenient, but not promised never to raise
        raise ValueError(f"content is not readable HTML ({type(exc).__name__})") from exc
    parser.flush()
    return clean_text("\n\n".join(parser.paragraphs))
