"""Celery adapters for listening: take ids, call one service."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from listening.services.polling import (
    backfill_due,
    keyword_backfill_page,
    keyword_poll,
    poll_claim_due,
)
from listening.services.retention import mentions_remove_expired


@shared_task
def dispatch_due_polls() -> int:
    """Beat runs this every few seconds: one poll task per keyword that is due."""
    keyword_ids = poll_claim_due()
    for keyword_id in keyword_ids:
        poll_keyword.delay(keyword_id)
    # History comes after live polls, a page per keyword per round, budget permitting.
    for keyword_id in backfill_due():
        backfill_keyword.delay(keyword_id)
    return len(keyword_ids)


# Safe to deliver twice (see keyword_poll), so acknowledge only once it has run.
@shared_task(acks_late=True)
def poll_keyword(keyword_id: int) -> int:
    return keyword_poll(keyword_id=keyword_id, max_pages=settings.POLL_MAX_PAGES).stored


@shared_task(acks_late=True)
def backfill_keyword(keyword_id: int) -> int:
    return keyword_backfill_page(keyword_id=keyword_id)


@shared_task
def remove_expired_mentions() -> int:
    """Beat runs this daily: closed mentions older than MENTION_RETENTION_DAYS go, their counts
    kept (see listening/services/retention.py). What one run leaves, it sends itself again for."""
    outcome = mentions_remove_expired()
    if outcome.more:
        remove_expired_mentions.delay()
    return outcome.removed
