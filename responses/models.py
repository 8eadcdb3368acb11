"""Replies the team sends to mentions."""

from __future__ import annotations

import string

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from config.roles import ROLES
from listening.models import Mention


class ReplyStatus(models.TextChoices):
    # Written by an agent whose replies a supervisor approves first (see Brand approvals).
    AWAITING_APPROVAL = "awaiting", "Waiting for approval"
    # The supervisor sent it back to its author, with a note.
    RETURNED = "returned", "Sent back"
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    UNDONE = "undone", "Undone"


class ReplyOrigin(models.TextChoices):
    EARSHOT = "earshot", "Sent from Earshot"
    # Found among the brand account's own posts: someone answered on the platform itself.
    PLATFORM = "platform", "Answered outside Earshot"
    # On a platform without a write API the agent answers there and marks it handled here.
    MARKED = "marked", "Answered on the platform, marked handled"


class Reply(models.Model):
    """A reply to a mention; also the outbox row the send task works from.

    Replies the team sent outside Earshot are kept too (origin PLATFORM or MARKED), so that
    response times count every answer the customer got, wherever it was written.
    """

    mention = models.ForeignKey(Mention, on_delete=models.CASCADE, related_name="replies")
    # Empty for a reply found on the platform: Earshot cannot know who wrote it there.
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="replies",
    )
    origin = models.CharField(
        max_length=8,
        choices=ReplyOrigin.choices,
        default=ReplyOrigin.EARSHOT,
        db_default=ReplyOrigin.EARSHOT,
    )
    text = models.TextField()
    status = models.CharField(max_length=8, choices=ReplyStatus.choices, default=ReplyStatus.QUEUED)
    # An invitation to continue in direct messages ("take it private").
    is_dm_invite = models.BooleanField(default=False, db_default=False)
    # The playbook the draft came from, if any: which plans get used.
    playbook = models.ForeignKey(
        "Playbook", on_delete=models.SET_NULL, null=True, blank=True, related_name="replies"
    )
    # Approval trail: who approved (or sent back) and when; the text as its author wrote it.
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="reviewed_replies",
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True)
    text_as_written = models.TextField(blank=True)
    external_id = models.CharField(max_length=255, blank=True)
    posted_at = models.DateTimeField(
        null=True, blank=True, help_text="When the platform published the reply"
    )
    # Nothing leaves before this moment: until then the agent can undo.
    send_after = models.DateTimeField(null=True, blank=True)
    # A send's answer never came: X may have it. Look there before posting again.
    outcome_unknown = models.BooleanField(default=False)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Tone-guard and form-letter warnings the agent chose to send past, and why.
    warnings_overridden = models.JSONField(default=list, blank=True)
    override_reason = models.TextField(blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=ReplyStatus.values), name="reply_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(origin__in=ReplyOrigin.values), name="reply_origin_valid"
            ),
            # Only a reply marked handled by hand has no id on the platform.
            models.CheckConstraint(
                condition=~Q(status=ReplyStatus.SENT)
                | (Q(posted_at__isnull=False) & (~Q(external_id="") | Q(origin="marked"))),
                name="reply_sent_has_platform_id_and_time",
            ),
            models.CheckConstraint(
                condition=Q(agent__isnull=False) | Q(origin="platform"),
                name="reply_agent_unless_found_on_platform",
            ),
            # A post of the brand's is linked to a mention once, however often it is read.
            models.UniqueConstraint(
                fields=["mention", "external_id"],
                condition=~Q(external_id=""),
                name="reply_platform_post_once",
            ),
            # One reply in flight per mention: a double click cannot post twice.
            models.UniqueConstraint(
                fields=["mention"],
                condition=Q(status__in=["awaiting", "queued", "sending"]),
                name="reply_one_in_flight_per_mention",
            ),
        ]
        indexes = [models.Index(fields=["status", "posted_at"], name="reply_status_posted")]

    def __str__(self) -> str:
        return f"reply {self.pk} to {self.mention_id} ({self.status})"

    @property
    def author_label(self) -> str:
        """Who answered, as the desk shows it."""
        if self.agent is not None:
            return self.agent.get_username()
        return f"the brand on {self.mention.get_platform_display()}"

    @property
    def is_sent(self) -> bool:
        return self.status == ReplyStatus.SENT

    @property
    def can_undo(self) -> bool:
        return (
            self.status == ReplyStatus.QUEUED
            and self.send_after is not None
            and self.send_after > timezone.now()
        )


class SavedView(models.Model):
    """A named set of queue filters, e.g. "negative, unclaimed, over 10k followers"."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_views"
    )
    name = models.CharField(max_length=60)
    # The queue's filter parameters, as its form reads them.
    filters = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="saved_view_name_per_owner")
        ]

    def __str__(self) -> str:
        return self.name


class PlaybookSentiment(models.TextChoices):
    ANY = "any", "Any sentiment"
    NEGATIVE = "negative", "Negative"
    POSITIVE = "positive", "Positive"
    NOT_NEGATIVE = "not_negative", "Not negative"


class Playbook(models.Model):
    """The team's written plan for one kind of post: when it applies, what to do, and
    reply templates to start from.

    A mention gets the first active playbook, in `order`, whose phrases and sentiment match
    it; one without phrases matches anything of its sentiment (the catch-all "Other" last).
    Templates use {name} (first name, else @handle), {handle}, {their_words} (the customer's
    own description), {agent_initials}, {brand} and {dm_link}.
    """

    name = models.CharField(max_length=60, unique=True)
    order = models.PositiveSmallIntegerField(default=100)
    # One phrase per line; any of them in the post (whole words, any case) matches.
    match_phrases = models.TextField(blank=True)
    match_sentiment = models.CharField(
        max_length=12, choices=PlaybookSentiment.choices, default=PlaybookSentiment.ANY
    )
    # Whether a post of this kind is a question the reply must answer.
    match_questions_only = models.BooleanField(default=False)
    guidance = models.TextField(help_text="What the agent should do: shown beside the draft.")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["order", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def phrases(self) -> list[str]:
        return [line.strip() for line in self.match_phrases.splitlines() if line.strip()]


TEMPLATE_VARIABLES = ("name", "handle", "their_words", "agent_initials", "brand", "dm_link")


def validate_template(text: str) -> None:
    """A template may use only the known variables, in {braces}."""
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(text) if field is not None]
    except ValueError as exc:
        raise ValidationError(f"The template's braces do not pair up: {exc}.") from exc
    unknown = [field for field in fields if field not in TEMPLATE_VARIABLES]
    if unknown:
        raise ValidationError(
            f"Unknown variable {{{unknown[0]}}}: use "
            + ", ".join(f"{{{name}}}" for name in TEMPLATE_VARIABLES)
            + "."
        )


class ReplyTemplate(models.Model):
    playbook = models.ForeignKey(Playbook, on_delete=models.CASCADE, related_name="templates")
    text = models.TextField(validators=[validate_template])
    # Used by "take it private": invites the customer to a direct message.
    is_dm_invite = models.BooleanField(default=False)

    class Meta:
        ordering = ["playbook", "id"]

    def __str__(self) -> str:
        return self.text[:60]


# --- alerts and the weekly digest -------------------------------------------------------


class AlertKind(models.TextChoices):
    SPIKE = "spike", "Negative spike"
    SLA_BREACH = "sla_breach", "SLA breach"
    DIGEST = "digest", "Weekly digest"


class Alert(models.Model):
    """Something supervisors should hear about now: a spike of negative mentions on a keyword,
    a mention waiting past its SLA target, or the weekly digest.

    An alert goes to each configured channel (one AlertDelivery row each) unless an alert of
    the same kind and keyword went out within ALERT_COOLDOWN_MINUTES: then it is kept as
    `suppressed` (or, for a spike still going on, not kept at all) and counted on that alert's
    `suppressed_count` instead of sent.
    """

    kind = models.CharField(max_length=12, choices=AlertKind.choices)
    # What makes the alert the only one of its kind: "sla:<mention id>" (a mention breaches
    # once), "digest:<first day of the week>". Blank for spikes, whose repeats the cooldown
    # governs.
    key = models.CharField(max_length=100, blank=True, default="", db_default="")
    keyword = models.ForeignKey(
        "listening.TrackedKeyword",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="alerts",
    )
    mention = models.ForeignKey(
        Mention, on_delete=models.SET_NULL, null=True, blank=True, related_name="alerts"
    )
    subject = models.CharField(max_length=200)
    message = models.TextField()
    # What was measured, e.g. a spike's count, baseline mean and spread, and z-score.
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Inside the cooldown of an earlier alert of the same kind and keyword: never sent.
    suppressed = models.BooleanField(default=False, db_default=False)
    # Alerts of the same kind and keyword that came during this one's cooldown, not sent.
    suppressed_count = models.PositiveIntegerField(default=0, db_default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=AlertKind.values), name="alert_kind_valid"),
            models.UniqueConstraint(fields=["key"], condition=~Q(key=""), name="alert_key_once"),
        ]
        indexes = [
            # The cooldown's question: the last alert sent for this kind and keyword.
            models.Index(
                fields=["kind", "keyword", "-created_at"],
                condition=Q(suppressed=False),
                name="alert_sent_by_kind_keyword",
            ),
            models.Index(fields=["kind", "-created_at"], name="alert_by_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.subject}"


class AlertChannel(models.TextChoices):
    EMAIL = "email", "E-mail"
    WEBHOOK = "webhook", "Webhook"


class AlertDeliveryStatus(models.TextChoices):
    PENDING = "pending", "Waiting to be sent"
    SENDING = "sending", "Being sent"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class AlertDelivery(models.Model):
    """One alert on its way to one channel: the outbox row its delivery task works from.

    A worker claims it with a conditional UPDATE (to `sending`, `next_attempt_at` then being
    the end of its claim), so one worker at a time sends it. A failure keeps the reason and
    sets the next attempt, later each time; `next_attempt_at` is NULL once sent or given up.
    """

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=8, choices=AlertChannel.choices)
    status = models.CharField(
        max_length=8, choices=AlertDeliveryStatus.choices, default=AlertDeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # Where it went: the e-mail addresses, or the webhook's host.
    target = models.TextField(blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["alert", "channel"]
        constraints = [
            models.UniqueConstraint(fields=["alert", "channel"], name="alert_delivery_once"),
            models.CheckConstraint(
                condition=Q(channel__in=AlertChannel.values), name="alert_delivery_channel_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=AlertDeliveryStatus.values),
                name="alert_delivery_status_valid",
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(next_attempt_at__isnull=False),
                name="alert_delivery_due",
            )
        ]

    def __str__(self) -> str:
        return f"{self.alert} by {self.channel} ({self.status})"

    @property
    def gave_up(self) -> bool:
        return self.status == AlertDeliveryStatus.FAILED and self.next_attempt_at is None


class Invite(models.Model):
    """An admin's invitation to join Earshot with a role and teams, sent by e-mail.

    Only a hash of its token is kept: the link in the e-mail is the one copy of the token, so
    a leaked database does not let anyone in. An invite is used once (`accepted_at`), before
    `expires_at`; inviting the same address again replaces the pending one.
    """

    email = models.EmailField()
    role = models.CharField(max_length=16, choices=[(role, role.title()) for role in ROLES])
    teams = models.ManyToManyField("listening.Team", related_name="invites", blank=True)
    # SHA-256 of the token, hex.
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="accepted_invites",
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One pending invite an address, whatever its case.
            models.UniqueConstraint(
                Lower("email"),
                condition=Q(accepted_at__isnull=True),
                name="invite_one_pending_per_email",
            ),
            models.CheckConstraint(condition=Q(role__in=ROLES), name="invite_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.email} as {self.role}"

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()
