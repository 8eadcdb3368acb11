from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from listening.clients.base import PlatformUnavailable
from listening.models import Mention
from responses.models import Reply
from responses.services.claims import mention_claim
from responses.services.replies import reply_post
from tests.factories import make_author, make_mention

pytestmark = pytest.mark.django_db


def queued_reply(mention, agent, text="Hi Gus, sorry about that. ^AM") -> Reply:
    Mention.objects.filter(pk=mention.pk).update(status="replying", claimed_by=agent)
    return Reply.objects.create(mention=mention, agent=agent, text=text)


@pytest.fixture
def posted_mention(x_sim, brand):
    from tests.conftest import customer

    tweet = x_sim.add_tweet(text="@NorthwindHelp my order is late", author=customer("gus", "Gus"))
    return make_mention(brand=brand, text=tweet["text"], external_id=tweet["id"])


def test_sending_queues_the_reply_and_takes_the_mention_out_of_the_open_queue(
    client, agent, brand, django_capture_on_commit_callbacks
):
    mention = make_mention(
        brand=brand, text="@NorthwindHelp my order is late", author=make_author(name="Gus")
    )
    mention_claim(mention_id=mention.pk, agent=agent)
    client.force_login(agent)

    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            reverse("responses:reply", args=[mention.pk]),
            {"text": "Hi Gus, sorry your order is late, on it! ^AM"},
        )

    assert response.status_code == 302
    (reply,) = Reply.objects.all()
    assert (reply.status, reply.text, reply.agent) == (
        "queued",
        "Hi Gus, sorry your order is late, on it! ^AM",
        agent,
    )
    assert (reply.warnings_overridden, reply.override_reason) == ([], "")
    assert Mention.objects.get(pk=mention.pk).status == "replying"
    assert len(callbacks) == 1  # the send task, enqueued only once the transaction commits
    assert mention.text not in client.get(reverse("responses:queue")).content.decode()


def test_replying_to_a_mention_someone_else_holds_is_refused(client, agent, other_agent, brand):
    mention = make_mention(brand=brand, text="@NorthwindHelp help")
    mention_claim(mention_id=mention.pk, agent=other_agent)
    client.force_login(agent)

    response = client.post(reverse("responses:reply", args=[mention.pk]), {"text": "Hi!"})

    assert response.status_code == 409
    assert "bob has claimed this mention" in response.content.decode()
    assert not Reply.objects.exists()
    assert Mention.objects.get(pk=mention.pk).status == "claimed"


def test_an_empty_or_overlong_reply_is_refused_with_a_reason(client, agent, brand):
    mention = make_mention(brand=brand, text="@NorthwindHelp help")
    client.force_login(agent)
    url = reverse("responses:reply", args=[mention.pk])

    empty = client.post(url, {"text": "   "})
    long = client.post(url, {"text": "x" * 281})

    assert empty.status_code == 400 and "Write a reply before sending." in empty.content.decode()
    assert (
        long.status_code == 400
        and "X allows 280 characters; this reply has 281." in long.content.decode()
    )
    assert not Reply.objects.exists()
    assert Mention.objects.get(pk=mention.pk).status == "new"


def test_posting_sends_one_reply_to_the_mention_and_marks_it_replied(x_sim, posted_mention, agent):
    reply = queued_reply(posted_mention, agent)

    sent = reply_post(reply_id=reply.pk, give_up_on_transient=False)

    (post,) = x_sim.received_posts
    assert post["in_reply_to_tweet_id"] == posted_mention.external_id
    assert post["text"] == "Hi Gus, sorry about that. ^AM"
    assert sent.status == "sent" and sent.external_id == post["id"]
    assert abs(sent.posted_at - datetime.now(UTC)) < timedelta(seconds=5)
    assert Mention.objects.get(pk=posted_mention.pk).status == "replied"


def test_a_second_delivery_of_the_task_posts_nothing(x_sim, posted_mention, agent):
    reply = queued_reply(posted_mention, agent)
    reply_post(reply_id=reply.pk, give_up_on_transient=False)

    assert reply_post(reply_id=reply.pk, give_up_on_transient=False) is None

    assert len(x_sim.received_posts) == 1
    assert Reply.objects.get(pk=reply.pk).attempts == 1


def test_a_refused_reply_goes_back_to_its_agent_with_the_reason(x_sim, posted_mention, agent):
    reply = queued_reply(posted_mention, agent)
    x_sim.fail_next(
        403,
        {
            "detail": "You are not allowed to create a Tweet with duplicate content.",
            "type": "about:blank",
            "title": "Forbidden",
            "status": 403,
        },
    )

    failed = reply_post(reply_id=reply.pk, give_up_on_transient=False)

    assert failed.status == "failed"
    assert "duplicate content" in failed.error
    mention = Mention.objects.get(pk=posted_mention.pk)
    assert (mention.status, mention.claimed_by) == ("claimed", agent)
    assert x_sim.received_posts == []


def test_a_transient_failure_requeues_for_retry_and_posts_nothing(x_sim, posted_mention, agent):
    reply = queued_reply(posted_mention, agent)
    x_sim.fail_next(503, {"title": "Service Unavailable"})

    with pytest.raises(PlatformUnavailable):
        reply_post(reply_id=reply.pk, give_up_on_transient=False)

    assert Reply.objects.get(pk=reply.pk).status == "queued"
    assert Mention.objects.get(pk=posted_mention.pk).status == "replying"
    assert x_sim.received_posts == []
    assert reply_post(reply_id=reply.pk, give_up_on_transient=False).status == "sent"
    assert len(x_sim.received_posts) == 1


def test_a_reply_the_tone_guard_flags_waits_for_a_rewrite_or_a_reason(
    client, agent, brand, django_capture_on_commit_callbacks
):
    mention = make_mention(
        brand=brand,
        text="@NorthwindHelp my refund never came, this is ridiculous",
        author=make_author(username="rae", name="Rae"),
    )
    client.force_login(agent)
    url = reverse("responses:reply", args=[mention.pk])
    blunt = "Did you call our support line? Per our policy refunds take 10 days. ^AM"

    flagged = client.post(url, {"text": blunt})

    assert flagged.status_code == 422
    html = flagged.content.decode()
    assert 'data-warning="blame"' in html and 'data-warning="no_name"' in html
    assert "Send it as it is, because…" in html
    assert not Reply.objects.exists()
    assert Mention.objects.get(pk=mention.pk).status == "new"

    with django_capture_on_commit_callbacks():
        client.post(url, {"text": blunt, "override_reason": "Rae asked for the policy"})
    (reply,) = Reply.objects.all()
    assert reply.warnings_overridden == ["blame", "no_name"]
    assert reply.override_reason == "Rae asked for the policy"


def test_a_form_letter_is_caught_with_its_look_alikes(client, agent, brand):
    template = "Hi {name}, we're sorry to hear that. Please DM us your order number. ^AM"
    for name in ("Ann", "Bo", "Cy"):
        sent = make_mention(brand=brand, text="@NorthwindHelp where is my order")
        Reply.objects.create(
            mention=sent,
            agent=agent,
            text=template.format(name=name),
            status="sent",
            external_id=f"9{sent.pk}",
            posted_at=sent.posted_at,
        )
    mention = make_mention(
        brand=brand, text="@NorthwindHelp where is my order", author=make_author(name="Dee")
    )
    client.force_login(agent)

    response = client.post(
        reverse("responses:reply", args=[mention.pk]), {"text": template.format(name="Dee")}
    )

    assert response.status_code == 422
    html = response.content.decode()
    assert 'data-warning="form_letter"' in html
    look_alikes = html.split("The similar replies")[1].split("</details>")[0]
    assert look_alikes.count("we&#x27;re sorry to hear that. Please DM us your order number.") == 3
