"""Who works which mention: claiming, releasing, and closing without a reply.

Every write here is a conditional UPDATE whose row count says who won, so two agents
clicking at once can never both hold a mention.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q
from django.utils import timezone

from listening.models import OPEN_STATUSES, Mention, MentionStatus


@dataclass(frozen=True, slots=True)
class ClaimResult:
    won: bool
    # Who holds the mention now (the caller when won), or None if it is no longer open.
    holder_name: str | None
    mention: Mention


def mention_claim(*, mention_id: int, agent: AbstractBaseUser) -> ClaimResult:
    """Claim an unclaimed open mention for `agent`. Claiming your own claim again wins."""
    updated = Mention.objects.filter(
        pk=mention_id, status=MentionStatus.NEW, claimed_by__isnull=True
    ).update(status=MentionStatus.CLAIMED, claimed_by=agent, claimed_at=timezone.now())
    mention = Mention.objects.select_related("claimed_by", "author").get(pk=mention_id)
    won = updated == 1 or (
        mention.status == MentionStatus.CLAIMED and mention.claimed_by_id == agent.pk
    )
    holder = mention.claimed_by.get_username() if mention.claimed_by else None
    return ClaimResult(won=won, holder_name=holder, mention=mention)


def mention_release(*, mention_id: int, agent: AbstractBaseUser) -> bool:
    """Give a claimed mention back to the queue. Only its holder can; True if released."""
    return (
        Mention.objects.filter(
            pk=mention_id, status=MentionStatus.CLAIMED, claimed_by=agent
        ).update(status=MentionStatus.NEW, claimed_by=None, claimed_at=None)
        == 1
    )


def mention_mark_no_reply_needed(*, mention_id: int, agent: AbstractBaseUser) -> bool:
    """Close an open mention without a reply, if it is unclaimed or `agent` holds it.

    Records who closed it in `claimed_by`. True if this call closed it.
    """
    return (
        Mention.objects.filter(pk=mention_id, status__in=OPEN_STATUSES)
        .filter(Q(claimed_by__isnull=True) | Q(claimed_by=agent))
        .update(status=MentionStatus.NO_REPLY_NEEDED, claimed_by=agent, claimed_at=timezone.now())
        == 1
    )
