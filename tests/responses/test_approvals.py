"""Approvals and taking a case private."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from config.roles import NEEDS_APPROVAL
from listening.models import Mention, MentionStatus
from responses.models import Reply, ReplyStatus
from responses.services.claims import mention_claim
from responses.services.replies import (
    ReplyRefused,
    reply_approve,
    reply_post,
    reply_return,
    reply_submit,
)
from tests.conftest import customer
from tests.factories import make_author, make_mention

pytestmark = pytest.mark.django_db

TEXT = "Hi Pia, so sorry the parcel is lost! Thanks for telling us, DM us? ^AM"


@pytest.fixture
def parcel(x_sim, brand):
    tweet = x_sim.add_tweet(
        text="@NorthwindHelp my parcel is lost, terrible", author=customer("pia", "Pia")
    )
    return make_mention(
        brand=brand,
        text=tweet["text"],
        external_id=tweet["id"],
        author=make_author(username="pia", name="Pia Lund"),
    )


@pytest.fixture
def new_hire(agent, brand):
    brand.replies_need_approval = True
    brand.save()
    agent.groups.add(Group.objects.get(name=NEEDS_APPROVAL))
    return agent


def test_a_new_hires_reply_waits_and_nothing_is_posted(x_sim, parcel, new_hire, settings):
    settings.REPLY_UNDO_SECONDS = 0
    mention_claim(mention_id=parcel.pk, agent=new_hire)

    reply = reply_submit(mention_id=parcel.pk, agent=new_hire, text=TEXT)

    assert reply.status == ReplyStatus.AWAITING_APPROVAL
    assert reply.send_after is None and reply.text_as_written == TEXT
    # Even a send attempt finds nothing to send.
    assert reply_post(reply_id=reply.pk, give_up_on_transient=True) is None
    assert x_sim.received_posts == []
    parcel.refresh_from_db()
    assert parcel.status == MentionStatus.REPLYING


def test_the_supervisor_edits_and_approves_and_it_is_posted_once_with_the_trail(
    client, x_sim, parcel, new_hire, supervisor, settings
):
    settings.REPLY_UNDO_SECONDS = 0
    mention_claim(mention_id=parcel.pk, agent=new_hire)
    reply = reply_submit(mention_id=parcel.pk, agent=new_hire, text=TEXT)
    edited = "Hi Pia, so sorry your parcel is lost! Thank you for your patience, DM us? ^AM"

    reply_approve(reply_id=reply.pk, reviewer=supervisor, text=edited)
    reply_post(reply_id=reply.pk, give_up_on_transient=True)

    reply.refresh_from_db()
    assert (reply.status, reply.text, reply.text_as_written) == (ReplyStatus.SENT, edited, TEXT)
    assert (reply.agent, reply.reviewed_by) == (new_hire, supervisor)
    assert reply.reviewed_at is not None
    assert [post["text"] for post in x_sim.received_posts] == [edited]
    with pytest.raises(ReplyRefused):
        reply_approve(reply_id=reply.pk, reviewer=supervisor)
    assert len(x_sim.received_posts) == 1
    client.force_login(supervisor)
    page = client.get(reverse("responses:mention", args=[parcel.pk])).content.decode()
    assert (
        f"<strong>{new_hire.username}</strong> · Sent · approved by {supervisor.username}" in page
    )


def test_sent_back_the_mention_is_the_authors_again_with_the_note(
    client, x_sim, parcel, new_hire, supervisor
):
    mention_claim(mention_id=parcel.pk, agent=new_hire)
    reply = reply_submit(mention_id=parcel.pk, agent=new_hire, text=TEXT)

    reply_return(reply_id=reply.pk, reviewer=supervisor, note="Ask for the order number.")

    parcel.refresh_from_db()
    assert (parcel.status, parcel.claimed_by) == (MentionStatus.CLAIMED, new_hire)
    client.force_login(new_hire)
    page = client.get(reverse("responses:mention", args=[parcel.pk])).content.decode()
    assert "sent your reply back: Ask for the order number." in page
    assert x_sim.received_posts == []
    # Rewritten, it waits again.
    again = reply_submit(mention_id=parcel.pk, agent=new_hire, text=TEXT + " Order number?")
    assert again.status == ReplyStatus.AWAITING_APPROVAL


def test_only_supervisors_approve_and_agents_not_marked_send_directly(
    client, x_sim, parcel, new_hire, other_agent, brand
):
    mention_claim(mention_id=parcel.pk, agent=new_hire)
    reply = reply_submit(mention_id=parcel.pk, agent=new_hire, text=TEXT)
    with pytest.raises(ReplyRefused):
        reply_approve(reply_id=reply.pk, reviewer=other_agent)
    client.force_login(other_agent)
    assert client.get(reverse("responses:approvals")).status_code == 403
    assert client.post(reverse("responses:approve", args=[reply.pk])).status_code == 403
    assert Reply.objects.get(pk=reply.pk).status == ReplyStatus.AWAITING_APPROVAL

    other = make_mention(
        brand=brand,
        text="@NorthwindHelp my cup was cold, awful",
        author=make_author(username="cole", name="Cole"),
    )
    direct = reply_submit(
        mention_id=other.pk, agent=other_agent, text="Hi Cole, so sorry your cup was cold! ^OA"
    )
    assert direct.status == ReplyStatus.QUEUED


def test_the_approvals_page_lists_waiting_replies_and_approves_them(
    client, x_sim, parcel, new_hire, supervisor
):
    mention_claim(mention_id=parcel.pk, agent=new_hire)
    reply = reply_submit(mention_id=parcel.pk, agent=new_hire, text=TEXT)
    client.force_login(supervisor)

    page = client.get(reverse("responses:approvals")).content.decode()
    assert f'id="reply-{reply.pk}"' in page and "my parcel is lost" in page

    client.post(reverse("responses:approve", args=[reply.pk]), {"text": TEXT})
    assert Reply.objects.get(pk=reply.pk).status == ReplyStatus.QUEUED
    assert (
        f'id="reply-{reply.pk}"' not in client.get(reverse("responses:approvals")).content.decode()
    )


def test_taking_it_private_posts_the_dm_invitation_and_records_the_move(
    client, x_sim, parcel, agent, brand, settings
):
    settings.REPLY_UNDO_SECONDS = 0
    brand.dm_link = "https://x.com/messages/compose?recipient_id=900000000000000001"
    brand.save()
    client.force_login(agent)

    response = client.post(reverse("responses:private", args=[parcel.pk]))

    assert response.status_code == 302
    reply = Reply.objects.get()
    assert reply.is_dm_invite and reply.status == ReplyStatus.QUEUED
    assert reply.text.startswith("Hi Pia, ") and brand.dm_link in reply.text
    reply_post(reply_id=reply.pk, give_up_on_transient=True)
    assert [post["text"] for post in x_sim.received_posts] == [reply.text]
    parcel = Mention.objects.get(pk=parcel.pk)
    assert parcel.taken_private_by == agent and parcel.taken_private_at is not None
    page = client.get(reverse("responses:mention", args=[parcel.pk])).content.decode()
    assert 'id="taken-private"' in page


def test_the_mention_page_shows_the_playbook_and_alternatives(client, agent, brand):
    mention = make_mention(
        brand=brand,
        text="@NorthwindHelp my order still hasn't arrived after a week, so frustrating",
        author=make_author(name="Robin"),
    )
    client.force_login(agent)

    page = client.get(reverse("responses:mention", args=[mention.pk])).content.decode()

    assert "Playbook: Late delivery" in page
    assert page.count('class="secondary small use-draft"') == 3
