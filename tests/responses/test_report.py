from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from django.urls import reverse

from responses.models import Reply
from tests.factories import make_mention

pytestmark = pytest.mark.django_db


def percentile(values: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks, as PostgreSQL's percentile_cont."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


_post_ids = count(1_900_000_000_000_000_000)


def answer(mention, agent, after: timedelta, status="sent") -> Reply:
    return Reply.objects.create(
        mention=mention,
        agent=agent,
        text="thanks",
        status=status,
        external_id=str(next(_post_ids)) if status == "sent" else "",
        posted_at=mention.posted_at + after if status == "sent" else None,
    )


@pytest.fixture
def period_data(brand, agent, other_agent):
    base = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    alice_minutes = [3, 10, 45]
    bob_minutes = [1, 7, 12, 90]
    for n, minutes in enumerate(alice_minutes):
        m = make_mention(brand=brand, text=f"a{n}", posted_at=base + timedelta(hours=n))
        answer(m, agent, timedelta(minutes=minutes))
        # A later second reply never counts as the first response.
        answer(m, other_agent, timedelta(minutes=minutes + 300))
    for n, minutes in enumerate(bob_minutes):
        m = make_mention(brand=brand, text=f"b{n}", posted_at=base + timedelta(hours=n, minutes=5))
        answer(m, other_agent, timedelta(minutes=minutes))
    make_mention(brand=brand, text="unanswered", posted_at=base + timedelta(hours=1))
    failed = make_mention(brand=brand, text="reply failed", posted_at=base + timedelta(hours=2))
    answer(failed, agent, timedelta(), status="failed")
    # Outside the period: not counted at all.
    outside = make_mention(brand=brand, text="last month", posted_at=base - timedelta(days=20))
    answer(outside, agent, timedelta(minutes=1))
    return base, alice_minutes, bob_minutes


def test_the_supervisor_page_shows_the_figures(client, supervisor, period_data):
    client.force_login(supervisor)
    html = client.get(
        reverse("responses:report"), {"since": "2026-11-01", "until": "2026-11-03"}
    ).content.decode()
    assert '<span class="value" id="stat-mentions">9</span>' in html
    assert '<span class="value" id="stat-answered">7</span>' in html
    assert '<span class="value" id="stat-rate">78%</span>' in html
    assert '<span class="value" id="stat-median">0:10:00</span>' in html
    assert '<tr data-agent="alice"><th scope="row">alice</th><td>3</td><td>0:10:00</td>' in html


def test_a_reversed_period_is_explained(client, supervisor):
    client.force_login(supervisor)
    html = client.get(
        reverse("responses:report"), {"since": "2026-11-05", "until": "2026-11-01"}
    ).content.decode()
    assert "The period must start on or before the day it ends." in html
