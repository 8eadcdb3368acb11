"""The whole loop on real parts: simulator → poll → queue → claim → send via a real Celery
worker → the simulator receives the reply → the supervisor sees the response time."""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from listening.models import Brand, Mention
from listening.services.keywords import keyword_create
from responses.models import Reply
from tests.conftest import customer, shared_data_file, wait_until


@pytest.mark.django_db(transaction=True)
def test_listen_claim_reply_and_report(
    client, x_sim, celery_worker_process, keyword, agent, supervisor
):
    posted = datetime.now(UTC) - timedelta(minutes=4)
    tweet = x_sim.add_tweet(
        text="@NorthwindHelp my beans never arrived and support is ignoring me",
        author=customer("ines_q", "Ines Quarry", followers=2300),
        created_at=posted,
    )
    out = StringIO()
    call_command("poll", stdout=out)
    assert "stored 1 new mentions" in out.getvalue()
    mention = Mention.objects.get(external_id=tweet["id"])

    client.force_login(agent)
    assert tweet["text"] in client.get(reverse("responses:queue")).content.decode()
    client.post(reverse("responses:claim", args=[mention.pk]))
    page = client.get(reverse("responses:mention", args=[mention.pk])).content.decode()
    draft = re.search(r'<textarea name="text"[^>]*>\s*(.*?)</textarea>', page, re.S).group(1)
    assert draft.startswith("Hi Ines, ")
    client.post(
        reverse("responses:reply", args=[mention.pk]),
        {"text": "Hi Ines, so sorry your beans never arrived! DM us? ^AM"},
    )

    post = wait_until(lambda: x_sim.received_posts and x_sim.received_posts[0])
    assert post["in_reply_to_tweet_id"] == tweet["id"]
    assert post["text"] == "Hi Ines, so sorry your beans never arrived! DM us? ^AM"
    reply = wait_until(lambda: Reply.objects.filter(status="sent").first())
    assert reply.external_id == post["id"]
    assert Mention.objects.get(pk=mention.pk).status == "replied"
    assert len(x_sim.received_posts) == 1

    expected = reply.posted_at - datetime.fromisoformat(tweet["created_at"].replace("Z", "+00:00"))
    assert timedelta(minutes=4) <= expected < timedelta(minutes=5)
    client.force_login(supervisor)
    today = datetime.now(UTC).date().isoformat()
    html = client.get(
        reverse("responses:report"), {"since": today, "until": today}
    ).content.decode()
    shown = str(timedelta(seconds=expected.total_seconds()))
    assert f'<span class="value" id="stat-median">{shown}</span>' in html
    assert '<tr data-agent="alice"><th scope="row">alice</th><td>1</td>' in html


TRACKED_HANDLES = (
    "sprintcare",
    "Uber_Support",
    "ChipotleTweets",
    "British_Airways",
    "AskPlayStation",
)


@pytest.mark.django_db
def test_every_matching_customer_tweet_of_the_dataset_becomes_one_mention(x_sim):
    dataset = shared_data_file("twcs_dev.csv")
    x_sim.max_age = timedelta(days=365 * 10)  # serve the whole replayed history
    loaded = x_sim.load_twcs_csv(dataset)
    for handle in TRACKED_HANDLES:
        keyword_create(
            brand=Brand.objects.create(name=handle),
            query=f"@{handle} -from:{handle}",
            poll_interval_seconds=60,
        )

    with open(dataset, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    addressed = re.compile(r"(?<!\w)@(" + "|".join(TRACKED_HANDLES) + r")(?!\w)", re.IGNORECASE)
    expected = {
        r["tweet_id"] for r in rows if r["inbound"] == "True" and addressed.search(r["text"])
    }

    call_command("poll", "--backfill", stdout=StringIO())

    assert loaded == len(rows) == 2675
    assert len(expected) > 300
    stored = list(Mention.objects.values_list("external_id", flat=True))
    assert len(stored) == len(set(stored))
    assert set(stored) == expected

    call_command("poll", stdout=StringIO())
    assert Mention.objects.count() == len(expected)
