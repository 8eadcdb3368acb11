"""Sending replies: an outbox row in the same transaction as the status change, then a task
that posts it at most once per row."""

from __future__ import annotations

import logging
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from listening.clients.base import PlatformClient, PlatformError, PlatformUnavailable
from listening.clients.x import x_client_for_brand
from listening.models import OPEN_STATUSES, Mention, MentionStatus
from responses.models import Reply, ReplyStatus
from responses.services.claims import lease_end

logger = logging.getLogger(__name__)

X_REPLY_MAX_LENGTH = 280


class ReplyRefused(Exception):
    """The reply cannot be sent as asked; the message is for the agent.

    `other_reply` is the reply a colleague sent meanwhile, when that is the reason.
    """

    def __init__(self, message: str, *, other_reply: Reply | None = None) -> None:
        super().__init__(message)
        self.other_reply = other_reply


def reply_submit(
    *, mention_id: int, agent: AbstractBaseUser, text: str, opened_at: datetime | None = None
) -> Reply:
    """Queue `text` as the reply to a mention the agent holds (or that nobody holds).

    `opened_at` is when the agent opened the mention: if a colleague replied since, this
    reply is refused and theirs is shown, so a customer never gets two answers because two
    people were typing at once. The mention leaves the open queue at once (status
    "replying") and the send task is enqueued only once this transaction commits. Raises
    ReplyRefused with the reason.
    """
    # Imported here: tasks import this module.
    from responses.tasks import send_reply

    text = text.strip()
    if not text:
        raise ReplyRefused("The reply is empty.")
    if len(text) > X_REPLY_MAX_LENGTH:
        raise ReplyRefused(f"X allows {X_REPLY_MAX_LENGTH} characters; this reply has {len(text)}.")
    with transaction.atomic():
        mention = (
            Mention.objects.select_for_update(of=("self",))
            .select_related("claimed_by")
            .get(pk=mention_id)
        )
        if opened_at is not None:
            answered_meanwhile = (
                Reply.objects.filter(mention=mention, created_at__gt=opened_at)
                .exclude(agent=agent)
                .exclude(status=ReplyStatus.FAILED)
                .select_related("agent")
                .first()
            )
            if answered_meanwhile is not None:
                raise ReplyRefused(
                    f"{answered_meanwhile.agent.get_username()} replied after you opened this "
                    "mention; your reply was not sent. Theirs is shown below.",
                    other_reply=answered_meanwhile,
                )
        someone_elses = mention.claimed_by_id != agent.pk and not mention.is_claim_expired
        if mention.status == MentionStatus.CLAIMED and someone_elses:
            raise ReplyRefused(
                f"{mention.claimed_by.get_username()} has claimed this mention; "
                "ask them or a supervisor before replying."
            )
        if mention.status not in OPEN_STATUSES:
            raise ReplyRefused(f"This mention is already {mention.get_status_display().lower()}.")
        reply = Reply.objects.create(mention=mention, agent=agent, text=text)
        mention.status = MentionStatus.REPLYING
        mention.claimed_by = agent
        mention.claimed_at = mention.claimed_at or timezone.now()
        mention.save(update_fields=["status", "claimed_by", "claimed_at"])
        send_reply.delay_on_commit(reply.pk)
    return reply


def reply_post(
    *, reply_id: int, give_up_on_transient: bool, client: PlatformClient | None = None
) -> Reply | None:
    """Post a queued reply to its platform. Returns None when there was nothing to do.

    The QUEUED → SENDING update is the claim: a duplicate delivery of the task finds the row
    no longer queued and posts nothing. A transient failure puts the row back in the queue
    and re-raises for the task's retry, unless `give_up_on_transient`.
    """
    claimed = Reply.objects.filter(pk=reply_id, status=ReplyStatus.QUEUED).update(
        status=ReplyStatus.SENDING, attempts=F("attempts") + 1
    )
    if claimed != 1:
        logger.info("Reply %s is not queued any more; nothing to send", reply_id)
        return None
    reply = Reply.objects.select_related("mention__brand").get(pk=reply_id)
    client = client or x_client_for_brand(reply.mention.brand)
    try:
        posted = client.post_reply(text=reply.text, in_reply_to_id=reply.mention.external_id)
    except PlatformUnavailable as exc:
        if not give_up_on_transient:
            Reply.objects.filter(pk=reply_id).update(status=ReplyStatus.QUEUED, error=str(exc))
            raise
        _reply_failed(reply, exc)
        return reply
    except PlatformError as exc:
        _reply_failed(reply, exc)
        return reply
    with transaction.atomic():
        reply.status = ReplyStatus.SENT
        reply.external_id = posted.external_id
        reply.posted_at = posted.posted_at
        reply.error = ""
        reply.save(update_fields=["status", "external_id", "posted_at", "error", "updated_at"])
        Mention.objects.filter(pk=reply.mention_id, status=MentionStatus.REPLYING).update(
            status=MentionStatus.REPLIED
        )
    return reply


def _reply_failed(reply: Reply, exc: PlatformError) -> None:
    """The platform refused the reply: hand the mention back to its agent with the reason."""
    logger.warning("Reply %s to mention %s failed: %s", reply.pk, reply.mention_id, exc)
    with transaction.atomic():
        Reply.objects.filter(pk=reply.pk).update(status=ReplyStatus.FAILED, error=str(exc))
        Mention.objects.filter(pk=reply.mention_id, status=MentionStatus.REPLYING).update(
            status=MentionStatus.CLAIMED,
            claimed_by_id=reply.agent_id,
            claim_expires_at=lease_end(timezone.now()),
        )
    reply.refresh_from_db()
