"""The weekly digest: last week's figures beside the week before's, e-mailed to supervisors.

A week runs Monday 00:00 to Monday 00:00 in the business time zone, as the report's days do.
The response figures (mentions, answered, response rate, median first response, SLA
breaches) are the report's own, from `responses.services.analytics.dashboard`, so the digest
and `/report/` always agree; what the report has no figure for (negative mentions, and per
keyword) is counted here on the same mentions.

The digest is an Alert of kind DIGEST keyed by its week, so a week's digest is made and sent
once however often beat or `manage.py send_digest` asks; it is delivered through the alerts'
outbox, so a mail server that is down is tried again later like any alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, QuerySet
from django.template.loader import render_to_string
from django.urls import reverse

from listening.models import Mention, SentimentLabel, TrackedKeyword
from responses.models import Alert, AlertDelivery, AlertKind
from responses.services.alerts import alert_recipients, alert_store
from responses.services.analytics import (
    EXCLUDED_STATUSES,
    Figures,
    Period,
    business_calendar,
    dashboard,
    report_period,
)

TOP_NEGATIVE_KEYWORDS = 5


class DigestHasNoRecipients(Exception):
    pass


def week_of(day: date) -> Period:
    """Monday to Sunday of the week holding `day`, in the business time zone."""
    monday = day - timedelta(days=day.weekday())
    return report_period(since=monday, until=monday + timedelta(days=6))


def last_week(now: datetime) -> Period:
    """The last whole week before `now`."""
    today = now.astimezone(ZoneInfo(business_calendar().time_zone)).date()
    return week_of(today - timedelta(days=7))


@dataclass(frozen=True, slots=True)
class WeekFigures:
    period: Period
    # Mentions posted in the week, as the report counts them (no history, no spam).
    mentions: int
    negative: int
    answered: int
    response_rate: float | None
    median_first_response: timedelta | None
    # Mentions of the week answered later than their SLA target, or still waiting past it.
    sla_breaches: int


@dataclass(frozen=True, slots=True)
class KeywordTrend:
    keyword_id: int
    label: str
    negative: int
    negative_before: int


@dataclass(frozen=True, slots=True)
class DigestRow:
    label: str
    value: str
    before: str
    change: str


@dataclass(frozen=True, slots=True)
class Digest:
    week: WeekFigures
    previous: WeekFigures
    top_negative_keywords: list[KeywordTrend]

    @property
    def rows(self) -> list[DigestRow]:
        week, before = self.week, self.previous
        return [
            DigestRow("Mentions", str(week.mentions), str(before.mentions),
                      count_change(week.mentions, before.mentions)),
            DigestRow("Negative mentions", str(week.negative), str(before.negative),
                      count_change(week.negative, before.negative)),
            DigestRow("Answered", str(week.answered), str(before.answered),
                      count_change(week.answered, before.answered)),
            DigestRow("Response rate", percent(week.response_rate),
                      percent(before.response_rate),
                      rate_change(week.response_rate, before.response_rate)),
            DigestRow("Median first response", duration(week.median_first_response),
                      duration(before.median_first_response),
                      time_change(week.median_first_response, before.median_first_response)),
            DigestRow("SLA breaches", str(week.sla_breaches), str(before.sla_breaches),
                      count_change(week.sla_breaches, before.sla_breaches)),
        ]  # fmt: skip


# --- formatting ---------------------------------------------------------------------------


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:.0%}"


def duration(value: timedelta | None) -> str:
    if value is None:
        return "—"
    seconds = int(round(value.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60:02d}"


def count_change(now: int, before: int) -> str:
    if now == before:
        return "no change"
    difference = f"{now - before:+d}".replace("-", "−")
    if not before:
        return difference
    return f"{difference} ({(now - before) / before:+.0%})".replace("-", "−")


def rate_change(now: float | None, before: float | None) -> str:
    if now is None or before is None:
        return "—"
    points = round((now - before) * 100)
    return "no change" if points == 0 else f"{points:+d} pts".replace("-", "−")


def time_change(now: timedelta | None, before: timedelta | None) -> str:
    if now is None or before is None:
        return "—"
    if now == before:
        return "no change"
    faster = now < before
    return f"{duration(abs(now - before))} {'faster' if faster else 'slower'}"


# --- figures ------------------------------------------------------------------------------


def _mentions_of(period: Period) -> QuerySet[Mention]:
    return Mention.objects.filter(
        posted_at__gte=period.starts_at, posted_at__lt=period.ends_at
    ).exclude(status__in=EXCLUDED_STATUSES)


def _week(period: Period, figures: Figures) -> WeekFigures:
    negative = _mentions_of(period).filter(sentiment_label=SentimentLabel.NEGATIVE).count()
    return WeekFigures(
        period=period,
        mentions=figures.mentions,
        negative=negative,
        answered=figures.answered,
        response_rate=figures.response_rate,
        median_first_response=figures.first_response.median,
        sla_breaches=figures.sla_breaches,
    )


def _negative_by_keyword(period: Period):
    return (
        _mentions_of(period)
        .filter(sentiment_label=SentimentLabel.NEGATIVE, keyword__isnull=False)
        .values("keyword_id")
        .annotate(negative=Count("id"))
    )


def top_negative_keywords(
    *, period: Period, limit: int = TOP_NEGATIVE_KEYWORDS
) -> list[KeywordTrend]:
    """The keywords with the most negative mentions in the period, with their count in the
    period before."""
    top = list(_negative_by_keyword(period).order_by("-negative", "keyword_id")[:limit])
    ids = [row["keyword_id"] for row in top]
    before = {
        row["keyword_id"]: row["negative"]
        for row in _negative_by_keyword(period.previous).filter(keyword_id__in=ids)
    }
    keywords = TrackedKeyword.objects.select_related("brand").in_bulk(ids)
    return [
        KeywordTrend(
            keyword_id=row["keyword_id"],
            label=f"{keywords[row['keyword_id']].query} ({keywords[row['keyword_id']].brand.name})",
            negative=row["negative"],
            negative_before=before.get(row["keyword_id"], 0),
        )
        for row in top
    ]


def digest_figures(*, period: Period, now: datetime | None = None) -> Digest:
    """The period beside the one before it (the report's figures, plus negative mentions)."""
    report = dashboard(period=period, now=now)
    return Digest(
        week=_week(period, report.current),
        previous=_week(report.previous_period, report.previous),
        top_negative_keywords=top_negative_keywords(period=period),
    )


def digest_text(digest: Digest) -> str:
    link = f"{settings.SITE_URL}{reverse('responses:report')}" if settings.SITE_URL else ""
    return render_to_string(
        "emails/digest.txt",
        {
            "digest": digest,
            "rows": digest.rows,
            "keywords": [
                (trend, count_change(trend.negative, trend.negative_before))
                for trend in digest.top_negative_keywords
            ],
            "link": link,
            "time_zone": business_calendar().time_zone,
        },
    )


@dataclass(frozen=True, slots=True)
class DigestResult:
    alert: Alert
    # False: this week's digest had been made before; nothing new was stored.
    created: bool
    deliveries: list[AlertDelivery]


def digest_create(*, period: Period) -> DigestResult:
    """Make the digest of the week and queue it for the supervisors, once.

    A second call for the same week returns the digest made the first time (figures as they
    were then) and queues nothing. Raises DigestHasNoRecipients, making nothing, when no
    supervisor or admin has an e-mail address.
    """
    key = f"digest:{period.first_day.isoformat()}"
    existing = Alert.objects.filter(key=key).first()
    if existing is not None:
        return DigestResult(alert=existing, created=False, deliveries=[])
    if not alert_recipients(kind=AlertKind.DIGEST):
        # Not made at all, so that it is made (and sent) once someone can receive it.
        raise DigestHasNoRecipients(
            "No one to send the digest to: give the supervisors an e-mail address."
        )
    digest = digest_figures(period=period)
    alert = Alert(
        kind=AlertKind.DIGEST,
        key=key,
        subject=f"Earshot weekly digest, {period.first_day:%-d %b} – {period.last_day:%-d %b %Y}",
        message=digest_text(digest),
        details={
            "mentions": digest.week.mentions,
            "negative": digest.week.negative,
            "answered": digest.week.answered,
            "sla_breaches": digest.week.sla_breaches,
        },
    )
    try:
        with transaction.atomic():
            deliveries = alert_store(alert=alert)
    except IntegrityError:
        # Made at the same moment by another run (beat and the command): theirs stands.
        return DigestResult(alert=Alert.objects.get(key=key), created=False, deliveries=[])
    return DigestResult(alert=alert, created=True, deliveries=deliveries)
