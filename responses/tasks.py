"""Celery adapters for responses: take ids, call one service."""

from __future__ import annotations

from celery import shared_task

from listening.clients.base import PlatformUnavailable
from responses.services.claims import claims_release_expired
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
    reply_post(reply_id=reply_id, give_up_on_transient=self.request.retries >= self.max_retries)


@shared_task
def resume_stalled_replies() -> int:
    """Beat runs this every minute: replies whose send task was lost get a new one."""
    reply_ids = replies_resume_stalled()
    for reply_id in reply_ids:
        send_reply.delay(reply_id)
    return len(reply_ids)
