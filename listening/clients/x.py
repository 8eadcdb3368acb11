"""X (Twitter) API v2 through tweepy. The only module of Earshot that imports tweepy."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
import tweepy
from django.conf import settings
from requests.adapters import HTTPAdapter
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
from listening.query import X_SYNTAX

logger = logging.getLogger(__name__)

X_API_HOST = "https://api.twitter.com"
TWEET_FIELDS = [
    "created_at",
    "conversation_id",
    "lang",
    "public_metrics",
    "referenced_tweets",
    "in_reply_to_user_id",
    "author_id",
]
USER_FIELDS = ["name", "username", "public_metrics", "verified"]
# X's snowflake epoch: the time of a post is encoded in the upper bits of its id.
SNOWFLAKE_EPOCH_MS = 1288834974657
MAX_RESULTS_PER_PAGE = 100
# Longer than any pagination token X sends, and than Earshot's cursor keeps.
MAX_TOKEN_LENGTH = 500
# The fewest posts a recent search returns: the connection test's search reads at most these.
MIN_RESULTS_PER_PAGE = 10
# Whose posts the connection test searches for when the brand has no handle (X's own).
FALLBACK_TEST_ACCOUNT = "XDevelopers"
BEARER_REFUSED = (
    "X rejected the bearer token (401 Unauthorized): check it was copied whole and that the "
    "app is not suspended."
)
USER_KEYS_REFUSED = (
    "X rejected the consumer key and secret or the access token and secret (401 "
    "Unauthorized): check each was copied whole, that all four belong to the same app, and "
    "that the app is not suspended."
)
READ_ONLY_TOKEN = (
    "This token lacks the write scope needed to reply: X gives it {level} access. Set the "
    "app's permissions to Read and write in the developer portal, then generate the access "
    "token and secret again."
)


@dataclass(frozen=True, slots=True)
class XCredentials:
    bearer_token: str
    consumer_key: str = ""
    consumer_secret: str = ""
    access_token: str = ""
    access_token_secret: str = ""


class _BaseUrlAdapter(HTTPAdapter):
    """Sends tweepy's requests for api.twitter.com to `base_url` instead, with a timeout.

    tweepy hard-codes its host and sets no timeout; a transport adapter fixes both without
    touching tweepy, so any X-API-v2-compatible server (our simulator, a proxy) can stand in.
    """

    def __init__(self, *, base_url: str, timeout: float) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if self.base_url and request.url and request.url.startswith(X_API_HOST):
            request.url = self.base_url + request.url[len(X_API_HOST) :]
        if not kwargs.get("timeout"):
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


def snowflake_time(post_id: str) -> datetime:
    return datetime.fromtimestamp(((int(post_id) >> 22) + SNOWFLAKE_EPOCH_MS) / 1000, tz=UTC)


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _problem_text(response: requests.Response | None) -> str:
    """The most specific human words in an X error body (problem+json or errors[])."""
    if response is None:
        return ""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        if body.get("detail"):
            return str(body["detail"])
        errors = body.get("errors") or []
        if errors and isinstance(errors[0], dict):
            return str(errors[0].get("message", ""))
        return str(body.get("title", ""))
    return ""


def _rate_limit(response: requests.Response) -> RateLimit | None:
    headers = response.headers
    try:
        return RateLimit(
            limit=int(headers["x-rate-limit-limit"]),
            remaining=int(headers["x-rate-limit-remaining"]),
            reset_at=datetime.fromtimestamp(int(headers["x-rate-limit-reset"]), tz=UTC),
        )
    except (KeyError, ValueError):
        return None


def _parse_author(raw: dict[str, Any]) -> FetchedAuthor:
    metrics = raw.get("public_metrics") or {}
    return FetchedAuthor(
        external_id=str(raw["id"]),
        username=str(raw["username"]),
        name=str(raw.get("name", "")),
        followers_count=int(metrics.get("followers_count", 0)),
        verified=bool(raw.get("verified", False)),
    )


def _parse_post(raw: Any, authors: dict[str, FetchedAuthor]) -> FetchedPost:
    """One item of `data[]`; raises ValueError with a readable reason when it is malformed."""
    if not isinstance(raw, dict):
        raise ValueError(f"item is a {type(raw).__name__}, not an object")
    for key in ("id", "text", "author_id", "created_at"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise ValueError(f"missing or invalid field '{key}'")
    if not raw["id"].isdigit():
        raise ValueError(f"id {raw['id']!r} is not numeric")
    if raw["author_id"] not in authors:
        raise ValueError(f"author {raw['author_id']} is not in includes.users")
    try:
        posted_at = _parse_time(raw["created_at"])
    except ValueError as exc:
        raise ValueError(f"created_at {raw['created_at']!r} is not a timestamp") from exc
    return FetchedPost(
        external_id=raw["id"],
        text=raw["text"],
        author_external_id=raw["author_id"],
        posted_at=posted_at,
        conversation_id=str(raw.get("conversation_id", "")),
        lang=str(raw.get("lang", "")),
        in_reply_to_user_id=str(raw.get("in_reply_to_user_id", "")),
        referenced_posts=[
            {"type": str(ref.get("type", "")), "id": str(ref.get("id", ""))}
            for ref in raw.get("referenced_tweets") or []
            if isinstance(ref, dict)
        ],
        public_metrics={
            k: int(v) for k, v in (raw.get("public_metrics") or {}).items() if isinstance(v, int)
        },
    )


def parse_search_body(body: Any) -> SearchPage:
    """Turn a recent-search body into a page, keeping every good item and naming each bad one."""
    if not isinstance(body, dict):
        raise PlatformUnavailable("X answered the search with something that is not JSON object")
    authors: dict[str, FetchedAuthor] = {}
    rejected: list[RejectedItem] = []
    for raw_user in (body.get("includes") or {}).get("users") or []:
        try:
            author = _parse_author(raw_user)
        except (KeyError, TypeError, ValueError) as exc:
            rejected.append(RejectedItem(raw=raw_user, reason=f"malformed user: {exc!r}"))
            continue
        authors[author.external_id] = author
    posts: list[FetchedPost] = []
    for raw_post in body.get("data") or []:
        try:
            posts.append(_parse_post(raw_post, authors))
        except (TypeError, ValueError) as exc:
            rejected.append(RejectedItem(raw=raw_post, reason=str(exc)))
    meta = body.get("meta") or {}
    newest_id = meta.get("newest_id")
    if not (isinstance(newest_id, str) and newest_id.isdigit() and len(newest_id) <= 19):
        # A cursor X could not have sent: fall back on the newest post we could read.
        newest_id = max((p.external_id for p in posts), key=int, default=None)
    next_token = meta.get("next_token")
    if not (isinstance(next_token, str) and 0 < len(next_token) <= MAX_TOKEN_LENGTH):
        next_token = None
    return SearchPage(
        posts=posts,
        authors=authors,
        newest_id=newest_id,
        next_token=next_token,
        rejected=rejected,
    )


class XClient:
    platform = "x"
    syntax = X_SYNTAX
    can_reply = True

    def __init__(
        self, credentials: XCredentials, *, base_url: str | None = None, account_handle: str = ""
    ) -> None:
        self.credentials = credentials
        self.account_handle = account_handle
        # Where requests go: X itself, or what stands in for it (the simulator, a proxy).
        self.base_url = (settings.X_API_BASE_URL if base_url is None else base_url) or X_API_HOST
        self._client = tweepy.Client(
            bearer_token=credentials.bearer_token or None,
            consumer_key=credentials.consumer_key or None,
            consumer_secret=credentials.consumer_secret or None,
            access_token=credentials.access_token or None,
            access_token_secret=credentials.access_token_secret or None,
            # Responses stay raw: we need their headers, and one bad item must not sink a page.
            return_type=requests.Response,
            # Never: it sleeps without a cap. Our scheduler honours x-rate-limit-reset instead.
            wait_on_rate_limit=False,
        )
        adapter = _BaseUrlAdapter(
            base_url=settings.X_API_BASE_URL if base_url is None else base_url,
            timeout=settings.X_REQUEST_TIMEOUT_SECONDS,
        )
        self._client.session.mount(X_API_HOST + "/", adapter)

    def search_page(
        self, *, query: str, since_id: str | None, next_token: str | None
    ) -> SearchPage:
        with _translated_errors("search"):
            response = self._client.search_recent_tweets(
                query,
                since_id=since_id or None,
                next_token=next_token or None,
                max_results=MAX_RESULTS_PER_PAGE,
                expansions=["author_id"],
                tweet_fields=TWEET_FIELDS,
                user_fields=USER_FIELDS,
            )
            try:
                body = response.json()
            except ValueError as exc:
                raise PlatformUnavailable(
                    "X answered the search with a body that is not valid JSON"
                ) from exc
        page = parse_search_body(body)
        page.rate_limit = _rate_limit(response)
        return page

    def own_posts_page(self, *, since_id: str | None, next_token: str | None) -> SearchPage:
        """The brand account's recent posts (replies sent on X itself among them)."""
        if not self.account_handle:
            raise RequestRejected("The brand has no X handle set, so its own posts can't be read")
        return self.search_page(
            query=f"from:{self.account_handle}", since_id=since_id, next_token=next_token
        )

    def post_reply(self, *, text: str, in_reply_to_id: str) -> PostedReply:
        with _translated_errors("reply", write=True):
            response = self._client.create_tweet(text=text, in_reply_to_tweet_id=in_reply_to_id)
            try:
                data = response.json()["data"]
                post_id = str(data["id"])
            except (ValueError, KeyError, TypeError) as exc:
                raise PlatformUnavailable(
                    "X accepted the reply but its answer could not be read"
                ) from exc
        return PostedReply(
            external_id=post_id, text=str(data.get("text", text)), posted_at=snowflake_time(post_id)
        )

    def find_reply(
        self, *, author_username: str, text: str, in_reply_to_id: str, max_pages: int = 3
    ) -> PostedReply | None:
        """The account's reply to `in_reply_to_id` with exactly `text`, if X has it.

        How a reply whose POST timed out is found before anyone sends it again.
        """
        next_token = None
        for _ in range(max_pages):
            with _translated_errors("search for our reply"):
                response = self._client.search_recent_tweets(
                    f"from:{author_username}",
                    next_token=next_token,
                    max_results=MAX_RESULTS_PER_PAGE,
                    tweet_fields=["created_at", "referenced_tweets"],
                )
                body = response.json()
            for item in body.get("data") or []:
                replied_to = {
                    ref.get("id")
                    for ref in item.get("referenced_tweets") or []
                    if ref.get("type") == "replied_to"
                }
                if in_reply_to_id in replied_to and item.get("text") == text:
                    return PostedReply(
                        external_id=item["id"],
                        text=item["text"],
                        posted_at=snowflake_time(item["id"]),
                    )
            next_token = (body.get("meta") or {}).get("next_token")
            if not next_token:
                return None
        return None

    def check_connection(self) -> ConnectionCheck:
        """The bearer token with one small search (at most 10 posts read), then the
        user-context keys with GET /2/users/me, whose `x-access-level` says whether they
        may post replies."""
        credentials = self.credentials
        if not credentials.bearer_token:
            raise AuthenticationFailed(
                "No X bearer token is set, for this brand or the deployment: searches need one."
            )
        try:
            with _translated_errors("connection test's search"):
                response = self._client.search_recent_tweets(
                    f"from:{self.account_handle or FALLBACK_TEST_ACCOUNT}",
                    max_results=MIN_RESULTS_PER_PAGE,
                )
        except AuthenticationFailed as exc:
            raise AuthenticationFailed(BEARER_REFUSED) from exc
        _json_object(response, "the connection test's search")
        user_keys = (
            credentials.consumer_key,
            credentials.consumer_secret,
            credentials.access_token,
            credentials.access_token_secret,
        )
        if not all(user_keys):
            return ConnectionCheck(
                account="the app (its bearer token)",
                warnings=(
                    "The consumer key and secret and the access token and secret are not all "
                    "set: Earshot can listen on X but cannot reply there.",
                ),
            )
        try:
            with _translated_errors("connection test's account check"):
                response = self._client.get_me(user_auth=True, user_fields=["name", "username"])
        except AuthenticationFailed as exc:
            raise AuthenticationFailed(USER_KEYS_REFUSED) from exc
        data = _json_object(response, "the account check").get("data")
        if not isinstance(data, dict) or not isinstance(data.get("username"), str):
            raise PlatformUnavailable("X answered the account check without the account's username")
        warnings = []
        level = response.headers.get("x-access-level", "")
        if level and "write" not in level:
            warnings.append(READ_ONLY_TOKEN.format(level=level))
        name = data.get("name") if isinstance(data.get("name"), str) else ""
        return ConnectionCheck(
            account=f"@{data['username']}" + (f" ({name})" if name else ""),
            warnings=tuple(warnings),
        )


def _json_object(response: requests.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise PlatformUnavailable(f"X answered {what} with a body that is not valid JSON") from exc
    if not isinstance(body, dict):
        raise PlatformUnavailable(f"X answered {what} with something that is not a JSON object")
    return body


@contextmanager
def _translated_errors(action: str, *, write: bool = False) -> Iterator[None]:
    """Turns tweepy's and requests' exceptions into the platform-neutral ones of `base`.

    For a `write`, a timeout while waiting for the answer or a server error means X may
    have carried it out: that is PlatformOutcomeUnknown, never a plain retryable failure.
    """
    try:
        yield
    except PlatformError:
        raise
    except (requests.ReadTimeout, tweepy.TwitterServerError) as exc:
        if isinstance(exc, tweepy.HTTPException):
            what = f"X answered {exc.response.status_code} to the {action}"
        else:
            what = f"X did not answer the {action} in time"
        if write:
            raise PlatformOutcomeUnknown(f"{what}; it may have been posted") from exc
        raise PlatformUnavailable(f"{what}; will retry") from exc
    except tweepy.TooManyRequests as exc:
        reset_at = (
            datetime.fromtimestamp(exc.reset_time, tz=UTC) if exc.reset_time else datetime.now(UTC)
        )
        raise RateLimited(
            f"X rate limit reached for {action}; next call allowed at {reset_at:%H:%M:%S} UTC",
            reset_at=reset_at,
        ) from exc
    except tweepy.Unauthorized as exc:
        detail = _problem_text(exc.response)
        raise AuthenticationFailed(
            f"X refused the credentials (401 Unauthorized{': ' + detail if detail else ''}). "
            "Check the brand's X bearer token and keys."
        ) from exc
    except (tweepy.Forbidden, tweepy.BadRequest, tweepy.NotFound) as exc:
        status = exc.response.status_code
        raise RequestRejected(
            f"X refused the {action} ({status}): {_problem_text(exc.response)}"
        ) from exc
    except tweepy.HTTPException as exc:
        # Any other unexpected status: the same call may work later.
        status = exc.response.status_code
        raise PlatformUnavailable(f"X answered {status} to the {action}; will retry") from exc
    except requests.RequestException as exc:
        if write and _request_went_out(exc):
            raise PlatformOutcomeUnknown(
                f"X hung up during the {action} ({type(exc).__name__}); it may have been posted"
            ) from exc
        raise PlatformUnavailable(
            f"Could not reach X for the {action}: {type(exc).__name__}"
        ) from exc


def _request_went_out(exc: requests.RequestException) -> bool:
    """Whether X may have received the request: the connection was made, then broke."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, requests.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return not isinstance(reason, NewConnectionError)
    return False


def x_client_for_brand(brand: Any) -> XClient:
    """The X client acting for `brand`: its own credentials where set, else the deployment's."""
    return XClient(
        XCredentials(
            bearer_token=brand.x_bearer_token or settings.X_BEARER_TOKEN,
            consumer_key=brand.x_consumer_key or settings.X_CONSUMER_KEY,
            consumer_secret=brand.x_consumer_secret or settings.X_CONSUMER_SECRET,
            access_token=brand.x_access_token or settings.X_ACCESS_TOKEN,
            access_token_secret=brand.x_access_token_secret or settings.X_ACCESS_TOKEN_SECRET,
        ),
        account_handle=brand.x_handle,
    )
