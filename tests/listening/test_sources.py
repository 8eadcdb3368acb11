"""Admins add keywords on any source; supervisors see whether every source is still heard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from listening.models import Brand, Platform, PollCursor, Source, TrackedKeyword
from listening.selectors import x_monthly_cost
from listening.services.budgets import budget_for_keyword, budget_take
from listening.services.keywords import keyword_create
from listening.services.polling import keyword_poll
from tests.conftest import customer

pytestmark = pytest.mark.django_db


@pytest.fixture
def mastodon(brand) -> Source:
    return Source.objects.create(
        brand=brand,
        platform=Platform.MASTODON,
        name="mastodon.social",
        base_url="https://mastodon.social",
        credentials={"access_token": "t"},
    )


def add_keyword(client, **fields):
    return client.post(
        reverse("listening:keywords"),
        {"poll_interval_seconds": 60, "is_active": "on", **fields},
    )


def test_an_admin_adds_a_keyword_on_a_mastodon_source(client, admin_user, brand, mastodon):
    client.force_login(admin_user)

    response = add_keyword(client, brand=brand.pk, source=mastodon.pk, query="northwind coffee")

    assert response.status_code == 302
    keyword = TrackedKeyword.objects.get()
    assert (keyword.platform, keyword.source) == (Platform.MASTODON, mastodon)
    assert PollCursor.objects.filter(keyword=keyword).exists()


def test_a_source_of_another_brand_is_refused(client, admin_user, brand):
    other = Brand.objects.create(name="Southwind Tea")
    theirs = Source.objects.create(brand=other, platform=Platform.RSS, name="Their blog")
    client.force_login(admin_user)

    response = add_keyword(client, brand=brand.pk, source=theirs.pk, query="northwind")

    assert response.status_code == 200
    assert "Their blog belongs to Southwind Tea." in response.content.decode()
    assert not TrackedKeyword.objects.exists()


def test_a_query_the_platform_cannot_be_asked_is_explained(client, admin_user, brand):
    hacker_news = Source.objects.create(brand=brand, platform=Platform.HACKER_NEWS, name="HN")
    client.force_login(admin_user)

    response = add_keyword(client, brand=brand.pk, source=hacker_news.pk, query="coffee OR tea")

    page = response.content.decode()
    assert "Hacker News cannot run this query: no word or &quot;phrase&quot; has to appear" in page
    assert not TrackedKeyword.objects.exists()
    # The same query is fine on X, which takes OR.
    add_keyword(client, brand=brand.pk, query="coffee OR tea")
    assert TrackedKeyword.objects.get().platform == Platform.X


def test_the_x_cost_follows_the_keywords_volume(client, admin_user, keyword):
    PollCursor.objects.filter(keyword=keyword).update(volume_per_hour=10)
    client.force_login(admin_user)

    page = client.get(reverse("listening:keywords")).content.decode()

    # 10 posts an hour x 720 hours x ($0.005 a post + $0.010 its author).
    assert x_monthly_cost(volume_per_hour=10) == Decimal("108.00")
    assert '<td id="x-cost-total">$108.00</td>' in page


def test_the_health_page_shows_errors_budget_next_poll_and_volume(
    client, supervisor, x_sim, keyword, brand
):
    now = datetime.now(UTC)
    for n in range(3):
        x_sim.add_tweet(
            text=f"@NorthwindHelp hello {n}",
            author=customer(f"hi{n}"),
            created_at=now - timedelta(minutes=30 + n),
        )
    assert keyword_poll(keyword_id=keyword.pk, max_pages=2).stored == 3
    failing = keyword_create(brand=brand, query="northwind latte", poll_interval_seconds=30)
    x_sim.fail_next(401)
    keyword_poll(keyword_id=failing.pk, max_pages=1)
    budget_take(budget_for_keyword(keyword))
    client.force_login(supervisor)

    page = client.get(reverse("listening:health")).content.decode()

    healthy = page[
        page.index(f'id="health-{keyword.pk}"') : page.index(f'id="health-{failing.pk}"')
    ]
    assert 'aria-label="3 mentions in the last 24 hours"' in healthy
    assert "X refused the credentials (401 Unauthorized" not in healthy
    broken = page[page.index(f'id="health-{failing.pk}"') :]
    assert "X refused the credentials (401 Unauthorized" in broken
    assert "Check the brand&#x27;s X bearer token and keys." in broken
    # Both keywords spend the one search budget: a call each, and the one taken above.
    assert "447 / 450" in healthy
