from __future__ import annotations

import pytest
from django.urls import reverse

from listening.models import Mention
from responses.services.claims import (
    mention_claim,
    mention_close,
    mention_release,
)
from tests.conftest import _user, all_at_once
from tests.factories import make_mention


@pytest.mark.django_db(transaction=True)
def test_twenty_agents_claiming_at_once_get_exactly_one_winner(brand):
    mention = make_mention(brand=brand, text="@NorthwindHelp help!")
    agents = [_user(f"racer{n}", "agent") for n in range(20)]
    outcomes = all_at_once(lambda agent: mention_claim(mention_id=mention.pk, agent=agent), agents)
    results = {agent.username: outcome for agent, outcome in zip(agents, outcomes, strict=True)}

    winners = [name for name, result in results.items() if result.won]
    assert len(results) == 20 and len(winners) == 1
    mention.refresh_from_db()
    assert mention.claimed_by.username == winners[0] and mention.status == "claimed"
    assert {r.holder_name for r in results.values()} == {winners[0]}


@pytest.mark.django_db
def test_claiming_your_own_claim_again_is_a_win_and_changes_nothing(brand, agent):
    mention = make_mention(brand=brand, text="hello")
    first = mention_claim(mention_id=mention.pk, agent=agent)
    claimed_at = Mention.objects.get(pk=mention.pk).claimed_at
    again = mention_claim(mention_id=mention.pk, agent=agent)
    assert first.won and again.won
    assert Mention.objects.get(pk=mention.pk).claimed_at == claimed_at


@pytest.mark.django_db
def test_only_the_holder_can_release(brand, agent, other_agent):
    mention = make_mention(brand=brand, text="hello")
    mention_claim(mention_id=mention.pk, agent=agent)
    assert mention_release(mention_id=mention.pk, agent=other_agent) is False
    assert Mention.objects.get(pk=mention.pk).claimed_by == agent
    assert mention_release(mention_id=mention.pk, agent=agent) is True
    released = Mention.objects.get(pk=mention.pk)
    assert (released.status, released.claimed_by, released.claimed_at) == ("new", None, None)


@pytest.mark.django_db
def test_no_reply_needed_respects_someone_elses_claim(brand, agent, other_agent):
    mention = make_mention(brand=brand, text="just saying hi to Northwind Coffee")
    mention_claim(mention_id=mention.pk, agent=agent)
    assert (
        mention_close(mention_id=mention.pk, agent=other_agent, outcome="no_reply_needed") is False
    )
    assert Mention.objects.get(pk=mention.pk).status == "claimed"
    assert mention_close(mention_id=mention.pk, agent=agent, outcome="no_reply_needed") is True
    assert Mention.objects.get(pk=mention.pk).status == "no_reply_needed"


@pytest.mark.django_db
def test_losing_a_claim_in_the_queue_says_who_has_it(client, brand, agent, other_agent):
    mention = make_mention(brand=brand, text="@NorthwindHelp where is my order")
    mention_claim(mention_id=mention.pk, agent=other_agent)
    client.force_login(agent)

    response = client.post(reverse("responses:claim", args=[mention.pk]), HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html
    assert "bob claimed it first" in html
    assert Mention.objects.get(pk=mention.pk).claimed_by == other_agent


@pytest.mark.django_db
def test_winning_a_claim_in_the_queue_returns_the_updated_row(client, brand, agent):
    mention = make_mention(brand=brand, text="@NorthwindHelp where is my order")
    client.force_login(agent)
    response = client.post(reverse("responses:claim", args=[mention.pk]), HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert f'id="mention-{mention.pk}"' in html and "Claimed by you" in html
    assert "claimed it first" not in html
