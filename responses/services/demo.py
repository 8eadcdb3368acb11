"""Demo data for `make run`: users for each role, a brand and what to listen for.

Besides X, the brand listens on every other platform through a local simulator; the ports
and demo credentials here are the ones Procfile.dev starts them with.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from config.roles import ADMIN, AGENT, SUPERVISOR
from listening.models import Brand, Platform, Source, TrackedKeyword
from listening.services.keywords import keyword_create

DEMO_BRAND = "Northwind Coffee"
DEMO_HANDLE = "NorthwindHelp"
DEMO_QUERIES = ('"Northwind Coffee"', "@NorthwindHelp")
# (platform, name, base URL, brand account, credentials, query) for each simulator. They
# are all on 127.0.0.1, so each source allows a private address (which feeds check).
DEMO_SOURCES = (
    (
        Platform.MASTODON,
        "Mastodon (local simulator)",
        "http://127.0.0.1:8766",
        "NorthwindHelp",
        {"access_token": "demo-mastodon-token"},
        "northwind",
    ),
    (
        Platform.BLUESKY,
        "Bluesky (local simulator)",
        "http://127.0.0.1:8767",
        "northwindhelp.bsky.social",
        {"identifier": "northwindhelp.bsky.social", "app_password": "demo-app-password"},
        "northwind",
    ),
    (
        Platform.HACKER_NEWS,
        "Hacker News (local simulator)",
        "http://127.0.0.1:8768",
        "",
        {},
        "northwind",
    ),
    (
        Platform.REDDIT,
        "Reddit (local simulator)",
        "http://127.0.0.1:8769",
        "NorthwindHelp",
        {
            "client_id": "demo-client-id",
            "client_secret": "demo-client-secret",
            "username": "NorthwindHelp",
            "password": "demo-password",
        },
        "northwind",
    ),
    (
        Platform.RSS,
        "Coffee news feed (local simulator)",
        "http://127.0.0.1:8770/feeds/news",
        "",
        {},
        "northwind",
    ),
)
DEMO_USERS = (
    ("agent", "Alex", "Rivera", AGENT),
    ("supervisor", "Sam", "Okafor", SUPERVISOR),
    ("admin", "Ada", "Nguyen", ADMIN),
)


@dataclass(frozen=True, slots=True)
class DemoUser:
    username: str
    role: str
    password: str


@transaction.atomic
def demo_seed(*, poll_interval_seconds: int = 10) -> list[DemoUser]:
    """Create (or reset) the demo users with fresh passwords, and the demo brand and keywords.

    Safe to run twice: existing rows are kept, only passwords are renewed.
    """
    users = []
    user_model = get_user_model()
    for username, first, last, role in DEMO_USERS:
        user, _ = user_model.objects.get_or_create(
            username=username, defaults={"first_name": first, "last_name": last}
        )
        password = secrets.token_urlsafe(9)
        user.set_password(password)
        # Django's admin is for admins only, and they may change everything there.
        user.is_staff = user.is_superuser = role == ADMIN
        user.save()
        user.groups.set([Group.objects.get(name=role)])
        users.append(DemoUser(username=username, role=role, password=password))
    brand, _ = Brand.objects.get_or_create(name=DEMO_BRAND, defaults={"x_handle": DEMO_HANDLE})
    for query in DEMO_QUERIES:
        if not TrackedKeyword.objects.filter(brand=brand, query=query).exists():
            keyword_create(brand=brand, query=query, poll_interval_seconds=poll_interval_seconds)
    for platform, name, base_url, handle, credentials, query in DEMO_SOURCES:
        source, _ = Source.objects.get_or_create(
            brand=brand,
            name=name,
            defaults={
                "platform": platform,
                "base_url": base_url,
                "account_handle": handle,
                "credentials": credentials,
                "allow_private_address": True,
            },
        )
        if not source.allow_private_address:  # created before sources had the flag
            source.allow_private_address = True
            source.save(update_fields=["allow_private_address"])
        if not TrackedKeyword.objects.filter(source=source, query=query).exists():
            keyword_create(
                brand=brand,
                source=source,
                query=query,
                poll_interval_seconds=poll_interval_seconds,
            )
    return users
