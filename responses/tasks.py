"""Celery adapters for responses: take ids, call one service."""

from __future__ import annotations

from celery import shared_task

from listening.clients.base import PlatformUnavailable
from responses.services.claims import claims_release_expired
from responses.services.replies import reply_post


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
    reply_post(reply_id=reply_id, give_up_on_transient=self.request.retries >= self.max_retries)
