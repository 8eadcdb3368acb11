"""Which client reaches which platform: the one place polling and sending ask for a client.

Platform modules are imported when first needed, so a process that never polls Bluesky
never loads atproto.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.utils.module_loading import import_string

from listening.models import AccountCursor, Brand, Mention, Platform, Source, TrackedKeyword
from listening.query import (
    BLUESKY_SYNTAX,
    FEED_SYNTAX,
    HACKER_NEWS_SYNTAX,
    MASTODON_SYNTAX,
    REDDIT_SYNTAX,
    X_SYNTAX,
    PlatformSyntax,
)

if TYPE_CHECKING:
    from listening.clients.base import PlatformClient

# platform -> dotted path of `client_for_source(source) -> PlatformClient`. What each reads
# from `Source.credentials` is documented on that function.
SOURCE_CLIENT_FACTORIES = {
    Platform.MASTODON: "listening.clients.mastodon.client_for_source",
    Platform.BLUESKY: "listening.clients.bluesky.client_for_source",
    Platform.REDDIT: "listening.clients.reddit.client_for_source",
    Platform.HACKER_NEWS: "listening.clients.hackernews.client_for_source",
    Platform.RSS: "listening.clients.feeds.client_for_source",
}


@dataclass(frozen=True, slots=True)
class CredentialField:
    """One key of a platform's credentials, as an admin types it in."""

    key: str
    label: str
    # A secret is never shown back (only masked) nor pre-filled; the rest are names.
    secret: bool
    help_text: str = ""
    required: bool = False


# What each platform's client reads from `Source.credentials` (see each `client_for_source`),
# in the order an admin fills them in. Hacker News needs none.
SOURCE_CREDENTIAL_FIELDS: dict[str, tuple[CredentialField, ...]] = {
    Platform.MASTODON: (
        CredentialField(
            "access_token",
            "Access token",
            secret=True,
            help_text="A user token of the brand's account on this instance, with the scopes "
            "read and write:statuses. Without one only #hashtag keywords are heard.",
        ),
    ),
    Platform.BLUESKY: (
        CredentialField(
            "identifier",
            "Handle or email",
            secret=False,
            required=True,
            help_text="The account's handle (northwindhelp.bsky.social), email or DID.",
        ),
        CredentialField(
            "app_password",
            "App password",
            secret=True,
            required=True,
            help_text="From Bluesky's Settings > Privacy and security > App passwords; never "
            "the account's main password.",
        ),
    ),
    Platform.REDDIT: (
        CredentialField(
            "client_id",
            "Client id",
            secret=True,
            required=True,
            help_text="Of a script app made at reddit.com/prefs/apps.",
        ),
        CredentialField("client_secret", "Client secret", secret=True, required=True),
        CredentialField(
            "username",
            "Username",
            secret=False,
            required=True,
            help_text="An account listed as a developer of the app: replies are posted as it.",
        ),
        CredentialField("password", "Password", secret=True, required=True),
        CredentialField(
            "user_agent",
            "User-Agent",
            secret=False,
            help_text="Blank: one naming Earshot and the account, as Reddit asks.",
        ),
        CredentialField(
            "subreddit",
            "Subreddit",
            secret=False,
            help_text='Where to search: blank or "all" for everywhere, "a+b" for several.',
        ),
    ),
    Platform.HACKER_NEWS: (),
    Platform.RSS: (
        CredentialField(
            "username",
            "Username",
            secret=False,
            help_text="Only for a feed behind HTTP Basic authentication.",
        ),
        CredentialField("password", "Password", secret=True),
    ),
}

# The brand's own X credentials: Brand fields, each blank for the deployment's (settings).
X_CREDENTIAL_FIELDS: tuple[CredentialField, ...] = (
    CredentialField(
        "x_bearer_token",
        "Bearer token",
        secret=True,
        help_text="The app's bearer token: what searches use.",
    ),
    CredentialField("x_consumer_key", "API key (consumer key)", secret=True),
    CredentialField("x_consumer_secret", "API key secret (consumer secret)", secret=True),
    CredentialField(
        "x_access_token",
        "Access token",
        secret=True,
        help_text="The brand account's, with Read and write permission: what replies use.",
    ),
    CredentialField("x_access_token_secret", "Access token secret", secret=True),
)


# What each platform's search can express (the client's `syntax`, without building one).
PLATFORM_SYNTAX: dict[str, PlatformSyntax] = {
    Platform.X: X_SYNTAX,
    Platform.MASTODON: MASTODON_SYNTAX,
    Platform.BLUESKY: BLUESKY_SYNTAX,
    Platform.REDDIT: REDDIT_SYNTAX,
    Platform.HACKER_NEWS: HACKER_NEWS_SYNTAX,
    Platform.RSS: FEED_SYNTAX,
}


def client_for_source(source: Source) -> PlatformClient:
    return import_string(SOURCE_CLIENT_FACTORIES[source.platform])(source)


def client_for_brand_on_x(brand: Brand) -> PlatformClient:
    from listening.clients.x import x_client_for_brand

    return x_client_for_brand(brand)


def client_for_keyword(keyword: TrackedKeyword) -> PlatformClient:
    """The client that polls `keyword`: X through the brand's credentials, else its source."""
    if keyword.platform == Platform.X:
        return client_for_brand_on_x(keyword.brand)
    if keyword.source is None:
        raise ValueError(f"keyword {keyword.pk} on {keyword.platform} has no source")
    return client_for_source(keyword.source)


def client_for_account(cursor: AccountCursor) -> PlatformClient:
    """The client that reads the brand account behind `cursor`."""
    if cursor.platform == Platform.X:
        return client_for_brand_on_x(cursor.brand)
    if cursor.source is None:
        raise ValueError(f"account cursor {cursor.pk} on {cursor.platform} has no source")
    return client_for_source(cursor.source)


def client_for_mention(mention: Mention) -> PlatformClient:
    """The client that answers `mention`: the source it was heard through, else the brand's
    active source on that platform with an account to post from."""
    if mention.platform == Platform.X:
        return client_for_brand_on_x(mention.brand)
    keyword = mention.keyword
    if keyword is not None and keyword.source is not None and keyword.source.account_handle:
        return client_for_source(keyword.source)
    source = (
        Source.objects.filter(brand=mention.brand, platform=mention.platform, is_active=True)
        .exclude(account_handle="")
        .first()
    )
    if source is None:
        raise ValueError(f"{mention.brand} has no {mention.get_platform_display()} account")
    return client_for_source(source)
