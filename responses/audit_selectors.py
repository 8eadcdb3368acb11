"""Reading the audit log: who may see which entries, the filters, and each entry as a sentence.

Admins see every entry. Supervisors see the desk's events (claims, assignments, sends,
approvals, tone-guard overrides): reviewing those is their job; changes to keywords,
sources, brands, teams and users are admin business and stay with admins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from auditlog.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist
from django.db.models import QuerySet
from django.utils import timezone

from responses.services.audit import AuditEvent

# The filter's names for what an entry is about: (app label, model).
OBJECT_TYPES: dict[str, tuple[str, str]] = {
    "mention": ("listening", "mention"),
    "reply": ("responses", "reply"),
    "keyword": ("listening", "trackedkeyword"),
    "source": ("listening", "source"),
    "brand": ("listening", "brand"),
    "team": ("listening", "team"),
    "user": ("auth", "user"),
}
OBJECT_TYPE_LABELS = {
    "mention": "Mentions",
    "reply": "Replies",
    "keyword": "Keywords",
    "source": "Sources",
    "brand": "Brands",
    "team": "Teams",
    "user": "Users",
}
DESK_OBJECT_TYPES = ("mention", "reply")
# Changes recorded by auditlog's signals, by action, beside the desk's named events.
MODEL_ACTIONS = {
    "created": LogEntry.Action.CREATE,
    "changed": LogEntry.Action.UPDATE,
    "deleted": LogEntry.Action.DELETE,
}
MODEL_ACTION_LABELS = {
    "created": "Created (keyword, source, brand, team, user)",
    "changed": "Changed (keyword, source, brand, team, user)",
    "deleted": "Deleted (keyword, source, brand, team, user)",
}
VALUE_MAX_LENGTH = 140


@dataclass(frozen=True, slots=True)
class AuditFilters:
    actor_id: int | None = None
    event: str = ""
    object_type: str = ""
    text: str = ""
    since: date | None = None
    until: date | None = None


def _content_types(names: tuple[str, ...] | list[str]) -> list[ContentType]:
    return [ContentType.objects.get_by_natural_key(*OBJECT_TYPES[name]) for name in names]


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def audit_entries(*, viewer_is_admin: bool, filters: AuditFilters) -> QuerySet[LogEntry]:
    """The entries `filters` select that the viewer may see, newest first.

    Dates are whole days in the site's time zone, both ends included.
    """
    entries = LogEntry.objects.select_related("actor", "content_type")
    if not viewer_is_admin:
        entries = entries.filter(content_type__in=_content_types(DESK_OBJECT_TYPES))
    if filters.actor_id is not None:
        entries = entries.filter(actor_id=filters.actor_id)
    if filters.event in MODEL_ACTIONS:
        entries = entries.filter(action=MODEL_ACTIONS[filters.event]).exclude(
            additional_data__has_key="event"
        )
    elif filters.event:
        entries = entries.filter(additional_data__event=filters.event)
    if filters.object_type:
        entries = entries.filter(content_type__in=_content_types([filters.object_type]))
    if filters.text:
        entries = entries.filter(object_repr__icontains=filters.text)
    if filters.since is not None:
        entries = entries.filter(timestamp__gte=_day_start(filters.since))
    if filters.until is not None:
        entries = entries.filter(timestamp__lt=_day_start(filters.until + timedelta(days=1)))
    return entries.order_by("-timestamp", "-id")


def audit_actors() -> QuerySet[AbstractBaseUser]:
    """Everyone the actor filter offers: every account, deactivated ones too (their entries
    stay). A team's accounts are few; the log's rows may be millions, so they are not read."""
    user_model = get_user_model()
    return user_model.objects.order_by(user_model.USERNAME_FIELD)


# --- sentences ------------------------------------------------------------------------------


def _quoted(value: object) -> str:
    text = "" if value in (None, "None") else str(value)
    if len(text) > VALUE_MAX_LENGTH:
        text = text[:VALUE_MAX_LENGTH] + "…"
    return f"'{text}'"


def _actor_name(entry: LogEntry) -> str:
    if entry.actor is not None:
        return entry.actor.get_username()
    data = entry.additional_data or {}
    if data.get("actor_name") or entry.actor_email:
        # The account was deleted after the fact; the entry kept its name.
        return f"{data.get('actor_name') or entry.actor_email} (deleted account)"
    return "Someone outside the web pages (a command or a background task)"


def _desk_sentence(entry: LogEntry, actor: str, data: dict) -> str:
    mention = f"mention #{data.get('mention_id')}"
    reply = f"reply #{data.get('reply_id')}"
    event = data.get("event")
    if event == AuditEvent.CLAIM:
        return f"{actor} claimed {mention}"
    if event == AuditEvent.CLAIM_NEXT:
        return f"{actor} took {mention} with claim next"
    if event == AuditEvent.ASSIGN:
        held = data.get("previous_holder")
        held_by = f" (held by {held})" if held else ""
        return f"{actor} assigned {mention} to {data.get('assignee')}{held_by}"
    if event == AuditEvent.RELEASE:
        return f"{actor} released {mention}"
    if event == AuditEvent.CLAIM_LAPSED:
        holder = data.get("previous_holder") or "someone"
        return f"{holder}'s claim on {mention} lapsed: it went back to the queue"
    if event == AuditEvent.CLOSE:
        outcome = data.get("outcome")
        if outcome == "resolved":
            return f"{actor} resolved {mention}"
        if outcome == "spam":
            return f"{actor} marked {mention} as spam"
        return f"{actor} closed {mention}: no reply needed"
    if event == AuditEvent.MARK_HANDLED:
        return f"{actor} marked {mention} answered on its platform"
    if event == AuditEvent.REPLY_SEND:
        private = " (taking it private)" if data.get("dm_invite") else ""
        return f"{actor} sent {reply} to {mention}{private}"
    if event == AuditEvent.REPLY_FOR_APPROVAL:
        return f"{actor} sent {reply} to {mention} for approval"
    if event == AuditEvent.TONE_OVERRIDE:
        warnings = ", ".join(str(code).replace("_", " ") for code in data.get("warnings", []))
        for_approval = " for approval" if data.get("status") == "awaiting" else ""
        return (
            f"{actor} sent {reply} to {mention}{for_approval} past the tone guard's warnings "
            f"({warnings}), giving the reason {_quoted(data.get('reason'))}"
        )
    if event == AuditEvent.REPLY_UNDO:
        return f"{actor} undid {reply} to {mention}"
    if event == AuditEvent.REPLY_POSTED:
        return (
            f"Earshot posted {reply} to {mention} on {data.get('platform')} "
            f"(its id there: {data.get('external_id')})"
        )
    if event == AuditEvent.REPLY_FAILED:
        return (
            f"Earshot could not post {reply} to {mention} on {data.get('platform')}: "
            f"{_quoted(data.get('error'))}"
        )
    if event == AuditEvent.REPLY_APPROVE:
        edited = ", edited" if data.get("edited") else ""
        return f"{actor} approved {reply} by {data.get('author')} to {mention}{edited}"
    if event == AuditEvent.REPLY_SEND_BACK:
        return (
            f"{actor} sent {reply} to {mention} back to {data.get('author')}: "
            f"{_quoted(data.get('note'))}"
        )
    return f"{actor}: {event} on {entry.object_repr}"


def _field_label(model: type | None, name: str) -> str:
    if model is None:
        return name
    try:
        return str(model._meta.get_field(name).verbose_name)
    except FieldDoesNotExist:
        return name


def _change_phrase(entry: LogEntry, model: type | None, name: str, values: object) -> str:
    label = _field_label(model, name)
    if isinstance(values, dict) and values.get("type") == "m2m":
        objects = ", ".join(str(item) for item in values.get("objects", []))
        if values.get("operation") == "add":
            return f"added {objects} to {label}"
        return f"removed {objects} from {label}"
    if not isinstance(values, list | tuple) or len(values) != 2:
        return label
    old, new = values
    field = None
    if model is not None:
        try:
            field = model._meta.get_field(name)
        except FieldDoesNotExist:
            field = None
    if field is not None and field.many_to_one:
        # Stored as ids: show what they point at, as auditlog's own display does.
        old = entry._get_changes_display_for_fk_field(field, old)
        new = entry._get_changes_display_for_fk_field(field, new)
    return f"{label}: {_quoted(old)} → {_quoted(new)}"


def _model_sentence(entry: LogEntry, actor: str) -> str:
    model = entry.content_type.model_class()
    kind = next(
        (
            name
            for name, natural_key in OBJECT_TYPES.items()
            if natural_key == (entry.content_type.app_label, entry.content_type.model)
        ),
        entry.content_type.model,
    )
    subject = f"{kind} {_quoted(entry.object_repr)}"
    if entry.action == LogEntry.Action.CREATE:
        return f"{actor} created {subject}"
    if entry.action == LogEntry.Action.DELETE:
        return f"{actor} deleted {subject}"
    phrases = [
        _change_phrase(entry, model, name, values)
        for name, values in sorted(entry.changes_dict.items())
    ]
    return f"{actor} changed {subject} " + "; ".join(phrases)


def audit_entry_sentence(entry: LogEntry) -> str:
    """The entry as a sentence: "alice claimed mention #123", "bo changed keyword
    'Acme: acme' query: 'acme' → 'acme -job'". Secrets read '(hidden)' or '(none)'."""
    actor = _actor_name(entry)
    data = entry.additional_data or {}
    if isinstance(data, dict) and data.get("event"):
        return _desk_sentence(entry, actor, data)
    return _model_sentence(entry, actor)
