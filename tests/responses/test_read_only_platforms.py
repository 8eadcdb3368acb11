"""Mentions from platforms without a write API: open the original, answer there, mark handled."""

from __future__ import annotations

import pytest
from django.urls import reverse

from listening.models import Mention, MentionStatus, Platform, Source, TrackedKeyword
from responses.models import Reply, ReplyOrigin, ReplyStatus
from responses.services.claims import mention_claim
from responses.services.replies import ReplyRefused, reply_submit
from tests.factories import make_mention

pytestmark = pytest.mark.django_db

HN_URL = "https://news.ycombinator.com/item?id=4242"


@pytest.fixture
def hn_mention(brand):
    source = Source.objects.create(brand=brand, platform=Platform.HACKER_NEWS, name="HN")
    keyword = TrackedKeyword.objects.create(
        brand=brand, platform=Platform.HACKER_NEWS, source=source, query="northwind"
    )
    mention = make_mention(brand=brand, text="Northwind's app lost my order again", keyword=keyword)
    Mention.objects.filter(pk=mention.pk).update(
        platform=Platform.HACKER_NEWS, external_id="4242", url=HN_URL
    )
    mention.refresh_from_db()
    return mention


def test_the_page_offers_the_original_and_mark_handled_instead_of_a_reply_box(
    client, agent, hn_mention
):
    client.force_login(agent)

    page = client.get(reverse("responses:mention", args=[hn_mention.pk])).content.decode()

    assert f'href="{HN_URL}"' in page
    assert "Open on Hacker News" in page
    assert reverse("responses:handled", args=[hn_mention.pk]) in page
    assert reverse("responses:reply", args=[hn_mention.pk]) not in page


def test_marking_handled_records_who_and_when_and_answers_the_mention(client, agent, hn_mention):
    client.force_login(agent)

    response = client.post(reverse("responses:handled", args=[hn_mention.pk]))

    assert response.status_code == 302
    hn_mention.refresh_from_db()
    assert hn_mention.status == MentionStatus.REPLIED
    reply = Reply.objects.get()
    assert (reply.mention_id, reply.agent, reply.origin, reply.status) == (
        hn_mention.pk,
        agent,
        ReplyOrigin.MARKED,
        ReplyStatus.SENT,
    )
    assert reply.posted_at is not None


def test_a_colleagues_claim_blocks_marking_handled(client, agent, other_agent, hn_mention):
    mention_claim(mention_id=hn_mention.pk, agent=other_agent)
    client.force_login(agent)

    client.post(reverse("responses:handled", args=[hn_mention.pk]))

    hn_mention.refresh_from_db()
    assert (hn_mention.status, hn_mention.claimed_by) == (MentionStatus.CLAIMED, other_agent)
    assert not Reply.objects.exists()


def test_sending_a_reply_to_it_is_refused_with_the_reason(agent, hn_mention):
    with pytest.raises(ReplyRefused, match="Hacker News has no API to reply through"):
        reply_submit(mention_id=hn_mention.pk, agent=agent, text="Hi there, sorry! ^AM")
    assert not Reply.objects.exists()
