"""Reads shared by the queue, the mention page and the supervisor report."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import QuerySet

from listening.models import OPEN_STATUSES, Mention
from responses.models import Reply, ReplyStatus

QUEUE_PAGE_SIZE = 50
QUEUE_ORDERS = {
    "priority": ("urgency_at", "id"),
    "newest": ("-posted_at", "-id"),
    "oldest": ("posted_at", "id"),
}


def queue_mentions(
    *, status: str = "", sentiment: str = "", keyword_id: int | None = None, order: str = ""
) -> QuerySet[Mention]:
    """The triage queue, most urgent first unless `order` says newest or oldest.

    No status filter means the open ones (new, claimed).
    """
    mentions = Mention.objects.select_related("author", "keyword", "claimed_by", "brand")
    mentions = (
        mentions.filter(status=status) if status else mentions.filter(status__in=OPEN_STATUSES)
    )
    if sentiment:
        mentions = mentions.filter(sentiment_label=sentiment)
    if keyword_id:
        mentions = mentions.filter(keyword_id=keyword_id)
    return mentions.order_by(*QUEUE_ORDERS.get(order, QUEUE_ORDERS["priority"]))


def queue_state(mentions: QuerySet[Mention], *, now: datetime) -> str:
    """A fingerprint of what a queue page shows, for the every-2-seconds "changed?" poll.

    One narrow, indexed query over the page's rows (no joins, no rendering). It changes when
    a row enters, leaves, moves or changes hands, and each minute, as waiting times move on.
    Computed from the rows themselves, it cannot miss a change that committed late.
    """
    rows = list(mentions.values_list("pk", "status", "claimed_by_id", "claim_expires_at"))
    digest = hashlib.blake2b(repr(rows).encode(), digest_size=12).hexdigest()
    return f"{digest}-{int(now.timestamp() // 60)}"


def sla_target(mention: Mention) -> timedelta:
    minutes = settings.SLA_NEGATIVE_MINUTES if mention.is_negative else settings.SLA_DEFAULT_MINUTES
    return timedelta(minutes=minutes)


def _duration(value: timedelta) -> str:
    minutes = max(int(value.total_seconds() // 60), 0)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d}"


def waiting_reason(mention: Mention, *, now: datetime) -> str:
    """'waiting 34 min of a 30 min target': the part of priority that grows by the minute."""
    waited, target = now - mention.posted_at, sla_target(mention)
    return f"waiting {_duration(waited)} of a {_duration(target)} target"


def priority_explained(mention: Mention, *, now: datetime) -> str:
    """Why a mention sits where it does in the queue, as the agent reads it."""
    return " · ".join([*mention.priority_reasons, waiting_reason(mention, now=now)])


def mention_replies(*, mention: Mention) -> QuerySet[Reply]:
    return Reply.objects.filter(mention=mention).select_related("agent").order_by("created_at")


@dataclass(frozen=True, slots=True)
class ResponseTimes:
    """First-response figures for one group of mentions (everyone, or one agent)."""

    label: str
    answered: int
    median: timedelta | None
    p90: timedelta | None


@dataclass(frozen=True, slots=True)
class ResponseReport:
    since: datetime
    until: datetime
    mentions: int
    overall: ResponseTimes
    per_agent: list[ResponseTimes]

    @property
    def response_rate(self) -> float | None:
        return self.overall.answered / self.mentions if self.mentions else None


# First response: the earliest sent reply of each mention posted in the period; its time is
# the reply's platform time minus the mention's platform time. Computed in PostgreSQL.
_FIRST_RESPONSES = """
    WITH first_reply AS (
        SELECT DISTINCT ON (r.mention_id)
               r.mention_id, r.agent_id,
               EXTRACT(EPOCH FROM (r.posted_at - m.posted_at)) AS seconds
          FROM responses_reply r
          JOIN listening_mention m ON m.id = r.mention_id
         WHERE r.status = %(sent)s AND m.posted_at >= %(since)s AND m.posted_at < %(until)s
         ORDER BY r.mention_id, r.posted_at, r.id
    )
    SELECT {group_key},
           COUNT(*),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds),
           percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds)
      FROM first_reply f
      {join}
     GROUP BY {group_key}
     ORDER BY {group_key}
"""


def _seconds(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=float(value))


def response_report(*, since: datetime, until: datetime) -> ResponseReport:
    """First response times for mentions posted in [since, until), overall and per agent."""
    params = {"sent": ReplyStatus.SENT, "since": since, "until": until}
    with connection.cursor() as cursor:
        cursor.execute(_FIRST_RESPONSES.format(group_key="1", join=""), params)
        row = cursor.fetchone()
        overall = ResponseTimes(
            label="Everyone",
            answered=row[1] if row else 0,
            median=_seconds(row[2]) if row else None,
            p90=_seconds(row[3]) if row else None,
        )
        cursor.execute(
            _FIRST_RESPONSES.format(
                group_key="u.username",
                join=f"JOIN {get_user_model()._meta.db_table} u ON u.id = f.agent_id",
            ),
            params,
        )
        per_agent = [
            ResponseTimes(label=username, answered=count, median=_seconds(p50), p90=_seconds(p90))
            for username, count, p50, p90 in cursor.fetchall()
        ]
    total = Mention.objects.filter(posted_at__gte=since, posted_at__lt=until).count()
    return ResponseReport(
        since=since, until=until, mentions=total, overall=overall, per_agent=per_agent
    )
