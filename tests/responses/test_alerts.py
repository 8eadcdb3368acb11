"""Alerts: negative spikes, SLA breaches, cooldown, delivery by e-mail and webhook, the digest.

The webhook is a real HTTP server on 127.0.0.1 (the network edge); e-mail goes through
Django's own test outbox, or a refused SMTP connection for failures. Every service takes
`now`, so time moves by argument, never by sleeping.
"""

from __future__ import annotations

import json
import socket
import statistics
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from itertools import count

import pytest
from celery.schedules import crontab
from django.conf import settings as django_settings
from django.core import mail
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from config.celery import app as celery_app
from listening.models import Mention, TrackedKeyword
from listening.services.keywords import keyword_create
from responses.models import Alert, AlertDelivery, Reply
from responses.services.alerts import (
    DELIVERY_MAX_ATTEMPTS,
    alert_deliveries_due,
    alert_delivery_send,
    alerts_detect,
    keyword_spike_stats,
    spikes_detect,
)
from responses.services.digest import (
    digest_create,
    digest_figures,
    last_week,
    week_of,
)
from responses.tasks import check_alerts, dispatch_alert_deliveries, send_weekly_digest
from tests.factories import make_author, make_mention

pytestmark = pytest.mark.django_db

WINDOW = timedelta(minutes=15)
BASELINE_WINDOWS = 7 * 24 * 4  # 15-minute windows in 7 days
SITE = "https://earshot.example.com"
ANGRY = "This is terrible, my order never came and your support is awful"
_ids = count(1_700_000_000_000_000_000)


# --- the network edge: a webhook receiver on 127.0.0.1 --------------------------------------


class WebhookReceiver:
    """A Slack-like incoming webhook: records each POST, answers `status` after `delay` s."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.status = 200
        self.delay = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append(
                    {
                        "path": self.path,
                        "content_type": self.headers.get("Content-Type"),
                        "json": json.loads(body),
                    }
                )
                if receiver.delay:
                    threading.Event().wait(receiver.delay)
                answer = b"ok" if receiver.status == 200 else b"invalid_payload"
                try:
                    self.send_response(receiver.status)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the client gave up waiting (the timeout test)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/services/T000/B000/XXXX"

    def texts(self) -> list[str]:
        return [request["json"]["text"] for request in self.received]


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def alert_settings(settings, webhook):
    settings.ALERT_WEBHOOK_URL = webhook.url
    settings.ALERT_WEBHOOK_TIMEOUT_SECONDS = 0.3
    settings.ALERT_EMAILS = ["desk@example.com", "lead@example.com"]
    settings.ALERT_COOLDOWN_MINUTES = 30
    settings.ALERT_SPIKE_WINDOW_MINUTES = 15
    settings.ALERT_SPIKE_BASELINE_DAYS = 7
    settings.ALERT_SPIKE_MIN_Z = 3.0
    settings.ALERT_SPIKE_MIN_COUNT = 5
    settings.ALERT_SPIKE_MIN_HISTORY_HOURS = 24
    settings.SLA_NEGATIVE_MINUTES = 30
    settings.SLA_DEFAULT_MINUTES = 240
    settings.SITE_URL = SITE
    return settings


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- rows -----------------------------------------------------------------------------------


@pytest.fixture
def now():
    return timezone.now()


def listening_since(keyword: TrackedKeyword, when: datetime) -> TrackedKeyword:
    TrackedKeyword.objects.filter(pk=keyword.pk).update(created_at=when)
    keyword.refresh_from_db()
    return keyword


@pytest.fixture
def old_keyword(keyword, now) -> TrackedKeyword:
    """Listened to for longer than the baseline: its whole 7 days count."""
    return listening_since(keyword, now - timedelta(days=8))


def store_mentions(
    keyword: TrackedKeyword, times: list[datetime], *, label: str = "negative", status="resolved"
) -> None:
    """Mentions as polling stores them, in bulk (history is thousands of rows). Resolved by
    default, so that history never breaches an SLA."""
    author = make_author()
    Mention.objects.bulk_create(
        [
            Mention(
                platform="x",
                external_id=str(next(_ids)),
                brand=keyword.brand,
                keyword=keyword,
                author=author,
                text="meh",
                posted_at=at,
                urgency_at=at,
                sentiment_compound=-0.6 if label == "negative" else 0.5,
                sentiment_positive=0.0 if label == "negative" else 0.5,
                sentiment_neutral=0.4,
                sentiment_negative=0.6 if label == "negative" else 0.0,
                sentiment_label=label,
                status=status,
            )
            for at in times
        ]
    )


def history(now: datetime, per_window: Callable[[int], int]) -> list[datetime]:
    """Times for `per_window(i)` mentions in each baseline window, i = 0 the most recent."""
    start = now - WINDOW
    return [
        start - WINDOW * (i + 1) + timedelta(seconds=30 + 10 * k)
        for i in range(BASELINE_WINDOWS)
        for k in range(per_window(i))
    ]


def current(now: datetime, how_many: int) -> list[datetime]:
    """`how_many` times inside the current window [now - 15 min, now)."""
    return [now - WINDOW + timedelta(seconds=20 + 5 * k) for k in range(how_many)]


def late_mention(brand, keyword, now, *, minutes: int, text: str = ANGRY, username="dana", **kw):
    return make_mention(
        brand=brand,
        keyword=keyword,
        text=text,
        author=make_author(username=username),
        posted_at=now - timedelta(minutes=minutes),
        **kw,
    )


def deliver_all(now: datetime) -> list:
    return [alert_delivery_send(delivery_id=pk, now=now) for pk in alert_deliveries_due(now=now)]


# --- the spike detector ---------------------------------------------------------------------


def test_steady_traffic_is_no_spike(alert_settings, old_keyword, now):
    store_mentions(old_keyword, history(now, lambda i: 4) + current(now, 4))

    stats = keyword_spike_stats(now=now)[old_keyword.pk]

    assert (stats.count, stats.baseline_windows) == (4, BASELINE_WINDOWS)
    assert (stats.mean, stats.stddev, stats.z) == (4.0, 0.0, 0.0)
    assert spikes_detect(now=now) == []


def test_a_little_more_than_usual_is_no_spike(alert_settings, old_keyword, now):
    # Steady is not noiseless: 7 where 4 is usual is within a count's own variation (sqrt 4).
    store_mentions(old_keyword, history(now, lambda i: 4) + current(now, 7))

    stats = keyword_spike_stats(now=now)[old_keyword.pk]

    assert stats.z == pytest.approx(1.5)
    assert spikes_detect(now=now) == []
    assert alerts_detect(now=now).sent == []


def test_an_injected_burst_is_a_spike(alert_settings, old_keyword, now):
    store_mentions(old_keyword, history(now, lambda i: 4) + current(now, 30))
    # Positive and neutral mentions are not what the detector watches.
    store_mentions(old_keyword, current(now, 50), label="positive")

    (spike,) = spikes_detect(now=now)

    assert (spike.keyword_id, spike.count, spike.mean, spike.z) == (old_keyword.pk, 30, 4.0, 13.0)


def test_slow_growth_is_no_spike(alert_settings, old_keyword, now):
    # From 1 a window a week ago to 8 now: the baseline grows with it.
    def growing(i: int) -> int:
        return 8 - (i * 7) // (BASELINE_WINDOWS - 1)

    store_mentions(old_keyword, history(now, growing) + current(now, 9))
    counts = [growing(i) for i in range(BASELINE_WINDOWS)]

    stats = keyword_spike_stats(now=now)[old_keyword.pk]

    assert stats.mean == pytest.approx(statistics.fmean(counts))
    assert stats.stddev == pytest.approx(statistics.pstdev(counts))
    assert stats.z < 3
    assert spikes_detect(now=now) == []


def test_a_burst_on_a_quiet_keyword_is_a_spike_but_two_is_not(alert_settings, old_keyword, now):
    store_mentions(old_keyword, history(now, lambda i: 1 if i % 8 == 0 else 0))
    store_mentions(old_keyword, current(now, 2))
    assert spikes_detect(now=now) == []  # 2 where there is usually 0: under the minimum

    store_mentions(old_keyword, current(now, 4))  # 6 now

    (spike,) = spikes_detect(now=now)
    assert spike.count == 6
    assert spike.mean == pytest.approx(1 / 8)
    assert spike.z == pytest.approx((6 - 1 / 8) / 1.0)


def test_a_keyword_with_no_history_never_spikes(alert_settings, brand, keyword, now):
    # Just added: its first poll stores the newest page at once, which would look like a burst.
    store_mentions(keyword, current(now, 40))
    # Posts from before Earshot listened (a backfill) are no baseline either.
    store_mentions(keyword, history(now, lambda i: 1), status="archived")

    stats = keyword_spike_stats(now=now)[keyword.pk]

    assert (stats.count, stats.baseline_windows) == (40, 0)
    assert spikes_detect(now=now) == []
    assert not Alert.objects.exists()


def test_a_keyword_a_few_days_old_has_a_baseline_of_those_days(alert_settings, keyword, now):
    listening_since(keyword, now - WINDOW - timedelta(days=2))
    store_mentions(keyword, history(now, lambda i: 2) + current(now, 20))

    stats = keyword_spike_stats(now=now)[keyword.pk]

    assert stats.baseline_windows == 2 * 24 * 4
    assert (stats.mean, stats.stddev) == (2.0, 0.0)  # older posts are outside its baseline
    assert [s.keyword_id for s in spikes_detect(now=now)] == [keyword.pk]


def test_paused_keywords_are_not_watched(alert_settings, old_keyword, now):
    store_mentions(old_keyword, current(now, 30))
    TrackedKeyword.objects.filter(pk=old_keyword.pk).update(is_active=False)

    assert keyword_spike_stats(now=now) == {}


# --- SLA breaches ---------------------------------------------------------------------------


def test_a_mention_past_its_sla_target_raises_one_alert_ever(alert_settings, brand, keyword, now):
    late = late_mention(brand, keyword, now, minutes=45)
    late_mention(brand, keyword, now, minutes=29, username="early")  # negative, not late yet
    quiet = late_mention(brand, keyword, now, minutes=200, text="Where is your nearest store?")
    assert (late.sentiment_label, quiet.sentiment_label) == ("negative", "neutral")
    late_mention(brand, keyword, now, minutes=90, status="resolved", username="helped")

    first = alerts_detect(now=now)

    (alert,) = first.sent
    assert (alert.kind, alert.mention, alert.keyword, alert.key) == (
        "sla_breach",
        late,
        keyword,
        f"sla:{late.pk}",
    )
    assert alert.details == {"waited_minutes": 45, "target_minutes": 30}
    assert sorted(d.channel for d in first.deliveries) == ["email", "webhook"]

    again = alerts_detect(now=now + timedelta(minutes=1))
    much_later = alerts_detect(now=now + timedelta(hours=3))

    assert again.sent == [] and again.suppressed == 0
    # Hours later the neutral one has waited past its 4 hours (and the 29-minute one past its
    # 30, held back by the cooldown): their own alerts, never the first one again.
    assert [a.mention for a in much_later.sent] == [quiet]
    assert much_later.suppressed == 1
    assert Alert.objects.filter(mention=late).count() == 1
    assert AlertDelivery.objects.filter(alert__mention=late).count() == 2


def test_claimed_mentions_can_breach_too_but_answered_ones_cannot(
    alert_settings, brand, keyword, agent, now
):
    held = late_mention(
        brand, keyword, now, minutes=40, status="claimed", claimed_by=agent,
        claim_expires_at=now + timedelta(minutes=5),
    )  # fmt: skip
    late_mention(brand, keyword, now, minutes=40, status="replied", username="answered")
    late_mention(brand, keyword, now, minutes=40, status="archived", username="history")

    result = alerts_detect(now=now)

    assert [a.mention for a in result.sent] == [held]
    assert "still claimed" in result.sent[0].message


# --- cooldown -------------------------------------------------------------------------------


def test_cooldown_counts_instead_of_sending(alert_settings, brand, keyword, now):
    other_keyword = keyword_create(
        brand=brand, query='"Northwind Coffee"', poll_interval_seconds=60
    )
    first = late_mention(brand, keyword, now, minutes=50, username="first")
    second = late_mention(brand, keyword, now, minutes=40, username="second")
    elsewhere = late_mention(brand, other_keyword, now, minutes=35, username="elsewhere")

    result = alerts_detect(now=now)

    # One per keyword goes out; the second on the same keyword is held back and counted.
    assert [a.mention for a in result.sent] == [first, elsewhere]
    assert result.suppressed == 1
    held = Alert.objects.get(mention=second)
    assert held.suppressed and not held.deliveries.exists()
    assert Alert.objects.get(mention=first).suppressed_count == 1

    third = late_mention(brand, keyword, now - timedelta(minutes=20), minutes=20, username="third")
    assert alerts_detect(now=now + timedelta(minutes=20)).sent == []  # still cooling down
    assert Alert.objects.get(mention=first).suppressed_count == 2
    assert Alert.objects.get(mention=third).suppressed

    fourth = late_mention(brand, keyword, now, minutes=1, username="fourth")
    after = alerts_detect(now=now + timedelta(minutes=31))
    assert [a.mention for a in after.sent] == [fourth]
    assert AlertDelivery.objects.filter(alert__suppressed=True).count() == 0


def test_an_ongoing_spike_is_sent_once_per_cooldown(alert_settings, old_keyword, now, webhook):
    store_mentions(old_keyword, history(now, lambda i: 1) + current(now, 25))

    first = alerts_detect(now=now)
    deliver_all(now)
    minute_later = alerts_detect(now=now + timedelta(minutes=1))
    deliver_all(now + timedelta(minutes=1))

    (alert,) = first.sent
    assert minute_later.sent == [] and minute_later.suppressed == 1
    assert Alert.objects.get().suppressed_count == 1  # a repeat of a spike is not stored
    assert len(webhook.received) == 1
    assert len(mail.outbox) == 1

    # After the cooldown a spike still going on is news again.
    store_mentions(old_keyword, [now + timedelta(minutes=30, seconds=k) for k in range(25)])
    later = alerts_detect(now=now + timedelta(minutes=31))
    assert len(later.sent) == 1
    assert Alert.objects.filter(kind="spike").count() == 2


def test_no_cooldown_when_it_is_zero(alert_settings, brand, keyword, now):
    alert_settings.ALERT_COOLDOWN_MINUTES = 0
    late_mention(brand, keyword, now, minutes=50, username="first")
    late_mention(brand, keyword, now, minutes=40, username="second")

    assert len(alerts_detect(now=now).sent) == 2


# --- delivery -------------------------------------------------------------------------------


def test_webhook_gets_the_exact_json(alert_settings, brand, keyword, now, webhook):
    late = late_mention(brand, keyword, now, minutes=45)
    alerts_detect(now=now)

    outcomes = deliver_all(now)

    assert all(outcome.delivered for outcome in outcomes)
    (request,) = webhook.received
    assert request["path"] == "/services/T000/B000/XXXX"
    assert request["content_type"] == "application/json"
    assert request["json"] == {
        "text": "Past its SLA target: @dana on X\n"
        "@dana's negative mention on X for @NorthwindHelp (Northwind Coffee) is waiting 45 min "
        f"of a 30 min target, still new: “{ANGRY}”\n"
        f"{SITE}/mentions/{late.pk}/"
    }
    webhook_delivery = AlertDelivery.objects.get(channel="webhook")
    assert (webhook_delivery.status, webhook_delivery.attempts) == ("sent", 1)
    assert webhook_delivery.target == webhook.url.split("/")[2]
    assert webhook_delivery.next_attempt_at is None
    assert alert_deliveries_due(now=now + timedelta(days=1)) == []


def test_spike_alert_text(alert_settings, old_keyword, now, webhook):
    store_mentions(old_keyword, history(now, lambda i: 4) + current(now, 30))
    alerts_detect(now=now)
    deliver_all(now)

    assert webhook.texts() == [
        "Negative spike: 30 in 15 min on @NorthwindHelp\n"
        "30 negative mentions of @NorthwindHelp (Northwind Coffee, X) in the last 15 min; "
        "usually 4.0 (± 0.0) per 15 min over the last 7 days. z = 13.0.\n"
        f"{SITE}/queue/?keyword={old_keyword.pk}&sentiment=negative"
    ]


def test_email_goes_to_the_alert_addresses(alert_settings, brand, keyword, now):
    late = late_mention(brand, keyword, now, minutes=45)
    (alert,) = alerts_detect(now=now).sent

    deliver_all(now)

    (email,) = mail.outbox
    assert email.to == ["desk@example.com", "lead@example.com"]
    assert email.subject == "[Earshot alert] Past its SLA target: @dana on X"
    assert email.body == alert.message
    assert email.body.endswith(f"{SITE}/mentions/{late.pk}/")
    assert AlertDelivery.objects.get(channel="email").target == "desk@example.com, lead@example.com"


def test_without_alert_addresses_the_supervisors_are_emailed(
    alert_settings, brand, keyword, now, agent, supervisor, admin_user, other_agent
):
    alert_settings.ALERT_EMAILS = []
    alert_settings.ALERT_WEBHOOK_URL = ""
    for user, email in ((agent, "alice@example.com"), (supervisor, "sofia@example.com"),
                        (admin_user, "adam@example.com"), (other_agent, "")):  # fmt: skip
        user.email = email
        user.save()
    gone = type(supervisor).objects.create_user("gone", email="gone@example.com", is_active=False)
    gone.groups.set(supervisor.groups.all())
    late_mention(brand, keyword, now, minutes=45)

    (alert,) = alerts_detect(now=now).sent
    deliver_all(now)

    assert [d.channel for d in alert.deliveries.all()] == ["email"]
    (email,) = mail.outbox
    assert email.to == ["adam@example.com", "sofia@example.com"]


def test_an_alert_with_nowhere_to_go_is_kept(alert_settings, brand, keyword, now, caplog):
    alert_settings.ALERT_EMAILS = []
    alert_settings.ALERT_WEBHOOK_URL = ""
    late_mention(brand, keyword, now, minutes=45)

    (alert,) = alerts_detect(now=now).sent

    assert not alert.deliveries.exists()
    assert "has nowhere to go" in caplog.text


def test_a_webhook_answering_500_is_recorded_and_retried(
    alert_settings, brand, keyword, now, webhook
):
    late_mention(brand, keyword, now, minutes=45)
    (alert,) = alerts_detect(now=now).sent
    webhook.status = 500

    deliver_all(now)

    delivery = AlertDelivery.objects.get(channel="webhook")
    assert delivery.status == "failed"
    assert delivery.last_error == "the webhook answered HTTP 500: invalid_payload"
    assert (delivery.attempts, delivery.next_attempt_at) == (1, now + timedelta(minutes=1))
    assert AlertDelivery.objects.get(channel="email").status == "sent"  # channels are apart
    assert Alert.objects.get() == alert
    # Not before its next attempt; then it goes, and only the webhook goes again.
    assert alert_deliveries_due(now=now + timedelta(seconds=59)) == []
    assert alert_deliveries_due(now=now + timedelta(seconds=60)) == [delivery.pk]

    webhook.status = 200
    (outcome,) = deliver_all(now + timedelta(seconds=60))

    assert outcome.delivered
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("sent", 2, "")
    assert len(webhook.received) == 2 and webhook.texts()[0] == webhook.texts()[1]
    assert len(mail.outbox) == 1


def test_a_webhook_that_times_out_is_retried_later(alert_settings, brand, keyword, now, webhook):
    late_mention(brand, keyword, now, minutes=45)
    alerts_detect(now=now)
    webhook.delay = 1.0

    (outcome,) = [
        alert_delivery_send(delivery_id=d.pk, now=now)
        for d in AlertDelivery.objects.filter(channel="webhook")
    ]

    assert not outcome.delivered
    assert outcome.delivery.last_error == "the webhook did not answer within 0.3 s"
    webhook.delay = 0.0
    deliver_all(now + timedelta(minutes=1))
    assert AlertDelivery.objects.get(channel="webhook").status == "sent"


def test_a_webhook_that_cannot_be_reached_is_recorded(alert_settings, brand, keyword, now):
    alert_settings.ALERT_WEBHOOK_URL = f"http://127.0.0.1:{closed_port()}/hook"
    late_mention(brand, keyword, now, minutes=45)
    alerts_detect(now=now)

    deliver_all(now)

    delivery = AlertDelivery.objects.get(channel="webhook")
    assert delivery.status == "failed"
    assert delivery.last_error.startswith("the webhook could not be reached: ")


def test_a_mail_server_that_refuses_is_recorded_and_retried(alert_settings, brand, keyword, now):
    alert_settings.ALERT_WEBHOOK_URL = ""
    alert_settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    alert_settings.EMAIL_HOST, alert_settings.EMAIL_PORT = "127.0.0.1", closed_port()
    late_mention(brand, keyword, now, minutes=45)
    alerts_detect(now=now)

    deliver_all(now)

    delivery = AlertDelivery.objects.get()
    assert delivery.status == "failed"
    assert delivery.last_error.startswith("the mail server refused it: ")
    assert mail.outbox == []

    alert_settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    deliver_all(now + timedelta(minutes=1))
    assert AlertDelivery.objects.get().status == "sent"
    assert len(mail.outbox) == 1


def test_retries_back_off_and_give_up(alert_settings, brand, keyword, now, webhook):
    alert_settings.ALERT_EMAILS = []
    late_mention(brand, keyword, now, minutes=45)
    alerts_detect(now=now)
    webhook.status = 503
    waits = []
    at = now
    for _ in range(DELIVERY_MAX_ATTEMPTS):
        (outcome,) = deliver_all(at)
        if outcome.delivery.next_attempt_at:
            waits.append(outcome.delivery.next_attempt_at - at)
            at = outcome.delivery.next_attempt_at

    assert [int(w.total_seconds() // 60) for w in waits] == [1, 2, 4, 8, 16, 32, 60]
    delivery = AlertDelivery.objects.get()
    assert delivery.gave_up and delivery.attempts == DELIVERY_MAX_ATTEMPTS
    assert alert_deliveries_due(now=at + timedelta(days=30)) == []
    assert len(webhook.received) == DELIVERY_MAX_ATTEMPTS


def test_sending_twice_sends_once(alert_settings, brand, keyword, now, webhook):
    late_mention(brand, keyword, now, minutes=45)
    alerts_detect(now=now)
    delivery = AlertDelivery.objects.get(channel="webhook")

    first = alert_delivery_send(delivery_id=delivery.pk, now=now)
    second = alert_delivery_send(delivery_id=delivery.pk, now=now)
    retried = alert_delivery_send(delivery_id=delivery.pk, now=now, retry_now=True)

    assert first.delivered and second is None and retried is None
    assert len(webhook.received) == 1


def test_a_delivery_left_mid_send_is_taken_again_after_its_claim(
    alert_settings, brand, keyword, now
):
    late_mention(brand, keyword, now, minutes=45)
    alerts_detect(now=now)
    delivery = AlertDelivery.objects.get(channel="email")
    # A worker claimed it and died before recording anything.
    AlertDelivery.objects.filter(pk=delivery.pk).update(
        status="sending", attempts=1, next_attempt_at=now + timedelta(minutes=2)
    )

    assert delivery.pk not in alert_deliveries_due(now=now + timedelta(minutes=1))
    assert alert_delivery_send(delivery_id=delivery.pk, now=now + timedelta(minutes=1)) is None
    outcome = alert_delivery_send(delivery_id=delivery.pk, now=now + timedelta(minutes=2))

    assert outcome.delivered and outcome.delivery.attempts == 2
    assert len(mail.outbox) == 1


# --- the tasks and beat ----------------------------------------------------------------------


@pytest.fixture
def eager_celery():
    """Tasks run in this process when queued (Celery's own eager mode)."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def test_the_check_task_raises_and_delivers(alert_settings, brand, keyword, webhook, eager_celery):
    late_mention(brand, keyword, timezone.now(), minutes=45)

    assert check_alerts.delay().get() == 1
    assert check_alerts.delay().get() == 0

    assert len(webhook.received) == 1 and len(mail.outbox) == 1
    assert set(AlertDelivery.objects.values_list("status", flat=True)) == {"sent"}


def test_the_dispatcher_retries_failed_deliveries(
    alert_settings, brand, keyword, webhook, eager_celery
):
    late_mention(brand, keyword, timezone.now(), minutes=45)
    webhook.status = 500
    check_alerts.delay()
    failed = AlertDelivery.objects.get(channel="webhook")
    assert failed.status == "failed"
    AlertDelivery.objects.filter(pk=failed.pk).update(next_attempt_at=timezone.now())
    webhook.status = 200

    assert dispatch_alert_deliveries.delay().get() == 1

    assert AlertDelivery.objects.get(pk=failed.pk).status == "sent"
    assert len(webhook.received) == 2 and len(mail.outbox) == 1


def test_beat_runs_the_alert_tasks():
    schedule = django_settings.CELERY_BEAT_SCHEDULE
    tasks = {entry["task"]: entry["schedule"] for entry in schedule.values()}
    assert tasks["responses.tasks.check_alerts"] == 60.0
    assert tasks["responses.tasks.dispatch_alert_deliveries"] == 30.0
    weekly = tasks["responses.tasks.send_weekly_digest"]
    assert isinstance(weekly, crontab)
    assert (weekly.day_of_week, weekly.hour, weekly.minute) == ({1}, {7}, {0})
    for name in ("check_alerts", "dispatch_alert_deliveries", "send_weekly_digest"):
        assert f"responses.tasks.{name}" in celery_app.tasks, name


# --- the weekly digest -------------------------------------------------------------------------

WEEK = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
_reply_ids = count(1_600_000_000_000_000_000)


def answer(mention: Mention, agent, minutes: int) -> None:
    Reply.objects.create(
        mention=mention,
        agent=agent,
        text="Sorry about that",
        status="sent",
        external_id=str(next(_reply_ids)),
        posted_at=mention.posted_at + timedelta(minutes=minutes),
    )


@pytest.fixture
def two_weeks(brand, keyword, agent):
    refunds = keyword_create(brand=brand, query="northwind refund", poll_interval_seconds=60)
    day = timedelta(days=1)
    # The week before: 4 mentions, 1 negative, 1 answered in 60 min; the negative one is
    # still waiting (a breach), the other two positive ones were resolved without a reply.
    before = [
        make_mention(brand=brand, keyword=keyword, text=ANGRY, posted_at=WEEK - 6 * day),
        make_mention(brand=brand, keyword=keyword, text="Love this coffee", posted_at=WEEK - 5 * day),
        *(make_mention(brand=brand, keyword=keyword, text="Love this coffee",
                       posted_at=WEEK - n * day, status="resolved") for n in (4, 3)),
    ]  # fmt: skip
    answer(before[1], agent, 60)
    # Last week: 6 mentions, 4 negative (3 on @NorthwindHelp, still waiting: 3 breaches; 1 on
    # refunds), 3 answered in 10, 20 and 40 min, within their targets.
    week = [
        *(make_mention(brand=brand, keyword=keyword, text=ANGRY, posted_at=WEEK + n * day)
          for n in (0, 1, 2)),
        make_mention(brand=brand, keyword=refunds, text=ANGRY, posted_at=WEEK + 3 * day),
        make_mention(brand=brand, keyword=keyword, text="Love this coffee", posted_at=WEEK + 4 * day),
        make_mention(brand=brand, keyword=keyword, text="Great beans", posted_at=WEEK + 6 * day),
    ]  # fmt: skip
    for mention, minutes in zip(week[3:], (10, 20, 40), strict=True):
        answer(mention, agent, minutes)
    # Not counted: history from a backfill, spam, and this week's mentions.
    make_mention(brand=brand, keyword=keyword, text=ANGRY, posted_at=WEEK + day, status="archived")
    make_mention(brand=brand, keyword=keyword, text=ANGRY, posted_at=WEEK + day, status="spam")
    make_mention(brand=brand, keyword=keyword, text=ANGRY, posted_at=WEEK + 7 * day)
    return refunds


def test_weeks_run_monday_to_sunday_in_the_business_time_zone(settings):
    week = week_of(date(2026, 11, 8))
    assert (week.first_day, week.last_day) == (date(2026, 11, 2), date(2026, 11, 8))
    assert (week.starts_at, week.ends_at) == (WEEK, WEEK + timedelta(days=7))
    assert last_week(datetime(2026, 11, 9, 7, 0, tzinfo=UTC)).first_day == date(2026, 11, 2)
    assert last_week(datetime(2026, 11, 15, 23, 59, tzinfo=UTC)).first_day == date(2026, 11, 2)
    settings.BUSINESS_TIME_ZONE = "America/New_York"
    # Monday 02:00 UTC is still Sunday in New York: last week is the one before.
    assert last_week(datetime(2026, 11, 16, 2, 0, tzinfo=UTC)).first_day == date(2026, 11, 2)
    week = week_of(date(2026, 11, 4))
    assert (week.starts_at.isoformat(), week.ends_at.isoformat()) == (
        "2026-11-02T00:00:00-05:00",
        "2026-11-09T00:00:00-05:00",
    )


def test_digest_figures_beside_the_week_before(two_weeks, keyword):
    digest = digest_figures(period=week_of(WEEK.date()))

    week, before = digest.week, digest.previous
    assert (week.mentions, week.negative, week.answered, week.sla_breaches) == (6, 4, 3, 3)
    assert week.response_rate == 0.5
    assert week.median_first_response == timedelta(minutes=20)
    assert (before.mentions, before.negative, before.answered, before.sla_breaches) == (4, 1, 1, 1)
    assert before.period.first_day == date(2026, 10, 26)
    assert before.median_first_response == timedelta(minutes=60)
    assert [
        (t.keyword_id, t.negative, t.negative_before) for t in digest.top_negative_keywords
    ] == [
        (keyword.pk, 3, 1),
        (two_weeks.pk, 1, 0),
    ]
    assert [(r.label, r.value, r.before, r.change) for r in digest.rows] == [
        ("Mentions", "6", "4", "+2 (+50%)"),
        ("Negative mentions", "4", "1", "+3 (+300%)"),
        ("Answered", "3", "1", "+2 (+200%)"),
        ("Response rate", "50%", "25%", "+25 pts"),
        ("Median first response", "20 min", "60 min", "40 min faster"),
        ("SLA breaches", "3", "1", "+2 (+200%)"),
    ]


def test_the_digest_is_emailed_to_supervisors_once(
    two_weeks, alert_settings, supervisor, admin_user, webhook
):
    supervisor.email, admin_user.email = "sofia@example.com", "adam@example.com"
    supervisor.save()
    admin_user.save()

    result = digest_create(period=week_of(WEEK.date()))
    for delivery in result.deliveries:
        alert_delivery_send(delivery_id=delivery.pk)
    again = digest_create(period=week_of(WEEK.date()))

    assert result.created and not again.created and again.alert == result.alert
    assert again.deliveries == []
    (email,) = mail.outbox
    # The digest goes to the supervisors, not to ALERT_EMAILS, and not to the webhook.
    assert email.to == ["adam@example.com", "sofia@example.com"]
    assert webhook.received == []
    assert email.subject == "Earshot weekly digest, 2 Nov – 8 Nov 2026"
    assert email.body.splitlines()[:8] == [
        "Earshot, the week of Monday 2 November to Sunday 8 November 2026, beside the week before.",
        "",
        "Mentions: 6 (week before: 4; +2 (+50%))",
        "Negative mentions: 4 (week before: 1; +3 (+300%))",
        "Answered: 3 (week before: 1; +2 (+200%))",
        "Response rate: 50% (week before: 25%; +25 pts)",
        "Median first response: 20 min (week before: 60 min; 40 min faster)",
        "SLA breaches: 3 (week before: 1; +2 (+200%))",
    ]
    assert "1. @NorthwindHelp (Northwind Coffee): 3 negative (week before: 1; +2 (+200%))" in (
        email.body
    )
    assert "2. northwind refund (Northwind Coffee): 1 negative (week before: 0; +1)" in email.body
    assert f"Response times in detail: {SITE}/report/" in email.body


def test_send_digest_command_sends_once_and_says_so(two_weeks, settings, supervisor):
    supervisor.email = "sofia@example.com"
    supervisor.save()
    out = StringIO()

    call_command("send_digest", "--week", "2026-11-05", stdout=out)
    call_command("send_digest", "--week", "2026-11-05", stdout=out)

    assert len(mail.outbox) == 1
    lines = out.getvalue().splitlines()
    assert lines[0] == "Sent to sofia@example.com: Earshot weekly digest, 2 Nov – 8 Nov 2026"
    assert lines[1].startswith("This week's digest was made on ")
    assert (
        lines[2] == "Already sent to sofia@example.com: Earshot weekly digest, 2 Nov – 8 Nov 2026"
    )


def test_send_digest_print_sends_nothing(two_weeks):
    out = StringIO()
    call_command("send_digest", "--week", "2026-11-02", "--print", stdout=out)

    assert "Mentions: 6 (week before: 4; +2 (+50%))" in out.getvalue()
    assert mail.outbox == [] and not Alert.objects.filter(kind="digest").exists()


def test_send_digest_explains_bad_input(two_weeks):
    with pytest.raises(CommandError, match="--week takes a date such as 2026-11-02, not 'soon'"):
        call_command("send_digest", "--week", "soon")
    with pytest.raises(CommandError, match="give the supervisors an e-mail address"):
        call_command("send_digest", "--week", "2026-11-02")
    # Not made either: once a supervisor has an address, the command (or beat) sends it.
    assert mail.outbox == [] and not Alert.objects.filter(kind="digest").exists()


def test_the_weekly_task_sends_last_weeks_digest(alert_settings, supervisor, eager_celery):
    supervisor.email = "sofia@example.com"
    supervisor.save()

    send_weekly_digest.delay()
    send_weekly_digest.delay()

    (alert,) = Alert.objects.filter(kind="digest")
    assert alert.key == f"digest:{last_week(timezone.now()).first_day.isoformat()}"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["sofia@example.com"]


def test_the_weekly_task_without_recipients_makes_nothing(alert_settings, eager_celery, caplog):
    assert send_weekly_digest.delay().get() == 0

    assert not Alert.objects.exists() and mail.outbox == []
    assert "give the supervisors an e-mail address" in caplog.text


# --- the alert history page ------------------------------------------------------------------


def test_the_alert_page_shows_each_alert_and_its_delivery(
    client, supervisor, alert_settings, brand, keyword, now, webhook
):
    late_mention(brand, keyword, now, minutes=50, username="first")
    late_mention(brand, keyword, now, minutes=40, username="second")
    webhook.status = 500
    alerts_detect(now=now)
    deliver_all(now)
    sent, held = (
        Alert.objects.get(mention__author__username="first"),
        Alert.objects.get(mention__author__username="second"),
    )
    client.force_login(supervisor)

    page = client.get(reverse("responses:alerts")).content.decode()

    assert f'id="alert-{sent.pk}"' in page and f'id="alert-{held.pk}"' in page
    assert "Past its SLA target: @first on X" in page
    assert "failed (1 attempt): the webhook answered HTTP 500: invalid_payload" in page
    assert "sent" in page and "desk@example.com, lead@example.com" in page
    assert "not sent: in the cooldown of an earlier alert" in page
    assert '<td class="suppressed-count">1</td>' in page


def test_the_alert_page_filters_by_kind(client, supervisor, old_keyword, alert_settings, now):
    store_mentions(old_keyword, history(now, lambda i: 1) + current(now, 25))
    late_mention(old_keyword.brand, old_keyword, now, minutes=50)
    alerts_detect(now=now)
    client.force_login(supervisor)

    spikes = client.get(reverse("responses:alerts"), {"kind": "spike"}).content.decode()
    everything = client.get(reverse("responses:alerts"), {"kind": "nonsense"}).content.decode()

    assert spikes.count('data-kind="spike"') == 1 and 'data-kind="sla_breach"' not in spikes
    assert "Select a valid choice. nonsense is not one of the available choices." in everything
    assert everything.count('data-kind="spike"') == 1
    assert everything.count('data-kind="sla_breach"') == 1


def test_agents_do_not_see_alerts(client, agent):
    client.force_login(agent)
    assert client.get(reverse("responses:alerts")).status_code == 403
