"""Replies sent outside Earshot: the brand's own posts on X are read and linked to mentions."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from listening.models import AccountCursor, Mention, MentionStatus
from listening.services.budgets import budget_block, budget_for_x, budget_state
from responses.models import Reply, ReplyOrigin, ReplyStatus
from responses.services.claims import mention_claim
from responses.services.native_replies import (
    account_cursors_claim_due,
    account_posts_read,
)
from responses.services.replies import ReplyRefused, reply_post, reply_submit
from tests.conftest import BRAND_USER, customer
from tests.factories import make_author, make_mention

pytestmark = pytest.mark.django_db


@pytest.fixture
def heard(x_sim, brand):
    """Two mentions heard on X, a minute old."""
    at = timezone.now() - timedelta(minutes=5)
    mentions = []
    for name in ("pia", "raj"):
        tweet = x_sim.add_tweet(
            text=f"@NorthwindHelp where is my parcel, {name} here",
            author=customer(name),
            created_at=at,
        )
        mentions.append(
            make_mention(
                brand=brand,
                text=tweet["text"],
                external_id=tweet["id"],
                author=make_author(username=name),
                posted_at=at,
            )
        )
    return mentions


def brand_replies_on_x(x_sim, mention: Mention, text: str) -> dict:
    """Someone on the team answers in X's own app."""
    return x_sim.add_tweet(
        text=text,
        author=BRAND_USER,
        referenced_tweets=[{"type": "replied_to", "id": mention.external_id}],
        conversation_id=mention.external_id,
    )


def read_brand_account() -> int:
    (cursor_id,) = account_cursors_claim_due()
    outcome = account_posts_read(cursor_id=cursor_id, max_pages=5)
    assert not outcome.error, outcome.error
    return outcome.linked


def test_a_reply_sent_on_x_answers_its_mention_outside_earshot(x_sim, heard):
    pia, raj = heard
    native = brand_replies_on_x(x_sim, pia, "@pia so sorry, it left our depot this morning")
    # A post of the brand's that answers no mention links nothing.
    x_sim.add_tweet(text="Our autumn menu is here!", author=BRAND_USER)

    assert read_brand_account() == 1

    reply = Reply.objects.get()
    assert (reply.mention_id, reply.origin, reply.status) == (
        pia.pk,
        ReplyOrigin.PLATFORM,
        ReplyStatus.SENT,
    )
    assert reply.agent is None
    assert reply.external_id == native["id"]
    assert reply.text == native["text"]
    assert reply.posted_at == datetime.fromisoformat(native["created_at"])
    assert reply.author_label == "the brand on X"
    pia.refresh_from_db()
    raj.refresh_from_db()
    assert pia.status == MentionStatus.REPLIED
    assert raj.status == MentionStatus.NEW


def test_reading_again_links_nothing_twice(x_sim, heard):
    brand_replies_on_x(x_sim, heard[0], "@pia on its way!")
    assert read_brand_account() == 1
    # The next round starts after what was read; even a re-read of the same post is a no-op.
    AccountCursor.objects.update(next_poll_at=timezone.now(), since_id="")

    assert read_brand_account() == 0
    assert Reply.objects.count() == 1


def test_a_reply_sent_through_earshot_is_not_counted_again(x_sim, heard, agent, settings):
    settings.REPLY_UNDO_SECONDS = 0
    pia = heard[0]
    mention_claim(mention_id=pia.pk, agent=agent)
    reply = reply_submit(
        mention_id=pia.pk, agent=agent, text="Hi @pia, so sorry about the parcel: DM us? ^AM"
    )
    reply_post(reply_id=reply.pk, give_up_on_transient=True)
    assert len(x_sim.received_posts) == 1

    assert read_brand_account() == 0
    assert list(Reply.objects.values_list("origin", flat=True)) == [ReplyOrigin.EARSHOT]


def test_an_agent_drafting_is_stopped_when_the_team_answered_on_x(x_sim, heard, agent):
    pia = heard[0]
    mention_claim(mention_id=pia.pk, agent=agent)
    opened_at = timezone.now()
    brand_replies_on_x(x_sim, pia, "@pia answered from the phone app")
    read_brand_account()

    with pytest.raises(ReplyRefused) as refused:
        reply_submit(
            mention_id=pia.pk,
            agent=agent,
            text="Hi pia, so sorry about the parcel: DM us? ^AM",
            opened_at=opened_at,
        )

    assert "the brand on X replied after you opened" in str(refused.value)
    assert x_sim.received_posts == []


def test_a_brand_without_an_x_handle_has_nothing_to_read(x_sim, brand):
    brand.x_handle = ""
    brand.save()

    assert account_cursors_claim_due() == []
    assert not AccountCursor.objects.exists()


def test_reading_the_brand_account_spends_the_x_search_budget(x_sim, heard, brand):
    spec = budget_for_x(brand)
    read_brand_account()
    left, _ = budget_state(spec)
    assert left == spec.limit - 1

    budget_block(spec, until=timezone.now() + timedelta(minutes=5))
    calls = len(x_sim.requests_log)
    AccountCursor.objects.update(next_poll_at=timezone.now())

    assert read_brand_account() == 0
    assert len(x_sim.requests_log) == calls


def test_two_answers_to_one_mention_on_one_page_are_both_kept(x_sim, heard):
    pia = heard[0]
    first = brand_replies_on_x(x_sim, pia, "@pia looking into it now")
    second = brand_replies_on_x(x_sim, pia, "@pia found it: it ships today")

    assert read_brand_account() == 2

    kept = set(Reply.objects.filter(mention=pia).values_list("external_id", flat=True))
    assert kept == {first["id"], second["id"]}
