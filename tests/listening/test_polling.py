"""Polling: what a poll stores, what it never stores twice, and how it behaves when X says no."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.urls import reverse
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from listening.models import Author, Brand, Mention, PollCursor, SentimentLabel
from listening.services.keywords import keyword_create
from listening.services.polling import keyword_poll, poll_claim_due
from listening.services.sentiment import sentiment_label
from tests.conftest import add_stream, all_at_once, customer, search_requests

pytestmark = pytest.mark.django_db


def poll_output() -> str:
    out = StringIO()
    call_command("poll", stdout=out)
    return out.getvalue()


def start_listening(keyword) -> None:
    """Put the keyword's first round, and with it its backfill, behind it (tests of live
    multi-page rounds; a new keyword's first round reads one page, see test_backfill.py)."""
    outcome = keyword_poll(keyword_id=keyword.pk, max_pages=1)
    assert outcome.ok and outcome.stored == 0
    assert PollCursor.objects.get(keyword=keyword).backfill_done_at is not None


def test_it_stores_matching_posts_with_author_and_sentiment(x_sim, keyword):
    grumpy = customer("grumpy_gus", "Gus Walker", followers=48_200)
    happy = customer("happy_hana", "Hana Sato", followers=310)
    complaint = x_sim.add_tweet(
        text="@NorthwindHelp my order is late again and nobody answers. Terrible service.",
        author=grumpy,
    )
    praise = x_sim.add_tweet(
        text="@NorthwindHelp the new oat latte is wonderful, thank you!", author=happy
    )
    x_sim.add_tweet(text="Nothing to do with coffee at all", author=customer("someone_else"))

    assert "stored 2 new mentions from 1 page(s)" in poll_output()

    assert set(Mention.objects.values_list("external_id", flat=True)) == {
        complaint["id"],
        praise["id"],
    }
    stored = Mention.objects.get(external_id=complaint["id"])
    expected = SentimentIntensityAnalyzer().polarity_scores(complaint["text"])
    assert stored.sentiment_compound == expected["compound"]
    assert (stored.sentiment_positive, stored.sentiment_neutral, stored.sentiment_negative) == (
        expected["pos"],
        expected["neu"],
        expected["neg"],
    )
    assert stored.sentiment_label == SentimentLabel.NEGATIVE
    assert Mention.objects.get(external_id=praise["id"]).sentiment_label == SentimentLabel.POSITIVE
    assert stored.author.username == "grumpy_gus"
    assert stored.author.name == "Gus Walker"
    assert stored.author.followers_count == 48_200
    assert stored.brand == keyword.brand and stored.keyword == keyword
    assert stored.posted_at == datetime.fromisoformat(
        complaint["created_at"].replace("Z", "+00:00")
    )
    assert stored.conversation_id == complaint["id"]
    assert stored.status == "new"


def test_it_asks_x_for_the_fields_and_expansion_it_needs(x_sim, keyword):
    x_sim.add_tweet(text="@NorthwindHelp hello", author=customer("hello_harry"))
    poll_output()

    ((_, _, query, _),) = search_requests(x_sim)
    assert query["query"] == "@NorthwindHelp"
    assert query["expansions"] == "author_id"
    assert set(query["user.fields"].split(",")) == {
        "name",
        "username",
        "public_metrics",
        "verified",
    }
    assert {
        "created_at",
        "conversation_id",
        "lang",
        "public_metrics",
        "referenced_tweets",
        "in_reply_to_user_id",
    } <= set(query["tweet.fields"].split(","))
    assert query["max_results"] == "100"
    assert "since_id" not in query


def test_polling_again_adds_nothing_and_resumes_after_the_newest_post(x_sim, keyword):
    posts = [
        x_sim.add_tweet(text=f"@NorthwindHelp question number {n}?", author=customer(f"asker{n}"))
        for n in range(3)
    ]
    poll_output()
    assert "stored 0 new mentions" in poll_output()
    assert Mention.objects.count() == 3
    newest = max(posts, key=lambda p: int(p["id"]))["id"]
    assert search_requests(x_sim)[-1][2]["since_id"] == newest
    assert PollCursor.objects.get(keyword=keyword).since_id == newest


def test_it_follows_every_page_and_keeps_the_first_pages_newest_id(x_sim, keyword):
    start_listening(keyword)
    posts = add_stream(x_sim, 250, "pager")

    assert "stored 250 new mentions from 3 page(s)" in poll_output()

    assert Mention.objects.count() == 250
    requests = search_requests(x_sim)
    assert [("next_token" in r[2]) for r in requests] == [False, False, True, True]
    cursor = PollCursor.objects.get(keyword=keyword)
    assert cursor.since_id == posts[-1]["id"]
    assert (cursor.next_token, cursor.round_newest_id) == ("", "")


def test_an_interrupted_round_resumes_without_skipping_or_repeating(x_sim, keyword):
    start_listening(keyword)
    add_stream(x_sim, 250, "resumer")
    first = keyword_poll(keyword_id=keyword.pk, max_pages=1)
    assert (first.stored, first.pages) == (100, 1)
    cursor = PollCursor.objects.get(keyword=keyword)
    assert cursor.since_id == "" and cursor.next_token and cursor.round_newest_id

    late = x_sim.add_tweet(text="@NorthwindHelp arrived mid-round", author=customer("latecomer"))
    rest = keyword_poll(keyword_id=keyword.pk, max_pages=10)
    assert (rest.stored, rest.pages) == (150, 2)
    # The round ends where it started: the post that arrived meanwhile comes next round.
    assert not Mention.objects.filter(external_id=late["id"]).exists()
    last = keyword_poll(keyword_id=keyword.pk, max_pages=10)
    assert last.stored == 1
    assert Mention.objects.count() == 251
    assert Mention.objects.values("external_id").distinct().count() == 251


def test_a_malformed_item_is_skipped_with_its_reason_and_the_rest_is_stored(
    x_sim, keyword, caplog, client, admin_user
):
    good = [
        x_sim.add_tweet(text=f"@NorthwindHelp good post {n}", author=customer(f"good{n}"))
        for n in range(2)
    ]
    author = customer("broken_bea")
    x_sim.add_raw_item(
        {"id": "123456789", "text": "@NorthwindHelp where is my refund", "author_id": author["id"]},
        created_at=datetime.now(UTC),
    )

    with caplog.at_level(logging.WARNING, logger="listening.services.polling"):
        output = poll_output()

    assert "stored 2 new mentions from 1 page(s), skipped 1 malformed" in output
    assert set(Mention.objects.values_list("external_id", flat=True)) == {p["id"] for p in good}
    assert not Mention.objects.filter(external_id="123456789").exists()
    (record,) = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert "missing or invalid field 'created_at'" in record.getMessage()
    cursor = PollCursor.objects.get(keyword=keyword)
    assert cursor.skipped_items_total == 1
    client.force_login(admin_user)
    page = client.get(reverse("listening:keywords")).content.decode()
    assert "1 malformed item skipped; last: missing or invalid field &#x27;created_at&#x27;" in page


def test_refused_credentials_mark_that_keyword_and_the_others_keep_polling(
    x_sim, keyword, client, admin_user
):
    other_brand = Brand.objects.create(
        name="Southwind Tea", x_handle="SouthwindTea", x_bearer_token="revoked-token"
    )
    failing = keyword_create(brand=other_brand, query="Southwind", poll_interval_seconds=30)
    x_sim.add_tweet(text="@NorthwindHelp still works", author=customer("works_will"))
    x_sim.add_tweet(text="Southwind tea is great", author=customer("tea_tom"))

    output = poll_output()

    assert "Northwind Coffee · @NorthwindHelp: stored 1 new mentions" in output
    assert "Southwind Tea · Southwind: X refused the credentials (401 Unauthorized" in output
    assert Mention.objects.filter(brand=keyword.brand).count() == 1
    assert not Mention.objects.filter(brand=other_brand).exists()
    failing_cursor = PollCursor.objects.get(keyword=failing)
    assert "401 Unauthorized" in failing_cursor.last_error
    assert PollCursor.objects.get(keyword=keyword).last_error == ""
    client.force_login(admin_user)
    page = client.get(reverse("listening:keywords")).content.decode()
    assert "X refused the credentials (401 Unauthorized" in page
    assert "Check the brand&#x27;s X bearer token and keys." in page


def test_after_a_429_no_call_is_made_before_the_reset_time(x_sim, keyword):
    x_sim.rate_limit = 1
    x_sim.add_tweet(text="@NorthwindHelp one", author=customer("first_fay"))
    keyword_poll(keyword_id=keyword.pk, max_pages=10)  # spends the one-call budget
    cursor = PollCursor.objects.get(keyword=keyword)
    # The answer said remaining 0: Earshot does not even try the call that would be refused.
    assert cursor.blocked_until is not None and cursor.blocked_until > datetime.now(UTC)
    calls = len(search_requests(x_sim))

    skipped = keyword_poll(keyword_id=keyword.pk, max_pages=10)
    assert skipped.pages == 0 and skipped.rate_limited_until == cursor.blocked_until
    assert len(search_requests(x_sim)) == calls
    assert poll_claim_due(now=datetime.now(UTC) + timedelta(minutes=5)) == []

    with time_machine.travel(cursor.blocked_until + timedelta(seconds=1)):
        x_sim.add_tweet(text="@NorthwindHelp two", author=customer("second_sid"))
        resumed = keyword_poll(keyword_id=keyword.pk, max_pages=10)
    assert resumed.stored == 1
    assert len(search_requests(x_sim)) == calls + 1


def test_a_429_answer_blocks_until_its_reset_header(x_sim, keyword):
    reset = int(datetime.now(UTC).timestamp()) + 600
    x_sim.fail_next(
        429,
        {
            "title": "Too Many Requests",
            "type": "about:blank",
            "status": 429,
            "detail": "Too Many Requests",
        },
        headers={
            "x-rate-limit-limit": "450",
            "x-rate-limit-remaining": "0",
            "x-rate-limit-reset": str(reset),
        },
    )

    outcome = keyword_poll(keyword_id=keyword.pk, max_pages=10)

    assert outcome.rate_limited_until == datetime.fromtimestamp(reset, tz=UTC)
    cursor = PollCursor.objects.get(keyword=keyword)
    assert cursor.blocked_until == datetime.fromtimestamp(reset, tz=UTC)
    assert cursor.next_poll_at == cursor.blocked_until
    assert "X rate limit reached" in cursor.last_error
    calls = len(search_requests(x_sim))
    assert "rate limited, no call before" in poll_output()
    assert len(search_requests(x_sim)) == calls


def test_a_server_error_or_broken_body_stores_nothing_and_keeps_the_cursor(x_sim, keyword):
    x_sim.add_tweet(text="@NorthwindHelp hello", author=customer("patient_pat"))
    x_sim.fail_next(503, {"title": "Service Unavailable"})
    assert keyword_poll(keyword_id=keyword.pk, max_pages=10).error.startswith("X answered 503")
    x_sim.fail_next(200, b'{"data": [ {"id": ')
    broken = keyword_poll(keyword_id=keyword.pk, max_pages=10)
    assert broken.error == "X answered the search with a body that is not valid JSON"
    assert Mention.objects.count() == 0
    assert PollCursor.objects.get(keyword=keyword).since_id == ""
    assert keyword_poll(keyword_id=keyword.pk, max_pages=10).stored == 1


def test_the_dispatcher_claims_each_due_active_keyword_once(keyword, brand):
    paused = keyword_create(brand=brand, query="paused", poll_interval_seconds=30, is_active=False)
    now = datetime.now(UTC)

    assert poll_claim_due(now=now) == [keyword.pk]
    assert poll_claim_due(now=now) == []
    assert poll_claim_due(now=now + timedelta(seconds=31)) == [keyword.pk]
    assert paused.pk not in poll_claim_due(now=now + timedelta(days=1))


def test_a_keyword_due_a_moment_after_a_dispatch_is_not_left_for_the_next_one(keyword):
    # Polled every 30 s; beat dispatches every 5 s, a few milliseconds early or late.
    now = datetime.now(UTC)
    assert poll_claim_due(now=now) == [keyword.pk]
    assert poll_claim_due(now=now + timedelta(seconds=28)) == []
    assert poll_claim_due(now=now + timedelta(seconds=29, milliseconds=990)) == [keyword.pk]


def test_the_dispatcher_gives_a_cursor_to_keywords_made_in_django_admin(brand):
    from listening.models import TrackedKeyword

    made_in_admin = TrackedKeyword.objects.create(
        brand=brand, query="beans", poll_interval_seconds=60
    )
    assert poll_claim_due() == [made_in_admin.pk]
    assert PollCursor.objects.filter(keyword=made_in_admin).count() == 1


@pytest.mark.parametrize(
    ("compound", "label"),
    [(0.05, "positive"), (0.0499, "neutral"), (-0.0499, "neutral"), (-0.05, "negative")],
)
def test_sentiment_labels_follow_vaders_thresholds(compound, label):
    assert sentiment_label(compound) == label


def test_authors_are_updated_not_duplicated(x_sim, keyword):
    person = customer("growing_gina", "Gina", followers=10)
    x_sim.add_tweet(text="@NorthwindHelp first", author=person)
    poll_output()
    x_sim.add_tweet(text="@NorthwindHelp second", author={**person, "followers_count": 5000})
    poll_output()
    (author,) = Author.objects.all()
    assert author.followers_count == 5000
    assert author.mentions.count() == 2


def test_a_post_two_keywords_match_is_stored_once(x_sim, keyword, brand):
    second = keyword_create(brand=brand, query='"oat latte"', poll_interval_seconds=30)
    both = x_sim.add_tweet(text="@NorthwindHelp the oat latte is back!", author=customer("dup_di"))

    first_outcome = keyword_poll(keyword_id=keyword.pk, max_pages=10)
    second_outcome = keyword_poll(keyword_id=second.pk, max_pages=10)

    assert (first_outcome.stored, second_outcome.stored) == (1, 0)
    (mention,) = Mention.objects.all()
    assert mention.external_id == both["id"] and mention.keyword == keyword
    assert PollCursor.objects.get(keyword=second).since_id == both["id"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_polls_of_one_keyword_store_each_post_once(x_sim, keyword):
    start_listening(keyword)
    add_stream(x_sim, 300, "busy")
    outcomes = all_at_once(lambda _: keyword_poll(keyword_id=keyword.pk, max_pages=10), [1, 2, 3])

    assert sum(outcome.stored for outcome in outcomes) == 300
    assert Mention.objects.count() == 300
    cursor = PollCursor.objects.get(keyword=keyword)
    assert cursor.next_token == "" and cursor.since_id == max(
        Mention.objects.values_list("external_id", flat=True), key=int
    )


def test_a_spent_budget_stops_the_round_between_pages_without_a_refused_call(x_sim, keyword):
    start_listening(keyword)
    x_sim.reset()  # a fresh rate-limit window, of one call
    x_sim.rate_limit = 1
    add_stream(x_sim, 150, "paged")

    outcome = keyword_poll(keyword_id=keyword.pk, max_pages=10)

    assert (outcome.stored, outcome.pages, outcome.error) == (100, 1, "")
    assert len(search_requests(x_sim)) == 1
    cursor = PollCursor.objects.get(keyword=keyword)
    assert cursor.next_token and cursor.is_rate_limited
    assert cursor.last_stored_count == 100


def test_the_query_sent_to_x_is_the_normalised_one(x_sim, brand):
    from listening.models import TrackedKeyword

    spaced = TrackedKeyword.objects.create(
        brand=brand, query='  "Northwind  Coffee"   OR   @NorthwindHelp ', poll_interval_seconds=60
    )
    keyword_poll(keyword_id=spaced.pk, max_pages=1)
    assert search_requests(x_sim)[-1][2]["query"] == '"Northwind Coffee" OR @NorthwindHelp'


def test_an_invalid_stored_query_is_reported_and_never_sent(x_sim, brand):
    from listening.models import TrackedKeyword

    broken = TrackedKeyword.objects.create(
        brand=brand, query='"never closed', poll_interval_seconds=60
    )

    outcome = keyword_poll(keyword_id=broken.pk, max_pages=1)

    assert search_requests(x_sim) == []
    assert outcome.error.startswith(
        "The keyword's query is not valid: A quotation mark is not closed"
    )
    cursor = PollCursor.objects.get(keyword=broken)
    assert cursor.last_error == outcome.error
    assert cursor.next_poll_at > datetime.now(UTC) + timedelta(minutes=14)


def test_a_page_failing_mid_round_keeps_the_page_before_it(x_sim, keyword):
    """The page before the failure stays stored and the round resumes from the page that
    failed, with nothing stored twice."""
    start_listening(keyword)
    add_stream(x_sim, 250, "ahead")
    answer = x_sim.handle

    def fail_after_first_search(method, path, query, headers, body):
        reply = answer(method, path, query, headers, body)
        if path == "/2/tweets/search/recent" and len(search_requests(x_sim)) == 2:
            x_sim.fail_next(503, {"title": "Service Unavailable"})  # the request after it
        return reply

    x_sim.handle = fail_after_first_search
    outcome = keyword_poll(keyword_id=keyword.pk, max_pages=10)

    assert (outcome.stored, outcome.pages) == (100, 1)
    assert outcome.error.startswith("X answered 503")
    assert Mention.objects.count() == 100
    requests = search_requests(x_sim)
    assert len(requests) == 3  # start_listening's, the first page's, the failed one
    cursor = PollCursor.objects.get(keyword=keyword)
    assert cursor.next_token == requests[2][2]["next_token"]
    x_sim.handle = answer
    rest = keyword_poll(keyword_id=keyword.pk, max_pages=10)
    assert (rest.stored, rest.pages, rest.error) == (150, 2, "")
    assert Mention.objects.values("external_id").distinct().count() == 250


def test_no_page_is_asked_for_beyond_max_pages(x_sim, keyword):
    start_listening(keyword)
    add_stream(x_sim, 250, "capped")

    outcome = keyword_poll(keyword_id=keyword.pk, max_pages=2)

    assert (outcome.stored, outcome.pages) == (200, 2)
    assert len(search_requests(x_sim)) == 1 + 2
    assert PollCursor.objects.get(keyword=keyword).next_token
