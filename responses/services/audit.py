"""The audit log's entries for the desk's own events, and how long entries are kept.

Changes to keywords, sources, brands, teams and users are recorded by django-auditlog's
signals (registered in settings: AUDITLOG_INCLUDE_TRACKING_MODELS). The desk's events
(claims, assignments, sends, approvals) happen through conditional UPDATEs, which send no
signal: their services call `audit_record` (or `audit_record_many`) right after the UPDATE
that won, in the same transaction, so an event rolled back leaves no entry and an entry
cannot outlive its event. Each call is one INSERT.

Entries are auditlog LogEntry rows: action UPDATE on the mention or reply, with the event's
name and its details in `additional_data`. Usernames are copied into the details, so an
entry still reads right after an account is renamed or deleted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from auditlog.cid import get_cid
from auditlog.context import auditlog_value
from auditlog.models import LogEntry
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.contenttypes.models import ContentType
from django.db import connection, models
from django.db.models import Subquery
from django.utils import timezone

from listening.models import Mention
from responses.models import Reply


class AuditEvent(models.TextChoices):
    CLAIM = "claim", "Claimed a mention"
    CLAIM_NEXT = "claim_next", "Took the next mention (claim next)"
    ASSIGN = "assign", "Assigned a mention"
    RELEASE = "release", "Released a claim"
    CLAIM_LAPSED = "claim_lapsed", "A claim lapsed"
    CLOSE = "close", "Closed a mention (resolved, no reply needed, spam)"
    MARK_HANDLED = "mark_handled", "Marked answered on the platform"
    REPLY_SEND = "reply_send", "Sent a reply"
    REPLY_FOR_APPROVAL = "reply_for_approval", "Sent a reply for approval"
    TONE_OVERRIDE = "tone_override", "Sent a reply past tone-guard warnings"
    REPLY_UNDO = "reply_undo", "Undid a reply"
    REPLY_POSTED = "reply_posted", "A reply reached its platform"
    REPLY_FAILED = "reply_failed", "A reply failed to send"
    REPLY_APPROVE = "reply_approve", "Approved a reply"
    REPLY_SEND_BACK = "reply_send_back", "Sent a reply back"


@dataclass(frozen=True, slots=True)
class AuditTarget:
    """What an event happened to: a mention, or a reply (to a mention)."""

    mention_id: int
    reply_id: int | None = None

    @property
    def model(self) -> type[models.Model]:
        return Mention if self.reply_id is None else Reply

    @property
    def pk(self) -> int:
        return self.mention_id if self.reply_id is None else self.reply_id

    @property
    def label(self) -> str:
        mention = f"mention #{self.mention_id}"
        return mention if self.reply_id is None else f"reply #{self.reply_id} to {mention}"


@dataclass(frozen=True, slots=True)
class AuditEventRecord:
    event: AuditEvent
    target: AuditTarget
    actor: AbstractBaseUser | None
    details: dict[str, Any] = field(default_factory=dict)


def _username(user: AbstractBaseUser | None) -> str | None:
    return user.get_username() if user is not None else None


def _content_type_id(model: type) -> Subquery:
    """The model's content type, read by the INSERT itself rather than from Django's
    per-process cache: a long-lived worker's cached ids would outlive a database whose
    content types were made again (a restore into a fresh database, a test run's flush)."""
    meta = model._meta
    return Subquery(
        ContentType.objects.filter(app_label=meta.app_label, model=meta.model_name).values("pk")
    )


def _entry(record: AuditEventRecord, *, now: datetime, cid: str | None) -> LogEntry:
    actor = record.actor
    return LogEntry(
        content_type_id=_content_type_id(record.target.model),
        object_pk=str(record.target.pk),
        object_id=record.target.pk,
        object_repr=record.target.label,
        action=LogEntry.Action.UPDATE,
        actor=actor,
        actor_email=(getattr(actor, "email", "") or None) if actor is not None else None,
        timestamp=now,
        cid=cid,
        additional_data={
            "event": record.event.value,
            "mention_id": record.target.mention_id,
            "reply_id": record.target.reply_id,
            "actor_name": _username(actor),
            **record.details,
        },
    )


def audit_record(
    *,
    event: AuditEvent,
    actor: AbstractBaseUser | None,
    mention_id: int,
    reply_id: int | None = None,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> LogEntry:
    """Record one desk event: one INSERT. Call it inside the transaction of the change.

    `actor` None means Earshot itself (a lapsed lease). In a web request, auditlog's
    middleware adds the client's address and the request's correlation id.
    """
    record = AuditEventRecord(
        event=event,
        target=AuditTarget(mention_id=mention_id, reply_id=reply_id),
        actor=actor,
        details=details or {},
    )
    entry = _entry(record, now=now or timezone.now(), cid=get_cid())
    entry.save()
    return entry


def _request_address() -> str | None:
    """The client address auditlog's middleware noted for this request, if in one (its
    pre_save hook fills it in on save(); a statement of our own must ask)."""
    try:
        return auditlog_value.get().get("remote_addr")
    except LookupError:
        return None


def audit_insert_for_mentions_sql(
    *, rows: str, event: AuditEvent, actor: AbstractBaseUser, now: datetime
) -> tuple[str, list[object]]:
    """`INSERT … SELECT … FROM rows`: one entry of `event` by `actor` for each mention that
    `rows` (a CTE of the caller's statement, with an `id` column) returns, and its parameters.

    For a statement that changes mentions and records them in the same round trip, where a
    second statement would cost (claim next). The entries are those `audit_record` writes;
    tests compare them column by column.
    """
    column = {f.name: connection.ops.quote_name(f.column) for f in LogEntry._meta.concrete_fields}
    names = [
        "content_type", "object_pk", "object_id", "object_repr", "action", "changes_text",
        "actor", "actor_email", "timestamp", "cid", "remote_addr", "additional_data",
    ]  # fmt: skip
    sql = (
        f"INSERT INTO {connection.ops.quote_name(LogEntry._meta.db_table)} "
        f"({', '.join(column[name] for name in names)}) "
        f"SELECT (SELECT id FROM {ContentType._meta.db_table} WHERE app_label = %s AND "
        f"model = %s), {rows}.id::text, {rows}.id, 'mention #' || {rows}.id, %s, '', %s, %s, %s, "
        f"%s, %s, jsonb_build_object('event', %s::text, 'mention_id', {rows}.id, "
        f"'reply_id', NULL, 'actor_name', %s::text) FROM {rows}"
    )
    params: list[object] = [
        Mention._meta.app_label,
        Mention._meta.model_name,
        LogEntry.Action.UPDATE,
        actor.pk,
        getattr(actor, "email", "") or None,
        now,
        get_cid(),
        _request_address(),
        event.value,
        actor.get_username(),
    ]
    return sql, params


def audit_record_many(
    records: Iterable[AuditEventRecord], *, now: datetime | None = None
) -> list[LogEntry]:
    """Record several events at once (a batch of lapsed claims): one INSERT for all."""
    now = now or timezone.now()
    cid = get_cid()
    entries = [_entry(record, now=now, cid=cid) for record in records]
    return LogEntry.objects.bulk_create(entries) if entries else []


def audit_entries_delete_expired(*, now: datetime | None = None) -> int:
    """Delete entries older than AUDIT_RETENTION_DAYS (0: keep all); how many went.

    Safe to run twice and at any time: a second run finds nothing older left.
    """
    days = settings.AUDIT_RETENTION_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    # LogEntry has no dependent rows and no delete signals: Django deletes in one statement.
    deleted, _ = LogEntry.objects.filter(timestamp__lt=cutoff).delete()
    return deleted
