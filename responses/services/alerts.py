"""Alerts: negative spikes per keyword, mentions waiting past their SLA target, and delivery.

Detection (`alerts_detect`) runs every minute from beat. It works in one transaction under
an advisory lock, so two runs at once (a redelivered task, two beats) take turns and the
second finds the first one's alerts: a mention breaches once (a unique key), and a spike seen
again within the cooldown is counted on the alert already sent.

Each alert that is not suppressed gets one AlertDelivery row per configured channel (e-mail,
webhook) in the same transaction. `alert_delivery_send` claims a row by a conditional UPDATE
and sends it; a failure is recorded on the row, logged, and tried again later with backoff.
Delivery is at least once: a worker killed after the webhook took the message but before the
row says so sends it again once its claim lapses (only the receiver could tell otherwise).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from config.roles import ADMIN, SUPERVISOR
from listening.models import OPEN_STATUSES, Mention, SentimentLabel, TrackedKeyword
from responses.models import (
    Alert,
    AlertChannel,
    AlertDelivery,
    AlertDeliveryStatus,
    AlertKind,
)
from responses.selectors import sla_target, waiting_reason

logger = logging.getLogger(__name__)

# Any constant will do, as long as nothing else takes this advisory lock.
_DETECTION_LOCK = 0x45415253  # "EARS"
# Breaches turned into alerts per run; a backlog (alerts switched on over a late queue) is
# worked through over the next runs instead of in one long transaction.
SLA_BREACHES_PER_RUN = 500
# Attempts before a delivery is given up; the waits between them double up to an hour.
DELIVERY_MAX_ATTEMPTS = 8
_RETRY_FIRST_WAIT = timedelta(minutes=1)
_RETRY_LONGEST_WAIT = timedelta(hours=1)


class DeliveryFailed(Exception):
    """A channel refused or never took the message; the reason is in the channel's words."""


# --- spikes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeywordSpike:
    """A keyword's negative mentions in the current window against its own usual count."""

    keyword_id: int
    count: int
    # How many earlier windows of the same length make the baseline (0: no history yet).
    baseline_windows: int
    mean: float
    stddev: float

    @property
    def spread(self) -> float:
        # Counts are noisy even when steady: a Poisson count varies by sqrt(mean), and by at
        # least one mention, so a perfectly steady or a silent history does not make every
        # extra mention a spike.
        return max(self.stddev, math.sqrt(self.mean), 1.0)

    @property
    def z(self) -> float:
        return (self.count - self.mean) / self.spread

    def is_spike(self, *, min_windows: int) -> bool:
        return (
            self.baseline_windows >= max(min_windows, 1)
            and self.count >= settings.ALERT_SPIKE_MIN_COUNT
            and self.z >= settings.ALERT_SPIKE_MIN_Z
        )


# Windows are counted back from the current one's start: window i of the baseline covers
# [start - (i+1)·W, start - i·W). A keyword's baseline begins when it began listening (or
# BASELINE_DAYS ago, whichever is later), in whole windows; windows without a negative
# mention count as zeros, which is why the mean and variance come from sums over the
# number of windows rather than from AVG over the rows.
_SPIKE_STATS = """
    WITH spans AS (
        SELECT k.id AS keyword_id,
               GREATEST(FLOOR(EXTRACT(EPOCH FROM (
                   %(window_start)s - GREATEST(k.created_at, %(baseline_start)s)
               )) / %(window_seconds)s), 0)::int AS windows
          FROM listening_trackedkeyword k
         WHERE k.is_active {only_keywords}
    ), per_window AS (
        SELECT m.keyword_id,
               FLOOR(EXTRACT(EPOCH FROM (%(window_start)s - m.posted_at))
                     / %(window_seconds)s)::int AS window_index,
               COUNT(*) AS n
          FROM listening_mention m
          JOIN spans s ON s.keyword_id = m.keyword_id
         WHERE m.sentiment_label = %(negative)s
           AND m.posted_at >= %(baseline_start)s AND m.posted_at < %(window_start)s
         GROUP BY 1, 2
    ), baseline AS (
        SELECT p.keyword_id, SUM(p.n)::float8 AS total, SUM(p.n * p.n)::float8 AS total_sq
          FROM per_window p
          JOIN spans s ON s.keyword_id = p.keyword_id
         WHERE p.window_index < s.windows
         GROUP BY p.keyword_id
    ), current_window AS (
        SELECT m.keyword_id, COUNT(*) AS n
          FROM listening_mention m
          JOIN spans s ON s.keyword_id = m.keyword_id
         WHERE m.sentiment_label = %(negative)s
           AND m.posted_at >= %(window_start)s AND m.posted_at < %(now)s
         GROUP BY 1
    )
    SELECT s.keyword_id, COALESCE(c.n, 0), s.windows,
           CASE WHEN s.windows > 0 THEN COALESCE(b.total, 0) / s.windows ELSE 0 END,
           CASE WHEN s.windows > 0
                THEN SQRT(GREATEST(COALESCE(b.total_sq, 0) / s.windows
                                   - POWER(COALESCE(b.total, 0) / s.windows, 2), 0))
                ELSE 0 END
      FROM spans s
      LEFT JOIN current_window c ON c.keyword_id = s.keyword_id
      LEFT JOIN baseline b ON b.keyword_id = s.keyword_id
     ORDER BY s.keyword_id
"""


def _spike_window() -> timedelta:
    return timedelta(minutes=settings.ALERT_SPIKE_WINDOW_MINUTES)


def keyword_spike_stats(
    *, now: datetime, keyword_ids: list[int] | None = None
) -> dict[int, KeywordSpike]:
    """Each active keyword's negative mentions in [now - window, now) and its baseline.

    One query, aggregated in PostgreSQL; `keyword_ids` limits it to those keywords.
    """
    window = _spike_window()
    window_start = now - window
    params = {
        "now": now,
        "window_start": window_start,
        "baseline_start": window_start - timedelta(days=settings.ALERT_SPIKE_BASELINE_DAYS),
        "window_seconds": window.total_seconds(),
        "negative": SentimentLabel.NEGATIVE,
        "keyword_ids": list(keyword_ids or []),
    }
    only = "AND k.id = ANY(%(keyword_ids)s)" if keyword_ids is not None else ""
    with connection.cursor() as cursor:
        cursor.execute(_SPIKE_STATS.format(only_keywords=only), params)
        return {
            keyword_id: KeywordSpike(
                keyword_id=keyword_id,
                count=count,
                baseline_windows=windows,
                mean=float(mean),
                stddev=float(stddev),
            )
            for keyword_id, count, windows, mean, stddev in cursor.fetchall()
        }


def _min_history_windows() -> int:
    history = timedelta(hours=settings.ALERT_SPIKE_MIN_HISTORY_HOURS)
    return math.ceil(history / _spike_window())


def spikes_detect(*, now: datetime) -> list[KeywordSpike]:
    """The keywords whose negative mentions spike now, by the settings' thresholds."""
    min_windows = _min_history_windows()
    return [
        spike
        for spike in keyword_spike_stats(now=now).values()
        if spike.is_spike(min_windows=min_windows)
    ]


# --- messages -----------------------------------------------------------------------------


def _link(path: str) -> str:
    return f"{settings.SITE_URL}{path}" if settings.SITE_URL else ""


def _subject(text: str) -> str:
    """One line that fits Alert.subject (a keyword's query may be 512 characters long)."""
    line = " ".join(text.split())
    limit = Alert._meta.get_field("subject").max_length
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _keyword_label(keyword: TrackedKeyword) -> str:
    return f"{keyword.query} ({keyword.brand.name}, {keyword.get_platform_display()})"


def _spike_alert(keyword: TrackedKeyword, spike: KeywordSpike, *, now: datetime) -> Alert:
    minutes = settings.ALERT_SPIKE_WINDOW_MINUTES
    message = (
        f"{spike.count} negative mentions of {_keyword_label(keyword)} in the last {minutes} min; "
        f"usually {spike.mean:.1f} (± {spike.stddev:.1f}) per {minutes} min over the last "
        f"{settings.ALERT_SPIKE_BASELINE_DAYS} days. z = {spike.z:.1f}."
    )
    link = _link(
        reverse("responses:queue")
        + "?"
        + urlencode({"keyword": keyword.pk, "sentiment": SentimentLabel.NEGATIVE})
    )
    return Alert(
        kind=AlertKind.SPIKE,
        keyword=keyword,
        subject=_subject(f"Negative spike: {spike.count} in {minutes} min on {keyword.query}"),
        message=f"{message}\n{link}" if link else message,
        details={
            "count": spike.count,
            "mean": round(spike.mean, 3),
            "stddev": round(spike.stddev, 3),
            "z": round(spike.z, 2),
            "window_minutes": minutes,
            "baseline_windows": spike.baseline_windows,
        },
        created_at=now,
    )


def _breach_alert(mention: Mention, *, now: datetime) -> Alert:
    sentiment = "negative " if mention.is_negative else ""
    where = f" for {mention.keyword.query}" if mention.keyword else ""
    text = mention.text if len(mention.text) <= 140 else mention.text[:139] + "…"
    message = (
        f"@{mention.author.username}'s {sentiment}mention on {mention.get_platform_display()}"
        f"{where} ({mention.brand.name}) is {waiting_reason(mention, now=now)}, "
        f"still {mention.get_status_display().lower()}: “{text}”"
    )
    link = _link(reverse("responses:mention", args=[mention.pk]))
    return Alert(
        kind=AlertKind.SLA_BREACH,
        key=f"sla:{mention.pk}",
        keyword=mention.keyword,
        mention=mention,
        subject=_subject(
            f"Past its SLA target: @{mention.author.username} on {mention.get_platform_display()}"
        ),
        message=f"{message}\n{link}" if link else message,
        details={
            "waited_minutes": int((now - mention.posted_at).total_seconds() // 60),
            "target_minutes": int(sla_target(mention).total_seconds() // 60),
        },
        created_at=now,
    )


# --- detection, cooldown, outbox ----------------------------------------------------------


def _configured_channels(kind: str) -> list[str]:
    channels = []
    if alert_recipients(kind=kind):
        channels.append(AlertChannel.EMAIL)
    if settings.ALERT_WEBHOOK_URL and kind != AlertKind.DIGEST:
        channels.append(AlertChannel.WEBHOOK)
    return channels


def supervisor_emails() -> list[str]:
    """The e-mail addresses of every active supervisor and admin (superusers included)."""
    return list(
        get_user_model()
        .objects.filter(is_active=True)
        .filter(Q(is_superuser=True) | Q(groups__name__in=(SUPERVISOR, ADMIN)))
        .exclude(email="")
        .order_by("email")
        .values_list("email", flat=True)
        .distinct()
    )


def alert_recipients(*, kind: str) -> list[str]:
    """Who gets an alert of this kind by e-mail: ALERT_EMAILS, else the supervisors; the
    weekly digest always goes to the supervisors."""
    if kind != AlertKind.DIGEST and settings.ALERT_EMAILS:
        return list(settings.ALERT_EMAILS)
    return supervisor_emails()


def alert_store(*, alert: Alert) -> list[AlertDelivery]:
    """Save a new alert with one pending delivery per configured channel (call inside a
    transaction). An alert with nowhere to go is kept and the reason logged."""
    alert.save()
    channels = _configured_channels(alert.kind)
    if not channels:
        logger.warning(
            "alert %s (%s) has nowhere to go: set ALERT_EMAILS or ALERT_WEBHOOK_URL, or give "
            "a supervisor an e-mail address",
            alert.pk,
            alert.subject,
        )
    return AlertDelivery.objects.bulk_create(
        [AlertDelivery(alert=alert, channel=channel, next_attempt_at=alert.created_at)
         for channel in channels]
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class DetectionResult:
    # New alerts to send, with their deliveries.
    sent: list[Alert]
    deliveries: list[AlertDelivery]
    # Alerts counted on an earlier alert's cooldown instead of sent.
    suppressed: int


class _DetectionRun:
    """One detection run's alerts: each is stored and sent, or, when an alert of the same
    kind and keyword went out within the cooldown, counted on that one.

    The last alert sent per (kind, keyword) is looked up once per run; held-back alerts and
    their counts are written together at the end, so a backlog of breaches costs a few
    statements, not two per breach.
    """

    def __init__(self, *, now: datetime) -> None:
        self.since = now - timedelta(minutes=settings.ALERT_COOLDOWN_MINUTES)
        self.cooling = settings.ALERT_COOLDOWN_MINUTES > 0
        self.sent: list[Alert] = []
        self.deliveries: list[AlertDelivery] = []
        self._last_sent: dict[tuple[str, int | None], int | None] = {}
        self._held_back: list[Alert] = []
        self._held_back_on: Counter[int] = Counter()

    def _covering_alert_id(self, kind: str, keyword_id: int | None) -> int | None:
        if not self.cooling:
            return None
        pair = (kind, keyword_id)
        if pair not in self._last_sent:
            self._last_sent[pair] = (
                Alert.objects.filter(
                    kind=kind, keyword_id=keyword_id, suppressed=False, created_at__gt=self.since
                )
                .order_by("-created_at", "-id")
                .values_list("pk", flat=True)
                .first()
            )
        return self._last_sent[pair]

    def raise_alert(self, alert: Alert) -> None:
        covering = self._covering_alert_id(alert.kind, alert.keyword_id)
        if covering is not None:
            self._held_back_on[covering] += 1
            if alert.key:  # e.g. a breach: stored, so the mention never raises one again
                alert.suppressed = True
                self._held_back.append(alert)
            return
        self.deliveries.extend(alert_store(alert=alert))
        self._last_sent[(alert.kind, alert.keyword_id)] = alert.pk
        self.sent.append(alert)

    def finish(self) -> DetectionResult:
        Alert.objects.bulk_create(self._held_back)
        for alert_id, held_back in self._held_back_on.items():
            Alert.objects.filter(pk=alert_id).update(
                suppressed_count=F("suppressed_count") + held_back
            )
        return DetectionResult(
            sent=self.sent,
            deliveries=self.deliveries,
            suppressed=sum(self._held_back_on.values()),
        )


def sla_breaches_pending(*, now: datetime) -> QuerySet[Mention]:
    """Open mentions past their SLA target that have no alert yet, longest-waiting first."""
    negative_due = now - timedelta(minutes=settings.SLA_NEGATIVE_MINUTES)
    default_due = now - timedelta(minutes=settings.SLA_DEFAULT_MINUTES)
    late = Q(sentiment_label=SentimentLabel.NEGATIVE, posted_at__lt=negative_due) | (
        ~Q(sentiment_label=SentimentLabel.NEGATIVE) & Q(posted_at__lt=default_due)
    )
    return (
        Mention.objects.filter(late, status__in=OPEN_STATUSES)
        .exclude(alerts__kind=AlertKind.SLA_BREACH)
        .select_related("author", "brand", "keyword")
        .order_by("posted_at", "id")
    )


def alerts_detect(*, now: datetime | None = None) -> DetectionResult:
    """Turn the spikes and SLA breaches of this moment into alerts. Safe to run twice.

    Each spiking keyword and each newly breached mention raises an alert, unless an alert of
    the same kind and keyword was sent within ALERT_COOLDOWN_MINUTES: then it is counted on
    that one (a breach is also stored, suppressed, so it is never raised again). A mention
    breaches once, ever. Sends nothing itself: the returned deliveries are pending rows for
    `alert_delivery_send`.
    """
    now = now or timezone.now()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_DETECTION_LOCK])
            # Compiling these short aggregates costs more than it saves (measured: a fifth
            # of the spike query on a desk of a million mentions).
            cursor.execute("SET LOCAL jit = off")
        run = _DetectionRun(now=now)
        spikes = spikes_detect(now=now)
        keywords = TrackedKeyword.objects.select_related("brand").in_bulk(
            [spike.keyword_id for spike in spikes]
        )
        for spike in spikes:
            keyword = keywords.get(spike.keyword_id)
            if keyword is not None:  # else deleted since it was counted
                run.raise_alert(_spike_alert(keyword, spike, now=now))
        for mention in sla_breaches_pending(now=now)[:SLA_BREACHES_PER_RUN]:
            run.raise_alert(_breach_alert(mention, now=now))
        result = run.finish()
    for alert in result.sent:
        logger.info("alert %s raised: %s", alert.pk, alert.subject)
    return result


# --- delivery -----------------------------------------------------------------------------


def _due(now: datetime) -> Q:
    # Pending, failed and waiting for its next attempt, or claimed by a worker that died.
    return ~Q(status=AlertDeliveryStatus.SENT) & Q(next_attempt_at__lte=now)


def alert_deliveries_due(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Ids of the deliveries to attempt now, oldest first (read only: sending claims)."""
    now = now or timezone.now()
    return list(
        AlertDelivery.objects.filter(_due(now))
        .order_by("next_attempt_at", "id")
        .values_list("pk", flat=True)[:limit]
    )


def _claim_length() -> timedelta:
    # No delivery task outlives Celery's hard time limit: past it, the claim is stale.
    return timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 30)


def _retry_wait(attempts: int) -> timedelta:
    return min(_RETRY_FIRST_WAIT * 2 ** max(attempts - 1, 0), _RETRY_LONGEST_WAIT)


def _post_to_webhook(text: str) -> str:
    url = settings.ALERT_WEBHOOK_URL
    if not url:
        raise DeliveryFailed("ALERT_WEBHOOK_URL is not set any more")
    timeout = settings.ALERT_WEBHOOK_TIMEOUT_SECONDS
    try:
        response = requests.post(url, json={"text": text}, timeout=timeout)
    except requests.Timeout as exc:
        raise DeliveryFailed(f"the webhook did not answer within {timeout:g} s") from exc
    except requests.RequestException as exc:
        raise DeliveryFailed(f"the webhook could not be reached: {exc}") from exc
    if not 200 <= response.status_code < 300:
        body = response.text.strip()[:200]
        raise DeliveryFailed(
            f"the webhook answered HTTP {response.status_code}" + (f": {body}" if body else "")
        )
    return urlsplit(url).netloc


def _send_email(alert: Alert) -> str:
    recipients = alert_recipients(kind=alert.kind)
    if not recipients:
        raise DeliveryFailed(
            "no one to e-mail: set ALERT_EMAILS or give a supervisor an e-mail address"
        )
    prefix = "" if alert.kind == AlertKind.DIGEST else "[Earshot alert] "
    try:
        EmailMessage(subject=f"{prefix}{alert.subject}", body=alert.message, to=recipients).send()
    except OSError as exc:  # smtplib's errors are OSErrors, as are refused connections
        raise DeliveryFailed(f"the mail server refused it: {exc}") from exc
    return ", ".join(recipients)


def _deliver(delivery: AlertDelivery) -> str:
    alert = delivery.alert
    if delivery.channel == AlertChannel.WEBHOOK:
        return _post_to_webhook(f"{alert.subject}\n{alert.message}")
    return _send_email(alert)


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    delivery: AlertDelivery
    delivered: bool


def alert_delivery_send(
    *, delivery_id: int, now: datetime | None = None, retry_now: bool = False
) -> DeliveryOutcome | None:
    """Send one delivery if it is due (`retry_now`: any one not sent and not being sent now).

    None when it is not due: sent already, waiting for its next attempt, or being sent by
    another worker; a second delivery of the same task is therefore harmless. A failure
    never raises: it is logged and recorded on the row (its reason, the next attempt).
    """
    now = now or timezone.now()
    if retry_now:
        due = ~Q(status=AlertDeliveryStatus.SENT) & (
            ~Q(status=AlertDeliveryStatus.SENDING) | Q(next_attempt_at__lte=now)
        )
    else:
        due = _due(now)
    claimed = AlertDelivery.objects.filter(due, pk=delivery_id).update(
        status=AlertDeliveryStatus.SENDING,
        attempts=F("attempts") + 1,
        last_attempt_at=now,
        next_attempt_at=now + _claim_length(),
    )
    if claimed != 1:
        return None
    delivery = AlertDelivery.objects.select_related("alert").get(pk=delivery_id)
    ours = AlertDelivery.objects.filter(
        pk=delivery_id, status=AlertDeliveryStatus.SENDING, attempts=delivery.attempts
    )
    try:
        target = _deliver(delivery)
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, the task carries on
        reason = str(exc) if isinstance(exc, DeliveryFailed) else f"{type(exc).__name__}: {exc}"
        gives_up = delivery.attempts >= DELIVERY_MAX_ATTEMPTS
        next_attempt = None if gives_up else now + _retry_wait(delivery.attempts)
        logger.warning(
            "alert %s: %s delivery failed (attempt %s%s): %s",
            delivery.alert_id,
            delivery.channel,
            delivery.attempts,
            ", giving up" if gives_up else f", next at {next_attempt:%H:%M:%S}",
            reason,
            exc_info=not isinstance(exc, DeliveryFailed),
        )
        ours.update(
            status=AlertDeliveryStatus.FAILED, last_error=reason, next_attempt_at=next_attempt
        )
        delivered = False
    else:
        ours.update(
            status=AlertDeliveryStatus.SENT,
            delivered_at=timezone.now(),
            next_attempt_at=None,
            last_error="",
            target=target,
        )
        delivered = True
    delivery.refresh_from_db()
    return DeliveryOutcome(delivery=delivery, delivered=delivered)


# --- the history page -----------------------------------------------------------------------


def alert_history(*, kind: str = "") -> QuerySet[Alert]:
    """Every alert, newest first, with its keyword, mention and deliveries; one kind if given."""
    alerts = Alert.objects.select_related("keyword__brand", "mention__author").prefetch_related(
        "deliveries"
    )
    if kind:
        alerts = alerts.filter(kind=kind)
    return alerts.order_by("-created_at", "-id")
