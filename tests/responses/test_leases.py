"""Claims are leases; claim-next hands out the most urgent mention exactly once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from listening.models import Mention
from responses.services.claims import (
    claims_release_expired,
    mention_claim,
    mention_claim_next,
)
from responses.services.replies import ReplyRefused, reply_submit
from tests.conftest import _user, all_at_once
from tests.factories import make_author, make_mention


def claim_next_at_once(agents) -> dict[str, Mention | None]:
    outcomes = all_at_once(lambda agent: mention_claim_next(agent=agent), agents)
    return {agent.username: outcome for agent, outcome in zip(agents, outcomes, strict=True)}


@pytest.mark.django_db(transaction=True)
def test_twenty_agents_pressing_claim_next_at_once_get_the_twenty_most_urgent_once_each(brand):
    now = datetime.now(UTC)
    mentions = [
        make_mention(brand=brand, text=f"hello Northwind {n}", posted_at=now - timedelta(minutes=n))
        for n in range(25)
    ]
    agents = [_user(f"agent{n}", "agent") for n in range(20)]

    results = claim_next_at_once(agents)

    claimed = [m.pk for m in results.values() if m is not None]
    assert len(claimed) == 20 and len(set(claimed)) == 20
    # Oldest first among equally plain mentions: the 20 that waited longest.
    assert set(claimed) == {m.pk for m in mentions[5:]}
    holders = dict(
        Mention.objects.filter(status="claimed").values_list("pk", "claimed_by__username")
    )
    assert holders == {m.pk: name for name, m in results.items()}
    assert Mention.objects.filter(status="new").count() == 5


@pytest.mark.django_db(transaction=True)
def test_when_fewer_mentions_than_agents_the_rest_are_told_there_is_nothing(brand):
    for n in range(3):
        make_mention(brand=brand, text=f"hi {n}")
    agents = [_user(f"late{n}", "agent") for n in range(8)]

    results = claim_next_at_once(agents)

    assert sum(m is not None for m in results.values()) == 3
    assert len({m.pk for m in results.values() if m}) == 3


@pytest.mark.django_db
def test_claim_next_takes_the_most_urgent_not_the_oldest(brand, agent):
    now = datetime.now(UTC)
    make_mention(brand=brand, text="nice shop, Northwind", posted_at=now - timedelta(minutes=40))
    urgent = make_mention(
        brand=brand,
        text="Northwind charged me twice, this is a disgrace and nobody answers!",
        author=make_author(followers=250_000),
        posted_at=now - timedelta(minutes=2),
    )
    assert mention_claim_next(agent=agent).pk == urgent.pk


@pytest.mark.django_db
def test_an_idle_claim_lapses_and_someone_else_may_take_it(brand, agent, other_agent, settings):
    settings.CLAIM_LEASE_MINUTES = 15
    start = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        mention = make_mention(brand=brand, text="@NorthwindHelp help please")
        assert mention_claim(mention_id=mention.pk, agent=agent).won
    with time_machine.travel(start + timedelta(minutes=14, seconds=59), tick=False):
        lost = mention_claim(mention_id=mention.pk, agent=other_agent)
        assert not lost.won and lost.holder_name == "alice"
        assert claims_release_expired() == 0
    with time_machine.travel(start + timedelta(minutes=15), tick=False):
        taken = mention_claim(mention_id=mention.pk, agent=other_agent)
    assert taken.won and taken.holder_name == "bob"
    assert Mention.objects.get(pk=mention.pk).claim_expires_at == start + timedelta(minutes=30)


@pytest.mark.django_db
def test_lapsed_claims_return_to_the_queue(brand, agent, settings):
    settings.CLAIM_LEASE_MINUTES = 15
    start = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        idle = make_mention(brand=brand, text="idle one")
        busy = make_mention(brand=brand, text="busy one")
        mention_claim(mention_id=idle.pk, agent=agent)
        mention_claim(mention_id=busy.pk, agent=agent)
    with time_machine.travel(start + timedelta(minutes=10), tick=False):
        mention_claim(mention_id=busy.pk, agent=agent)  # activity renews the lease
    with time_machine.travel(start + timedelta(minutes=16), tick=False):
        assert claims_release_expired() == 1
    idle.refresh_from_db()
    busy.refresh_from_db()
    assert (idle.status, idle.claimed_by, idle.claim_expires_at) == ("new", None, None)
    assert (busy.status, busy.claimed_by) == ("claimed", agent)


@pytest.mark.django_db
def test_opening_the_mention_renews_its_holders_lease(client, brand, agent, settings):
    settings.CLAIM_LEASE_MINUTES = 15
    start = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        mention = make_mention(brand=brand, text="hello")
        mention_claim(mention_id=mention.pk, agent=agent)
    client.force_login(agent)
    with time_machine.travel(start + timedelta(minutes=12), tick=False):
        client.get(reverse("responses:mention", args=[mention.pk]))
    assert Mention.objects.get(pk=mention.pk).claim_expires_at == start + timedelta(minutes=27)


@pytest.mark.django_db
def test_a_lapsed_claim_does_not_block_another_agents_reply(
    brand, agent, other_agent, settings, django_capture_on_commit_callbacks
):
    settings.CLAIM_LEASE_MINUTES = 15
    start = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        mention = make_mention(
            brand=brand, text="@NorthwindHelp anyone there?", author=make_author(name="Dana")
        )
        mention_claim(mention_id=mention.pk, agent=agent)
    with (
        time_machine.travel(start + timedelta(minutes=5), tick=False),
        pytest.raises(ReplyRefused, match="alice has claimed this mention"),
    ):
        reply_submit(mention_id=mention.pk, agent=other_agent, text="Hi!")
    with (
        time_machine.travel(start + timedelta(minutes=16), tick=False),
        django_capture_on_commit_callbacks(),
    ):
        reply = reply_submit(
            mention_id=mention.pk, agent=other_agent, text="Hi Dana, yes, we are here! ^BL"
        )
    assert reply.agent == other_agent
    assert Mention.objects.get(pk=mention.pk).claimed_by == other_agent


@pytest.mark.django_db
def test_supervisors_assign_and_reassign_agents_cannot(
    client, brand, agent, other_agent, supervisor
):
    mention = make_mention(brand=brand, text="@NorthwindHelp help")
    mention_claim(mention_id=mention.pk, agent=agent)
    url = reverse("responses:assign", args=[mention.pk])

    client.force_login(other_agent)
    assert client.post(url, {"assignee": other_agent.pk}).status_code == 403
    assert Mention.objects.get(pk=mention.pk).claimed_by == agent

    client.force_login(supervisor)
    client.post(url, {"assignee": other_agent.pk})
    reassigned = Mention.objects.get(pk=mention.pk)
    assert (reassigned.status, reassigned.claimed_by) == ("claimed", other_agent)
    assert reassigned.claim_expires_at > datetime.now(UTC)


@pytest.mark.django_db
def test_the_claim_next_button_opens_the_claimed_mention_or_says_there_is_none(
    client, brand, agent
):
    mention = make_mention(brand=brand, text="@NorthwindHelp first")
    client.force_login(agent)

    response = client.post(reverse("responses:claim-next"))
    assert response["Location"] == reverse("responses:mention", args=[mention.pk])
    assert Mention.objects.get(pk=mention.pk).claimed_by == agent

    response = client.post(reverse("responses:claim-next"), follow=True)
    assert "Nothing left to claim" in response.content.decode()


@pytest.mark.django_db
def test_claim_next_takes_a_lapsed_claim_once_beat_has_returned_it(brand, agent, other_agent):
    start = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        lapsing = make_mention(brand=brand, text="waiting on alice")
        mention_claim(mention_id=lapsing.pk, agent=agent)
    with time_machine.travel(start + timedelta(minutes=20), tick=False):
        assert mention_claim_next(agent=other_agent) is None
        assert claims_release_expired() == 1
        assert mention_claim_next(agent=other_agent).pk == lapsing.pk
