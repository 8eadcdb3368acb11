"""What Earshot listens for (brands, tracked keywords) and what it heard (authors, mentions)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from config.addresses import fetch_address_problem, web_address
from config.encryption import EncryptedCharField, EncryptedJSONField


class Platform(models.TextChoices):
    X = "x", "X"
    MASTODON = "mastodon", "Mastodon"
    BLUESKY = "bluesky", "Bluesky"
    REDDIT = "reddit", "Reddit"
    HACKER_NEWS = "hackernews", "Hacker News"
    RSS = "rss", "RSS / Atom feed"


# Platforms with a write API: Earshot can post the reply there. On the others the agent
# answers on the platform itself ("open original") and marks the mention handled.
REPLYABLE_PLATFORMS = (Platform.X, Platform.MASTODON, Platform.BLUESKY, Platform.REDDIT)
# The longest reply each of them takes, in characters (Bluesky counts graphemes).
REPLY_MAX_LENGTH = {
    Platform.X: 280,
    Platform.MASTODON: 500,
    Platform.BLUESKY: 300,
    Platform.REDDIT: 10_000,
}


class SentimentLabel(models.TextChoices):
    POSITIVE = "positive", "Positive"
    NEUTRAL = "neutral", "Neutral"
    NEGATIVE = "negative", "Negative"


class Brand(models.Model):
    name = models.CharField(max_length=120, unique=True)
    # The brand's own account on X; its replies are posted from here.
    x_handle = models.CharField(max_length=15, blank=True)
    # Per-brand X credentials; blank means the deployment-wide ones from settings. Encrypted
    # at rest (config/encryption.py); max_length bounds the plaintext.
    x_bearer_token = EncryptedCharField(max_length=200, blank=True)
    x_consumer_key = EncryptedCharField(max_length=200, blank=True)
    x_consumer_secret = EncryptedCharField(max_length=200, blank=True)
    x_access_token = EncryptedCharField(max_length=200, blank=True)
    x_access_token_secret = EncryptedCharField(max_length=200, blank=True)
    # Where a customer can write to the brand privately ({dm_link} in reply templates).
    dm_link = models.URLField(max_length=500, blank=True)
    # Replies by agents in the "needs approval" group wait for a supervisor first.
    replies_need_approval = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Source(models.Model):
    """Where a brand listens on a platform other than X, and the credentials it uses there.

    X keeps using the brand's own X credentials (or the deployment's); every other platform
    is reached through a source: a Mastodon instance, a Bluesky account, a Reddit app, Hacker
    News, or one RSS/Atom feed. `credentials` holds what the platform's client needs (see
    `listening/clients/registry.py`); `account_handle` is the brand's own account there,
    whose posts are read to find replies sent outside Earshot.
    """

    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="sources")
    platform = models.CharField(max_length=16, choices=Platform.choices)
    name = models.CharField(max_length=120)
    # The instance, API or feed address; blank means the platform's public default.
    base_url = models.URLField(max_length=500, blank=True)
    account_handle = models.CharField(max_length=200, blank=True)
    # A JSON object of strings; each value is encrypted at rest (config/encryption.py).
    credentials = EncryptedJSONField(default=dict, blank=True)
    # A feed's address must resolve to public addresses (no SSRF into Earshot's own network)
    # unless an admin says the feed lives on a private one.
    allow_private_address = models.BooleanField(
        default=False,
        help_text="Fetch this source even if its address is private, loopback or link-local "
        "(a feed on your own network, a local simulator).",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["brand__name", "platform", "name"]
        constraints = [
            models.UniqueConstraint(fields=["brand", "name"], name="source_name_unique_per_brand"),
            models.CheckConstraint(
                condition=Q(platform__in=Platform.values) & ~Q(platform=Platform.X),
                name="source_platform_not_x",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.brand.name}: {self.name} ({self.get_platform_display()})"

    def clean(self) -> None:
        errors = {}
        if not isinstance(self.credentials, dict) or not all(
            isinstance(value, str) for value in self.credentials.values()
        ):
            errors["credentials"] = (
                'Credentials are a JSON object of text values, e.g. {"access_token": "..."}.'
            )
        if self.platform == Platform.RSS and self.base_url:
            problem = fetch_address_problem(
                self.base_url, allow_private_address=self.allow_private_address
            )
            if problem:
                errors["base_url"] = problem
        if errors:
            raise ValidationError(errors)


class Team(models.Model):
    """A group of people who work some of a brand's mentions.

    A tracked keyword routed to a team puts its mentions in that team's queue: agents see the
    mentions of their teams' keywords and those routed to no team. Supervisors and admins
    see every queue. A brand with no teams is one shared queue.
    """

    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(max_length=120)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="teams", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["brand__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["brand", "name"], name="team_name_unique_per_brand"),
        ]

    def __str__(self) -> str:
        return f"{self.brand.name}: {self.name}"


class TrackedKeyword(models.Model):
    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="keywords")
    platform = models.CharField(max_length=16, choices=Platform.choices, default=Platform.X)
    # Required on every platform but X (whose credentials live on the brand).
    source = models.ForeignKey(
        Source, on_delete=models.CASCADE, null=True, blank=True, related_name="keywords"
    )
    query = models.CharField(
        max_length=512, help_text='X search syntax: words, "phrases", OR, -exclusions, from:'
    )
    is_active = models.BooleanField(default=True)
    # Whose queue its mentions go to; none: every agent of the brand.
    team = models.ForeignKey(
        Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="keywords"
    )
    poll_interval_seconds = models.PositiveIntegerField(default=60)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["brand__name", "query"]
        constraints = [
            models.UniqueConstraint(
                fields=["brand", "platform", "query"], name="keyword_unique_per_brand"
            ),
            models.CheckConstraint(
                condition=Q(poll_interval_seconds__gte=5), name="keyword_poll_interval_min_5s"
            ),
            models.CheckConstraint(
                condition=Q(platform=Platform.X, source__isnull=True)
                | (~Q(platform=Platform.X) & Q(source__isnull=False)),
                name="keyword_source_unless_x",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.brand.name}: {self.query}"


class ReadingCursor(models.Model):
    """Where reading one stream of posts stands, and why it may not be read now.

    `since_id` is the newest id of the last *completed* round. While a round pages through
    results, `round_newest_id` and `next_token` hold its progress, so a crash resumes the
    same round instead of skipping or repeating posts. `version` makes each page's write a
    compare-and-set: a concurrent read of the same stream loses and stores nothing.
    """

    # Opaque to everything but the platform's client: an id, a timestamp, an ETag.
    since_id = models.CharField(max_length=500, blank=True)
    round_newest_id = models.CharField(max_length=500, blank=True)
    next_token = models.CharField(max_length=500, blank=True)
    version = models.PositiveBigIntegerField(default=0)
    next_poll_at = models.DateTimeField(default=timezone.now, db_index=True)
    blocked_until = models.DateTimeField(null=True, blank=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def is_failing(self) -> bool:
        return bool(self.last_error)

    @property
    def is_rate_limited(self) -> bool:
        return self.blocked_until is not None and self.blocked_until > timezone.now()

    def advance_round(
        self, *, continued_round: bool, newest_id: str | None, next_token: str | None
    ) -> None:
        """Move past a stored page. A round's since_id is the newest id of its FIRST page;
        later pages only continue it."""
        round_newest = self.round_newest_id if continued_round else (newest_id or "")
        if next_token:
            self.next_token = next_token
            self.round_newest_id = round_newest
        else:
            self.since_id = round_newest or self.since_id
            self.next_token = ""
            self.round_newest_id = ""
        self.version += 1


class PollCursor(ReadingCursor):
    """Where polling of one keyword stands.

    A new keyword's first round reads only the newest page; the older pages of the
    platform's recent window (X: 7 days) are read by the backfill, from
    `backfill_next_token`, one page at a time when the budget has room, so live polling
    is never held up by history.
    """

    keyword = models.OneToOneField(TrackedKeyword, on_delete=models.CASCADE, related_name="cursor")
    backfill_next_token = models.CharField(max_length=500, blank=True)
    backfill_pages = models.PositiveIntegerField(default=0)
    backfill_done_at = models.DateTimeField(null=True, blank=True)
    # New mentions per hour, smoothed: how the scheduler shares a budget by volume.
    volume_per_hour = models.FloatField(default=0.0)
    last_stored_count = models.PositiveIntegerField(default=0)
    # Items the platform sent that could not be understood: counted, explained, never silent.
    skipped_items_total = models.PositiveIntegerField(default=0)
    last_skipped_reason = models.TextField(blank=True)
    last_skipped_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"cursor for {self.keyword}"


class RateBudget(models.Model):
    """What is left of one credential's rate limit in the current window.

    Earshot counts its own calls here (so none is made past the limit) and corrects the count
    from the platform's rate-limit headers; after a 429 nothing is called before `reset_at`.
    `key` names the credential and endpoint, e.g. "x-search:<token hash>" or "source:12".
    """

    key = models.CharField(max_length=100, unique=True)
    limit = models.PositiveIntegerField()
    window_seconds = models.PositiveIntegerField()
    remaining = models.IntegerField()
    reset_at = models.DateTimeField()
    # From the platform's own headers, when they were last read.
    observed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.remaining}/{self.limit} until {self.reset_at:%H:%M:%S}"


class AccountCursor(ReadingCursor):
    """Where reading a brand account's own posts stands: how replies the team sent on the
    platform itself, outside Earshot, are found. X reads the brand's X handle; every other
    platform a source's `account_handle`."""

    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="account_cursors")
    platform = models.CharField(max_length=16, choices=Platform.choices)
    source = models.OneToOneField(
        Source, on_delete=models.CASCADE, null=True, blank=True, related_name="account_cursor"
    )
    linked_total = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["brand"],
                condition=Q(platform="x"),
                name="account_cursor_one_x_per_brand",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.brand.name}'s own posts on {self.get_platform_display()}"


class Author(models.Model):
    platform = models.CharField(max_length=16, choices=Platform.choices)
    external_id = models.CharField(max_length=255)
    # Bluesky handles are domain names, up to 253 characters.
    username = models.CharField(max_length=255)
    name = models.CharField(max_length=200, blank=True)
    followers_count = models.PositiveIntegerField(default=0)
    verified = models.BooleanField(default=False)
    # The profile on its platform; X's is derived from the username. (Database defaults on
    # columns added later keep bulk SQL loads, e.g. the benchmarks', working.)
    url = models.URLField(max_length=1000, blank=True, db_default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["platform", "external_id"], name="author_unique_per_platform"
            )
        ]

    def __str__(self) -> str:
        return f"@{self.username}"

    @property
    def display_name(self) -> str:
        return self.name or f"@{self.username}"

    @property
    def profile_url(self) -> str:
        if self.platform == Platform.X:
            return f"https://x.com/{quote(self.username)}"
        return web_address(self.url)


class AuthorTagKind(models.TextChoices):
    VIP = "vip", "VIP"
    ADVOCATE = "advocate", "Advocate"
    AT_RISK = "at_risk", "At risk"


class AuthorTag(models.Model):
    """A label the team puts on a customer; an author has each tag at most once."""

    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="tags")
    tag = models.CharField(max_length=16, choices=AuthorTagKind.choices)
    # Kept when the colleague's account goes: the tag outlives who added it.
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["added_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["author", "tag"], name="author_tag_once"),
            models.CheckConstraint(
                condition=Q(tag__in=AuthorTagKind.values), name="author_tag_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.author}: {self.get_tag_display()}"


class MentionStatus(models.TextChoices):
    NEW = "new", "New"
    # The customer wrote again in a conversation the team had answered.
    REOPENED = "reopened", "Reopened"
    CLAIMED = "claimed", "Claimed"
    REPLYING = "replying", "Reply being sent"
    REPLIED = "replied", "Replied"
    RESOLVED = "resolved", "Resolved"
    NO_REPLY_NEEDED = "no_reply_needed", "Ignored: no reply needed"
    SPAM = "spam", "Spam"
    # Read by a new keyword's backfill, from before Earshot listened: history, not queued.
    ARCHIVED = "archived", "History, from before Earshot listened"


# Waiting for someone to take them.
UNCLAIMED_STATUSES = (MentionStatus.NEW, MentionStatus.REOPENED)
# Still the team's to answer: the triage queue shows these.
OPEN_STATUSES = (*UNCLAIMED_STATUSES, MentionStatus.CLAIMED)
# The conversation was answered: a new post in it reopens it.
ANSWERED_STATUSES = (MentionStatus.REPLIED, MentionStatus.RESOLVED)


class Mention(models.Model):
    platform = models.CharField(max_length=16, choices=Platform.choices)
    # X and HN ids are numbers, Mastodon's a status URI, Bluesky's an at:// URI.
    external_id = models.CharField(max_length=255)
    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="mentions")
    keyword = models.ForeignKey(
        TrackedKeyword, on_delete=models.SET_NULL, null=True, related_name="mentions"
    )
    author = models.ForeignKey(Author, on_delete=models.PROTECT, related_name="mentions")
    # The keyword's team when the mention was stored (re-routing a keyword moves its open
    # mentions too): kept on the row so the queue filters without joining keywords.
    team = models.ForeignKey(
        Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="mentions"
    )
    text = models.TextField()
    lang = models.CharField(max_length=16, blank=True)
    posted_at = models.DateTimeField(help_text="When the post was made, as the platform says")
    conversation_id = models.CharField(max_length=255, blank=True)
    in_reply_to_user_id = models.CharField(max_length=255, blank=True)
    # The post on its platform, as the platform gave it ("open original").
    url = models.URLField(max_length=1000, blank=True, db_default="")
    referenced_posts = models.JSONField(default=list, blank=True)
    public_metrics = models.JSONField(default=dict, blank=True)
    sentiment_compound = models.FloatField()
    sentiment_positive = models.FloatField()
    sentiment_neutral = models.FloatField()
    sentiment_negative = models.FloatField()
    sentiment_label = models.CharField(max_length=8, choices=SentimentLabel.choices)
    status = models.CharField(
        max_length=16, choices=MentionStatus.choices, default=MentionStatus.NEW
    )
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="claimed_mentions",
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    # A claim is a lease: idle past this moment, the mention is anyone's to take again.
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    # When the team resolved it, and when a claim on it was last given back (released, or
    # its lease ran out): what the reports and their CSV export read.
    resolved_at = models.DateTimeField(null=True, blank=True)
    released_at = models.DateTimeField(null=True, blank=True)
    # The case moved to a private channel (direct messages): when, and who took it there.
    taken_private_at = models.DateTimeField(null=True, blank=True)
    taken_private_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    # Priority as a point in time: the mention is as urgent as a plain one posted then.
    # Negativity, reach, a question or a repeat complaint move it earlier; waiting does the
    # rest, so ordering by this one indexed column is ordering by priority at any moment.
    urgency_at = models.DateTimeField()
    priority_reasons = models.JSONField(default=list, blank=True)
    # Reposts and copies folded under this mention (see Amplification).
    amplification_count = models.PositiveIntegerField(default=0, db_default=0)
    # Its words, normalised and hashed: how copies of the same text find it.
    text_fingerprint = models.CharField(max_length=40, blank=True, db_default="")
    fetched_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-posted_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["platform", "external_id"], name="mention_unique_per_platform"
            ),
            models.CheckConstraint(
                condition=Q(status__in=MentionStatus.values), name="mention_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(sentiment_label__in=SentimentLabel.values),
                name="mention_sentiment_label_valid",
            ),
            # A claimed mention always says who holds it, and until when.
            models.CheckConstraint(
                condition=~Q(status=MentionStatus.CLAIMED)
                | Q(claimed_by__isnull=False, claim_expires_at__isnull=False),
                name="mention_claimed_has_holder_and_lease",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "-posted_at"], name="mention_status_posted"),
            models.Index(fields=["status", "urgency_at"], name="mention_status_urgency"),
            # The open queue is a few percent of all mentions: partial indexes in its own
            # orders let its pages and claim-next read just the rows they return.
            models.Index(
                fields=["urgency_at", "id"],
                condition=Q(status__in=OPEN_STATUSES),
                name="mention_open_by_urgency",
            ),
            models.Index(
                fields=["-posted_at", "-id"],
                condition=Q(status__in=OPEN_STATUSES),
                name="mention_open_by_newest",
            ),
            # What claim-next takes from: claimed rows stay out of its way, however many.
            models.Index(
                fields=["urgency_at", "id"],
                condition=Q(status__in=UNCLAIMED_STATUSES),
                name="mention_unclaimed_by_urgency",
            ),
            models.Index(fields=["brand", "-posted_at"], name="mention_brand_posted"),
            models.Index(
                fields=["brand", "text_fingerprint", "posted_at"], name="mention_brand_fingerprint"
            ),
            # The spike detector counts each keyword's negative mentions in recent windows.
            models.Index(
                fields=["keyword", "posted_at"],
                condition=Q(sentiment_label="negative"),
                name="mention_negative_by_keyword",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.platform}:{self.external_id}"

    @property
    def is_negative(self) -> bool:
        return self.sentiment_label == SentimentLabel.NEGATIVE

    @property
    def is_positive(self) -> bool:
        return self.sentiment_label == SentimentLabel.POSITIVE

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_claim_expired(self) -> bool:
        return (
            self.status == MentionStatus.CLAIMED
            and self.claim_expires_at is not None
            and self.claim_expires_at <= timezone.now()
        )

    @property
    def waiting_for(self) -> timedelta:
        return timezone.now() - self.posted_at

    @property
    def platform_url(self) -> str:
        if self.url or self.platform != Platform.X:
            return web_address(self.url)
        return f"https://x.com/{self.author.username}/status/{self.external_id}"

    @property
    def can_reply_in_earshot(self) -> bool:
        return self.platform in REPLYABLE_PLATFORMS

    @property
    def reply_max_length(self) -> int:
        return REPLY_MAX_LENGTH.get(self.platform, 0)


class AmplificationKind(models.TextChoices):
    REPOST = "repost", "Repost"
    COPY = "copy", "Same words posted again"


class Amplification(models.Model):
    """A post that repeats a mention: a repost, boost or crosspost of it, or its exact words
    posted again. Folded under the mention instead of queued: one item to answer, with its
    reach in plain sight, never hundreds of tickets."""

    mention = models.ForeignKey(Mention, on_delete=models.CASCADE, related_name="amplifications")
    platform = models.CharField(max_length=16, choices=Platform.choices)
    external_id = models.CharField(max_length=255)
    author = models.ForeignKey(Author, on_delete=models.PROTECT, related_name="amplifications")
    kind = models.CharField(max_length=8, choices=AmplificationKind.choices)
    posted_at = models.DateTimeField()
    url = models.URLField(max_length=1000, blank=True)

    class Meta:
        ordering = ["posted_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["platform", "external_id"], name="amplification_unique_per_platform"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=AmplificationKind.values), name="amplification_kind_valid"
            ),
        ]
        indexes = [models.Index(fields=["mention", "posted_at"], name="amplification_by_mention")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.mention} by {self.author}"


class QuarantinedItem(models.Model):
    """An item a platform sent that could not be understood: kept aside with the reason, so
    nothing is silently lost and an admin can see what the platform sent."""

    keyword = models.ForeignKey(
        TrackedKeyword, on_delete=models.CASCADE, related_name="quarantined_items"
    )
    platform = models.CharField(max_length=16, choices=Platform.choices)
    reason = models.TextField()
    # The item as received, as text (truncated): it may not even be valid JSON.
    raw = models.TextField()
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["keyword", "-received_at"], name="quarantine_by_keyword")]

    def __str__(self) -> str:
        return f"{self.platform} item for {self.keyword}: {self.reason[:60]}"


class MentionDailyAggregate(models.Model):
    """What the retention job (listening/services/retention.py) keeps of the mentions it
    removes: their counts per brand, day, platform, keyword, sentiment and final status.

    A row only ever grows: each batch of removed mentions adds its counts (in the same
    transaction as the delete, so a crash neither loses nor double-counts them). Mentions
    still stored are not here: totals over a period are the stored mentions plus these rows.
    Durations are kept as sums and counts, so means survive; medians and percentiles do not.
    """

    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="daily_aggregates")
    # The day the mentions were posted, in BUSINESS_TIME_ZONE (the report's days).
    day = models.DateField()
    platform = models.CharField(max_length=16, choices=Platform.choices)
    keyword = models.ForeignKey(
        TrackedKeyword, on_delete=models.SET_NULL, null=True, related_name="daily_aggregates"
    )
    sentiment_label = models.CharField(max_length=8, choices=SentimentLabel.choices)
    # The mentions' status when removed (never an open one: those are not removed).
    status = models.CharField(max_length=16, choices=MentionStatus.choices)
    mention_count = models.PositiveIntegerField(default=0)
    # With a first SENT reply (of any origin), and the sum of their first response times.
    answered_count = models.PositiveIntegerField(default=0)
    first_response_seconds_total = models.FloatField(default=0)
    # Resolved ones with a resolution moment, and the sum of their resolution times.
    resolved_count = models.PositiveIntegerField(default=0)
    resolution_seconds_total = models.FloatField(default=0)
    # Replies sent, and reposts/copies folded under the mentions (their reach).
    sent_reply_count = models.PositiveIntegerField(default=0)
    amplification_count = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-day", "brand_id", "platform"]
        constraints = [
            # One row per group; a removed keyword's rows keep a NULL keyword, still one row.
            models.UniqueConstraint(
                fields=["brand", "day", "platform", "keyword", "sentiment_label", "status"],
                nulls_distinct=False,
                name="mention_aggregate_one_per_group",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.brand_id} {self.day} {self.platform}: {self.mention_count}"
