"""The report's figures: business hours, an independent recomputation from the TWCS dataset,
hand-made periods with every kind of mention, and the page, CSV and JSON agreeing exactly."""

from __future__ import annotations

import csv
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from html.parser import HTMLParser
from io import StringIO
from itertools import count
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from config.business_hours import business_calendar_parse
from listening.models import Brand, Mention, MentionStatus
from listening.services.keywords import keyword_create
from responses.models import Reply, ReplyOrigin, ReplyStatus
from responses.services.analytics import (
    OUTSIDE_EARSHOT,
    business_seconds,
    dashboard,
    mention_rows,
    report_period,
)
from responses.services.claims import mention_close
from responses.services.native_replies import account_cursors_claim_due, account_posts_read
from tests.conftest import REPO_ROOT, shared_data_file
from tests.factories import make_author, make_mention

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
NEGATIVE_TEXT = "This is terrible, awful service and I hate it"
NEUTRAL_TEXT = "Is the shop open on Sunday"
POSITIVE_TEXT = "Love it, great coffee, thanks so much!"


@pytest.fixture
def london_office(settings):
    settings.BUSINESS_TIME_ZONE = "Europe/London"
    settings.BUSINESS_HOURS = "mon-fri 09:00-17:30"
    settings.BUSINESS_HOLIDAYS = []
    settings.SLA_NEGATIVE_MINUTES = 30
    settings.SLA_DEFAULT_MINUTES = 240
    return settings


def at(text: str, zone: ZoneInfo = LONDON) -> datetime:
    """'2026-11-02 09:00' on the zone's wall clock."""
    return datetime.fromisoformat(text).replace(tzinfo=zone)


# --- business hours: hand-made cases --------------------------------------------------


def one_span(start: datetime, end: datetime) -> float:
    (seconds,) = business_seconds(spans=[(start, end)])
    return float(seconds)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        # Mon 2 Nov 2026: inside the day, and from before opening to after closing.
        ("2026-11-02 10:00", "2026-11-02 11:30", 90 * 60),
        ("2026-11-02 08:00", "2026-11-02 18:00", 8.5 * 3600),
        # Friday 17:00 to Monday 10:00: half an hour each side of a weekend.
        ("2026-11-06 17:00", "2026-11-09 10:00", 90 * 60),
        # Inside a weekend, and outside hours on one day.
        ("2026-11-07 10:00", "2026-11-08 20:00", 0),
        ("2026-11-02 18:00", "2026-11-03 08:59", 0),
        # Over the spring DST change (Sun 29 Mar 2026, 01:00 UTC): Friday is GMT, Monday
        # BST; Monday opens at 09:00 BST = 08:00 UTC.
        ("2026-03-27 17:00", "2026-03-30 09:30", 60 * 60),
        # And the autumn one (Sun 25 Oct 2026).
        ("2026-10-23 17:00", "2026-10-26 09:30", 60 * 60),
        # A fortnight: ten days of 8.5 hours.
        ("2026-11-02 00:00", "2026-11-16 00:00", 10 * 8.5 * 3600),
        # Backwards: the same duration, negative.
        ("2026-11-09 10:00", "2026-11-06 17:00", -90 * 60),
    ],
)
def test_business_seconds_count_only_opening_hours(london_office, start, end, expected):
    assert one_span(at(start), at(end)) == expected


def test_a_holiday_is_closed_all_day(london_office):
    london_office.BUSINESS_HOLIDAYS = ["2026-12-25", "2026-12-28"]
    # Thu 24 Dec 17:00 to Tue 29 Dec 09:30: Fri 25 and Mon 28 are holidays.
    assert one_span(at("2026-12-24 17:00"), at("2026-12-29 09:30")) == 3600
    london_office.BUSINESS_HOLIDAYS = []
    assert one_span(at("2026-12-24 17:00"), at("2026-12-29 09:30")) == 3600 + 2 * 8.5 * 3600


def test_a_round_the_clock_calendar_counts_the_real_length_of_dst_days(london_office):
    london_office.BUSINESS_HOURS = "mon-sun 00:00-24:00"
    # Saturday noon to Sunday noon is 23 hours in spring and 25 in autumn.
    assert one_span(at("2026-03-28 12:00"), at("2026-03-29 12:00")) == 23 * 3600
    assert one_span(at("2026-10-24 12:00"), at("2026-10-25 12:00")) == 25 * 3600
    assert one_span(at("2026-11-02 12:00"), at("2026-11-03 12:00")) == 24 * 3600


def test_several_windows_a_day_and_a_night_shift(london_office):
    london_office.BUSINESS_HOURS = "mon-fri 09:00-12:30 13:30-17:30"
    assert one_span(at("2026-11-02 12:00"), at("2026-11-02 14:00")) == 3600
    london_office.BUSINESS_HOURS = "mon-fri 22:00-24:00; tue-sat 00:00-06:00"
    assert one_span(at("2026-11-02 23:00"), at("2026-11-03 01:00")) == 7200
    assert one_span(at("2026-11-02 12:00"), at("2026-11-02 21:00")) == 0


def test_the_calendar_is_in_its_own_time_zone(london_office):
    new_york = ZoneInfo("America/New_York")
    london_office.BUSINESS_TIME_ZONE = "America/New_York"
    # New York leaves DST a week after London (Sun 1 Nov 2026).
    assert one_span(at("2026-10-30 17:00", new_york), at("2026-11-02 09:30", new_york)) == 3600
    # 09:30 in London is 04:30 in New York: not open yet.
    assert one_span(at("2026-11-02 09:00"), at("2026-11-02 09:30")) == 0


def independent_business_seconds(
    start: datetime,
    end: datetime,
    *,
    zone: str,
    hours: dict[int, list[tuple[int, int]]],
    holidays: frozenset[date] = frozenset(),
) -> float:
    """Business seconds, day by day with zoneinfo (windows in minutes from midnight),
    comparing instants in UTC: written without looking at the SQL."""
    if end < start:
        return -independent_business_seconds(end, start, zone=zone, hours=hours, holidays=holidays)
    tz = ZoneInfo(zone)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    day, last = start.astimezone(tz).date(), end.astimezone(tz).date()
    total = 0.0
    while day <= last:
        for opens, closes in [] if day in holidays else hours.get(day.isoweekday(), []):
            midnight = datetime.combine(day, time.min)
            window_start = (midnight + timedelta(minutes=opens)).replace(tzinfo=tz)
            window_end = (midnight + timedelta(minutes=closes)).replace(tzinfo=tz)
            low = max(window_start.astimezone(UTC), start)
            high = min(window_end.astimezone(UTC), end)
            total += max((high - low).total_seconds(), 0)
        day += timedelta(days=1)
    return total


def test_business_seconds_agree_with_an_independent_count_over_a_year(london_office):
    london_office.BUSINESS_HOURS = "mon-fri 08:00-12:00 13:00-18:30; sat 10:00-14:00"
    hours = {d: [(480, 720), (780, 1110)] for d in range(1, 6)} | {6: [(600, 840)]}
    generator = random.Random(6)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    spans = []
    for _ in range(300):
        start = base + timedelta(seconds=generator.randrange(365 * 86400))
        spans.append((start, start + timedelta(seconds=generator.randrange(-3 * 86400, 9 * 86400))))

    found = business_seconds(spans=spans)

    expected = [
        independent_business_seconds(s, e, zone="Europe/London", hours=hours) for s, e in spans
    ]
    assert [float(value) for value in found] == expected


# --- business hours: the settings ---------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "hours", "holidays", "message"),
    [
        ("Europe/Londres", "mon-fri 09:00-17:30", "", "BUSINESS_TIME_ZONE='Europe/Londres'"),
        ("UTC", "mon-fri 9-17", "", "'mon-fri 9-17' is not 'days HH:MM-HH:MM'"),
        ("UTC", "mon-fry 09:00-17:30", "", "'fry' in 'mon-fry 09:00-17:30' is not a day"),
        ("UTC", "mon-fri 17:30-09:00", "", "17:30-09:00 ends before it starts"),
        ("UTC", "mon-fri 09:00-25:00", "", "25:00 in 'mon-fri 09:00-25:00' is not a time"),
        ("UTC", "mon 09:00-12:00 11:00-14:00", "", "two windows overlap on mon"),
        ("UTC", " ; ", "", "BUSINESS_HOURS is empty"),
        ("UTC", "mon-fri 09:00-17:30", "2026-12-25,25/12/2026", "'25/12/2026' is not a date"),
    ],
)
def test_a_bad_calendar_is_refused_with_what_is_wrong(zone, hours, holidays, message):
    with pytest.raises(ImproperlyConfigured) as refused:
        business_calendar_parse(time_zone=zone, hours=hours, holidays=holidays)
    assert message in str(refused.value)


def test_a_calendar_is_read_as_weekly_windows():
    calendar = business_calendar_parse(
        time_zone="Europe/London",
        hours="MON-fri 09:00-12:30 13:30-17:30; sat 10:00-14:00, sun-mon 20:00-24:00",
        holidays=["2026-12-26", "2026-12-25", " "],
    )
    assert calendar.holidays == (date(2026, 12, 25), date(2026, 12, 26))
    assert calendar.windows_per_day == 3  # Monday: morning, afternoon, evening
    assert calendar.weekly_seconds == (5 * 7.5 + 4 + 2 * 4) * 3600
    assert calendar.describe() == (
        "Mon 09:00–12:30 and 13:30–17:30 and 20:00–24:00; Tue–Fri 09:00–12:30 and 13:30–17:30; "
        "Sat 10:00–14:00; Sun 20:00–24:00"
    )


def test_a_bad_calendar_stops_startup_with_its_message():
    env = {**os.environ, "BUSINESS_HOURS": "weekdays 9 to 5", "EARSHOT_DEVELOPMENT": "1"}
    env.setdefault("DATABASE_URL", "postgres://unused@127.0.0.1/unused")
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    started = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode != 0
    assert "ImproperlyConfigured: BUSINESS_HOURS: 'weekdays 9 to 5' is not" in started.stderr


# --- a hand-made week ---------------------------------------------------------------

_post_ids = count(2_100_000_000_000_000_000)


def answer(mention, *, agent, at: datetime, origin=ReplyOrigin.EARSHOT, status=ReplyStatus.SENT):
    sent = status == ReplyStatus.SENT
    return Reply.objects.create(
        mention=mention,
        agent=agent,
        origin=origin,
        text="" if origin == ReplyOrigin.MARKED else "Thanks for telling us",
        status=status,
        external_id=str(next(_post_ids)) if sent and origin != ReplyOrigin.MARKED else "",
        posted_at=at if sent else None,
    )


def mention_at(brand, when: str, text: str, *, author=None, keyword=None, status="new"):
    mention = make_mention(
        brand=brand, text=text, posted_at=at(when), author=author, keyword=keyword, status=status
    )
    expected = {NEGATIVE_TEXT: "negative", NEUTRAL_TEXT: "neutral", POSITIVE_TEXT: "positive"}
    assert mention.sentiment_label == expected[text]
    return mention


@pytest.fixture
def week(london_office, brand, keyword, agent, other_agent):
    """Mon 2 - Sun 8 Nov 2026 in London (GMT), and the week before."""
    pia = make_author(username="pia")
    refund = keyword_create(brand=brand, query="refund", poll_interval_seconds=60)
    m = {}
    # Negative, answered by alice in 20 min (within 30), a second reply later; resolved 10:00.
    m["quick"] = mention_at(brand, "2026-11-02 09:00", NEGATIVE_TEXT, author=pia, keyword=keyword)
    answer(m["quick"], agent=agent, at=at("2026-11-02 09:20"))
    answer(m["quick"], agent=other_agent, at=at("2026-11-02 14:00"))
    Mention.objects.filter(pk=m["quick"].pk).update(
        status=MentionStatus.RESOLVED,
        claimed_by=agent,
        claimed_at=at("2026-11-02 10:00"),
        resolved_at=at("2026-11-02 10:00"),
    )
    # Negative, answered by bob after an hour: over its 30-minute target.
    m["late"] = mention_at(brand, "2026-11-02 10:00", NEGATIVE_TEXT, author=pia, keyword=refund)
    answer(m["late"], agent=other_agent, at=at("2026-11-02 11:00"))
    Mention.objects.filter(pk=m["late"].pk).update(status=MentionStatus.REPLIED)
    # Neutral, posted at 17:00, answered on X the next morning: 16.5 h, 1 business hour.
    m["overnight"] = mention_at(brand, "2026-11-03 17:00", NEUTRAL_TEXT, keyword=keyword)
    answer(m["overnight"], agent=None, at=at("2026-11-04 09:30"), origin=ReplyOrigin.PLATFORM)
    Mention.objects.filter(pk=m["overnight"].pk).update(status=MentionStatus.REPLIED)
    # Positive, marked handled by alice after 10 minutes.
    m["marked"] = mention_at(brand, "2026-11-04 13:00", POSITIVE_TEXT, keyword=keyword)
    answer(m["marked"], agent=agent, at=at("2026-11-04 13:10"), origin=ReplyOrigin.MARKED)
    Mention.objects.filter(pk=m["marked"].pk).update(status=MentionStatus.REPLIED)
    # Neutral, never answered (its reply failed), still open: past its target.
    m["waiting"] = mention_at(brand, "2026-11-05 08:00", NEUTRAL_TEXT, keyword=keyword)
    answer(m["waiting"], agent=agent, at=at("2026-11-05 08:05"), status=ReplyStatus.FAILED)
    # Neutral, closed as needing no reply: not answered, but not waiting either.
    m["ignored"] = mention_at(
        brand, "2026-11-05 09:00", NEUTRAL_TEXT, keyword=keyword, status="no_reply_needed"
    )
    # History and spam are not the team's: left out even when answered.
    m["history"] = mention_at(
        brand, "2026-11-06 12:00", NEUTRAL_TEXT, keyword=keyword, status="archived"
    )
    m["spam"] = mention_at(brand, "2026-11-06 12:00", NEUTRAL_TEXT, keyword=keyword, status="spam")
    answer(m["spam"], agent=agent, at=at("2026-11-06 12:01"))
    # The previous week: one mention, answered by alice in 5 minutes.
    m["last_week"] = mention_at(brand, "2026-10-26 09:00", NEUTRAL_TEXT, keyword=keyword)
    answer(m["last_week"], agent=agent, at=at("2026-10-26 09:05"))
    Mention.objects.filter(pk=m["last_week"].pk).update(status=MentionStatus.REPLIED)
    # Long ago, still open: outside both periods, but the backlog's oldest.
    m["ancient"] = mention_at(brand, "2026-01-05 10:00", NEUTRAL_TEXT, keyword=keyword)
    return m


def figures_of(report, dimension: str) -> dict:
    return {row.label: row for row in report.groups[dimension]}


def test_a_week_of_mentions_gives_exactly_these_figures(week, agent):
    now = at("2026-11-23 12:00")
    report = dashboard(
        period=report_period(since=date(2026, 11, 2), until=date(2026, 11, 8)), now=now
    )

    assert report.period.starts_at == at("2026-11-02 00:00")
    assert report.previous_period.first_day == date(2026, 10, 26)
    current = report.current
    # quick, late, overnight, marked, waiting, ignored: not history, not spam.
    assert (current.mentions, current.answered) == (6, 4)
    assert current.response_rate == 4 / 6
    frt = sorted([20 * 60, 60 * 60, 16.5 * 3600, 10 * 60])
    assert current.first_response.median_seconds == (frt[1] + frt[2]) / 2
    assert current.first_response.p90_seconds == frt[2] + (frt[3] - frt[2]) * (0.9 * 3 - 2)
    assert current.first_response.mean_seconds == sum(frt) / 4
    # In business hours the overnight one is one hour (17:00-17:30, 09:00-09:30).
    business = sorted([20 * 60, 60 * 60, 3600, 10 * 60])
    assert current.first_response_business.median_seconds == (business[1] + business[2]) / 2
    assert current.first_response_business.mean_seconds == sum(business) / 4
    # Resolved: quick, an hour after it was posted.
    assert current.resolved == 1
    assert current.resolution.median_seconds == 3600
    assert current.resolution_business.median_seconds == 3600
    # Late (60 > 30 min), overnight (16.5 h > 4 h) and waiting (open for weeks).
    assert current.sla_breaches == 3
    assert [b.mention_id for b in report.breaches] == [
        week["waiting"].pk,
        week["overnight"].pk,
        week["late"].pk,
    ]
    assert report.breaches[0].first_response_seconds is None
    assert (
        report.breaches[0].overdue_seconds
        == (now - at("2026-11-05 08:00") - timedelta(minutes=240)).total_seconds()
    )

    previous = report.previous
    assert (previous.mentions, previous.answered, previous.first_response.median_seconds) == (
        1,
        1,
        300.0,
    )

    agents = figures_of(report, "agent")
    assert list(agents) == ["alice", "bob", OUTSIDE_EARSHOT]
    assert agents["alice"].current.answered == 2  # quick, and marked handled
    assert agents["alice"].current.first_response.median_seconds == 15 * 60
    assert agents["alice"].previous.first_response.median_seconds == 300
    assert agents["bob"].current.answered == 1 and agents["bob"].current.sla_breaches == 1
    assert agents[OUTSIDE_EARSHOT].current.first_response.median_seconds == 16.5 * 3600
    keywords = figures_of(report, "keyword")
    assert {label: row.current.mentions for label, row in keywords.items()} == {
        "Northwind Coffee: @NorthwindHelp": 5,
        "Northwind Coffee: refund": 1,
    }
    assert [row.key for row in report.groups["sentiment"]] == ["negative", "neutral", "positive"]
    assert [row.current.mentions for row in report.groups["sentiment"]] == [2, 3, 1]
    assert [(row.key, row.current.mentions) for row in report.groups["platform"]] == [("x", 6)]


def test_the_heatmap_shows_arrivals_medians_and_uncovered_hours(week):
    report = dashboard(period=report_period(since=date(2026, 11, 2), until=date(2026, 11, 8)))

    busy = {
        (cell.weekday, cell.hour): cell for day in report.heatmap for cell in day if cell.arrivals
    }
    assert set(busy) == {(1, 9), (1, 10), (2, 17), (3, 13), (4, 8), (4, 9)}
    assert busy[(1, 9)].median_first_response_seconds == 20 * 60
    assert busy[(4, 8)].median_first_response_seconds is None
    # Replies went out Mon 09, Mon 11, Mon 14, Wed 09 and Wed 13: nobody replied in the
    # hours of Mon 10, Tue 17, Thu 08 and Thu 09.
    uncovered = sorted(key for key, cell in busy.items() if cell.uncovered)
    assert uncovered == [(1, 10), (2, 17), (4, 8), (4, 9)]
    assert report.uncovered_hours == 4
    assert report.heatmap[2][9].replies_sent == 1 and not report.heatmap[2][9].arrivals


def test_daily_sentiment_authors_and_backlog(week):
    now = at("2026-11-23 12:00")
    report = dashboard(
        period=report_period(since=date(2026, 11, 2), until=date(2026, 11, 8)), now=now
    )

    assert [(d.day.day, d.negative, d.neutral, d.positive) for d in report.daily] == [
        (2, 2, 0, 0),
        (3, 0, 1, 0),
        (4, 0, 0, 1),
        (5, 0, 2, 0),
        (6, 0, 0, 0),
        (7, 0, 0, 0),
        (8, 0, 0, 0),
    ]
    top = report.active_authors[0]
    assert (top.username, top.mentions, top.negative, top.answered) == ("pia", 2, 2, 2)
    assert len(report.active_authors) == 5
    # Open now: waiting and ancient (whatever their period); ancient is the oldest.
    assert report.backlog.open == 2
    assert report.backlog.oldest_posted_at == at("2026-01-05 10:00")
    assert report.backlog.oldest_age_seconds == (now - at("2026-01-05 10:00")).total_seconds()
    expected = independent_business_seconds(
        at("2026-01-05 10:00"),
        now,
        zone="Europe/London",
        hours={d: [(540, 1050)] for d in range(1, 6)},
    )
    assert report.backlog.oldest_age_business_seconds == expected


def test_an_empty_period_has_no_figures_but_every_day_and_hour(london_office, brand):
    report = dashboard(period=report_period(since=date(2026, 11, 2), until=date(2026, 11, 3)))

    assert (report.current.mentions, report.current.answered) == (0, 0)
    assert report.current.response_rate is None
    assert report.current.first_response.median is None
    assert all(rows == [] for rows in report.groups.values())
    assert len(report.daily) == 2 and len(report.heatmap) == 7
    assert all(len(day) == 24 for day in report.heatmap)
    assert report.breaches == [] and report.backlog.open == 0


def test_the_dashboard_leaves_nothing_behind(week):
    period = report_period(since=date(2026, 11, 2), until=date(2026, 11, 8))
    first = dashboard(period=period)
    second = dashboard(period=period)  # the temporary table was dropped: it can be made again

    assert first.current == second.current
    assert Mention.objects.filter(pk=week["quick"].pk).values_list("status", flat=True)[0] == (
        "resolved"
    )
    assert Reply.objects.count() == 8


# --- the page, the CSV and the JSON agree -------------------------------------------


class TableReader(HTMLParser):
    """Rows of the page's tables: {table id: [(row attributes, [(cell attrs, text), ...])]}."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list] = defaultdict(list)
        self.table: str | None = None
        self.cell: list | None = None
        self.row: tuple | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.table = attrs.get("id")
        elif tag == "tr" and self.table:
            self.row = (attrs, [])
            self.tables[self.table].append(self.row)
        elif tag in ("td", "th") and self.row is not None:
            self.cell = [attrs, ""]
            self.row[1].append(self.cell)

    def handle_endtag(self, tag):
        if tag == "table":
            self.table = self.row = None
        elif tag in ("td", "th"):
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[1] += data


def read_tables(html: str) -> dict[str, list]:
    reader = TableReader()
    reader.feed(html)
    return reader.tables


DURATION = re.compile(r"^(?:(-?\d+) days?, )?(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$")


def ui_value(cell) -> object:
    """What a cell says, as charts.js reads it: data-value, else a count or a duration."""
    attrs, text = cell
    text = text.strip()
    if "data-value" in attrs:
        return float(attrs["data-value"])
    if text == "—":
        return None
    if match := DURATION.match(text):
        days, hours, minutes, seconds = match.groups()
        return timedelta(
            days=int(days or 0), hours=int(hours), minutes=int(minutes), seconds=float(seconds)
        )
    return int(text)


def as_duration(seconds: float | None) -> timedelta | None:
    return None if seconds is None else timedelta(seconds=seconds)


def percentile_cont(values: list[float], fraction: float) -> float | None:
    """PostgreSQL's percentile_cont, operation for operation (orderedsetaggs.c)."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    first, second = math.floor(position), math.ceil(position)
    if first == second:
        return ordered[first]
    return ordered[first] + (position - first) * (ordered[second] - ordered[first])


def mean6(texts: list[str]) -> float | None:
    if not texts:
        return None
    exact = sum(Decimal(text) for text in texts) / len(texts)
    return float(exact.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP))


@pytest.fixture
def busy_fortnight(london_office, brand, keyword, agent, other_agent, supervisor):
    """Sixty mentions over two weeks with answers at odd microseconds, by three responders."""
    generator = random.Random(42)
    texts = [NEGATIVE_TEXT, NEUTRAL_TEXT, POSITIVE_TEXT]
    start = at("2026-10-26 00:00")
    for n in range(60):
        posted = start + timedelta(seconds=generator.randrange(14 * 86400))
        mention = mention_at(
            brand, posted.strftime("%Y-%m-%d %H:%M:%S"), texts[n % 3], keyword=keyword
        )
        if n % 5 == 4:
            continue  # unanswered
        delay = timedelta(
            seconds=generator.randrange(60, 30000), microseconds=generator.randrange(10**6)
        )
        responder = [agent, other_agent, None][n % 3]
        answer(
            mention,
            agent=responder,
            at=mention.posted_at + delay,
            origin=ReplyOrigin.PLATFORM if responder is None else ReplyOrigin.EARSHOT,
        )
        status = MentionStatus.RESOLVED if n % 7 == 0 else MentionStatus.REPLIED
        Mention.objects.filter(pk=mention.pk).update(
            status=status,
            claimed_by=agent,
            claimed_at=mention.posted_at + delay + timedelta(seconds=generator.randrange(3600)),
        )
    return {"since": "2026-11-02", "until": "2026-11-08"}


def test_the_page_the_csv_and_the_json_agree_exactly(client, supervisor, busy_fortnight):
    client.force_login(supervisor)
    out = StringIO()
    call_command("report", "--json", "--since", "2026-11-02", "--until", "2026-11-08", stdout=out)
    figures = json.loads(out.getvalue())
    page = client.get(reverse("responses:report"), busy_fortnight)
    export = client.get(reverse("responses:report-csv"), busy_fortnight)

    assert page.status_code == export.status_code == 200
    # The page: every figure of the overall table, this period and the previous one.
    tables = read_tables(page.content.decode())
    shown = {attrs["data-figure"]: cells for attrs, cells in tables["overall-figures"] if attrs}
    for column, period in ((1, "current"), (2, "previous")):
        expected = figures[period]
        for name, cells in shown.items():
            section, _, stat = name.partition(".")
            value = expected[section][stat] if stat else expected[section]
            if section.endswith("_seconds"):
                value = as_duration(value)
            assert ui_value(cells[column]) == value, (period, name)
    assert figures["current"]["mentions"] > 0 and figures["current"]["answered"] > 20
    agents = {attrs["data-agent"]: cells for attrs, cells in tables["by-agent"] if attrs}
    for group in figures["groups"]["agent"]:
        cells = agents[group["key"] or ""]
        current = group["current"]
        assert cells[0][1] == group["label"]
        assert ui_value(cells[1]) == current["answered"]
        assert ui_value(cells[2]) == as_duration(current["first_response_seconds"]["median"])
        assert ui_value(cells[3]) == as_duration(current["first_response_seconds"]["p90"])
        assert ui_value(cells[4]) == as_duration(current["first_response_seconds"]["mean"])

    # The CSV: one row per mention; the same figures recomputed from its cells.
    lines = list(csv.DictReader(StringIO(b"".join(export.streaming_content).decode())))
    current = figures["current"]
    assert len(lines) == current["mentions"]
    answered = [row for row in lines if row["first_response_seconds"]]
    assert len(answered) == current["answered"]
    assert sum(row["sla_breached"] == "yes" for row in lines) == current["sla_breaches"]
    for column, stats in (
        ("first_response_seconds", current["first_response_seconds"]),
        ("first_response_business_seconds", current["first_response_business_seconds"]),
        ("resolution_seconds", current["resolution_seconds"]),
        ("resolution_business_seconds", current["resolution_business_seconds"]),
    ):
        texts = [row[column] for row in lines if row[column]]
        assert percentile_cont([float(t) for t in texts], 0.5) == stats["median"], column
        assert percentile_cont([float(t) for t in texts], 0.9) == stats["p90"], column
        assert mean6(texts) == stats["mean"], column
    by_agent = defaultdict(list)
    for row in answered:
        by_agent[row["first_reply_by"]].append(float(row["first_response_seconds"]))
    assert {
        group["label"]: (
            group["current"]["answered"],
            group["current"]["first_response_seconds"]["median"],
        )
        for group in figures["groups"]["agent"]
    } == {label: (len(values), percentile_cont(values, 0.5)) for label, values in by_agent.items()}


def test_the_csv_has_one_row_per_mention_with_its_facts(client, supervisor, week, agent):
    client.force_login(supervisor)
    export = client.get(
        reverse("responses:report-csv"), {"since": "2026-11-02", "until": "2026-11-08"}
    )

    assert export["Content-Type"] == "text/csv; charset=utf-8"
    assert (
        'filename="earshot-mentions-2026-11-02-to-2026-11-08.csv"' in export["Content-Disposition"]
    )
    rows = list(csv.DictReader(StringIO(b"".join(export.streaming_content).decode())))
    by_id = {int(row["mention_id"]): row for row in rows}
    assert set(by_id) == {
        week[name].pk for name in ("quick", "late", "overnight", "marked", "waiting", "ignored")
    }
    quick = by_id[week["quick"].pk]
    assert quick["posted_at"] == "2026-11-02T09:00:00+00:00"
    assert quick["first_reply_at"] == "2026-11-02T09:20:00+00:00"
    assert (quick["first_reply_by"], quick["first_reply_origin"]) == ("alice", "earshot")
    assert (quick["brand"], quick["author"]) == ("Northwind Coffee", "pia")
    # Text a spreadsheet would run as a formula is defused; numbers are left alone.
    assert quick["keyword"] == "'@NorthwindHelp"
    assert Decimal(quick["first_response_seconds"]) == 1200
    assert quick["resolved_at"] == "2026-11-02T10:00:00+00:00"
    assert Decimal(quick["resolution_seconds"]) == 3600
    assert (quick["status"], quick["sentiment"], quick["sla_breached"]) == (
        "resolved",
        "negative",
        "no",
    )
    # Closing overwrote the claim time: not a claim any more; it was never released.
    assert quick["claimed_at"] == quick["released_at"] == ""
    overnight = by_id[week["overnight"].pk]
    assert overnight["first_reply_by"] == OUTSIDE_EARSHOT
    assert Decimal(overnight["first_response_business_seconds"]) == 3600
    waiting = by_id[week["waiting"].pk]
    assert waiting["first_reply_at"] == waiting["first_response_seconds"] == ""
    assert waiting["sla_breached"] == "yes"
    assert by_id[week["ignored"].pk]["sla_breached"] == "no"


def test_the_csv_gives_the_claim_time_of_a_claimed_mention(client, supervisor, week, agent):
    claimed = week["waiting"]
    Mention.objects.filter(pk=claimed.pk).update(
        status=MentionStatus.CLAIMED,
        claimed_by=agent,
        claimed_at=at("2026-11-05 08:30"),
        claim_expires_at=timezone.now() + timedelta(minutes=15),
    )
    client.force_login(supervisor)
    export = client.get(
        reverse("responses:report-csv"), {"since": "2026-11-05", "until": "2026-11-05"}
    )

    rows = {
        row["mention_id"]: row
        for row in csv.DictReader(StringIO(b"".join(export.streaming_content).decode()))
    }
    assert (rows[str(claimed.pk)]["claimed_at"], rows[str(claimed.pk)]["claimed_by"]) == (
        "2026-11-05T08:30:00+00:00",
        "alice",
    )


def test_the_page_draws_its_charts_from_local_files_without_inline_scripts(
    client, supervisor, week
):
    client.force_login(supervisor)
    html = client.get(
        reverse("responses:report"), {"since": "2026-11-02", "until": "2026-11-08"}
    ).content.decode()

    scripts = re.findall(r"<script\b[^>]*>", html)
    assert all(" src=" in tag for tag in scripts)
    assert any("vendor/chartjs/chart.umd.js" in tag for tag in scripts)
    assert any("js/charts.js" in tag for tag in scripts)
    assert "<style" not in html and " style=" not in html
    for table in (
        "by-agent",
        "by-keyword",
        "by-platform",
        "by-sentiment",
        "daily-sentiment",
        "heatmap",
    ):
        assert re.search(rf'<table [^>]*id="{table}"[^>]*data-chart=', html), table
    vendored = Path(REPO_ROOT, "static/vendor/chartjs")
    assert " * Chart.js v4.6.1\n" in vendored.joinpath("chart.umd.js").read_text()[:100]
    assert "4.6.1" in vendored.joinpath("README.md").read_text()
    assert vendored.joinpath("LICENSE.md").exists()


def test_the_definitions_page_states_the_settings_in_force(client, supervisor, london_office):
    london_office.BUSINESS_HOLIDAYS = ["2026-12-25"]
    client.force_login(supervisor)
    html = client.get(reverse("responses:report-definitions")).content.decode()

    assert "within 30 minutes" in html and "within 240 minutes" in html
    assert "Mon–Fri 09:00–17:30" in html and "Europe/London" in html and "2026-12-25" in html
    assert "when a claim on it was last given back" in html
    assert "<code>released_at</code>" in html


# --- bad periods ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"since": "2026-11-05", "until": "2026-11-01"},
            "The period must start on or before the day it ends.",
        ),
        ({"since": "2026-13-01", "until": "2026-11-01"}, "Since: Enter a valid date."),
        ({"since": "2026-11-01", "until": "yesterday"}, "Until: Enter a valid date."),
        (
            {"since": "2000-01-01", "until": "2026-11-01"},
            "The period can be at most ten years long.",
        ),
    ],
)
def test_a_bad_period_is_explained_and_logged(client, supervisor, week, caplog, params, message):
    client.force_login(supervisor)
    with caplog.at_level("INFO", logger="responses.report_views"):
        page = client.get(reverse("responses:report"), params)
        export = client.get(reverse("responses:report-csv"), params)

    assert page.status_code == 400
    html = page.content.decode()
    assert message in html
    assert 'id="stat-mentions"' not in html  # no figures for a period that is not one
    assert export.status_code == 400
    assert message.split(": ")[-1] in export.content.decode()
    assert "report: refused the period" in caplog.text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "2026-11-05", "--until", "2026-11-01"], "The period must start on or before"),
        (
            ["--since", "2026-02-30", "--until", "2026-03-01"],
            "--since '2026-02-30': Enter a valid date. Use YYYY-MM-DD.",
        ),
        (["--since", "2026-11-01"], "Give both --since and --until"),
    ],
)
def test_the_command_refuses_a_bad_period_with_a_clear_message(london_office, args, message):
    with pytest.raises(CommandError) as refused:
        call_command("report", "--json", *args, stdout=StringIO())
    assert message in str(refused.value)


def test_the_command_prints_a_summary_without_json(week):
    out = StringIO()
    call_command("report", "--since", "2026-11-02", "--until", "2026-11-08", stdout=out)
    text = out.getvalue()
    assert "2026-11-02 to 2026-11-08 (Europe/London), against 2026-10-26 to 2026-11-01" in text
    assert "this period: 6 mentions, 4 answered (67%)" in text
    assert "3 SLA breaches" in text


# --- replaying the TWCS conversations, against an independent computation -------------

TRACKED_HANDLES = (
    "sprintcare",
    "Uber_Support",
    "ChipotleTweets",
    "British_Airways",
    "AskPlayStation",
)
TWCS_TIME = "%a %b %d %H:%M:%S %z %Y"


def twcs_expectations(rows: list[dict], offset: timedelta) -> dict[str, dict]:
    """Straight from the CSV: each customer tweet addressed to a tracked handle, the handle,
    its shifted time and the earliest answer of that handle (None if unanswered)."""
    addressed = re.compile(r"(?<!\w)@(" + "|".join(TRACKED_HANDLES) + r")(?!\w)", re.IGNORECASE)
    canonical = {handle.lower(): handle for handle in TRACKED_HANDLES}
    answers = defaultdict(list)
    for row in rows:
        if row["inbound"] == "False" and row["in_response_to_tweet_id"]:
            answers[(row["in_response_to_tweet_id"], row["author_id"])].append(
                datetime.strptime(row["created_at"], TWCS_TIME)
            )
    expected = {}
    for row in rows:
        if row["inbound"] != "True" or not (match := addressed.search(row["text"])):
            continue
        handle = canonical[match.group(1).lower()]
        posted = datetime.strptime(row["created_at"], TWCS_TIME)
        first = min(answers.get((row["tweet_id"], handle), []), default=None)
        expected[row["tweet_id"]] = {
            "handle": handle,
            "posted_at": posted + offset,
            "answered_at": None if first is None else first + offset,
        }
    return expected


def summary(seconds: list[float]) -> tuple[float, float, float]:
    """Median, p90 (linear interpolation, 'inclusive') and mean with Python's statistics."""
    return (
        statistics.median(seconds),
        statistics.quantiles(seconds, n=10, method="inclusive")[8],
        statistics.mean(seconds),
    )


@pytest.mark.django_db(transaction=True)
def test_replayed_conversations_report_what_the_dataset_says(x_sim, settings, agent):
    dataset = shared_data_file("twcs_dev.csv")
    settings.BUSINESS_TIME_ZONE = "Europe/London"
    settings.BUSINESS_HOURS = "mon-fri 09:00-17:30"
    settings.BUSINESS_HOLIDAYS = ["2017-12-25", "2017-12-26"]
    settings.BACKFILL_QUEUE_HOURS = 24 * 365 * 10  # queue the whole replayed history
    x_sim.max_age = timedelta(days=365 * 10)
    shift_to = (timezone.now() - timedelta(hours=1)).replace(microsecond=0)
    x_sim.load_twcs_csv(dataset, shift_to=shift_to)
    for handle in TRACKED_HANDLES:
        keyword_create(
            brand=Brand.objects.create(name=handle, x_handle=handle),
            query=f"@{handle} -from:{handle}",
            poll_interval_seconds=60,
        )
    call_command("poll", "--backfill", stdout=StringIO())
    # The brands' own posts: their replies, written on X, linked to the mentions they answer.
    for cursor_id in account_cursors_claim_due():
        outcome = account_posts_read(cursor_id=cursor_id, max_pages=100)
        assert not outcome.error, outcome.error

    with open(dataset, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    newest = max(datetime.strptime(row["created_at"], TWCS_TIME) for row in rows)
    expected = twcs_expectations(rows, shift_to - newest)
    # Three unanswered tweets are marked spam: no longer the team's, out of every figure.
    spam = sorted(tweet for tweet, facts in expected.items() if facts["answered_at"] is None)[:3]
    for mention in Mention.objects.filter(external_id__in=spam):
        assert mention_close(mention_id=mention.pk, agent=agent, outcome=MentionStatus.SPAM)
    counted = {tweet: facts for tweet, facts in expected.items() if tweet not in spam}
    frt = {
        tweet: (facts["answered_at"] - facts["posted_at"]).total_seconds()
        for tweet, facts in counted.items()
        if facts["answered_at"] is not None
    }
    hours = {day: [(540, 1050)] for day in range(1, 6)}
    holidays = frozenset({date(2017, 12, 25), date(2017, 12, 26)})
    london = ZoneInfo("Europe/London")
    first_day = min(f["posted_at"] for f in counted.values()).astimezone(london).date()

    report = dashboard(
        period=report_period(since=first_day, until=timezone.now().astimezone(london).date())
    )

    assert Mention.objects.count() == len(expected) == 500
    assert (report.current.mentions, report.current.answered) == (len(counted), len(frt))
    assert len(frt) == 414
    assert report.current.response_rate == len(frt) / len(counted)
    median, p90, mean = summary(list(frt.values()))
    stats = report.current.first_response
    assert stats.median_seconds == median
    assert stats.p90_seconds == pytest.approx(p90, abs=1e-6)
    assert stats.mean_seconds == pytest.approx(mean, abs=1e-6)
    # Per keyword: one per brand, each its own handle's conversations.
    keywords = {row.label.split(":")[0]: row.current for row in report.groups["keyword"]}
    for handle in TRACKED_HANDLES:
        mine = {t: s for t, s in frt.items() if counted[t]["handle"] == handle}
        total = sum(1 for facts in counted.values() if facts["handle"] == handle)
        assert (keywords[handle].mentions, keywords[handle].answered) == (total, len(mine)), handle
        median, p90, mean = summary(list(mine.values()))
        assert keywords[handle].first_response.median_seconds == median, handle
        assert keywords[handle].first_response.p90_seconds == pytest.approx(p90, abs=1e-6)
        assert keywords[handle].first_response.mean_seconds == pytest.approx(mean, abs=1e-6)
    # Per platform: all of it on X; per agent: every answer was written on X itself.
    (platform,) = report.groups["platform"]
    assert (platform.key, platform.current) == ("x", report.current)
    (outside,) = report.groups["agent"]
    assert (outside.label, outside.current.answered) == (OUTSIDE_EARSHOT, len(frt))
    # In business hours, against a count made day by day in Python.
    business = [
        independent_business_seconds(
            counted[t]["posted_at"],
            counted[t]["answered_at"],
            zone="Europe/London",
            hours=hours,
            holidays=holidays,
        )
        for t in frt
    ]
    median, p90, mean = summary(business)
    stats = report.current.first_response_business
    assert stats.median_seconds == median
    assert stats.p90_seconds == pytest.approx(p90, abs=1e-6)
    assert stats.mean_seconds == pytest.approx(mean, abs=1e-6)


@pytest.mark.django_db
def test_the_csv_gives_the_last_release_and_the_resolution_time(brand, agent, supervisor):
    from responses.services.claims import claims_release_expired, mention_claim, mention_release

    mention = make_mention(brand=brand, text="@NorthwindHelp where is my order?")
    mention_claim(mention_id=mention.pk, agent=agent)
    mention_release(mention_id=mention.pk, agent=agent)
    released = Mention.objects.get(pk=mention.pk).released_at
    mention_claim(mention_id=mention.pk, agent=agent)
    lapsed_at = timezone.now() + timedelta(hours=1)
    assert claims_release_expired(now=lapsed_at) == 1
    mention_close(mention_id=mention.pk, agent=agent, outcome=MentionStatus.RESOLVED)
    mention.refresh_from_db()

    assert released is not None and mention.released_at == lapsed_at
    assert mention.resolved_at is not None and mention.status == MentionStatus.RESOLVED
    period = report_period(
        since=timezone.localdate() - timedelta(days=1), until=timezone.localdate()
    )
    header, *rows = list(mention_rows(period=period))
    row = dict(zip(header, rows[0], strict=True))
    assert row["released_at"] == lapsed_at.astimezone(UTC).isoformat()
    assert row["resolved_at"] == mention.resolved_at.astimezone(UTC).isoformat()
