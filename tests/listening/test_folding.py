"""Repost folding: retweets and copies of the same words become one queue item with its reach,
never a ticket each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from listening.models import Amplification, AmplificationKind, Mention
from listening.services.polling import keyword_poll
from tests.conftest import customer

pytestmark = pytest.mark.django_db

COMPLAINT = "@NorthwindHelp three weeks and my refund still has not arrived, this is awful"


def retweet(sim, original: dict, by: str, at: datetime, of: str = "someone") -> dict:
    return sim.add_tweet(
        text=f"RT @{of}: {original['text']}"[:280],
        author=customer(by),
        created_at=at,
        referenced_tweets=[{"type": "retweeted", "id": original["id"]}],
    )


def poll(keyword) -> None:
    outcome = keyword_poll(keyword_id=keyword.pk, max_pages=10)
    assert outcome.ok, outcome.error


def test_fifty_retweets_fold_under_the_original_as_one_item(x_sim, keyword):
    start = datetime.now(UTC) - timedelta(minutes=30)
    original = x_sim.add_tweet(text=COMPLAINT, author=customer("angry_ann"), created_at=start)
    for n in range(50):
        retweet(x_sim, original, f"echo{n}", start + timedelta(seconds=n + 1))

    outcome = keyword_poll(keyword_id=keyword.pk, max_pages=10)

    assert (outcome.stored, outcome.folded) == (1, 50)
    mention = Mention.objects.get()
    assert mention.external_id == original["id"]
    assert mention.amplification_count == 50
    assert mention.priority_reasons == ["negative −0.46", "amplified ×50"]
    amplifiers = Amplification.objects.filter(mention=mention)
    assert amplifiers.count() == 50
    assert set(amplifiers.values_list("kind", flat=True)) == {AmplificationKind.REPOST}
    assert {a.author.username for a in amplifiers} == {f"echo{n}" for n in range(50)}


def test_amplification_moves_the_mention_up_the_queue(x_sim, keyword):
    at = datetime.now(UTC) - timedelta(minutes=10)
    quiet = x_sim.add_tweet(text=COMPLAINT, author=customer("quiet_q"), created_at=at)
    loud = x_sim.add_tweet(
        text="@NorthwindHelp my refund is three weeks late, this is awful and nobody replies",
        author=customer("loud_l"),
        created_at=at,
    )
    poll(keyword)
    before = Mention.objects.get(external_id=loud["id"]).urgency_at
    for n in range(20):
        retweet(x_sim, loud, f"fan{n}", at + timedelta(seconds=n + 1))

    poll(keyword)

    loud_mention = Mention.objects.get(external_id=loud["id"])
    assert loud_mention.amplification_count == 20
    assert loud_mention.priority_reasons == ["negative −0.46", "amplified ×20"]
    assert loud_mention.urgency_at < before
    # The other complaint was not touched.
    quiet_mention = Mention.objects.get(external_id=quiet["id"])
    assert quiet_mention.amplification_count == 0
    assert "amplified" not in " ".join(quiet_mention.priority_reasons)


def test_retweets_in_a_later_poll_fold_under_the_stored_mention_once(x_sim, keyword):
    start = datetime.now(UTC) - timedelta(minutes=20)
    original = x_sim.add_tweet(text=COMPLAINT, author=customer("first_f"), created_at=start)
    poll(keyword)
    for n in range(3):
        retweet(x_sim, original, f"late{n}", start + timedelta(minutes=1, seconds=n))

    poll(keyword)
    poll(keyword)  # nothing new: nothing counted twice

    assert Mention.objects.count() == 1
    assert Mention.objects.get().amplification_count == 3
    assert Amplification.objects.count() == 3


def test_retweets_of_an_unseen_original_fold_under_the_first_retweet(x_sim, keyword):
    # The original does not match the keyword (it names the brand without the @), so only
    # the retweets come back: the first stands in for it, the rest fold under that one.
    start = datetime.now(UTC) - timedelta(minutes=20)
    original = x_sim.add_tweet(
        text="Northwind's refund desk lost my money for three weeks now, avoid them",
        author=customer("origin_o"),
        created_at=start,
    )
    for n in range(5):
        x_sim.add_tweet(
            text=f"RT @origin_o: {original['text']} @NorthwindHelp",
            author=customer(f"amp{n}"),
            created_at=start + timedelta(seconds=n + 1),
            referenced_tweets=[{"type": "retweeted", "id": original["id"]}],
        )

    poll(keyword)

    mention = Mention.objects.get()
    assert mention.author.username == "amp0"
    assert mention.amplification_count == 4


def test_exact_copies_fold_but_short_common_texts_stay_separate_customers(x_sim, keyword):
    start = datetime.now(UTC) - timedelta(minutes=20)
    copypasta = "@NorthwindHelp boycott Northwind until they pay the farmers fairly"
    for n in range(4):
        x_sim.add_tweet(
            # Case and spacing differ; the words are the same.
            text=copypasta.upper()
            if n == 2
            else copypasta.replace(" ", "  ")
            if n == 3
            else copypasta,
            author=customer(f"activist{n}"),
            created_at=start + timedelta(seconds=n),
        )
    for n in range(3):
        x_sim.add_tweet(
            text="@NorthwindHelp refund?",
            author=customer(f"asker{n}"),
            created_at=start + timedelta(seconds=10 + n),
        )

    poll(keyword)

    copies = Mention.objects.get(author__username="activist0")
    assert copies.amplification_count == 3
    assert set(copies.amplifications.values_list("kind", flat=True)) == {AmplificationKind.COPY}
    assert Mention.objects.filter(text="@NorthwindHelp refund?").count() == 3
    assert Mention.objects.count() == 4


def test_a_copy_after_the_window_is_a_new_mention(x_sim, keyword):
    copypasta = "@NorthwindHelp boycott Northwind until they pay the farmers fairly"
    x_sim.max_age = timedelta(days=30)
    x_sim.add_tweet(
        text=copypasta,
        author=customer("old_o"),
        created_at=datetime.now(UTC) - timedelta(days=8),
    )
    poll(keyword)
    x_sim.add_tweet(text=copypasta, author=customer("new_n"))

    poll(keyword)

    assert Mention.objects.count() == 2
    assert Amplification.objects.count() == 0


def test_the_queue_and_the_mention_page_show_the_amplification(x_sim, keyword, client, agent):
    start = datetime.now(UTC) - timedelta(minutes=30)
    original = x_sim.add_tweet(text=COMPLAINT, author=customer("angry_ann"), created_at=start)
    for n in range(3):
        retweet(x_sim, original, f"echo{n}", start + timedelta(seconds=n + 1), of="angry_ann")
    poll(keyword)
    mention = Mention.objects.get()
    client.force_login(agent)

    queue = client.get(reverse("responses:queue")).content.decode()
    page = client.get(reverse("responses:mention", args=[mention.pk])).content.decode()

    assert queue.count('class="mention-row') == 1
    assert "↻ 3" in queue
    assert "Amplified 3 times" in page
    assert all(f"@echo{n}" in page for n in range(3))
