"""Celery adapters for responses: take ids, call one service."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from listening.clients.base import PlatformUnavailable, RateLimited
from responses.services.claims import claims_release_expired
from responses.services.native_replies import account_cursors_claim_due, account_posts_read
from responses.services.replies import replies_resume_stalled, reply_post, reply_wait


@shared_task
def release_expired_claims() -> int:
    """Beat runs this every 30 s: lapsed claims go back to the queue."""
    return claims_release_expired()


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
