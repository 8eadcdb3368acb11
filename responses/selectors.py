"""Reads shared by the queue, the mention page and the supervisor report."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Count, Prefetch, Q, QuerySet
from django.utils import timezone

from config.roles import ADMIN, ROLES, visible_team_ids
from listening.models import (
    OPEN_STATUSES,
    UNCLAIMED_STATUSES,
    Amplification,
    Author,
    AuthorTag,
    AuthorTagKind,
    Brand,
    Mention,
    SentimentLabel,
    Team,
)
from listening.services.priority import ADVOCATE_FROM_POSITIVE
from listening.services.storage import AUTHOR_HISTORY_WINDOW
from responses.models import Invite, Reply, ReplyStatus

QUEUE_PAGE_SIZE = 50
QUEUE_ORDERS = {
    "priority": ("urgency_at", "id"),
    "newest": ("-posted_at", "-id"),
    "oldest": ("posted_at", "id"),
}


def team_scope(*, user: Any) -> Q | None:
    """Which mentions `user` may open and work, as a filter; None: all of them.

    Agents work the mentions routed to one of their teams, those routed to no team, and any
    a supervisor gave them. No query: the teams come with the role (config/roles.py).
    """
    team_ids = visible_team_ids(user)
    if team_ids is None:
        return None
    return Q(team__isnull=True) | Q(team_id__in=team_ids) | Q(claimed_by_id=user.pk)


def mentions_visible_to(mentions: QuerySet[Mention], *, user: Any) -> QuerySet[Mention]:
    scope = team_scope(user=user)
    return mentions if scope is None else mentions.filter(scope)


def queue_mentions(
    *,
    viewer: Any = None,
    team_id: int | None = None,
    status: str = "",
    sentiment: str = "",
    keyword_id: int | None = None,
    order: str = "",
    unclaimed_only: bool = False,
    min_followers: int | None = None,
) -> QuerySet[Mention]:
    """The triage queue, most urgent first unless `order` says newest or oldest.

    No status filter means the open ones (new, reopened, claimed). Joins what a queue row
    shows (not the brand: one a desk, never on a row). Given a `viewer`, only the mentions
    they may work (`team_scope`); `team_id` narrows to one team's queue.
    """
    mentions = Mention.objects.select_related("author", "keyword", "claimed_by")
    if viewer is not None:
        mentions = mentions_visible_to(mentions, user=viewer)
    if team_id:
        mentions = mentions.filter(team_id=team_id)
    mentions = (
        mentions.filter(status=status) if status else mentions.filter(status__in=OPEN_STATUSES)
    )
    if sentiment:
        mentions = mentions.filter(sentiment_label=sentiment)
    if keyword_id:
        mentions = mentions.filter(keyword_id=keyword_id)
    if unclaimed_only:
        mentions = mentions.filter(status__in=UNCLAIMED_STATUSES)
    if min_followers:
        mentions = mentions.filter(author__followers_count__gte=min_followers)
    return mentions.order_by(*QUEUE_ORDERS.get(order, QUEUE_ORDERS["priority"]))


def queue_state(mentions: QuerySet[Mention] | Iterable[Mention], *, now: datetime) -> str:
    """A fingerprint of what a queue page shows, for the every-second "changed?" poll.

    It changes when a row enters, leaves, moves or changes hands, and each minute, as waiting
    times move on. Given the page's QuerySet: one narrow, indexed query over its rows (no
    joins, no rendering), what a poll costs when nothing changed. Given the mentions a page
    has loaded: no query, and the fingerprint of exactly the rows it shows. Computed from the
    rows themselves, it cannot miss a change that committed late.
    """
    if isinstance(mentions, QuerySet):
        rows = mentions.values_list("pk", "status", "claimed_by_id", "claim_expires_at")
    else:
        rows = ((m.pk, m.status, m.claimed_by_id, m.claim_expires_at) for m in mentions)
    text = "\n".join(
        f"{pk} {status} {holder or ''} {expires.isoformat() if expires else ''}"
        for pk, status, holder, expires in rows
    )
    digest = hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
    return f"{digest}-{int(now.timestamp() // 60)}"


def sla_target(mention: Mention) -> timedelta:
    minutes = settings.SLA_NEGATIVE_MINUTES if mention.is_negative else settings.SLA_DEFAULT_MINUTES
    return timedelta(minutes=minutes)


def _duration(value: timedelta) -> str:
    minutes = max(int(value.total_seconds() // 60), 0)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d}"


def waiting_reason(mention: Mention, *, now: datetime) -> str:
    """'waiting 34 min of a 30 min target': the part of priority that grows by the minute."""
    waited, target = now - mention.posted_at, sla_target(mention)
    return f"waiting {_duration(waited)} of a {_duration(target)} target"


def priority_explained(mention: Mention, *, now: datetime) -> str:
    """Why a mention sits where it does in the queue, as the agent reads it."""
    return " · ".join([*mention.priority_reasons, waiting_reason(mention, now=now)])


def undoable_replies(*, agent, now: datetime) -> QuerySet[Reply]:
    """The agent's replies still inside their undo window."""
    return (
        Reply.objects.filter(agent=agent, status=ReplyStatus.QUEUED, send_after__gt=now)
        .select_related("mention__author")
        .order_by("send_after")
    )


def undone_reply_text(*, mention: Mention, agent, reply_id: str) -> str:
    """The text of a reply this agent just undid on this mention, to edit and send again."""
    if not reply_id.isdigit():
        return ""
    return (
        Reply.objects.filter(
            pk=int(reply_id), mention=mention, agent=agent, status=ReplyStatus.UNDONE
        )
        .values_list("text", flat=True)
        .first()
        or ""
    )


AMPLIFIERS_SHOWN = 50


def mention_amplifiers(*, mention: Mention) -> list[Amplification]:
    """Who reposted or copied the mention, earliest first (the first 50)."""
    if not mention.amplification_count:
        return []
    return list(
        Amplification.objects.filter(mention=mention)
        .select_related("author")
        .order_by("posted_at", "id")[:AMPLIFIERS_SHOWN]
    )


def mention_replies(*, mention: Mention) -> QuerySet[Reply]:
    return Reply.objects.filter(mention=mention).select_related("agent").order_by("created_at")


# --- the customer panel and the conversation on the mention page -------------------------

EARLIER_MENTIONS_SHOWN = 20
# Negative mentions within the priority's history window that suggest "at risk".
AT_RISK_FROM_NEGATIVE = 2


@dataclass(frozen=True, slots=True)
class PastMention:
    """One of the customer's earlier mentions and how the brand answered it."""

    mention: Mention
    # The first reply that reached the platform; None means not answered.
    first_reply: Reply | None

    @property
    def answered_in(self) -> str:
        if self.first_reply is None:
            return ""
        return _duration(self.first_reply.posted_at - self.mention.posted_at)


@dataclass(frozen=True, slots=True)
class TagSuggestion:
    tag: str
    label: str
    reason: str


@dataclass(frozen=True, slots=True)
class CustomerProfile:
    author: Author
    tags: list[AuthorTag]
    earlier: list[PastMention]
    earlier_total: int
    suggestions: list[TagSuggestion]

    @property
    def earlier_not_shown(self) -> int:
        return self.earlier_total - len(self.earlier)

    @property
    def tags_to_add(self) -> list[tuple[str, str]]:
        """(value, label) of the tags the customer does not have yet, in the choices' order."""
        present = {tag.tag for tag in self.tags}
        return [(value, label) for value, label in AuthorTagKind.choices if value not in present]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _tag_suggestions(
    *, present: set[str], positive: int, negative_recent: int
) -> list[TagSuggestion]:
    suggestions = []
    if AuthorTagKind.ADVOCATE not in present and positive >= ADVOCATE_FROM_POSITIVE:
        suggestions.append(
            TagSuggestion(
                tag=AuthorTagKind.ADVOCATE,
                label=AuthorTagKind.ADVOCATE.label,
                reason=_plural(positive, "positive mention"),
            )
        )
    if AuthorTagKind.AT_RISK not in present and negative_recent >= AT_RISK_FROM_NEGATIVE:
        days = AUTHOR_HISTORY_WINDOW.days
        suggestions.append(
            TagSuggestion(
                tag=AuthorTagKind.AT_RISK,
                label=AuthorTagKind.AT_RISK.label,
                reason=f"{_plural(negative_recent, 'negative mention')} in the last {days} days",
            )
        )
    return suggestions


def customer_profile(
    *,
    author: Author,
    before: Mention | None = None,
    now: datetime | None = None,
    viewer: Any = None,
) -> CustomerProfile:
    """Who the customer is to the brand: tags, suggested tags, and their earlier mentions.

    "Earlier" means posted before `before` (the mention being read), newest first, the first
    EARLIER_MENTIONS_SHOWN of them. Suggestions count all of the author's stored mentions,
    `before` included. Four queries however long the history: counts, the page of mentions,
    their first sent replies, the tags. Given a `viewer`, only the mentions they may open
    (`team_scope`): another team's stays out of an agent's view here too.
    """
    now = now or timezone.now()
    mentions = Mention.objects.filter(author=author)
    if viewer is not None:
        mentions = mentions_visible_to(mentions, user=viewer)
    is_earlier = Q(pk__isnull=False)
    if before is not None:
        is_earlier = Q(posted_at__lt=before.posted_at) | Q(
            posted_at=before.posted_at, pk__lt=before.pk
        )
    counts = mentions.aggregate(
        earlier=Count("pk", filter=is_earlier),
        positive=Count("pk", filter=Q(sentiment_label=SentimentLabel.POSITIVE)),
        negative_recent=Count(
            "pk",
            filter=Q(
                sentiment_label=SentimentLabel.NEGATIVE,
                posted_at__gte=now - AUTHOR_HISTORY_WINDOW,
            ),
        ),
    )
    first_sent = (
        Reply.objects.filter(status=ReplyStatus.SENT)
        .select_related("agent")
        .order_by("mention_id", "posted_at", "id")
        .distinct("mention_id")
    )
    page = list(
        mentions.filter(is_earlier)
        .select_related("brand")
        .prefetch_related(Prefetch("replies", queryset=first_sent, to_attr="first_sent"))
        .order_by("-posted_at", "-id")[:EARLIER_MENTIONS_SHOWN]
    )
    tags = list(AuthorTag.objects.filter(author=author).select_related("added_by"))
    return CustomerProfile(
        author=author,
        tags=tags,
        earlier=[PastMention(mention=m, first_reply=next(iter(m.first_sent), None)) for m in page],
        earlier_total=counts["earlier"],
        suggestions=_tag_suggestions(
            present={tag.tag for tag in tags},
            positive=counts["positive"],
            negative_recent=counts["negative_recent"],
        ),
    )


@dataclass(frozen=True, slots=True)
class ThreadItem:
    """A post in the conversation: a customer's mention, or one of the brand's replies."""

    at: datetime
    mention: Mention | None = None
    reply: Reply | None = None
    is_current: bool = False
    # The stored post this mention answers (its referenced replied_to), when Earshot has it.
    in_reply_to: Mention | Reply | None = None

    @property
    def in_reply_to_who(self) -> str:
        """Whose post this mention answers: "@handle", or the brand for one of our replies."""
        parent = self.in_reply_to
        if isinstance(parent, Reply):
            return parent.mention.brand.name
        return f"@{parent.author.username}" if parent else ""


@dataclass(frozen=True, slots=True)
class ConversationThread:
    items: list[ThreadItem]
    # The conversation goes on beyond what is shown, before and after.
    older_not_shown: bool
    newer_not_shown: bool


# Stored posts of the conversation shown on each side of the current mention.
THREAD_SIDE_LIMIT = 25


def _replied_to(mention: Mention) -> str:
    return next(
        (ref.get("id", "") for ref in mention.referenced_posts if ref.get("type") == "replied_to"),
        "",
    )


def conversation_thread(*, mention: Mention, viewer: Any = None) -> ConversationThread:
    """The conversation around `mention` as far as Earshot stored it, in time order.

    The other mentions with the same conversation id (up to THREAD_SIDE_LIMIT on each side of
    this one) and the brand's sent replies to any of them. A mention without a conversation id
    is a thread of its own. Read-only; at most five queries. Given a `viewer`, only the
    mentions they may open (`team_scope`).
    """
    visible = Mention.objects.select_related("author")
    if viewer is not None:
        visible = mentions_visible_to(visible, user=viewer)
    posts = visible
    if mention.conversation_id:
        posts = posts.filter(platform=mention.platform, conversation_id=mention.conversation_id)
    else:
        posts = posts.filter(pk=mention.pk)
    up_to_here = Q(posted_at__lt=mention.posted_at) | Q(
        posted_at=mention.posted_at, pk__lte=mention.pk
    )
    # One more than is shown on each side, to learn whether the conversation goes on.
    older = list(posts.filter(up_to_here).order_by("-posted_at", "-id")[: THREAD_SIDE_LIMIT + 2])
    newer = list(posts.exclude(up_to_here).order_by("posted_at", "id")[: THREAD_SIDE_LIMIT + 1])
    shown = [*reversed(older[: THREAD_SIDE_LIMIT + 1]), *newer[:THREAD_SIDE_LIMIT]]
    replies = list(
        Reply.objects.filter(mention__in=shown, status=ReplyStatus.SENT).select_related(
            "agent", "mention__brand"
        )
    )
    by_external_id: dict[str, Mention | Reply] = {p.external_id: p for p in shown}
    by_external_id.update({r.external_id: r for r in replies})
    parents = {_replied_to(p) for p in shown} - {""} - set(by_external_id)
    if parents:
        # Replies to posts outside what is shown (or outside the conversation id we know).
        by_external_id.update(
            {
                p.external_id: p
                for p in visible.filter(platform=mention.platform, external_id__in=parents)
            }
        )
        by_external_id.update(
            {
                r.external_id: r
                for r in Reply.objects.filter(
                    mention__platform=mention.platform, external_id__in=parents
                ).select_related("agent", "mention__brand")
            }
        )
    items = [
        ThreadItem(
            at=post.posted_at,
            mention=post,
            is_current=post.pk == mention.pk,
            in_reply_to=by_external_id.get(_replied_to(post)),
        )
        for post in shown
    ]
    items += [ThreadItem(at=reply.posted_at, reply=reply) for reply in replies]
    # A customer's post and our reply in the same second: the post came first.
    items.sort(key=lambda item: (item.at, item.reply is not None, (item.mention or item.reply).pk))
    return ConversationThread(
        items=items,
        older_not_shown=len(older) > THREAD_SIDE_LIMIT + 1,  # the mention itself is one
        newer_not_shown=len(newer) > THREAD_SIDE_LIMIT,
    )


# --- people (/people/) ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Person:
    user: Any
    # Their highest role ("" for none); superusers are admins.
    role: str
    teams: list[Team]


def people_list() -> list[Person]:
    """Everyone who can sign in or could, active first, with role and teams: three queries."""
    users = (
        get_user_model()
        .objects.prefetch_related(
            Prefetch("groups", queryset=Group.objects.filter(name__in=ROLES)),
            Prefetch("teams", queryset=Team.objects.select_related("brand")),
        )
        .order_by("-is_active", "username")
    )
    return [Person(user=user, role=user_role(user), teams=list(user.teams.all())) for user in users]


def user_role(user: Any) -> str:
    """The highest role of `user` ("" for none), from their groups (prefetched or not), not
    from the cached rank: an inactive user keeps the role they had."""
    if user.is_superuser:
        return ADMIN
    names = {group.name for group in user.groups.all()}
    return next((role for role in reversed(ROLES) if role in names), "")


def brands_with_teams() -> QuerySet[Brand]:
    """Every brand and its teams (with their members), for managing teams."""
    members = get_user_model().objects.order_by("username")
    teams = Team.objects.prefetch_related(Prefetch("members", queryset=members))
    return Brand.objects.prefetch_related(Prefetch("teams", queryset=teams)).order_by("name")


def invites_pending() -> QuerySet[Invite]:
    """Invitations not used yet, newest first; expired ones too, marked by `is_expired`."""
    return (
        Invite.objects.filter(accepted_at__isnull=True)
        .select_related("invited_by")
        .prefetch_related(Prefetch("teams", queryset=Team.objects.select_related("brand")))
    )
