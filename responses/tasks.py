"""Celery adapters for responses: take ids, call one service."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from listening.clients.base import PlatformUnavailable, RateLimited
from responses.services.alerts import alert_deliveries_due, alert_delivery_send, alerts_detect
from responses.services.audit import audit_entries_delete_expired
from responses.services.claims import claims_release_expired
from responses.services.digest import DigestHasNoRecipients, digest_create, last_week
from responses.services.native_replies import account_cursors_claim_due, account_posts_read
from responses.services.replies import replies_resume_stalled, reply_post, reply_wait

logger = logging.getLogger(__name__)


@shared_task
def release_expired_claims() -> int:
    """Beat runs this every 30 s: lapsed claims go back to the queue."""
    return claims_release_expired()


@shared_task
def delete_expired_audit_entries() -> int:
    """Beat runs this nightly: audit entries older than AUDIT_RETENTION_DAYS go."""
    deleted = audit_entries_delete_expired()
    if deleted:
        logger.info("Deleted %s audit entries past the retention period", deleted)
    return deleted


@shared_task(
    bind=True,
    autoretry_for=(PlatformUnavailable,),
    retry_backoff=2,
    retry_backoff_max=120,
    max_retries=5,
)
def send_reply(self, reply_id: int) -> None:
    """Post one reply. A second delivery finds the reply no longer queued and does nothing."""
    wait = reply_wait(reply_id=reply_id)
    if wait:
        # Delivered before its undo window closed (clocks differ): come back when it has.
        send_reply.apply_async((reply_id,), countdown=wait.total_seconds())
        return
    try:
        reply_post(reply_id=reply_id, give_up_on_transient=self.request.retries >= self.max_retries)
    except RateLimited as exc:
        # Not a failure: the platform says when it takes posts again.
        send_reply.apply_async((reply_id,), eta=exc.reset_at)


@shared_task
def resume_stalled_replies() -> int:
    """Beat runs this every minute: replies whose send task was lost get a new one."""
    reply_ids = replies_resume_stalled()
    for reply_id in reply_ids:
        send_reply.delay(reply_id)
    return len(reply_ids)


@shared_task
def dispatch_brand_account_reads() -> int:
    """Beat runs this every few seconds: one read task per brand account that is due."""
    cursor_ids = account_cursors_claim_due()
    for cursor_id in cursor_ids:
        read_brand_account.delay(cursor_id)
    return len(cursor_ids)


# Safe to deliver twice (see account_posts_read), so acknowledge only once it has run.
@shared_task(acks_late=True)
def read_brand_account(cursor_id: int) -> int:
    return account_posts_read(cursor_id=cursor_id, max_pages=settings.POLL_MAX_PAGES).linked


# --- alerts and the weekly digest -------------------------------------------------------


@shared_task
def check_alerts() -> int:
    """Beat runs this every minute: negative spikes and mentions past their SLA target become
    alerts (each once, see alerts_detect), and their deliveries are queued."""
    result = alerts_detect()
    for delivery in result.deliveries:
        deliver_alert.delay(delivery.pk)
    return len(result.sent)


@shared_task
def dispatch_alert_deliveries() -> int:
    """Beat runs this every 30 s: failed deliveries whose next attempt is due, and any whose
    task was lost, are queued (sending claims each one, so a duplicate does nothing)."""
    delivery_ids = alert_deliveries_due()
    for delivery_id in delivery_ids:
        deliver_alert.delay(delivery_id)
    return len(delivery_ids)


@shared_task
def deliver_alert(delivery_id: int) -> bool:
    """Send one alert by one channel; a failure is recorded on the row, never raised."""
    outcome = alert_delivery_send(delivery_id=delivery_id)
    return bool(outcome and outcome.delivered)


@shared_task
def send_weekly_digest() -> int:
    """Beat runs this on Monday mornings: last week's digest, made and queued once."""
    week = last_week(timezone.now())
    try:
        result = digest_create(period=week)
    except DigestHasNoRecipients as refusal:
        logger.warning("weekly digest of the week of %s not made: %s", week.first_day, refusal)
        return 0
    for delivery in result.deliveries:
        deliver_alert.delay(delivery.pk)
    return len(result.deliveries)
