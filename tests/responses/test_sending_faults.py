"""200 sends through every fault X can throw: no customer gets a reply twice, none is lost."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from listening.clients.base import PlatformUnavailable, RateLimited
from listening.models import Mention
from responses.models import Reply, ReplyStatus
from tests.conftest import customer
from tests.factories import make_author, make_mention

pytestmark = pytest.mark.django_db

SENDS = 200
FAULTS = ("500", "timeout after accepting", "429", "reset after accepting", "reset before")
MAX_ATTEMPTS = 8


def inject(sim, fault: str) -> None:
    if fault == "500":
        sim.fail_next(500)
    elif fault == "timeout after accepting":
        sim.slow_next(0.6)  # the client gives up after 0.3 s; X carries the request out
    elif fault == "429":
        now = int(datetime.now(UTC).timestamp())
        sim.fail_next(
            429,
            headers={
                "x-rate-limit-limit": "100",
                "x-rate-limit-remaining": "0",
                "x-rate-limit-reset": str(now),  # already due again: no waiting in a test
            },
        )
    elif fault == "reset after accepting":
        sim.cut_next(after_carrying_out=True)
    else:
        sim.cut_next(after_carrying_out=False)


def test_two_hundred_sends_through_faults_post_each_reply_exactly_once(
    x_sim, brand, agent, settings, monkeypatch
):
    from responses.services.replies import reply_post

    settings.X_REQUEST_TIMEOUT_SECONDS = 0.3
    # X's own cap on posts (100 / 15 min) would make half of them wait for the next window.
    monkeypatch.setattr(x_sim, "post_rate_limit", 10 * SENDS)
    rng = random.Random(20261122)
    replies = []
    for n in range(SENDS):
        tweet = x_sim.add_tweet(
            text=f"@NorthwindHelp where is order {n}?", author=customer(f"buyer{n}")
        )
        mention = make_mention(
            brand=brand,
            text=tweet["text"],
            external_id=tweet["id"],
            author=make_author(username=f"buyer{n}"),
            status="replying",
            claimed_by=agent,
        )
        replies.append(
            Reply.objects.create(
                mention=mention,
                agent=agent,
                text=f"Hi @buyer{n}, order {n} is on its way today. ^AM",
                send_after=timezone.now() - timedelta(seconds=1),
            )
        )
    injected = Counter()

    for reply in replies:
        faults = rng.choices(FAULTS, k=rng.randint(0, 3))
        for attempt in range(MAX_ATTEMPTS):
            if attempt < len(faults):
                inject(x_sim, faults[attempt])
                injected[faults[attempt]] += 1
            try:
                done = reply_post(reply_id=reply.pk, give_up_on_transient=False)
            except (PlatformUnavailable, RateLimited):
                continue  # the send task retries
            if done is not None and done.status == ReplyStatus.SENT:
                break

    posts = Counter(post["in_reply_to_tweet_id"] for post in x_sim.received_posts)
    assert set(injected) == set(FAULTS)  # every kind of fault happened
    assert sum(injected.values()) > SENDS
    # 0 lost: every reply was sent, with the id of the post X kept.
    statuses = Counter(Reply.objects.values_list("status", flat=True))
    assert statuses == {ReplyStatus.SENT: SENDS}
    assert Mention.objects.filter(status="replied").count() == SENDS
    # 0 duplicates: each customer got exactly one post.
    assert len(posts) == SENDS and set(posts.values()) == {1}
    by_reply = dict(Reply.objects.values_list("mention__external_id", "external_id"))
    kept = {post["in_reply_to_tweet_id"]: post["id"] for post in x_sim.received_posts}
    assert by_reply == kept
