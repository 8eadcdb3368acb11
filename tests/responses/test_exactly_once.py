"""Undo window and exactly-once sending: no customer ever gets the same reply twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from listening.clients.base import PlatformOutcomeUnknown, PlatformUnavailable
from listening.models import Mention
from responses.models import Reply
from responses.services.claims import mention_claim
from responses.services.replies import reply_post, reply_submit, reply_undo, reply_wait
from tests.conftest import customer
from tests.factories import make_author, make_mention

pytestmark = pytest.mark.django_db


@pytest.fixture
def posted_mention(x_sim, brand):
    tweet = x_sim.add_tweet(text="@NorthwindHelp parcel lost", author=customer("pia", "Pia"))
    return make_mention(
        brand=brand,
        text=tweet["text"],
        external_id=tweet["id"],
        author=make_author(username="pia", name="Pia"),
    )


def submit(
    mention,
    agent,
    text="Hi Pia, so sorry the parcel is lost! DM us? ^AM",
    undo_seconds=10,
    settings=None,
):
    if settings is not None:
        settings.REPLY_UNDO_SECONDS = undo_seconds
    mention_claim(mention_id=mention.pk, agent=agent)
    return reply_submit(mention_id=mention.pk, agent=agent, text=text)


def test_nothing_leaves_inside_the_undo_window(
    x_sim, posted_mention, agent, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks():
        reply = submit(posted_mention, agent, settings=settings)

    assert timedelta(seconds=9) < reply_wait(reply_id=reply.pk) <= timedelta(seconds=10)
    assert reply_post(reply_id=reply.pk, give_up_on_transient=False) is None
    assert x_sim.received_posts == []
    assert Reply.objects.get(pk=reply.pk).status == "queued"

    with time_machine.travel(reply.send_after + timedelta(seconds=1)):
        assert reply_wait(reply_id=reply.pk) == timedelta(0)
        assert reply_post(reply_id=reply.pk, give_up_on_transient=False).status == "sent"
    assert len(x_sim.received_posts) == 1


def test_undo_takes_the_reply_back_and_nothing_is_posted(
    client, x_sim, posted_mention, agent, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks():
        reply = submit(posted_mention, agent, settings=settings)
    client.force_login(agent)

    response = client.post(reverse("responses:undo", args=[reply.pk]))

    assert response["Location"] == f"/mentions/{posted_mention.pk}/?undone={reply.pk}"
    assert Reply.objects.get(pk=reply.pk).status == "undone"
    mention = Mention.objects.get(pk=posted_mention.pk)
    assert (mention.status, mention.claimed_by) == ("claimed", agent)
    page = client.get(response["Location"]).content.decode()
    assert "Hi Pia, so sorry the parcel is lost! DM us? ^AM</textarea>" in page
    with time_machine.travel(reply.send_after + timedelta(seconds=1)):
        assert reply_post(reply_id=reply.pk, give_up_on_transient=False) is None
    assert x_sim.received_posts == []


def test_undo_is_too_late_once_the_window_closed_and_only_for_the_author(
    x_sim, posted_mention, agent, other_agent, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks():
        reply = submit(posted_mention, agent, settings=settings)
    assert reply_undo(reply_id=reply.pk, agent=other_agent) is None
    with time_machine.travel(reply.send_after + timedelta(seconds=1)):
        assert reply_undo(reply_id=reply.pk, agent=agent) is None
    assert Reply.objects.get(pk=reply.pk).status == "queued"


def queued_now(mention, agent) -> Reply:
    Mention.objects.filter(pk=mention.pk).update(status="replying", claimed_by=agent)
    return Reply.objects.create(
        mention=mention, agent=agent, text="Hi Pia, on it. ^AM", send_after=timezone.now()
    )


def test_a_timeout_after_x_accepted_the_post_is_reconciled_not_posted_again(
    x_sim, posted_mention, agent, settings
):
    settings.X_REQUEST_TIMEOUT_SECONDS = 0.5
    reply = queued_now(posted_mention, agent)
    x_sim.slow_next(1.5)  # X carries the POST out, but answers too late

    with pytest.raises(PlatformOutcomeUnknown):
        reply_post(reply_id=reply.pk, give_up_on_transient=False)

    (accepted,) = x_sim.received_posts
    waiting = Reply.objects.get(pk=reply.pk)
    assert (waiting.status, waiting.outcome_unknown) == ("queued", True)

    sent = reply_post(reply_id=reply.pk, give_up_on_transient=False)

    assert (sent.status, sent.external_id) == ("sent", accepted["id"])
    assert len(x_sim.received_posts) == 1
    assert Mention.objects.get(pk=posted_mention.pk).status == "replied"


def test_when_the_uncertain_post_is_not_on_x_it_is_posted_once(x_sim, posted_mention, agent):
    reply = queued_now(posted_mention, agent)
    x_sim.fail_next(503, {"title": "Service Unavailable"})  # refused before anything was kept

    with pytest.raises(PlatformOutcomeUnknown):
        reply_post(reply_id=reply.pk, give_up_on_transient=False)
    assert x_sim.received_posts == []

    sent = reply_post(reply_id=reply.pk, give_up_on_transient=False)

    assert sent.status == "sent"
    (post,) = x_sim.received_posts
    assert post["id"] == sent.external_id
    searches = [r for r in x_sim.requests_log if r[1] == "/2/tweets/search/recent"]
    assert [r[2]["query"] for r in searches] == ["from:NorthwindHelp"]


def test_a_connection_refused_is_retried_without_looking(x_sim, posted_mention, agent, settings):
    settings.X_API_BASE_URL = "http://127.0.0.1:9"  # nothing listens: nothing can have been posted
    reply = queued_now(posted_mention, agent)
    with pytest.raises(PlatformUnavailable) as raised:
        reply_post(reply_id=reply.pk, give_up_on_transient=False)
    assert not isinstance(raised.value, PlatformOutcomeUnknown)
    assert Reply.objects.get(pk=reply.pk).outcome_unknown is False


def test_giving_up_on_an_uncertain_post_says_to_look_on_x(x_sim, posted_mention, agent):
    reply = queued_now(posted_mention, agent)
    x_sim.fail_next(503, {"title": "Service Unavailable"})

    failed = reply_post(reply_id=reply.pk, give_up_on_transient=True)

    assert failed.status == "failed"
    assert failed.error.endswith(
        "It may have reached X all the same: look there before sending again."
    )
    assert Mention.objects.get(pk=posted_mention.pk).status == "claimed"


def test_a_reply_whose_worker_died_mid_send_is_reconciled_not_posted_twice(
    x_sim, posted_mention, agent
):
    from responses.services.replies import replies_resume_stalled

    reply = queued_now(posted_mention, agent)
    # The worker posted it, then died before recording the outcome: the row says "sending".
    accepted = x_sim.add_tweet(
        text=reply.text,
        author=x_sim.brand_user,
        referenced_tweets=[{"type": "replied_to", "id": posted_mention.external_id}],
    )
    start = timezone.now()
    Reply.objects.filter(pk=reply.pk).update(status="sending", updated_at=start)

    assert replies_resume_stalled(now=start + timedelta(minutes=4)) == []
    assert Reply.objects.get(pk=reply.pk).status == "sending"
    assert replies_resume_stalled(now=start + timedelta(minutes=6)) == [reply.pk]

    sent = reply_post(reply_id=reply.pk, give_up_on_transient=False)
    assert (sent.status, sent.external_id) == ("sent", accepted["id"])
    assert x_sim.received_posts == []  # found, never posted again


def test_a_queued_reply_whose_task_was_lost_is_sent_again_once(x_sim, posted_mention, agent):
    from responses.services.replies import replies_resume_stalled

    reply = queued_now(posted_mention, agent)
    later = reply.send_after + timedelta(minutes=2)
    assert replies_resume_stalled(now=later) == [reply.pk]
    assert Reply.objects.get(pk=reply.pk).outcome_unknown is False
    reply_post(reply_id=reply.pk, give_up_on_transient=False)
    assert reply_post(reply_id=reply.pk, give_up_on_transient=False) is None
    assert len(x_sim.received_posts) == 1
    assert replies_resume_stalled(now=later) == []
