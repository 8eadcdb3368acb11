"""Teams per brand: agents work their teams' queues; supervisors and admins see them all."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from config.roles import visible_team_ids
from listening.models import Brand, Mention, Team
from responses.services.claims import mention_claim_next
from tests.factories import make_author, make_mention

pytestmark = pytest.mark.django_db
ROWS = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "queue-rows"}


def team_mention(*, brand: Brand, team: Team | None, text: str, minutes_ago: int = 0) -> Mention:
    mention = make_mention(
        brand=brand, text=text, posted_at=datetime.now(UTC) - timedelta(minutes=minutes_ago)
    )
    # Storage copies the keyword's team onto the row at ingest; here it is set directly.
    Mention.objects.filter(pk=mention.pk).update(team=team)
    mention.team = team
    return mention


@pytest.fixture
def billing(brand, agent) -> Team:
    team = Team.objects.create(brand=brand, name="Billing")
    team.members.add(agent)
    return team


@pytest.fixture
def shipping(brand, other_agent) -> Team:
    team = Team.objects.create(brand=brand, name="Shipping")
    team.members.add(other_agent)
    return team


@pytest.fixture
def mentions(brand, billing, shipping) -> dict[str, Mention]:
    # Shipping's is the oldest, so the most urgent: claim-next would hand it out first.
    return {
        "shipping": team_mention(
            brand=brand, team=shipping, text="my parcel never came", minutes_ago=90
        ),
        "billing": team_mention(
            brand=brand, team=billing, text="charged twice for beans", minutes_ago=60
        ),
        "anyone": team_mention(brand=brand, team=None, text="where is your shop", minutes_ago=30),
    }


def queue_texts(client, **params) -> set[str]:
    html = client.get(reverse("responses:queue"), params).content.decode()
    return {
        text
        for text in ("my parcel never came", "charged twice for beans", "where is your shop")
        if text in html
    }


def test_an_agent_sees_their_teams_mentions_and_those_of_no_team(client, agent, mentions):
    client.force_login(agent)
    assert queue_texts(client) == {"charged twice for beans", "where is your shop"}


def test_a_supervisor_sees_every_team_and_can_look_at_one(
    client, supervisor, mentions, billing, shipping
):
    client.force_login(supervisor)
    assert queue_texts(client) == {
        "my parcel never came",
        "charged twice for beans",
        "where is your shop",
    }
    assert queue_texts(client, team=shipping.pk) == {"my parcel never came"}
    html = client.get(reverse("responses:queue")).content.decode()
    assert f'<option value="{shipping.pk}">Northwind Coffee: Shipping</option>' in html


def test_agents_get_no_team_filter(client, agent, mentions, shipping):
    # The filter is for those who see every team; an agent's page does not offer it.
    client.force_login(agent)
    html = client.get(reverse("responses:queue")).content.decode()
    assert 'name="team"' not in html
    assert queue_texts(client, team=shipping.pk) == {
        "charged twice for beans",
        "where is your shop",
    }


def test_claim_next_never_hands_an_agent_another_teams_mention(agent, mentions):
    first = mention_claim_next(agent=agent)
    second = mention_claim_next(agent=agent)
    assert [first.pk, second.pk] == [mentions["billing"].pk, mentions["anyone"].pk]
    assert mention_claim_next(agent=agent) is None
    shipping = Mention.objects.get(pk=mentions["shipping"].pk)
    assert (shipping.status, shipping.claimed_by_id) == ("new", None)


def test_claim_next_through_the_page(client, agent, mentions):
    client.force_login(agent)
    response = client.post(reverse("responses:claim-next"))
    assert response["Location"] == reverse("responses:mention", args=[mentions["billing"].pk])


def test_an_agent_cannot_open_claim_or_close_another_teams_mention(client, agent, mentions):
    shipping = mentions["shipping"]
    client.force_login(agent)
    assert client.get(reverse("responses:mention", args=[shipping.pk])).status_code == 404
    assert client.post(reverse("responses:claim", args=[shipping.pk])).status_code == 404
    assert client.post(reverse("responses:resolve", args=[shipping.pk])).status_code == 404
    assert (
        client.post(reverse("responses:reply", args=[shipping.pk]), {"text": "hi"}).status_code
        == 404
    )
    shipping.refresh_from_db()
    assert (shipping.status, shipping.claimed_by_id) == ("new", None)
    assert not shipping.replies.exists()
    # Their own team's opens.
    assert (
        client.get(reverse("responses:mention", args=[mentions["billing"].pk])).status_code == 200
    )


def test_bulk_actions_refuse_another_teams_mention(client, agent, mentions):
    client.force_login(agent)
    response = client.post(
        reverse("responses:bulk"),
        {"mentions": [mentions["billing"].pk, mentions["shipping"].pk], "action": "spam"},
        follow=True,
    )
    assert "A selected mention is not in your teams&#x27; queue: nothing was done." in (
        response.content.decode()
    )
    statuses = dict(Mention.objects.values_list("pk", "status"))
    assert statuses[mentions["billing"].pk] == "new"
    assert statuses[mentions["shipping"].pk] == "new"


def test_a_supervisor_opens_and_closes_any_teams_mention(client, supervisor, mentions):
    shipping = mentions["shipping"]
    client.force_login(supervisor)
    assert client.get(reverse("responses:mention", args=[shipping.pk])).status_code == 200
    client.post(reverse("responses:bulk"), {"mentions": [shipping.pk], "action": "spam"})
    shipping.refresh_from_db()
    assert shipping.status == "spam"


def test_a_mention_given_to_an_agent_of_another_team_is_theirs_to_work(
    client, supervisor, agent, mentions
):
    shipping = mentions["shipping"]
    client.force_login(supervisor)
    client.post(reverse("responses:assign", args=[shipping.pk]), {"assignee": agent.pk})
    client.force_login(agent)
    assert client.get(reverse("responses:mention", args=[shipping.pk])).status_code == 200
    assert "my parcel never came" in queue_texts(client)


def test_the_live_poll_ignores_another_teams_arrivals(client, agent, brand, mentions, shipping):
    client.force_login(agent)
    page = client.get(reverse("responses:queue")).content.decode()
    poll_url = re.search(r'hx-get="([^"]+since=[^"]+)"', page).group(1).replace("&amp;", "&")

    team_mention(brand=brand, team=shipping, text="another lost parcel")
    assert client.get(poll_url, **ROWS).status_code == 204

    team_mention(brand=brand, team=None, text="do you sell gift cards")
    changed = client.get(poll_url, **ROWS)
    assert changed.status_code == 200
    html = changed.content.decode()
    assert "do you sell gift cards" in html and "another lost parcel" not in html


def test_a_brand_without_teams_is_one_shared_queue(client, agent, other_agent, brand):
    make_mention(brand=brand, text="first post")
    make_mention(brand=brand, text="second post")
    assert visible_team_ids(agent) is None  # no team anywhere: no filter at all
    client.force_login(agent)
    html = client.get(reverse("responses:queue")).content.decode()
    assert "first post" in html and "second post" in html
    assert mention_claim_next(agent=other_agent).text == "first post"


def test_an_agent_on_every_team_gets_no_filter_and_one_on_some_does(
    agent, other_agent, billing, shipping
):
    assert visible_team_ids(other_agent) == frozenset({shipping.pk})
    assert visible_team_ids(agent) == frozenset({billing.pk})
    shipping.members.add(agent)
    fresh = type(agent).objects.get(pk=agent.pk)  # as the next request loads it
    assert visible_team_ids(fresh) is None


def test_teams_cost_the_queue_page_no_extra_query(client, agent, brand):
    client.force_login(agent)

    def queries() -> int:
        with CaptureQueriesContext(connection) as page:
            assert client.get(reverse("responses:queue")).status_code == 200
        return len(page)

    make_mention(brand=brand, text="a post")
    without_teams = queries()
    team = Team.objects.create(brand=brand, name="Billing")
    Team.objects.create(brand=brand, name="Shipping")
    team.members.add(agent)
    team_mention(brand=brand, team=team, text="a billing post")
    assert queries() == without_teams


def test_another_teams_mention_stays_out_of_the_customer_panel_and_thread(
    client, agent, supervisor, brand, billing, shipping
):
    author = make_author(username="same_customer")
    shipping_post = make_mention(
        brand=brand, author=author, text="where is my parcel", posted_at=datetime.now(UTC)
    )
    billing_post = make_mention(
        brand=brand, author=author, text="and I was charged twice", posted_at=datetime.now(UTC)
    )
    Mention.objects.filter(pk=shipping_post.pk).update(team=shipping, conversation_id="c1")
    Mention.objects.filter(pk=billing_post.pk).update(team=billing, conversation_id="c1")
    url = reverse("responses:mention", args=[billing_post.pk])

    client.force_login(agent)
    assert "where is my parcel" not in client.get(url).content.decode()
    client.force_login(supervisor)
    assert "where is my parcel" in client.get(url).content.decode()
