"""Sending replies: an outbox row in the same transaction as the status change, then a task
that posts it at most once per row."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from config.roles import NEEDS_APPROVAL, SUPERVISOR, has_role
from listening.clients.base import (
    PlatformClient,
    PlatformError,
    PlatformOutcomeUnknown,
    PlatformUnavailable,
    PostedReply,
    RateLimited,
    RequestRejected,
)
from listening.clients.registry import client_for_mention
from listening.models import OPEN_STATUSES, Brand, Mention, MentionStatus
from responses.models import Playbook, Reply, ReplyOrigin, ReplyStatus
from responses.services.audit import AuditEvent, audit_record
from responses.services.claims import claimable, lease_end
from responses.services.form_letters import SimilarReply, form_letter_check
from responses.services.tone import ToneWarning, tone_check

logger = logging.getLogger(__name__)


class ReplyRefused(Exception):
    """The reply cannot be sent as asked; the message is for the agent.

    `other_reply` is the reply a colleague sent meanwhile, when that is the reason.
    """

    def __init__(self, message: str, *, other_reply: Reply | None = None) -> None:
        super().__init__(message)
        self.other_reply = other_reply


FORM_LETTER = "form_letter"


class ReplyNeedsReview(Exception):
    """The tone guard or the form-letter detector has something to say before it leaves.

    The agent may rewrite, or send anyway with a reason (which is kept on the reply).
    """

    def __init__(self, warnings: list[ToneWarning], similar: list[SimilarReply]) -> None:
        super().__init__("; ".join(warning.message for warning in warnings))
        self.warnings = warnings
        self.similar = similar


def reply_review(*, mention: Mention, text: str) -> tuple[list[ToneWarning], list[SimilarReply]]:
    """Everything worth a second look in `text` as a reply to `mention`, before it is sent."""
    warnings = tone_check(text=text, mention=mention)
    form_letter = form_letter_check(text=text, brand_id=mention.brand_id)
    if form_letter.is_form_letter:
        warnings.append(ToneWarning(code=FORM_LETTER, message=form_letter.message))
    return warnings, form_letter.similar if form_letter.is_form_letter else []


def reply_submit(
    *,
    mention_id: int,
    agent: AbstractBaseUser,
    text: str,
    opened_at: datetime | None = None,
    override_reason: str = "",
    dm_invite: bool = False,
    playbook: Playbook | None = None,
) -> Reply:
    """Queue `text` as the reply to a mention the agent holds (or that nobody holds).

    On a brand whose replies need approval, a reply by an agent in the "needs approval"
    group waits for a supervisor instead (reply_approve / reply_return). `dm_invite` marks
    the reply as taking the case private: the mention records when and by whom.

    `opened_at` is when the agent opened the mention: if a colleague replied since, this
    reply is refused and theirs is shown, so a customer never gets two answers because two
    people were typing at once. A reply the tone guard or the form-letter detector warns
    about raises ReplyNeedsReview, unless `override_reason` says why it should go as it is;
    the overridden warnings and the reason are kept on the reply and logged. The mention
    leaves the open queue at once (status "replying") and the send task is enqueued only
    once this transaction commits. Raises ReplyRefused with the reason.
    """
    # Imported here: tasks import this module.
    from responses.tasks import send_reply

    text = text.strip()
    if not text:
        raise ReplyRefused("The reply is empty.")
    with transaction.atomic():
        mention = (
            Mention.objects.select_for_update(of=("self",))
            .select_related("claimed_by", "author", "brand")
            .get(pk=mention_id)
        )
        platform = mention.get_platform_display()
        if not mention.can_reply_in_earshot:
            raise ReplyRefused(
                f"{platform} has no API to reply through: answer there (Open on {platform}), "
                "then mark the mention handled."
            )
        if len(text) > mention.reply_max_length:
            raise ReplyRefused(
                f"{platform} allows {mention.reply_max_length} characters; "
                f"this reply has {len(text)}."
            )
        if opened_at is not None:
            answered_meanwhile = (
                Reply.objects.filter(mention=mention, created_at__gt=opened_at)
                .exclude(agent=agent)
                .exclude(status__in=[ReplyStatus.FAILED, ReplyStatus.RETURNED])
                .select_related("agent")
                .first()
            )
            if answered_meanwhile is not None:
                raise ReplyRefused(
                    f"{answered_meanwhile.author_label} replied after you opened this "
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
        # Last, once it is sure the agent may reply at all.
        warnings, similar = reply_review(mention=mention, text=text)
        override_reason = override_reason.strip()
        if warnings and not override_reason:
            raise ReplyNeedsReview(warnings, similar)
        now = timezone.now()
        waits = reply_needs_approval(brand=mention.brand, agent=agent)
        reply = Reply.objects.create(
            mention=mention,
            agent=agent,
            text=text,
            status=ReplyStatus.AWAITING_APPROVAL if waits else ReplyStatus.QUEUED,
            send_after=None if waits else now + timedelta(seconds=settings.REPLY_UNDO_SECONDS),
            text_as_written=text if waits else "",
            is_dm_invite=dm_invite,
            playbook=playbook,
            warnings_overridden=[warning.code for warning in warnings],
            override_reason=override_reason if warnings else "",
        )
        if warnings:
            logger.info(
                "%s sent reply %s to mention %s past warnings %s: %s",
                agent.get_username(),
                reply.pk,
                mention.pk,
                ", ".join(warning.code for warning in warnings),
                override_reason,
            )
        _audit_submitted(reply, warnings_overridden=bool(warnings), now=now)
        mention.status = MentionStatus.REPLYING
        mention.claimed_by = agent
        mention.claimed_at = mention.claimed_at or now
        if dm_invite:
            mention.taken_private_at, mention.taken_private_by = now, agent
        mention.save(
            update_fields=[
                "status", "claimed_by", "claimed_at", "taken_private_at", "taken_private_by",
            ]
        )  # fmt: skip
        if not waits:
            # Leaves once the undo window has passed (the task checks send_after again).
            send_reply.apply_async_on_commit((reply.pk,), countdown=settings.REPLY_UNDO_SECONDS)
    return reply


def _audit_submitted(reply: Reply, *, warnings_overridden: bool, now: datetime) -> None:
    """One entry for a submitted reply: sent past the tone guard (its warnings and the
    reason), else sent, else waiting for approval."""
    waits = reply.status == ReplyStatus.AWAITING_APPROVAL
    if warnings_overridden:
        event = AuditEvent.TONE_OVERRIDE
    else:
        event = AuditEvent.REPLY_FOR_APPROVAL if waits else AuditEvent.REPLY_SEND
    details: dict[str, object] = {"status": reply.status, "dm_invite": reply.is_dm_invite}
    if warnings_overridden:
        details |= {"warnings": reply.warnings_overridden, "reason": reply.override_reason}
    audit_record(
        event=event,
        actor=reply.agent,
        mention_id=reply.mention_id,
        reply_id=reply.pk,
        details=details,
        now=now,
    )


def reply_needs_approval(*, brand: Brand, agent: AbstractBaseUser) -> bool:
    return brand.replies_need_approval and agent.groups.filter(name=NEEDS_APPROVAL).exists()


def reply_approve(*, reply_id: int, reviewer: AbstractBaseUser, text: str = "") -> Reply:
    """A supervisor approves a waiting reply, edited or not; it then leaves like any other
    (after the undo window). The author's own words stay in `text_as_written`."""
    from responses.tasks import send_reply

    if not has_role(reviewer, SUPERVISOR):
        raise ReplyRefused("Only a supervisor can approve replies.")
    with transaction.atomic():
        reply = _waiting_reply(reply_id)
        text = text.strip() or reply.text
        if len(text) > reply.mention.reply_max_length:
            raise ReplyRefused(
                f"{reply.mention.get_platform_display()} allows "
                f"{reply.mention.reply_max_length} characters; this reply has {len(text)}."
            )
        now = timezone.now()
        edited = text != reply.text
        reply.text = text
        reply.status = ReplyStatus.QUEUED
        reply.reviewed_by, reply.reviewed_at = reviewer, now
        reply.send_after = now + timedelta(seconds=settings.REPLY_UNDO_SECONDS)
        reply.save(
            update_fields=[
                "text",
                "status",
                "reviewed_by",
                "reviewed_at",
                "send_after",
                "updated_at",
            ]
        )
        logger.info("%s approved reply %s", reviewer.get_username(), reply.pk)
        audit_record(
            event=AuditEvent.REPLY_APPROVE,
            actor=reviewer,
            mention_id=reply.mention_id,
            reply_id=reply.pk,
            details={"author": reply.agent.get_username(), "edited": edited},
            now=now,
        )
        send_reply.apply_async_on_commit((reply.pk,), countdown=settings.REPLY_UNDO_SECONDS)
    return reply


def reply_return(*, reply_id: int, reviewer: AbstractBaseUser, note: str) -> Reply:
    """A supervisor sends a waiting reply back to its author with a note: the mention is the
    author's again (claimed, with a fresh lease), and nothing is posted."""
    if not has_role(reviewer, SUPERVISOR):
        raise ReplyRefused("Only a supervisor can send replies back.")
    note = note.strip()
    if not note:
        raise ReplyRefused("Say what to change, so the author knows.")
    with transaction.atomic():
        reply = _waiting_reply(reply_id)
        now = timezone.now()
        reply.status = ReplyStatus.RETURNED
        reply.reviewed_by, reply.reviewed_at, reply.review_note = reviewer, now, note
        reply.save(
            update_fields=["status", "reviewed_by", "reviewed_at", "review_note", "updated_at"]
        )
        Mention.objects.filter(pk=reply.mention_id, status=MentionStatus.REPLYING).update(
            status=MentionStatus.CLAIMED,
            claimed_by_id=reply.agent_id,
            claim_expires_at=lease_end(now),
            taken_private_at=None,
            taken_private_by=None,
        )
        audit_record(
            event=AuditEvent.REPLY_SEND_BACK,
            actor=reviewer,
            mention_id=reply.mention_id,
            reply_id=reply.pk,
            details={"author": reply.agent.get_username(), "note": note},
            now=now,
        )
    return reply


def _waiting_reply(reply_id: int) -> Reply:
    reply = (
        Reply.objects.select_for_update(of=("self",))
        .select_related("mention", "agent")
        .filter(pk=reply_id)
        .first()
    )
    if reply is None or reply.status != ReplyStatus.AWAITING_APPROVAL:
        raise ReplyRefused("This reply is no longer waiting for approval.")
    return reply


def replies_awaiting_approval() -> QuerySet[Reply]:
    return (
        Reply.objects.filter(status=ReplyStatus.AWAITING_APPROVAL)
        .select_related("agent", "mention__author", "mention__brand")
        .order_by("created_at")
    )


def reply_mark_handled(*, mention_id: int, agent: AbstractBaseUser) -> Reply | None:
    """Record that the agent answered on the platform itself (one without a write API).

    Allowed where the agent could reply: an open mention nobody else holds. The mention is
    then replied, and the moment of marking counts as the response time. None if refused.
    """
    now = timezone.now()
    with transaction.atomic():
        marked = Mention.objects.filter(
            claimable(now) | Q(status=MentionStatus.CLAIMED, claimed_by=agent), pk=mention_id
        ).update(status=MentionStatus.REPLIED, claimed_by=agent, claim_expires_at=None)
        if not marked:
            return None
        reply = Reply.objects.create(
            mention_id=mention_id,
            agent=agent,
            origin=ReplyOrigin.MARKED,
            text="",
            status=ReplyStatus.SENT,
            posted_at=now,
        )
        audit_record(
            event=AuditEvent.MARK_HANDLED,
            actor=agent,
            mention_id=mention_id,
            reply_id=reply.pk,
            now=now,
        )
    return reply


def reply_wait(*, reply_id: int) -> timedelta:
    """How long a queued reply must still wait for its undo window; zero when due."""
    send_after = (
        Reply.objects.filter(pk=reply_id, status=ReplyStatus.QUEUED)
        .values_list("send_after", flat=True)
        .first()
    )
    if send_after is None:
        return timedelta(0)
    return max(send_after - timezone.now(), timedelta(0))


def reply_undo(*, reply_id: int, agent: AbstractBaseUser) -> Reply | None:
    """Take back a reply still inside its undo window; the mention returns to its agent.

    Returns the undone reply (its text goes back in the reply box), or None when it is too
    late: the row is claimed by the send task the moment the window closes.
    """
    now = timezone.now()
    with transaction.atomic():
        undone = Reply.objects.filter(
            pk=reply_id, agent=agent, status=ReplyStatus.QUEUED, send_after__gt=now
        ).update(status=ReplyStatus.UNDONE)
        if undone != 1:
            return None
        reply = Reply.objects.get(pk=reply_id)
        Mention.objects.filter(pk=reply.mention_id, status=MentionStatus.REPLYING).update(
            status=MentionStatus.CLAIMED, claimed_by=agent, claim_expires_at=lease_end(now)
        )
        audit_record(
            event=AuditEvent.REPLY_UNDO,
            actor=agent,
            mention_id=reply.mention_id,
            reply_id=reply.pk,
            now=now,
        )
    return reply


def reply_post(
    *, reply_id: int, give_up_on_transient: bool, client: PlatformClient | None = None
) -> Reply | None:
    """Post a queued reply to its platform, at most once. None when there was nothing to do.

    The QUEUED → SENDING update (only once the undo window has passed) is the claim: a
    duplicate delivery of the task finds the row no longer queued and posts nothing. A
    failure that proves nothing was posted puts the row back in the queue and re-raises for
    the task's retry. A failure after which X may have posted it (a timeout, a 5xx) marks the
    row `outcome_unknown`: every later attempt first looks for the reply on X, and posts
    only if it is not there. With `give_up_on_transient`, the reply fails instead. A 429
    puts it back in the queue until the platform's reset time, and re-raises.
    """
    now = timezone.now()
    claimed = (
        Reply.objects.filter(pk=reply_id, status=ReplyStatus.QUEUED)
        .filter(Q(send_after__isnull=True) | Q(send_after__lte=now))
        # update() leaves auto_now alone: set updated_at, the sweeper's "stalled since".
        .update(status=ReplyStatus.SENDING, attempts=F("attempts") + 1, updated_at=now)
    )
    if claimed != 1:
        logger.info("Reply %s is not due or not queued any more; nothing to send", reply_id)
        return None
    reply = Reply.objects.select_related("mention__brand").get(pk=reply_id)
    client = client or client_for_mention(reply.mention)
    try:
        posted = _already_posted(reply, client) if reply.outcome_unknown else None
        if posted is None:
            posted = client.post_reply(text=reply.text, in_reply_to_id=reply.mention.external_id)
    except PlatformUnavailable as exc:
        unknown = reply.outcome_unknown or isinstance(exc, PlatformOutcomeUnknown)
        if give_up_on_transient:
            _reply_failed(reply, exc, maybe_posted=unknown)
            return reply
        Reply.objects.filter(pk=reply_id).update(
            status=ReplyStatus.QUEUED, outcome_unknown=unknown, error=str(exc)
        )
        raise
    except RateLimited as exc:
        # Refused, so not posted: it goes again once the platform's window resets.
        Reply.objects.filter(pk=reply_id).update(
            status=ReplyStatus.QUEUED, send_after=exc.reset_at, error=str(exc)
        )
        raise
    except PlatformError as exc:
        _reply_failed(reply, exc, maybe_posted=reply.outcome_unknown)
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
        audit_record(
            event=AuditEvent.REPLY_POSTED,
            actor=None,
            mention_id=reply.mention_id,
            reply_id=reply.pk,
            details={
                "platform": reply.mention.get_platform_display(),
                "external_id": posted.external_id,
            },
        )
    return reply


def _already_posted(reply: Reply, client: PlatformClient) -> PostedReply | None:
    """The reply on the platform, if an earlier attempt's post went through after all."""
    handle = getattr(client, "account_handle", "")
    if not handle:
        platform = reply.mention.get_platform_display()
        raise RequestRejected(
            f"An earlier attempt may have posted this reply, and the brand has no {platform} "
            f"account set to check with: not sending again. Look on {platform}, then send it "
            "again if it is not there."
        )
    found = client.find_reply(
        author_username=handle, text=reply.text, in_reply_to_id=reply.mention.external_id
    )
    if found is not None:
        logger.info("Reply %s was posted by an earlier attempt as %s", reply.pk, found.external_id)
    return found


def _reply_failed(reply: Reply, exc: PlatformError, *, maybe_posted: bool = False) -> None:
    """The reply could not be sent: hand the mention back to its agent with the reason."""
    logger.warning("Reply %s to mention %s failed: %s", reply.pk, reply.mention_id, exc)
    error = str(exc)
    if maybe_posted:
        error += " It may have reached X all the same: look there before sending again."
    with transaction.atomic():
        Reply.objects.filter(pk=reply.pk).update(status=ReplyStatus.FAILED, error=error)
        Mention.objects.filter(pk=reply.mention_id, status=MentionStatus.REPLYING).update(
            status=MentionStatus.CLAIMED,
            claimed_by_id=reply.agent_id,
            claim_expires_at=lease_end(timezone.now()),
        )
        audit_record(
            event=AuditEvent.REPLY_FAILED,
            actor=None,
            mention_id=reply.mention_id,
            reply_id=reply.pk,
            details={"platform": reply.mention.get_platform_display(), "error": error},
        )
    reply.refresh_from_db()


# A queued reply whose task is this late was lost (a broker restart, a purged queue).
LOST_TASK_AFTER = timedelta(minutes=1)
# A reply still "sending" this long after its attempt began lost its worker mid-send (killed,
# out of memory): its post may or may not have reached the platform.
STALLED_SEND_AFTER = timedelta(minutes=5)


def replies_resume_stalled(*, now: datetime | None = None) -> list[int]:
    """Find replies whose send task was lost, make them safe to send, and return their ids.

    A reply stuck in "sending" goes back to the queue marked `outcome_unknown`, so its next
    attempt looks for it on the platform before posting: resuming never double-posts, and a
    second task for a reply that still has one only finds it no longer queued. Safe to run
    twice; the caller enqueues one send task per id.
    """
    now = now or timezone.now()
    stalled = Reply.objects.filter(
        status=ReplyStatus.SENDING, updated_at__lt=now - STALLED_SEND_AFTER
    ).update(status=ReplyStatus.QUEUED, outcome_unknown=True, updated_at=now)
    if stalled:
        logger.warning("%s replies lost their worker mid-send; they will be reconciled", stalled)
    return list(
        Reply.objects.filter(
            status=ReplyStatus.QUEUED, send_after__lt=now - LOST_TASK_AFTER
        ).values_list("pk", flat=True)
    )
