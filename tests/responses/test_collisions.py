"""Several people on one mention: who else is here, and no customer answered twice."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from listening.models import Mention
from responses.models import Reply
from responses.presence import PRESENCE_TTL_SECONDS, presence_beat, presence_others
from responses.services.claims import mention_assign, mention_claim, mention_close
from tests.factories import make_mention

pytestmark = pytest.mark.django_db


def test_a_colleague_who_replied_after_you_opened_the_mention_stops_your_reply(
    client, brand, agent, other_agent, django_capture_on_commit_callbacks
):
    mention = make_mention(brand=brand, text="@NorthwindHelp my order is missing")
    client.force_login(agent)
    page = client.get(reverse("responses:mention", args=[mention.pk])).content.decode()
    opened_at = page.split('name="opened_at" value="')[1].split('"')[0]
    # Meanwhile Bob answers (it is sent, and the customer writes again: open once more).
    Reply.objects.create(mention=mention, agent=other_agent, text="Hi! Bob here, DM us? ^BL")
    Mention.objects.filter(pk=mention.pk).update(status="reopened")

    with django_capture_on_commit_callbacks() as sends:
        response = client.post(
            reverse("responses:reply", args=[mention.pk]),
            {"text": "Hi! So sorry. ^AM", "opened_at": opened_at},
        )

    assert response.status_code == 409
    html = response.content.decode()
    assert "bob replied after you opened this mention; your reply was not sent." in html
    assert "Hi! Bob here, DM us? ^BL" in html
    assert list(Reply.objects.values_list("agent__username", flat=True)) == ["bob"]
    assert sends == []


def test_a_mention_reassigned_to_a_colleague_refuses_your_reply(client, brand, agent, other_agent):
    mention = make_mention(brand=brand, text="@NorthwindHelp help")
    mention_claim(mention_id=mention.pk, agent=agent)
    client.force_login(agent)
    opened_at = datetime.now(UTC).isoformat()
    mention_assign(mention_id=mention.pk, assignee=other_agent)

    response = client.post(
        reverse("responses:reply", args=[mention.pk]), {"text": "Hi!", "opened_at": opened_at}
    )

    assert response.status_code == 409
    assert "bob has claimed this mention" in response.content.decode()
    assert not Reply.objects.exists()


def test_the_mention_page_shows_who_else_is_viewing_or_writing(client, brand, agent, other_agent):
    mention = make_mention(brand=brand, text="@NorthwindHelp hello")
    client.force_login(other_agent)
    client.post(reverse("responses:presence", args=[mention.pk]), {"state": "drafting"})
    client.force_login(agent)

    html = client.get(reverse("responses:mention", args=[mention.pk])).content.decode()
    assert "bob is writing a reply" in html
    beat = client.post(reverse("responses:presence", args=[mention.pk]), {"state": "viewing"})
    assert "bob is writing a reply" in beat.content.decode()
    assert "alice is" not in beat.content.decode()  # never yourself

    client.force_login(other_agent)
    html = client.post(reverse("responses:presence", args=[mention.pk]), {"state": "viewing"})
    assert "alice is viewing" in html.content.decode()


def test_presence_fades_when_the_heartbeats_stop(brand):
    mention = make_mention(brand=brand, text="hello")
    start = time.time()
    presence_beat(mention_id=mention.pk, username="bob", state="drafting", now=start)
    assert [
        p.username for p in presence_others(mention_id=mention.pk, username="alice", now=start)
    ] == ["bob"]
    later = start + PRESENCE_TTL_SECONDS + 1
    assert presence_others(mention_id=mention.pk, username="alice", now=later) == []


def test_resolve_and_spam_close_a_mention(client, brand, agent):
    replied = make_mention(brand=brand, text="thanks for the help", status="replied")
    junk = make_mention(brand=brand, text="buy followers now")
    client.force_login(agent)

    client.post(reverse("responses:resolve", args=[replied.pk]))
    client.post(reverse("responses:spam", args=[junk.pk]))

    assert Mention.objects.get(pk=replied.pk).status == "resolved"
    assert Mention.objects.get(pk=junk.pk).status == "spam"
    # Spam is for open mentions; a resolved one stays resolved.
    assert mention_close(mention_id=replied.pk, agent=agent, outcome="spam") is False


def test_a_customer_writing_again_after_our_reply_reopens_the_conversation(x_sim, keyword):
    from django.core.management import call_command

    from tests.conftest import customer

    person = customer("again_ada", "Ada")
    first = x_sim.add_tweet(
        text="@NorthwindHelp my card was charged twice",
        author=person,
        created_at=datetime.now(UTC) - timedelta(minutes=30),
    )
    call_command("poll", stdout=open("/dev/null", "w"))  # noqa: SIM115
    Mention.objects.filter(external_id=first["id"]).update(status="replied")
    again = x_sim.add_tweet(
        text="@NorthwindHelp still charged twice, nothing changed",
        author=person,
        conversation_id=first["id"],
    )
    stranger = x_sim.add_tweet(
        text="@NorthwindHelp me too!", author=customer("other_olga"), conversation_id=first["id"]
    )
    call_command("poll", stdout=open("/dev/null", "w"))  # noqa: SIM115

    reopened = Mention.objects.get(external_id=again["id"])
    assert reopened.status == "reopened"
    assert "wrote again after our reply" in reopened.priority_reasons
    assert Mention.objects.get(external_id=stranger["id"]).status == "new"
