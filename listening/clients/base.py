"""The one small interface every platform client implements, and what it returns.

Clients turn a platform's wire format into these plain records and its failures into these
exceptions; nothing above this layer knows which HTTP library or SDK a platform needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from listening.query import PlatformSyntax


@dataclass(frozen=True, slots=True)
class FetchedAuthor:
    external_id: str
    username: str
    name: str
    followers_count: int
    verified: bool
    url: str = ""


@dataclass(frozen=True, slots=True)
class FetchedPost:
    external_id: str
    text: str
    author_external_id: str
    posted_at: datetime
    conversation_id: str
    lang: str
    in_reply_to_user_id: str
    # {"type": "replied_to" | "quoted" | "retweeted", "id": ...}; a repost, boost or
    # crosspost is "retweeted", with the original's id, on every platform.
    referenced_posts: list[dict[str, str]]
    public_metrics: dict[str, int]
    url: str = ""
    # For a repost: the original post, when the platform sent it along (its author is in
    # the page's `authors`). Earshot folds the repost under it.
    original: FetchedPost | None = None

    @property
    def reposted_id(self) -> str | None:
        for ref in self.referenced_posts:
            if ref.get("type") == "retweeted":
                return ref.get("id") or None
        return None

    @property
    def replied_to_id(self) -> str | None:
        for ref in self.referenced_posts:
            if ref.get("type") == "replied_to":
                return ref.get("id") or None
        return None


@dataclass(frozen=True, slots=True)
class RejectedItem:
    """An item of a page that could not be understood: kept out, with the reason why."""

    raw: Any
    reason: str


@dataclass(frozen=True, slots=True)
class RateLimit:
    limit: int
    remaining: int
    reset_at: datetime


@dataclass(slots=True)
class SearchPage:
    posts: list[FetchedPost]
    authors: dict[str, FetchedAuthor]
    newest_id: str | None
    next_token: str | None
    rejected: list[RejectedItem] = field(default_factory=list)
    rate_limit: RateLimit | None = None


@dataclass(frozen=True, slots=True)
class ConnectionCheck:
    """What one cheap authenticated call to a platform showed: the credentials work.

    `account` names who Earshot is there ("@NorthwindHelp", "the feed Northwind news");
    `warnings` are what works only in part (a read-only token that cannot reply).
    """

    account: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PostedReply:
    external_id: str
    text: str
    posted_at: datetime


class PlatformError(Exception):
    """A platform refused or failed a request. `str()` is written for the person reading it."""


class AuthenticationFailed(PlatformError):
    """The credentials were refused (401). Polling again will not help until they change."""


class RequestRejected(PlatformError):
    """The platform refused this request as such (400, 403): retrying it unchanged won't help."""


class RateLimited(PlatformError):
    """The budget is spent (429): no call may be made before `reset_at`."""

    def __init__(self, message: str, *, reset_at: datetime) -> None:
        super().__init__(message)
        self.reset_at = reset_at


class PlatformUnavailable(PlatformError):
    """A transient failure (5xx, timeout, broken body): the same call may work later."""


class PlatformOutcomeUnknown(PlatformUnavailable):
    """A write whose answer never came (a read timeout, a 5xx): the platform may have
    accepted it. Before trying again, look for it on the platform."""


class PlatformClient(Protocol):
    """What polling and sending need from a platform.

    Cursors are opaque strings only the client reads: `search_page` gets back the
    `newest_id` of the first page of the last complete round as `since_id` (an id, a
    timestamp, an ETag...), and a page's own `next_token` to continue a round.
    """

    platform: str
    # What its search can express; the rest of a query is applied locally.
    syntax: PlatformSyntax
    # Whether Earshot can post replies there (else: "open original" and "mark handled").
    can_reply: bool
    # The brand's own account there, whose posts `own_posts_page` and `find_reply` read.
    account_handle: str

    def search_page(
        self, *, query: str, since_id: str | None, next_token: str | None
    ) -> SearchPage: ...

    def own_posts_page(self, *, since_id: str | None, next_token: str | None) -> SearchPage:
        """The brand account's own posts, newest first: how replies sent outside Earshot
        are found. Raises `RequestRejected` where the platform has no brand account."""
        ...

    def post_reply(self, *, text: str, in_reply_to_id: str) -> PostedReply: ...

    def find_reply(
        self, *, author_username: str, text: str, in_reply_to_id: str
    ) -> PostedReply | None: ...

    def check_connection(self) -> ConnectionCheck:
        """One cheap authenticated call, to tell an admin whether the credentials work.

        Returns who Earshot is on the platform; raises the `PlatformError` the call met,
        whose words name the credential at fault. Reads nothing into Earshot and posts
        nothing; spends one call of the platform's budget (X: two, search and users/me).
        """
        ...
