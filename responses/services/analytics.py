"""Supervisors' response-time figures: one definition of each, computed in PostgreSQL.

The dashboard (`/report/`), its CSV export and `manage.py report --json` all read these
functions, so a figure means the same everywhere; `/report/definitions/` shows `definitions()`
below, the words for what the SQL here computes. No Python loop ever walks the mentions:
every figure is an aggregate over one per-mention "facts" query (`_facts_sql`).

- **Mentions of the period**: posted (on the platform) from the first day's 00:00 to the end
  of the last day, in BUSINESS_TIME_ZONE, except history read by a backfill (ARCHIVED) and
  spam.
- **First response**: the earliest SENT reply of any origin (sent through Earshot, found on
  the platform, or marked handled), by its platform time; first response time is its
  `posted_at` minus the mention's `posted_at`.
- **Resolution**: a RESOLVED mention's `resolved_at` (set when the team resolves it) minus
  its `posted_at`.
- **Response rate**: answered mentions of the period / mentions of the period.
- **Backlog**: the open mentions (new, reopened, claimed) now, and the age of the oldest.
- **Business hours**: the same durations counting only the opening hours of the calendar in
  settings (`config/business_hours.py`), measured in PostgreSQL day by day in real elapsed
  seconds, so a DST change, a weekend or a holiday counts exactly what it should.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from config.business_hours import WEEKDAYS, BusinessCalendar, business_calendar_parse
from listening.models import (
    OPEN_STATUSES,
    Author,
    Brand,
    Mention,
    MentionStatus,
    Platform,
    SentimentLabel,
    TrackedKeyword,
)
from listening.selectors import RemovedMentionTotals, removed_mention_totals
from responses.models import Reply, ReplyStatus

# Not the team's to answer: left out of every figure.
EXCLUDED_STATUSES = (MentionStatus.ARCHIVED, MentionStatus.SPAM)
# Closed without needing an answer: no longer waiting for one, so never "over target" unanswered.
CLOSED_STATUSES = (MentionStatus.RESOLVED, MentionStatus.NO_REPLY_NEEDED)
# Statuses in which `claimed_at` is still the moment of the claim (closing overwrites it).
CLAIM_HELD_STATUSES = (MentionStatus.CLAIMED, MentionStatus.REPLYING, MentionStatus.REPLIED)
BREACHES_LISTED = 100
ACTIVE_AUTHORS_LISTED = 10
LONGEST_PERIOD_DAYS = 3660
OUTSIDE_EARSHOT = "Outside Earshot (on the platform)"
DIMENSIONS = ("agent", "keyword", "platform", "sentiment")


class ReportInputError(ValueError):
    """A period the report cannot show; the message says why, in the user's terms."""


# --- definitions, as the page, the CSV and the JSON state them ---------------------------


@dataclass(frozen=True, slots=True)
class Definition:
    key: str
    term: str
    text: str


def definitions() -> list[Definition]:
    """Each figure in words, with the settings it depends on filled in."""
    calendar = business_calendar()
    holidays = ", ".join(day.isoformat() for day in calendar.holidays) or "none"
    return [
        Definition(
            "period",
            "Mentions of the period",
            "Mentions posted on their platform from 00:00 on the first day to 24:00 on the "
            f"last day, in {calendar.time_zone}, except history read when a keyword was added "
            "(“History, from before Earshot listened”) and mentions marked spam. The previous "
            "period is the same number of days just before it. The CSV export has one row per "
            "mention of the period.",
        ),
        Definition(
            "first_response",
            "First response time",
            "For each mention, its earliest sent reply, whoever sent it and wherever: through "
            "Earshot, written on the platform itself and found among the brand's own posts, or "
            "marked handled on a platform Earshot cannot post to (then the moment of marking). "
            "The time is the reply's time on the platform minus the mention's time on the "
            "platform. Median and p90 interpolate between the two nearest values (PostgreSQL's "
            "percentile_cont); the mean is the plain average. Replies that failed, were undone "
            "or wait for approval do not count.",
        ),
        Definition(
            "response_rate",
            "Response rate",
            "Answered mentions of the period (with a first response, whenever it came) divided "
            "by all mentions of the period. Mentions closed as “no reply needed” or resolved "
            "without a reply count as not answered.",
        ),
        Definition(
            "resolution",
            "Resolution time",
            "For mentions resolved now, the moment they were resolved minus their time on the "
            "platform. Earshot records the moment a mention is closed in its claim time, which "
            "closing overwrites; that is the resolution moment used here (a dedicated "
            "“resolved at” field is still to come).",
        ),
        Definition(
            "sla",
            "SLA targets and breaches",
            f"A negative mention should be answered within {settings.SLA_NEGATIVE_MINUTES} "
            f"minutes, any other within {settings.SLA_DEFAULT_MINUTES} minutes, in clock time as "
            "the queue counts it. A mention breaches its target when its first response came "
            "later than that, or when it has none yet, is not closed, and has waited longer. "
            "Breaches are counted by the mention's period, not by when they happened.",
        ),
        Definition(
            "business_hours",
            "Business hours",
            f"The same durations counting only opening hours: {calendar.describe()} "
            f"({calendar.time_zone}); closed on holidays ({holidays}). Each day's hours are "
            "taken on that day's wall clock, so a week with a daylight-saving change counts "
            "the hours actually open.",
        ),
        Definition(
            "backlog",
            "Backlog",
            "The open mentions now (new, reopened or claimed), whatever their period, and how "
            "long the oldest of them has waited, in clock time and in business hours.",
        ),
        Definition(
            "heatmap",
            "Arrivals and coverage by hour",
            "Mentions of the period by weekday and hour of their arrival (in "
            f"{calendar.time_zone}), the median first response time of those answered, and the "
            "replies sent in the same weekday and hour of the period. An hour with arrivals but "
            "no reply sent in it is uncovered.",
        ),
        Definition(
            "agent",
            "Per agent",
            "Who sent each mention's first response; replies found on the platform have no "
            f"agent and are grouped as “{OUTSIDE_EARSHOT}”. A reply marked handled counts for "
            "the agent who marked it.",
        ),
        Definition(
            "claims",
            "Claim and release times (CSV)",
            "The claim time is when the mention was claimed, for mentions claimed, being "
            "replied to or replied; closing overwrites it, and releasing a claim (or its lease "
            "running out) clears it, so it is empty otherwise. The release time is when a "
            "claim on it was last given back, by its holder or because its lease ran out.",
        ),
        Definition(
            "removed_by_retention",
            "Removed by retention",
            _retention_definition(),
        ),
    ]


def _retention_definition() -> str:
    days = settings.MENTION_RETENTION_DAYS
    kept = (
        "Every mention is kept (MENTION_RETENTION_DAYS is 0)."
        if days <= 0
        else f"Closed mentions posted more than {days} days ago are removed every night."
    )
    return (
        f"{kept} Before a mention is removed, its counts are kept per day: whether it was "
        "answered and its first response time, whether it was resolved and its resolution "
        "time. For a period with removed mentions the report shows them apart (mentions, "
        "answered, response rate, mean first response, resolved, mean resolution) and all "
        "told, with the stored ones; every other figure, and the CSV, count the stored "
        "mentions only."
    )


# --- the business calendar -----------------------------------------------------------


def business_calendar() -> BusinessCalendar:
    """The calendar of the current settings (validated at startup; tests may change them)."""
    return business_calendar_parse(
        time_zone=settings.BUSINESS_TIME_ZONE,
        hours=settings.BUSINESS_HOURS,
        holidays=settings.BUSINESS_HOLIDAYS,
    )


def _calendar_params(calendar: BusinessCalendar) -> dict[str, Any]:
    days, slots, opens, closes = [], [], [], []
    for window in calendar.windows:
        slot = 1 + sum(
            1 for w in calendar.windows if w.weekday == window.weekday and w.opens < window.opens
        )
        days.append(window.weekday)
        slots.append(slot)
        opens.append(window.opens)
        closes.append(window.closes)
    return {
        "zone": calendar.time_zone,
        "window_days": days,
        "window_slots": slots,
        "window_opens": opens,
        "window_closes": closes,
        "holidays": list(calendar.holidays),
    }


def _business_calendar_ctes(calendar: BusinessCalendar, *, bounds: str) -> str:
    """CTEs ending in `business_calendar`: one row holding, for every local day from the
    `earliest` to the `latest` instant the query `bounds` returns, the business seconds
    before that day (`seconds_before`, from the first day on) and its opening windows as
    real instants (`open_N`, `close_N`), in arrays indexed by the day's number from
    `first_day` (1-based), so a row finds its day with arithmetic instead of a join.

    Windows are wall-clock times turned into instants day by day (`AT TIME ZONE`), so a day
    with a DST change is open exactly as long as its clock says. A day without an Nth window
    (a weekend, a holiday) has an empty one at its midnight, which never counts.
    """
    slots = range(1, calendar.windows_per_day + 1)
    midnight = "d.day AT TIME ZONE %(zone)s"
    pivot = ",\n".join(
        f"COALESCE(MAX(w.opens_at) FILTER (WHERE w.slot = {n}), {midnight}) AS open_{n}, "
        f"COALESCE(MAX(w.closes_at) FILTER (WHERE w.slot = {n}), {midnight}) AS close_{n}"
        for n in slots
    )
    arrays = ",\n".join(
        f"array_agg(open_{n} ORDER BY day) AS open_{n}, "
        f"array_agg(close_{n} ORDER BY day) AS close_{n}"
        for n in slots
    )
    return f"""
    business_bounds AS (
        SELECT (earliest AT TIME ZONE %(zone)s)::date AS first_day,
               (latest AT TIME ZONE %(zone)s)::date AS last_day
          FROM ({bounds}) AS instants
    ),
    business_day AS (
        SELECT d.day::date AS day,
               COALESCE(SUM(EXTRACT(EPOCH FROM w.closes_at - w.opens_at)), 0) AS day_seconds,
               {pivot}
          FROM business_bounds AS b
         CROSS JOIN LATERAL generate_series(
                   b.first_day::timestamp, b.last_day::timestamp, interval '1 day'
               ) AS d(day)
          LEFT JOIN LATERAL (
                SELECT o.slot,
                       (d.day + o.opens) AT TIME ZONE %(zone)s AS opens_at,
                       (d.day + o.closes) AT TIME ZONE %(zone)s AS closes_at
                  FROM unnest(%(window_days)s::int[], %(window_slots)s::int[],
                              %(window_opens)s::interval[], %(window_closes)s::interval[])
                       AS o(weekday, slot, opens, closes)
                 WHERE o.weekday = EXTRACT(ISODOW FROM d.day)
                   AND d.day::date <> ALL(%(holidays)s::date[])
               ) AS w ON true
         GROUP BY d.day
    ),
    business_calendar AS MATERIALIZED (
        SELECT min(day) AS first_day,
               array_agg(seconds_before ORDER BY day) AS seconds_before,
               {arrays}
          FROM (
                SELECT *, SUM(day_seconds) OVER (ORDER BY day) - day_seconds AS seconds_before
                  FROM business_day
               ) AS days
    )"""


def _business_clock(calendar: BusinessCalendar, *, day: str, instant: str) -> str:
    """Business seconds from the calendar's first day to `instant`, whose day number in
    `business_calendar` (as `c`) is `day`: the days before, plus what of each window of its
    own day has passed. NULL when the instant is NULL."""
    windows = " + ".join(
        f"GREATEST(0, EXTRACT(EPOCH FROM LEAST({instant}, c.close_{n}[{day}]) - c.open_{n}[{day}]))"
        for n in range(1, calendar.windows_per_day + 1)
    )
    return f"(c.seconds_before[{day}] + {windows})"


def _day_number(instant: str) -> str:
    """The instant's local day, numbered from `business_calendar.first_day` (as `c`) on."""
    return f"(({instant} AT TIME ZONE %(zone)s)::date - c.first_day + 1)"


def business_seconds(*, spans: list[tuple[datetime, datetime]]) -> list[Decimal]:
    """Business seconds between each (start, end) pair, negative when end comes first; the
    same SQL the report uses, for one-off durations (the backlog's oldest mention, tests)."""
    if not spans:
        return []
    calendar = business_calendar()
    clock_start = _business_clock(calendar, day="s.start_day", instant="s.started")
    clock_end = _business_clock(calendar, day="s.end_day", instant="s.ended")
    bounds = (
        "SELECT LEAST(min(started), min(ended)) AS earliest, "
        "GREATEST(max(started), max(ended)) AS latest FROM span"
    )
    sql = f"""
        WITH span AS (
            SELECT * FROM unnest(%(started)s::timestamptz[], %(ended)s::timestamptz[])
                   WITH ORDINALITY AS s(started, ended, n)
        ),
        {_business_calendar_ctes(calendar, bounds=bounds)}
        SELECT {clock_end} - {clock_start}
          FROM (
                SELECT span.*, {_day_number("span.started")} AS start_day,
                       {_day_number("span.ended")} AS end_day
                  FROM span CROSS JOIN business_calendar AS c
               ) AS s
         CROSS JOIN business_calendar AS c
         ORDER BY s.n
    """
    params = {
        **_calendar_params(calendar),
        "started": [start for start, _ in spans],
        "ended": [end for _, end in spans],
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


# --- periods -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    """Whole local days, first to last included, as the instants [starts_at, ends_at)."""

    first_day: date
    last_day: date
    starts_at: datetime
    ends_at: datetime

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    @property
    def previous(self) -> Period:
        """The same number of days just before this period."""
        return report_period(
            since=self.first_day - timedelta(days=self.days),
            until=self.first_day - timedelta(days=1),
        )

    def as_json(self) -> dict[str, str]:
        return {
            "since": self.first_day.isoformat(),
            "until": self.last_day.isoformat(),
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
        }


def report_period(*, since: date, until: date) -> Period:
    """The period from `since` to `until` (both included) in the business time zone."""
    if since > until:
        raise ReportInputError("The period must start on or before the day it ends.")
    if (until - since).days >= LONGEST_PERIOD_DAYS:
        raise ReportInputError("The period can be at most ten years long.")
    zone = ZoneInfo(business_calendar().time_zone)
    return Period(
        first_day=since,
        last_day=until,
        starts_at=datetime.combine(since, time.min, tzinfo=zone),
        ends_at=datetime.combine(until + timedelta(days=1), time.min, tzinfo=zone),
    )


def default_period(*, now: datetime | None = None, days: int = 7) -> Period:
    """The last `days` days, today included, in the business time zone."""
    today = (now or timezone.now()).astimezone(ZoneInfo(business_calendar().time_zone)).date()
    return report_period(since=today - timedelta(days=days - 1), until=today)


# --- the per-mention facts -----------------------------------------------------------


# Every instant the facts measure from or to: the mentions', their first replies', their
# resolutions'. A reply may precede its mention (a clock off on the platform): still counted.
_FACT_BOUNDS = """
    SELECT LEAST(min(posted_at), min(first_reply_at), min(resolved_at)) AS earliest,
           GREATEST(max(posted_at), max(first_reply_at), max(resolved_at)) AS latest
      FROM moment
"""


def _facts_sql(
    calendar: BusinessCalendar,
    *,
    starts_at: datetime,
    ends_at: datetime,
    current_from: datetime,
    now: datetime,
) -> tuple[str, dict[str, Any]]:
    """One row per mention posted in [starts_at, ends_at): every fact a figure is made of.

    `period` is 'current' from `current_from` on, 'previous' before it. Durations are numeric
    seconds, exact to the microsecond.
    """
    clock = _business_clock
    posted_day = "(l.local_posted_at::date - l.calendar_first_day + 1)"
    sql = f"""
    -- The period's mentions, each with its earliest sent reply: the first entry of its run
    -- in the index of sent replies, one probe a mention, so the cost follows the period and
    -- not every reply ever sent.
    WITH moment AS MATERIALIZED (
        SELECT m.id, m.platform, m.keyword_id, m.author_id, m.sentiment_label, m.status,
               m.posted_at, m.claimed_by_id, m.claimed_at,
               fr.posted_at AS first_reply_at, fr.agent_id AS first_reply_agent_id,
               fr.origin AS first_reply_origin,
               CASE WHEN m.status = %(resolved)s THEN m.resolved_at END AS resolved_at
          FROM {Mention._meta.db_table} AS m
          LEFT JOIN LATERAL (
                SELECT r.posted_at, r.agent_id, r.origin
                  FROM {Reply._meta.db_table} AS r
                 WHERE r.mention_id = m.id AND r.status = %(sent)s
                 ORDER BY r.posted_at, r.id
                 LIMIT 1
               ) AS fr ON true
         WHERE m.posted_at >= %(starts_at)s AND m.posted_at < %(ends_at)s
           AND m.status <> ALL(%(excluded)s)
    ),
    {_business_calendar_ctes(calendar, bounds=_FACT_BOUNDS)},
    -- Each instant's local day, found once (time zone conversions are not free); OFFSET 0
    -- keeps the planner from folding this back and converting again at every use.
    localised AS (
        SELECT mo.*,
               mo.posted_at AT TIME ZONE %(zone)s AS local_posted_at,
               {_day_number("mo.first_reply_at")} AS reply_day,
               {_day_number("mo.resolved_at")} AS resolved_day,
               c.first_day AS calendar_first_day
          FROM moment AS mo CROSS JOIN business_calendar AS c
        OFFSET 0
    ),
    fact AS (
        SELECT l.*,
               EXTRACT(EPOCH FROM l.first_reply_at - l.posted_at) AS first_response_seconds,
               CASE WHEN l.first_reply_at IS NOT NULL THEN
                    {clock(calendar, day="l.reply_day", instant="l.first_reply_at")}
                    - {clock(calendar, day=posted_day, instant="l.posted_at")}
               END AS first_response_business_seconds,
               EXTRACT(EPOCH FROM l.resolved_at - l.posted_at) AS resolution_seconds,
               CASE WHEN l.resolved_at IS NOT NULL THEN
                    {clock(calendar, day="l.resolved_day", instant="l.resolved_at")}
                    - {clock(calendar, day=posted_day, instant="l.posted_at")}
               END AS resolution_business_seconds,
               CASE WHEN l.sentiment_label = %(negative)s THEN %(sla_negative)s
                    ELSE %(sla_default)s END AS sla_seconds
          FROM localised AS l CROSS JOIN business_calendar AS c
    )
    SELECT f.id AS mention_id, f.platform, f.keyword_id, f.author_id, f.sentiment_label,
           f.status, f.posted_at,
           CASE WHEN f.status = ANY(%(claim_held)s) THEN f.claimed_at END AS claimed_at,
           CASE WHEN f.status = ANY(%(claim_held)s) THEN f.claimed_by_id END AS claimed_by_id,
           f.resolved_at, f.first_reply_at, f.first_reply_agent_id, f.first_reply_origin,
           CASE WHEN f.first_reply_at IS NOT NULL THEN COALESCE(f.first_reply_agent_id, 0) END
               AS responder_id,
           f.first_response_seconds, f.first_response_business_seconds,
           f.resolution_seconds, f.resolution_business_seconds, f.sla_seconds,
           CASE WHEN f.first_reply_at IS NOT NULL THEN f.first_response_seconds > f.sla_seconds
                WHEN f.status = ANY(%(closed)s) THEN false
                ELSE EXTRACT(EPOCH FROM %(now)s - f.posted_at) > f.sla_seconds END AS breached,
           COALESCE(f.first_response_seconds, EXTRACT(EPOCH FROM %(now)s - f.posted_at))
               - f.sla_seconds AS overdue_seconds,
           f.local_posted_at::date AS arrival_day,
           EXTRACT(ISODOW FROM f.local_posted_at)::int AS arrival_weekday,
           EXTRACT(HOUR FROM f.local_posted_at)::int AS arrival_hour,
           CASE WHEN f.posted_at >= %(current_from)s THEN 'current' ELSE 'previous' END
               AS period
      FROM fact AS f
    """
    params = {
        **_calendar_params(calendar),
        "starts_at": starts_at,
        "ends_at": ends_at,
        "current_from": current_from,
        "now": now,
        "excluded": [str(status) for status in EXCLUDED_STATUSES],
        "closed": [str(status) for status in CLOSED_STATUSES],
        "claim_held": [str(status) for status in CLAIM_HELD_STATUSES],
        "sent": str(ReplyStatus.SENT),
        "resolved": str(MentionStatus.RESOLVED),
        "negative": str(SentimentLabel.NEGATIVE),
        "sla_negative": settings.SLA_NEGATIVE_MINUTES * 60,
        "sla_default": settings.SLA_DEFAULT_MINUTES * 60,
    }
    return sql, params


# --- the dashboard's figures ---------------------------------------------------------


def _seconds(value: float | Decimal | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=float(value))


def _platform_label(platform: str) -> str:
    return Platform(platform).label if platform in Platform.values else platform


def _sentiment_label(sentiment: str) -> str:
    return SentimentLabel(sentiment).label if sentiment in SentimentLabel.values else sentiment


@dataclass(frozen=True, slots=True)
class Durations:
    """Median, p90 and mean of some durations, in seconds; None when there are none."""

    median_seconds: float | None = None
    p90_seconds: float | None = None
    mean_seconds: float | None = None

    @property
    def median(self) -> timedelta | None:
        return _seconds(self.median_seconds)

    @property
    def p90(self) -> timedelta | None:
        return _seconds(self.p90_seconds)

    @property
    def mean(self) -> timedelta | None:
        return _seconds(self.mean_seconds)

    def as_json(self) -> dict[str, float | None]:
        return {"median": self.median_seconds, "p90": self.p90_seconds, "mean": self.mean_seconds}


@dataclass(frozen=True, slots=True)
class Figures:
    """The figures of one group of mentions (everyone, one agent, one keyword…) in a period."""

    mentions: int = 0
    answered: int = 0
    first_response: Durations = field(default_factory=Durations)
    first_response_business: Durations = field(default_factory=Durations)
    resolved: int = 0
    resolution: Durations = field(default_factory=Durations)
    resolution_business: Durations = field(default_factory=Durations)
    sla_breaches: int = 0

    @property
    def response_rate(self) -> float | None:
        return self.answered / self.mentions if self.mentions else None

    def as_json(self) -> dict[str, Any]:
        return {
            "mentions": self.mentions,
            "answered": self.answered,
            "response_rate": self.response_rate,
            "first_response_seconds": self.first_response.as_json(),
            "first_response_business_seconds": self.first_response_business.as_json(),
            "resolved": self.resolved,
            "resolution_seconds": self.resolution.as_json(),
            "resolution_business_seconds": self.resolution_business.as_json(),
            "sla_breaches": self.sla_breaches,
        }


@dataclass(frozen=True, slots=True)
class GroupFigures:
    """One row of a breakdown: an agent, keyword, platform or sentiment, in both periods."""

    key: str | None
    label: str
    current: Figures
    previous: Figures

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "current": self.current.as_json(),
            "previous": self.previous.as_json(),
        }


@dataclass(frozen=True, slots=True)
class HourCell:
    """Arrivals in one weekday-hour slot of the period, against the replies sent in it."""

    weekday: int  # ISO: 1 = Monday
    hour: int
    arrivals: int = 0
    answered: int = 0
    median_first_response_seconds: float | None = None
    replies_sent: int = 0

    @property
    def uncovered(self) -> bool:
        return self.arrivals > 0 and self.replies_sent == 0

    @property
    def weekday_name(self) -> str:
        return WEEKDAYS[self.weekday - 1].title()

    @property
    def median_first_response(self) -> timedelta | None:
        return _seconds(self.median_first_response_seconds)

    @property
    def median_to_the_second(self) -> timedelta | None:
        """For a cell of the heatmap, where the microseconds would crowd out the hours."""
        value = self.median_first_response_seconds
        return None if value is None else timedelta(seconds=round(value))

    def as_json(self) -> dict[str, Any]:
        return {
            "weekday": self.weekday,
            "hour": self.hour,
            "arrivals": self.arrivals,
            "answered": self.answered,
            "median_first_response_seconds": self.median_first_response_seconds,
            "replies_sent": self.replies_sent,
            "uncovered": self.uncovered,
        }


@dataclass(frozen=True, slots=True)
class DaySentiment:
    day: date
    positive: int = 0
    neutral: int = 0
    negative: int = 0

    @property
    def mentions(self) -> int:
        return self.positive + self.neutral + self.negative

    def share(self, label: str) -> float | None:
        return getattr(self, label) / self.mentions if self.mentions else None

    @property
    def negative_share(self) -> float | None:
        return self.share("negative")

    def as_json(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "mentions": self.mentions,
            "positive": self.positive,
            "neutral": self.neutral,
            "negative": self.negative,
        }


@dataclass(frozen=True, slots=True)
class ActiveAuthor:
    author_id: int
    username: str
    platform: str
    mentions: int
    negative: int
    answered: int

    @property
    def platform_label(self) -> str:
        return _platform_label(self.platform)

    def as_json(self) -> dict[str, Any]:
        return {
            "author_id": self.author_id,
            "username": self.username,
            "platform": self.platform,
            "mentions": self.mentions,
            "negative": self.negative,
            "answered": self.answered,
        }


@dataclass(frozen=True, slots=True)
class Breach:
    mention_id: int
    posted_at: datetime
    platform: str
    sentiment: str
    author: str
    target_seconds: int
    first_response_seconds: float | None
    overdue_seconds: float

    @property
    def target(self) -> timedelta:
        return timedelta(seconds=self.target_seconds)

    @property
    def platform_label(self) -> str:
        return _platform_label(self.platform)

    @property
    def sentiment_label(self) -> str:
        return _sentiment_label(self.sentiment)

    @property
    def first_response(self) -> timedelta | None:
        return _seconds(self.first_response_seconds)

    @property
    def overdue(self) -> timedelta:
        return timedelta(seconds=self.overdue_seconds)

    def as_json(self) -> dict[str, Any]:
        return {
            "mention_id": self.mention_id,
            "posted_at": self.posted_at.isoformat(),
            "platform": self.platform,
            "sentiment": self.sentiment,
            "author": self.author,
            "target_seconds": self.target_seconds,
            "first_response_seconds": self.first_response_seconds,
            "overdue_seconds": self.overdue_seconds,
        }


@dataclass(frozen=True, slots=True)
class Backlog:
    open: int
    oldest_posted_at: datetime | None
    oldest_age_seconds: float | None
    oldest_age_business_seconds: float | None

    @property
    def oldest_age(self) -> timedelta | None:
        return _seconds(self.oldest_age_seconds)

    @property
    def oldest_age_business(self) -> timedelta | None:
        return _seconds(self.oldest_age_business_seconds)

    def as_json(self) -> dict[str, Any]:
        return {
            "open": self.open,
            "oldest_posted_at": self.oldest_posted_at.isoformat()
            if self.oldest_posted_at
            else None,
            "oldest_age_seconds": self.oldest_age_seconds,
            "oldest_age_business_seconds": self.oldest_age_business_seconds,
        }


@dataclass(frozen=True, slots=True)
class Dashboard:
    period: Period
    previous_period: Period
    now: datetime
    time_zone: str
    business_hours: str
    sla_negative_minutes: int
    sla_default_minutes: int
    current: Figures
    previous: Figures
    groups: dict[str, list[GroupFigures]]
    breaches: list[Breach]
    heatmap: list[list[HourCell]]  # seven weekdays of 24 hours
    daily: list[DaySentiment]
    active_authors: list[ActiveAuthor]
    backlog: Backlog
    # Mentions of each period that retention has removed (MENTION_RETENTION_DAYS): the figures
    # above read the stored mentions only; these are what listening.MentionDailyAggregate kept
    # of the others (counts and means; no median, percentile, business time or breakdown).
    removed: RemovedMentionTotals = field(default_factory=RemovedMentionTotals)
    previous_removed: RemovedMentionTotals = field(default_factory=RemovedMentionTotals)

    @property
    def has_removed(self) -> bool:
        return bool(self.removed.mentions or self.previous_removed.mentions)

    @property
    def all_told(self) -> AllTold:
        return AllTold.of(self.current, self.removed)

    @property
    def previous_all_told(self) -> AllTold:
        return AllTold.of(self.previous, self.previous_removed)

    @property
    def per_agent(self) -> list[GroupFigures]:
        return self.groups["agent"]

    @property
    def busiest_hour(self) -> int:
        """The most arrivals in one weekday-hour slot: what the heatmap's shades scale to."""
        return max(cell.arrivals for day in self.heatmap for cell in day)

    @property
    def uncovered_hours(self) -> int:
        return sum(cell.uncovered for day in self.heatmap for cell in day)

    def as_json(self) -> dict[str, Any]:
        """Everything the page shows, as plain JSON types (durations in seconds)."""
        return {
            "period": self.period.as_json(),
            "previous_period": self.previous_period.as_json(),
            "generated_at": self.now.isoformat(),
            "time_zone": self.time_zone,
            "business_hours": self.business_hours,
            "sla_targets_minutes": {
                "negative": self.sla_negative_minutes,
                "other": self.sla_default_minutes,
            },
            "current": self.current.as_json(),
            "previous": self.previous.as_json(),
            "groups": {name: [row.as_json() for row in rows] for name, rows in self.groups.items()},
            "sla_breaches_listed": [breach.as_json() for breach in self.breaches],
            "heatmap": [cell.as_json() for day in self.heatmap for cell in day],
            "uncovered_hours": self.uncovered_hours,
            "daily": [day.as_json() for day in self.daily],
            "active_authors": [author.as_json() for author in self.active_authors],
            "backlog": self.backlog.as_json(),
            "removed_by_retention": {
                "current": self.removed.as_json(),
                "previous": self.previous_removed.as_json(),
            },
            "all_told": {
                "current": self.all_told.as_json(),
                "previous": self.previous_all_told.as_json(),
            },
            "definitions": {d.key: d.text for d in definitions()},
        }


@dataclass(frozen=True, slots=True)
class AllTold:
    """A period's stored mentions and those retention removed, together: the counts, and the
    means (a mean over both is the sums over both divided by the counts)."""

    mentions: int
    answered: int
    resolved: int
    first_response_mean_seconds: float | None
    resolution_mean_seconds: float | None

    @classmethod
    def of(cls, stored: Figures, removed: RemovedMentionTotals) -> AllTold:
        def mean(
            stored_mean: float | Decimal | None,
            count: int,
            removed_total: float,
            removed_count: int,
        ) -> float | None:
            if not count + removed_count:
                return None
            stored_total = float(stored_mean or 0) * count
            return (stored_total + removed_total) / (count + removed_count)

        return cls(
            mentions=stored.mentions + removed.mentions,
            answered=stored.answered + removed.answered,
            resolved=stored.resolved + removed.resolved,
            first_response_mean_seconds=mean(
                stored.first_response.mean_seconds,
                stored.answered,
                removed.first_response_seconds_total,
                removed.answered,
            ),
            resolution_mean_seconds=mean(
                stored.resolution.mean_seconds,
                stored.resolved,
                removed.resolution_seconds_total,
                removed.resolved,
            ),
        )

    @property
    def response_rate(self) -> float | None:
        return self.answered / self.mentions if self.mentions else None

    @property
    def first_response_mean(self) -> timedelta | None:
        return _seconds(self.first_response_mean_seconds)

    @property
    def resolution_mean(self) -> timedelta | None:
        return _seconds(self.resolution_mean_seconds)

    def as_json(self) -> dict[str, Any]:
        return {
            "mentions": self.mentions,
            "answered": self.answered,
            "response_rate": self.response_rate,
            "first_response_mean_seconds": self.first_response_mean_seconds,
            "resolved": self.resolved,
            "resolution_mean_seconds": self.resolution_mean_seconds,
        }


def dashboard(*, period: Period, now: datetime | None = None) -> Dashboard:
    """Every figure of the report for `period`, beside the previous period of the same length.

    Read-only. The facts of both periods are computed once, into a temporary table dropped
    before returning; each section is then one aggregate query over it.
    """
    # As of a whole second: ages and overdue times then read without a fraction.
    now = now or timezone.now().replace(microsecond=0)
    calendar = business_calendar()
    previous = period.previous
    facts, params = _facts_sql(
        calendar,
        starts_at=previous.starts_at,
        ends_at=period.ends_at,
        current_from=period.starts_at,
        now=now,
    )
    with transaction.atomic(), connection.cursor() as cursor:
        _tune_for_reports(cursor)
        cursor.execute("DROP TABLE IF EXISTS report_fact")
        cursor.execute(f"CREATE TEMPORARY TABLE report_fact ON COMMIT DROP AS {facts}", params)
        try:
            figures = _grouped_figures(cursor)
            breaches = _breaches(cursor)
            heatmap = _heatmap(cursor, period=period, zone=calendar.time_zone)
            daily = _daily(cursor, period=period)
            authors = _active_authors(cursor)
        finally:
            cursor.execute("DROP TABLE IF EXISTS report_fact")
    return Dashboard(
        period=period,
        previous_period=previous,
        now=now,
        time_zone=calendar.time_zone,
        business_hours=calendar.describe(),
        sla_negative_minutes=settings.SLA_NEGATIVE_MINUTES,
        sla_default_minutes=settings.SLA_DEFAULT_MINUTES,
        current=figures.pop(("current", "all", None), (Figures(), ""))[0],
        previous=figures.pop(("previous", "all", None), (Figures(), ""))[0],
        groups=_breakdowns(figures),
        breaches=breaches,
        heatmap=heatmap,
        daily=daily,
        active_authors=authors,
        backlog=backlog(now=now),
        removed=removed_mention_totals(
            first_day=period.first_day,
            last_day=period.last_day,
            exclude_statuses=EXCLUDED_STATUSES,
        ),
        previous_removed=removed_mention_totals(
            first_day=previous.first_day,
            last_day=previous.last_day,
            exclude_statuses=EXCLUDED_STATUSES,
        ),
    )


def _tune_for_reports(cursor: Any) -> None:
    """For the rest of the transaction: no JIT, whose compiling of these one-off aggregates
    over hundreds of thousands of rows costs seconds and saves milliseconds, and room for
    their sorts in memory."""
    cursor.execute("SET LOCAL jit = off")
    cursor.execute("SET LOCAL work_mem = '64MB'")


_PERCENTILES = [0.5, 0.9]
# GROUPING(responder_id, keyword_id, platform, sentiment_label): a 1 bit per column left out.
_GROUPING_SETS = {15: "all", 7: "agent", 11: "keyword", 13: "platform", 14: "sentiment"}


def _durations_sql(column: str) -> str:
    """Median and p90 (as an array, one sort) and the mean, exact, to the microsecond."""
    name = column.removesuffix("_seconds")
    return (
        f"percentile_cont(%(percentiles)s::float8[]) WITHIN GROUP (ORDER BY {column}::float8)"
        f" AS {name}_p, round(avg({column}), 6) AS {name}_mean"
    )


def _durations(percentiles: list[float] | None, mean: Decimal | None) -> Durations:
    median, p90 = percentiles if percentiles is not None else (None, None)
    return Durations(
        median_seconds=median,
        p90_seconds=p90,
        mean_seconds=None if mean is None else float(mean),
    )


def _grouped_figures(cursor: Any) -> dict[tuple[str, str, str | None], tuple[Figures, str]]:
    """(period, dimension, key) -> (figures, label), for everyone and every group."""
    user_table = get_user_model()._meta.db_table
    # Counts over every mention, durations over those answered or resolved only: the
    # percentiles sort just the rows they need, and the counts need no sort at all.
    sets = "GROUPING SETS ((), (responder_id), (keyword_id), (platform), (sentiment_label))"
    keys = "responder_id, keyword_id, platform, sentiment_label"
    same_group = " AND ".join(
        f"t.{key} IS NOT DISTINCT FROM c.{key}" for key in ("grouping", *keys.split(", "))
    )
    cursor.execute(
        f"""
        WITH counted AS (
            SELECT period, GROUPING({keys}) AS grouping, {keys},
                   count(*) AS mentions, count(first_reply_at) AS answered,
                   count(resolved_at) AS resolved, count(*) FILTER (WHERE breached) AS breaches
              FROM report_fact
             GROUP BY period, {sets}
        ),
        timed AS (
            SELECT period, GROUPING({keys}) AS grouping, {keys},
                   {_durations_sql("first_response_seconds")},
                   {_durations_sql("first_response_business_seconds")},
                   {_durations_sql("resolution_seconds")},
                   {_durations_sql("resolution_business_seconds")}
              FROM report_fact
             WHERE first_reply_at IS NOT NULL OR resolved_at IS NOT NULL
             GROUP BY period, {sets}
        )
        SELECT c.period, c.grouping, c.responder_id, c.keyword_id, c.platform,
               c.sentiment_label, c.mentions, c.answered,
               t.first_response_p, t.first_response_mean,
               t.first_response_business_p, t.first_response_business_mean,
               c.resolved, t.resolution_p, t.resolution_mean,
               t.resolution_business_p, t.resolution_business_mean,
               c.breaches, u.username, k.query, b.name
          FROM counted AS c
          LEFT JOIN timed AS t ON t.period = c.period AND {same_group}
          LEFT JOIN {user_table} AS u ON u.id = c.responder_id
          LEFT JOIN {TrackedKeyword._meta.db_table} AS k ON k.id = c.keyword_id
          LEFT JOIN {Brand._meta.db_table} AS b ON b.id = k.brand_id
        """,
        {"percentiles": _PERCENTILES},
    )
    found = {}
    for row in cursor.fetchall():
        (period, grouping, responder, keyword_id, platform, sentiment, mentions, answered) = row[:8]
        frt, frt_mean, frtb, frtb_mean, resolved, res, res_mean, resb, resb_mean = row[8:17]
        breaches, username, query, brand_name = row[17:]
        dimension = _GROUPING_SETS[grouping]
        if dimension == "agent" and responder is None:
            continue  # the unanswered: no one to credit
        key, label = _group_key(
            dimension,
            responder=responder,
            username=username,
            keyword_id=keyword_id,
            keyword=f"{brand_name}: {query}" if query is not None else None,
            platform=platform,
            sentiment=sentiment,
        )
        found[(period, dimension, key)] = (
            Figures(
                mentions=mentions,
                answered=answered,
                first_response=_durations(frt, frt_mean),
                first_response_business=_durations(frtb, frtb_mean),
                resolved=resolved,
                resolution=_durations(res, res_mean),
                resolution_business=_durations(resb, resb_mean),
                sla_breaches=breaches,
            ),
            label,
        )
    return found


def _group_key(
    dimension: str,
    *,
    responder: int | None,
    username: str | None,
    keyword_id: int | None,
    keyword: str | None,
    platform: str | None,
    sentiment: str | None,
) -> tuple[str | None, str]:
    if dimension == "agent":
        return (username, username) if responder else (None, OUTSIDE_EARSHOT)
    if dimension == "keyword":
        return (str(keyword_id), keyword) if keyword_id is not None else (None, "(no keyword)")
    if dimension == "platform":
        return platform, _platform_label(platform)
    if dimension == "sentiment":
        return sentiment, _sentiment_label(sentiment)
    return None, "Everyone"


_SENTIMENT_ORDER = {label: n for n, label in enumerate(("negative", "neutral", "positive"))}


def _breakdowns(
    figures: dict[tuple[str, str, str | None], tuple[Figures, str]],
) -> dict[str, list[GroupFigures]]:
    """Each dimension's rows, current and previous side by side, in a stable order."""
    groups: dict[str, list[GroupFigures]] = {}
    for dimension in DIMENSIONS:
        keys = {key for (_, dim, key) in figures if dim == dimension}
        rows = []
        for key in keys:
            current, label = figures.get(("current", dimension, key), (Figures(), ""))
            previous, previous_label = figures.get(("previous", dimension, key), (Figures(), ""))
            rows.append(
                GroupFigures(
                    key=key, label=label or previous_label, current=current, previous=previous
                )
            )
        if dimension == "sentiment":
            rows.sort(key=lambda row: _SENTIMENT_ORDER.get(row.key or "", 9))
        else:
            # Outside Earshot (no key) after the agents; then by label.
            rows.sort(key=lambda row: (row.key is None, row.label.lower()))
        groups[dimension] = rows
    return groups


def _breaches(cursor: Any) -> list[Breach]:
    """The most overdue breaches of the current period (BREACHES_LISTED at most)."""
    cursor.execute(
        f"""
        SELECT f.mention_id, f.posted_at, f.platform, f.sentiment_label, a.username,
               f.sla_seconds, f.first_response_seconds, f.overdue_seconds
          FROM (
                SELECT * FROM report_fact
                 WHERE period = 'current' AND breached
                 ORDER BY overdue_seconds DESC, mention_id
                 LIMIT %(limit)s
               ) AS f
          JOIN {Author._meta.db_table} AS a ON a.id = f.author_id
         ORDER BY f.overdue_seconds DESC, f.mention_id
        """,
        {"limit": BREACHES_LISTED},
    )
    return [
        Breach(
            mention_id=mention_id,
            posted_at=posted_at,
            platform=platform,
            sentiment=sentiment,
            author=username,
            target_seconds=target,
            first_response_seconds=None if first is None else float(first),
            overdue_seconds=float(overdue),
        )
        for mention_id, posted_at, platform, sentiment, username, target, first, overdue in (
            cursor.fetchall()
        )
    ]


def _heatmap(cursor: Any, *, period: Period, zone: str) -> list[list[HourCell]]:
    """Seven rows (Monday first) of 24 hours: arrivals, their median first response, and
    the replies sent in that slot during the period."""
    cursor.execute(
        """
        SELECT arrival_weekday, arrival_hour, count(*), count(first_reply_at),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY first_response_seconds::float8)
          FROM report_fact
         WHERE period = 'current'
         GROUP BY arrival_weekday, arrival_hour
        """
    )
    arrivals = {(weekday, hour): rest for weekday, hour, *rest in cursor.fetchall()}
    cursor.execute(
        f"""
        SELECT EXTRACT(ISODOW FROM posted_at AT TIME ZONE %(zone)s)::int,
               EXTRACT(HOUR FROM posted_at AT TIME ZONE %(zone)s)::int, count(*)
          FROM {Reply._meta.db_table}
         WHERE status = %(sent)s AND posted_at >= %(starts_at)s AND posted_at < %(ends_at)s
         GROUP BY 1, 2
        """,
        {
            "zone": zone,
            "sent": str(ReplyStatus.SENT),
            "starts_at": period.starts_at,
            "ends_at": period.ends_at,
        },
    )
    sent = {(weekday, hour): count for weekday, hour, count in cursor.fetchall()}
    grid = []
    for weekday in range(1, 8):
        row = []
        for hour in range(24):
            count, answered, median = arrivals.get((weekday, hour), (0, 0, None))
            row.append(
                HourCell(
                    weekday=weekday,
                    hour=hour,
                    arrivals=count,
                    answered=answered,
                    median_first_response_seconds=median,
                    replies_sent=sent.get((weekday, hour), 0),
                )
            )
        grid.append(row)
    return grid


def _daily(cursor: Any, *, period: Period) -> list[DaySentiment]:
    """Every day of the period, with its mentions by sentiment (zero days included)."""
    cursor.execute(
        """
        SELECT arrival_day,
               count(*) FILTER (WHERE sentiment_label = %(positive)s),
               count(*) FILTER (WHERE sentiment_label = %(neutral)s),
               count(*) FILTER (WHERE sentiment_label = %(negative)s)
          FROM report_fact
         WHERE period = 'current'
         GROUP BY arrival_day
        """,
        {
            "positive": str(SentimentLabel.POSITIVE),
            "neutral": str(SentimentLabel.NEUTRAL),
            "negative": str(SentimentLabel.NEGATIVE),
        },
    )
    counts = {day: rest for day, *rest in cursor.fetchall()}
    days = []
    for offset in range(period.days):
        day = period.first_day + timedelta(days=offset)
        positive, neutral, negative = counts.get(day, (0, 0, 0))
        days.append(DaySentiment(day=day, positive=positive, neutral=neutral, negative=negative))
    return days


def _active_authors(cursor: Any) -> list[ActiveAuthor]:
    cursor.execute(
        f"""
        SELECT f.author_id, a.username, a.platform, f.mentions, f.negative, f.answered
          FROM (
                SELECT author_id, count(*) AS mentions,
                       count(*) FILTER (WHERE sentiment_label = %(negative)s) AS negative,
                       count(first_reply_at) AS answered
                  FROM report_fact
                 WHERE period = 'current'
                 GROUP BY author_id
                 ORDER BY count(*) DESC, author_id
                 LIMIT %(limit)s
               ) AS f
          JOIN {Author._meta.db_table} AS a ON a.id = f.author_id
         ORDER BY f.mentions DESC, f.author_id
        """,
        {"negative": str(SentimentLabel.NEGATIVE), "limit": ACTIVE_AUTHORS_LISTED},
    )
    return [ActiveAuthor(*row) for row in cursor.fetchall()]


def backlog(*, now: datetime | None = None) -> Backlog:
    """The open mentions now and how long the oldest has waited (clock and business time)."""
    now = now or timezone.now().replace(microsecond=0)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*), min(posted_at) FROM {Mention._meta.db_table} "
            "WHERE status = ANY(%(open)s)",
            {"open": [str(status) for status in OPEN_STATUSES]},
        )
        count, oldest = cursor.fetchone()
    if oldest is None:
        return Backlog(open=0, oldest_posted_at=None, oldest_age_seconds=None,
                       oldest_age_business_seconds=None)  # fmt: skip
    (business,) = business_seconds(spans=[(oldest, now)])
    return Backlog(
        open=count,
        oldest_posted_at=oldest,
        oldest_age_seconds=(now - oldest).total_seconds(),
        oldest_age_business_seconds=float(business),
    )


# --- the CSV export ------------------------------------------------------------------

CSV_COLUMNS = (
    "mention_id",
    "platform",
    "external_id",
    "brand",
    "keyword",
    "author",
    "posted_at",
    "sentiment",
    "status",
    "first_reply_at",
    "first_reply_by",
    "first_reply_origin",
    "first_response_seconds",
    "first_response_business_seconds",
    "resolved_at",
    "resolution_seconds",
    "resolution_business_seconds",
    "sla_target_seconds",
    "sla_breached",
    "claimed_at",
    "claimed_by",
    "released_at",
)
CSV_CHUNK = 2000


def mention_rows(*, period: Period, now: datetime | None = None) -> Iterator[list[str]]:
    """The CSV export: a header, then one row per mention of the period, oldest first.

    Streams from a server-side cursor, so memory stays flat however long the period. Times
    are ISO 8601 in UTC; durations are seconds exact to the microsecond; empty means none.
    """
    now = now or timezone.now().replace(microsecond=0)
    calendar = business_calendar()
    facts, params = _facts_sql(
        calendar,
        starts_at=period.starts_at,
        ends_at=period.ends_at,
        current_from=period.starts_at,
        now=now,
    )
    user_table = get_user_model()._meta.db_table
    sql = f"""
        SELECT f.mention_id, f.platform, m.external_id, b.name, k.query, a.username,
               f.posted_at, f.sentiment_label, f.status, f.first_reply_at,
               CASE WHEN f.responder_id = 0 THEN %(outside)s ELSE responder.username END,
               f.first_reply_origin, f.first_response_seconds,
               f.first_response_business_seconds, f.resolved_at, f.resolution_seconds,
               f.resolution_business_seconds, f.sla_seconds, f.breached, f.claimed_at,
               holder.username, m.released_at
          FROM ({facts}) AS f
          JOIN {Mention._meta.db_table} AS m ON m.id = f.mention_id
          JOIN {Brand._meta.db_table} AS b ON b.id = m.brand_id
          JOIN {Author._meta.db_table} AS a ON a.id = f.author_id
          LEFT JOIN {TrackedKeyword._meta.db_table} AS k ON k.id = f.keyword_id
          LEFT JOIN {user_table} AS responder ON responder.id = f.responder_id
          LEFT JOIN {user_table} AS holder ON holder.id = f.claimed_by_id
         ORDER BY f.posted_at, f.mention_id
    """
    params["outside"] = OUTSIDE_EARSHOT
    yield list(CSV_COLUMNS)
    # One transaction while the rows stream: the server-side cursor lives in it.
    with transaction.atomic():
        with connection.cursor() as settings_cursor:
            _tune_for_reports(settings_cursor)
        with connection.chunked_cursor() as cursor:
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(CSV_CHUNK):
                for row in rows:
                    yield [_csv_cell(value) for value in row]


# A spreadsheet runs a cell that starts with one of these as a formula ("@NorthwindHelp" is a
# keyword, "-from:spam" a query): such text gets a leading apostrophe, as OWASP advises.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return str(value)
