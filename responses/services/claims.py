"""Who works which mention: claims as leases, claim-next, assignment, closing without reply.

Every write here is a conditional UPDATE (or a row lock with SKIP LOCKED) whose outcome says
who won, so two agents clicking at once can never both hold a mention. A claim is a lease:
each action of its holder renews it, and once it lapses the mention is anyone's again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from listening.models import OPEN_STATUSES, UNCLAIMED_STATUSES, Mention, MentionStatus
from responses.selectors import mentions_visible_to
from responses.services.audit import (
    AuditEvent,
    AuditEventRecord,
    AuditTarget,
    audit_insert_for_mentions_sql,
    audit_record,
    audit_record_many,
)


@dataclass(frozen=True, slots=True)
class ClaimResult:
    won: bool
    # Who holds the mention now (the caller when won), or None if it is no longer open.
    holder_name: str | None
    mention: Mention


def lease_end(now: datetime) -> datetime:
    return now + timedelta(minutes=settings.CLAIM_LEASE_MINUTES)


def claimable(now: datetime) -> Q:
    """New and reopened mentions, and claimed ones whose lease has lapsed."""
    return Q(status__in=UNCLAIMED_STATUSES) | Q(
        status=MentionStatus.CLAIMED, claim_expires_at__lte=now
    )


def mention_claim(*, mention_id: int, agent: AbstractBaseUser) -> ClaimResult:
    """Claim a mention nobody holds (or whose lease lapsed) for `agent`.

    Claiming your own claim again wins and renews the lease (a renewal is not audited: the
    claim it extends was).
    """
    now = timezone.now()
    with transaction.atomic():
        updated = (
            Mention.objects.filter(claimable(now), pk=mention_id).update(
                status=MentionStatus.CLAIMED,
                claimed_by=agent,
                claimed_at=now,
                claim_expires_at=lease_end(now),
            )
            == 1
        )
        if updated:
            audit_record(event=AuditEvent.CLAIM, actor=agent, mention_id=mention_id, now=now)
    won = updated or claim_renew(mention_id=mention_id, agent=agent)
    mention = Mention.objects.select_related("claimed_by", "author").get(pk=mention_id)
    holder = mention.claimed_by.get_username() if mention.status == MentionStatus.CLAIMED else None
    return ClaimResult(won=won, holder_name=holder, mention=mention)


def mention_claim_next(*, agent: AbstractBaseUser) -> Mention | None:
    """Hand `agent` the most urgent new or reopened mention; None when there is none.

    One statement, `UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED) RETURNING *`:
    SKIP LOCKED lets concurrent callers each take a different row instead of queueing on the
    same one (fifty agents pressing "claim next" at once get fifty different mentions), and
    a single round trip, which also returns the claimed row, keeps it locked the shortest time.
    The audit entry is written by the same statement (a data-modifying CTE): a second round
    trip inside the transaction would hold the row's lock that much longer.
    Agents get only a mention of their teams or of no team (`team_scope`).
    """
    now = timezone.now()
    most_urgent = (
        mentions_visible_to(Mention.objects.all(), user=agent)
        .select_for_update(skip_locked=True)
        # Unclaimed only, through their own partial index: an index walk past every claimed
        # row would slow each claim as the desk fills. Lapsed claims come back within 30 s,
        # when beat's claims_release_expired returns them to the queue.
        .filter(status__in=UNCLAIMED_STATUSES)
        .order_by("urgency_at", "id")
        .values("pk")[:1]
    )
    # Django compiles FOR UPDATE only inside a transaction (it is one statement regardless).
    with transaction.atomic():
        select_sql, select_params = most_urgent.query.sql_with_params()
        audit_sql, audit_params = audit_insert_for_mentions_sql(
            rows="claimed", event=AuditEvent.CLAIM_NEXT, actor=agent, now=now
        )
        claimed = list(
            Mention.objects.raw(
                f"WITH claimed AS (UPDATE {Mention._meta.db_table} "
                "SET status = %s, claimed_by_id = %s, claimed_at = %s, claim_expires_at = %s "
                f"WHERE id = ({select_sql}) RETURNING *), "
                f"audited AS ({audit_sql}) "
                "SELECT * FROM claimed",
                [
                    MentionStatus.CLAIMED,
                    agent.pk,
                    now,
                    lease_end(now),
                    *select_params,
                    *audit_params,
                ],
            )
        )
    return claimed[0] if claimed else None


def _update_returning_holders(
    mentions: QuerySet[Mention], **assignments: Any
) -> list[tuple[int, str | None]]:
    """UPDATE `mentions` with `assignments`, in one statement; each updated mention's id and
    the username of whoever held it before (None: nobody), for the audit log.

    Django's update() returns only a count, and RETURNING sees the new row: the previous
    holder comes from the locked rows of a subquery (FOR UPDATE: a concurrent change is
    waited for, then the row is read again) joined in the UPDATE's FROM. Call it inside a
    transaction.
    """
    before_sql, before_params = (
        mentions.select_for_update(of=("self",)).values("id", "claimed_by_id").query
    ).sql_with_params()
    columns = [Mention._meta.get_field(name).column for name in assignments]
    table = connection.ops.quote_name(Mention._meta.db_table)
    users = connection.ops.quote_name(get_user_model()._meta.db_table)
    set_sql = ", ".join(f"{connection.ops.quote_name(column)} = %s" for column in columns)
    values = [getattr(value, "pk", value) for value in assignments.values()]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {set_sql} "
            f"FROM ({before_sql}) AS before LEFT JOIN {users} AS holder "
            "ON holder.id = before.claimed_by_id "
            f"WHERE {table}.id = before.id RETURNING {table}.id, holder.username",
            [*values, *before_params],
        )
        return list(cursor.fetchall())


def mention_assign(
    *,
    mention_id: int,
    assignee: AbstractBaseUser,
    assigned_by: AbstractBaseUser | None = None,
) -> bool:
    """A supervisor (`assigned_by`) gives an open mention to `assignee`, whoever held it.

    True if assigned; the audit log records who assigned it to whom, and who held it.
    """
    now = timezone.now()
    with transaction.atomic():
        assigned = _update_returning_holders(
            Mention.objects.filter(pk=mention_id, status__in=OPEN_STATUSES),
            status=MentionStatus.CLAIMED,
            claimed_by=assignee,
            claimed_at=now,
            claim_expires_at=lease_end(now),
        )
        if not assigned:
            return False
        audit_record(
            event=AuditEvent.ASSIGN,
            actor=assigned_by,
            mention_id=mention_id,
            details={"assignee": assignee.get_username(), "previous_holder": assigned[0][1]},
            now=now,
        )
    return True


def claim_renew(*, mention_id: int, agent: AbstractBaseUser) -> bool:
    """The holder is still at work on it: extend the lease. True if `agent` holds it."""
    now = timezone.now()
    return (
        Mention.objects.filter(
            pk=mention_id, status=MentionStatus.CLAIMED, claimed_by=agent, claim_expires_at__gt=now
        ).update(claim_expires_at=lease_end(now))
        == 1
    )


def mention_release(*, mention_id: int, agent: AbstractBaseUser) -> bool:
    """Give a claimed mention back to the queue. Only its holder can; True if released."""
    now = timezone.now()
    with transaction.atomic():
        released = (
            Mention.objects.filter(
                pk=mention_id, status=MentionStatus.CLAIMED, claimed_by=agent
            ).update(
                status=MentionStatus.NEW,
                claimed_by=None,
                claimed_at=None,
                claim_expires_at=None,
                released_at=now,
            )
            == 1
        )
        if released:
            audit_record(event=AuditEvent.RELEASE, actor=agent, mention_id=mention_id, now=now)
    return released


def claims_release_expired(*, now: datetime | None = None) -> int:
    """Return every lapsed claim to the queue; the number released. Safe to run twice.

    One audit entry per lapsed claim, naming whose it was, all in one INSERT.
    """
    now = now or timezone.now()
    with transaction.atomic():
        lapsed = _update_returning_holders(
            Mention.objects.filter(status=MentionStatus.CLAIMED, claim_expires_at__lte=now),
            status=MentionStatus.NEW,
            claimed_by=None,
            claimed_at=None,
            claim_expires_at=None,
            released_at=now,
        )
        audit_record_many(
            (
                AuditEventRecord(
                    event=AuditEvent.CLAIM_LAPSED,
                    target=AuditTarget(mention_id=mention_id),
                    actor=None,
                    details={"previous_holder": holder},
                )
                for mention_id, holder in lapsed
            ),
            now=now,
        )
    return len(lapsed)


# What closing a mention can mean, and from which statuses each is allowed besides the open
# ones: a replied conversation is resolved once the customer is helped.
CLOSING = {
    MentionStatus.RESOLVED: (MentionStatus.REPLIED,),
    MentionStatus.NO_REPLY_NEEDED: (),
    MentionStatus.SPAM: (),
}


def mention_close(*, mention_id: int, agent: AbstractBaseUser, outcome: str) -> bool:
    """Close a mention as resolved, ignored (no reply needed) or spam.

    Allowed on an open mention nobody else holds a live claim on (and, to resolve, on a
    replied one). Records who closed it in `claimed_by`. True if this call closed it.
    """
    now = timezone.now()
    allowed = claimable(now) | Q(status=MentionStatus.CLAIMED, claimed_by=agent)
    allowed |= Q(status__in=CLOSING[outcome])
    with transaction.atomic():
        closed = (
            Mention.objects.filter(allowed, pk=mention_id).update(
                status=outcome,
                claimed_by=agent,
                claimed_at=now,
                claim_expires_at=None,
                resolved_at=now if outcome == MentionStatus.RESOLVED else None,
            )
            == 1
        )
        if closed:
            audit_record(
                event=AuditEvent.CLOSE,
                actor=agent,
                mention_id=mention_id,
                details={"outcome": str(outcome)},
                now=now,
            )
    return closed


def mentions_close_many(*, mention_ids: list[int], agent: AbstractBaseUser, outcome: str) -> int:
    """Close each mention as `mention_close` would; how many this call closed."""
    return sum(mention_close(mention_id=pk, agent=agent, outcome=outcome) for pk in mention_ids)


def mentions_assign_many(
    *,
    mention_ids: list[int],
    assignee: AbstractBaseUser,
    assigned_by: AbstractBaseUser | None = None,
) -> int:
    """Assign each open mention to `assignee`; how many were assigned."""
    return sum(
        mention_assign(mention_id=pk, assignee=assignee, assigned_by=assigned_by)
        for pk in mention_ids
    )
