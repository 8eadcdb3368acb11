"""Rate-limit budgets and the poll scheduler: no budget is ever exceeded, every keyword gets
its share, busier keywords are polled more often."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from listening.clients.base import RateLimit
from listening.models import PollCursor, RateBudget
from listening.services.budgets import (
    BudgetSpec,
    budget_block,
    budget_for_keyword,
    budget_observe,
    budget_state,
    budget_take,
)
from listening.services.keywords import keyword_create
from listening.services.polling import keyword_poll, poll_claim_due
from listening.services.scheduling import (
    RESERVE,
    KeywordLoad,
    plan_poll_intervals,
    worst_calls_per_second,
)
from tests.conftest import all_at_once, customer, search_requests

X_APP = BudgetSpec("x-search:test", limit=450, window_seconds=900)


# --- the budget itself, on real PostgreSQL ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_twenty_workers_at_once_take_exactly_the_limit():
    spec = BudgetSpec("test:race", limit=10, window_seconds=60)

    taken = all_at_once(lambda _: budget_take(spec), list(range(20)))

    assert taken.count(True) == 10
    assert RateBudget.objects.get(key=spec.key).remaining == 0


@pytest.mark.django_db
def test_the_window_refills_the_budget_only_after_its_reset():
    spec = BudgetSpec("test:window", limit=2, window_seconds=60)
    start = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

    assert [budget_take(spec, now=start) for _ in range(3)] == [True, True, False]
    assert budget_take(spec, now=start + timedelta(seconds=59)) is False
    assert budget_take(spec, now=start + timedelta(seconds=60)) is True
    assert RateBudget.objects.get(key=spec.key).remaining == 1


@pytest.mark.django_db
def test_the_platforms_headers_lower_the_count_but_never_raise_it():
    spec = BudgetSpec("test:headers", limit=450, window_seconds=900)
    budget_take(spec)
    reset = datetime.now(UTC) + timedelta(minutes=7)

    budget_observe(spec, RateLimit(limit=450, remaining=12, reset_at=reset))
    assert budget_state(spec) == (12, reset)

    budget_observe(spec, RateLimit(limit=450, remaining=400, reset_at=reset))
    assert budget_state(spec) == (12, reset)


@pytest.mark.django_db
def test_after_a_429_on_one_keyword_no_keyword_on_that_credential_calls_before_the_reset(
    x_sim, keyword, brand
):
    other = keyword_create(brand=brand, query="northwind latte", poll_interval_seconds=30)
    reset = int(datetime.now(UTC).timestamp()) + 600
    x_sim.fail_next(
        429,
        headers={
            "x-rate-limit-limit": "450",
            "x-rate-limit-remaining": "0",
            "x-rate-limit-reset": str(reset),
        },
    )
    assert keyword_poll(keyword_id=keyword.pk, max_pages=5).rate_limited_until is not None
    calls = len(search_requests(x_sim))

    outcome = keyword_poll(keyword_id=other.pk, max_pages=5)

    assert len(search_requests(x_sim)) == calls
    assert outcome.pages == 0 and outcome.error == ""
    assert outcome.budget_wait_until == datetime.fromtimestamp(reset, tz=UTC)
    assert PollCursor.objects.get(keyword=other).next_poll_at == outcome.budget_wait_until


@pytest.mark.django_db
def test_a_budget_spent_by_earshot_itself_stops_the_poll_before_any_call(x_sim, keyword):
    spec = budget_for_keyword(keyword)
    reset = datetime.now(UTC) + timedelta(minutes=3)
    budget_take(spec)
    budget_block(spec, until=reset)
    x_sim.add_tweet(text="@NorthwindHelp anyone there?", author=customer("waiting_wu"))

    outcome = keyword_poll(keyword_id=keyword.pk, max_pages=5)

    assert search_requests(x_sim) == []
    assert (outcome.pages, outcome.stored, outcome.budget_wait_until) == (0, 0, reset)


# --- the plan ---------------------------------------------------------------------------------


def loads(volumes: list[float], min_interval: float = 5) -> list[KeywordLoad]:
    return [KeywordLoad(n, min_interval, volume) for n, volume in enumerate(volumes)]


def test_two_hundred_equal_keywords_share_the_x_budget_equally():
    plan = plan_poll_intervals(loads([0] * 200), X_APP)

    expected = 200 * 900 / (450 * (1 - RESERVE))
    assert set(plan) == set(range(200))
    assert all(seconds == pytest.approx(expected) for seconds in plan.values())


def test_busier_keywords_are_polled_more_often_but_quiet_ones_are_not_starved():
    plan = plan_poll_intervals(loads([0] * 100 + [99] * 100), X_APP)

    quiet, busy = plan[0], plan[150]
    assert busy < quiet
    # sqrt(1 + 99) / sqrt(1 + 0): ten times as often, not a hundred.
    assert quiet / busy == pytest.approx(10)


def test_a_keyword_that_asks_for_less_leaves_its_share_to_the_others():
    few = [KeywordLoad(0, 3600, 0), KeywordLoad(1, 5, 0), KeywordLoad(2, 5, 0)]
    plan = plan_poll_intervals(few, BudgetSpec("k", limit=6, window_seconds=60))

    assert plan[0] == 3600
    usable = 0.1 * (1 - RESERVE) - 1 / 3600
    assert plan[1] == pytest.approx(2 / usable)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 20_000), st.integers(5, 3600)), min_size=1, max_size=300))
def test_no_plan_ever_spends_more_than_the_budget(keyword_loads):
    loads = [KeywordLoad(n, minimum, volume) for n, (volume, minimum) in enumerate(keyword_loads)]
    usable = X_APP.calls_per_second * (1 - RESERVE)
    paging = sum(volume for volume, _ in keyword_loads) / 3600 / 100

    plan = plan_poll_intervals(loads, X_APP)

    assert all(plan[load.keyword_id] >= load.min_interval_seconds - 1e-9 for load in loads)
    if paging <= usable * 0.95:
        assert worst_calls_per_second(plan, loads) <= usable * (1 + 1e-9)


@pytest.mark.django_db
def test_the_dispatcher_spaces_polls_by_the_plan(x_sim, brand):
    keywords = [
        keyword_create(brand=brand, query=f"northwind{n}", poll_interval_seconds=5)
        for n in range(30)
    ]
    now = datetime.now(UTC)

    claimed = poll_claim_due(now=now)

    assert sorted(claimed) == sorted(k.pk for k in keywords)
    expected = 30 * 900 / (450 * (1 - RESERVE))
    for cursor in PollCursor.objects.all():
        assert (cursor.next_poll_at - now).total_seconds() == pytest.approx(expected, abs=0.01)
    assert poll_claim_due(now=now + timedelta(seconds=expected - 2)) == []
