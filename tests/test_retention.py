"""Retention (issue 7): closed mentions older than MENTION_RETENTION_DAYS go with what hangs
from them, their counts stay in MentionDailyAggregate; open ones stay; twice = once."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import DatabaseError, connection
from django.urls import reverse

from listening.models import (
    Amplification,
    Mention,
    MentionDailyAggregate,
    MentionStatus,
)
from listening.services.retention import mentions_remove_expired
from responses.models import Alert, AlertKind, Reply, ReplyStatus
from responses.services.analytics import dashboard, report_period
from tests.factories import make_author, make_mention

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=40)  # 2026-10-11 12:00 UTC
RECENT = NOW - timedelta(days=10)

pytestmark = [pytest.mark.django_db]


@pytest.fixture(autouse=True)
def retention(settings):
    settings.MENTION_RETENTION_DAYS = 30
    settings.BUSINESS_TIME_ZONE = "Europe/Paris"
    with time_machine.travel(NOW, tick=False):
        yield


_reply_ids = iter(range(1, 10**6))


def sent_reply(mention: Mention, agent, *, after: timedelta) -> Reply:
    return Reply.objects.create(
        mention=mention,
        agent=agent,
        text="Thanks, we are on it",
        status=ReplyStatus.SENT,
        posted_at=mention.posted_at + after,
        external_id=f"r{next(_reply_ids)}",
    )


def mention(brand, keyword, *, status: str, posted_at: datetime, text: str = "", **extra):
    created = make_mention(
        brand=brand,
        keyword=keyword,
        text=text or "@NorthwindHelp my order is late",
        posted_at=posted_at,
        status=status,
        **extra,
    )
    return created


@pytest.fixture
def old_and_new(brand, keyword, agent):
    """Three closed mentions older than 30 days (with replies, a repost, an alert), and those
    that must stay: open ones of the same age, one with a reply still queued, a recent one."""
    resolved = mention(brand, keyword, status=MentionStatus.RESOLVED, posted_at=OLD)
    Mention.objects.filter(pk=resolved.pk).update(
        resolved_at=OLD + timedelta(hours=2), amplification_count=1
    )
    sent_reply(resolved, agent, after=timedelta(minutes=30))
    Amplification.objects.create(
        mention=resolved, platform="x", external_id="rt-1", author=make_author(),
        kind="repost", posted_at=OLD + timedelta(minutes=5),
    )  # fmt: skip
    alert = Alert.objects.create(
        kind=AlertKind.SLA_BREACH, key=f"sla:{resolved.pk}", mention=resolved,
        subject="Past its target", message="A mention waited too long",
    )  # fmt: skip
    replied = mention(brand, keyword, status=MentionStatus.REPLIED, posted_at=OLD)
    sent_reply(replied, agent, after=timedelta(minutes=10))
    sent_reply(replied, agent, after=timedelta(minutes=50))  # not the first: not timed
    # 23:30 UTC is already the next day in Paris, the report's day.
    ignored = mention(
        brand, keyword, status=MentionStatus.NO_REPLY_NEEDED,
        posted_at=OLD.replace(hour=23, minute=30), text="I love this coffee, wonderful",
    )  # fmt: skip
    stays = {
        "new": mention(brand, keyword, status=MentionStatus.NEW, posted_at=OLD),
        "reopened": mention(brand, keyword, status=MentionStatus.REOPENED, posted_at=OLD),
        "claimed": mention(
            brand,
            keyword,
            status=MentionStatus.CLAIMED,
            posted_at=OLD,
            claimed_by=agent,
            claim_expires_at=NOW + timedelta(minutes=10),
        ),  # fmt: skip
        "replying": mention(brand, keyword, status=MentionStatus.REPLYING, posted_at=OLD),
        "recent": mention(brand, keyword, status=MentionStatus.RESOLVED, posted_at=RECENT),
        "day_29": mention(
            brand, keyword, status=MentionStatus.SPAM, posted_at=NOW - timedelta(days=29)
        ),
    }
    queued = mention(brand, keyword, status=MentionStatus.REPLIED, posted_at=OLD)
    Reply.objects.create(mention=queued, agent=agent, text="On its way", status=ReplyStatus.QUEUED)
    stays["reply_queued"] = queued
    return {"removed": [resolved, replied, ignored], "stays": stays, "alert": alert}


def aggregates() -> list[tuple]:
    return list(
        MentionDailyAggregate.objects.order_by("day", "status").values_list(
            "day", "platform", "keyword_id", "sentiment_label", "status", "mention_count",
            "answered_count", "first_response_seconds_total", "resolved_count",
            "resolution_seconds_total", "sent_reply_count", "amplification_count",
        )
    )  # fmt: skip


def expected_aggregates(keyword, removed) -> list[tuple]:
    resolved, replied, ignored = removed
    day = date(2026, 10, 11)
    return sorted(
        [
            (day, "x", keyword.pk, resolved.sentiment_label, "replied", 1, 1, 600.0, 0, 0.0, 2, 0),
            (
                day,
                "x",
                keyword.pk,
                resolved.sentiment_label,
                "resolved",
                1,
                1,
                1800.0,
                1,
                7200.0,
                1,
                1,
            ),
            (
                day + timedelta(days=1),
                "x",
                keyword.pk,
                ignored.sentiment_label,
                "no_reply_needed",
                1,
                0,
                0.0,
                0,
                0.0,
                0,
                0,
            ),
        ]  # fmt: skip
    )


def test_old_closed_mentions_go_and_their_counts_stay(keyword, old_and_new):
    removed_ids = [m.pk for m in old_and_new["removed"]]
    assert old_and_new["removed"][0].sentiment_label == old_and_new["removed"][1].sentiment_label

    outcome = mentions_remove_expired()

    assert (outcome.removed, outcome.more) == (3, False)
    assert not Mention.objects.filter(pk__in=removed_ids).exists()
    assert set(Mention.objects.values_list("pk", flat=True)) == {
        m.pk for m in old_and_new["stays"].values()
    }
    # What hung from them went too; the alert stays, without its link.
    assert not Reply.objects.filter(mention_id__in=removed_ids).exists()
    assert not Amplification.objects.exists()
    old_and_new["alert"].refresh_from_db()
    assert old_and_new["alert"].mention_id is None
    assert Reply.objects.filter(status=ReplyStatus.QUEUED).count() == 1
    assert aggregates() == expected_aggregates(keyword, old_and_new["removed"])


def test_running_twice_counts_once(keyword, old_and_new):
    first = mentions_remove_expired()
    after_first = aggregates()

    second = mentions_remove_expired()

    assert (first.removed, second.removed, second.batches) == (3, 0, 0)
    assert aggregates() == after_first == expected_aggregates(keyword, old_and_new["removed"])
    assert Mention.objects.count() == len(old_and_new["stays"])


def test_small_batches_add_up_to_the_same_counts(keyword, old_and_new):
    outcome = mentions_remove_expired(batch_size=1)

    assert (outcome.removed, outcome.batches) == (3, 3)
    assert aggregates() == expected_aggregates(keyword, old_and_new["removed"])


def test_a_batch_that_fails_to_delete_adds_nothing_and_the_next_run_counts_it_once(
    keyword, old_and_new
):
    # A real failure inside the batch's transaction, after its counts were added.
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION test_refuse_delete() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'disk on fire'; END $$; "
            "CREATE TRIGGER test_refuse_delete BEFORE DELETE ON listening_mention "
            "FOR EACH ROW EXECUTE FUNCTION test_refuse_delete();"
        )
    with pytest.raises(DatabaseError, match="disk on fire"):
        mentions_remove_expired()

    assert aggregates() == []
    assert Mention.objects.count() == len(old_and_new["stays"]) + 3

    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER test_refuse_delete ON listening_mention")
    assert mentions_remove_expired().removed == 3
    assert aggregates() == expected_aggregates(keyword, old_and_new["removed"])


def test_the_time_budget_leaves_the_rest_for_the_next_run(keyword, old_and_new):
    first = mentions_remove_expired(batch_size=1, time_budget_seconds=0)
    assert (first.removed, first.more) == (1, True)

    rest = mentions_remove_expired(batch_size=1)

    assert (rest.removed, rest.more) == (2, False)
    assert aggregates() == expected_aggregates(keyword, old_and_new["removed"])


def test_with_retention_off_nothing_is_removed(settings, old_and_new):
    settings.MENTION_RETENTION_DAYS = 0

    outcome = mentions_remove_expired()

    assert (outcome.removed, outcome.batches) == (0, 0)
    assert Mention.objects.count() == len(old_and_new["stays"]) + 3
    assert aggregates() == []


def test_beat_runs_the_retention_task_daily():
    entry = django_settings.CELERY_BEAT_SCHEDULE["remove-expired-mentions"]
    assert entry["task"] == "listening.tasks.remove_expired_mentions"
    assert entry["schedule"].hour == {4} and entry["schedule"].minute == {0}


# --- the report: what was removed, beside what is stored ---------------------------------------

PERIOD = {"since": "2026-10-05", "until": "2026-10-18"}  # holds OLD; the previous one does not


def test_the_report_shows_the_removed_mentions_beside_the_stored_ones(old_and_new):
    mentions_remove_expired()

    report = dashboard(period=report_period(since=date(2026, 10, 5), until=date(2026, 10, 18)))

    # Stored: the five open or unsettled mentions of that day, none answered yet.
    assert (report.current.mentions, report.current.answered) == (5, 0)
    assert report.removed.as_json() == {
        "mentions": 3,
        "answered": 2,
        "response_rate": 2 / 3,
        "first_response_mean_seconds": 1200.0,  # (600 + 1800) / 2
        "resolved": 1,
        "resolution_mean_seconds": 7200.0,
    }
    assert report.all_told.as_json() == {
        "mentions": 8,
        "answered": 2,
        "response_rate": 2 / 8,
        "first_response_mean_seconds": 1200.0,
        "resolved": 1,
        "resolution_mean_seconds": 7200.0,
    }
    assert report.previous_removed.mentions == 0 and report.has_removed


def test_removed_spam_and_history_stay_out_of_the_report_as_they_always_did(brand, keyword):
    for status in (MentionStatus.SPAM, MentionStatus.ARCHIVED):
        mention(brand, keyword, status=status, posted_at=OLD)
    assert mentions_remove_expired().removed == 2
    assert MentionDailyAggregate.objects.count() == 2

    report = dashboard(period=report_period(since=date(2026, 10, 5), until=date(2026, 10, 18)))

    assert report.removed.mentions == 0 and not report.has_removed


def test_the_report_command_and_page_say_what_was_removed(old_and_new, client, supervisor):
    client.force_login(supervisor)
    before = client.get(reverse("responses:report"), PERIOD)
    assert 'id="removed-by-retention"' not in before.content.decode()
    mentions_remove_expired()

    out = StringIO()
    call_command("report", "--json", "--since", PERIOD["since"], "--until", PERIOD["until"], stdout=out)  # fmt: skip
    text = StringIO()
    call_command("report", "--since", PERIOD["since"], "--until", PERIOD["until"], stdout=text)
    page = client.get(reverse("responses:report"), PERIOD).content.decode()

    removed = json.loads(out.getvalue())["removed_by_retention"]
    assert removed["current"]["mentions"] == 3 and removed["previous"]["mentions"] == 0
    assert json.loads(out.getvalue())["all_told"]["current"]["mentions"] == 8
    assert (
        "removed by retention, this period: 3 mentions, 2 answered, mean first response "
        "0:20:00; all told 8 mentions, 2 answered" in text.getvalue()
    )
    table = page[page.index('id="removed-by-retention"') : page.index('id="backlog"')]
    assert '<tr data-figure="mentions"><th scope="row">Mentions</th><td>3</td><td>8</td>' in table
    assert "<td>0:20:00</td>" in table and "<td>2:00:00</td>" in table


def test_the_definitions_say_what_retention_keeps(client, supervisor, settings):
    client.force_login(supervisor)

    html = client.get(reverse("responses:report-definitions")).content.decode()

    assert "Closed mentions posted more than 30 days ago are removed every night." in html
    settings.MENTION_RETENTION_DAYS = 0
    html = client.get(reverse("responses:report-definitions")).content.decode()
    assert "Every mention is kept (MENTION_RETENTION_DAYS is 0)." in html
