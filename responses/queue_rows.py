"""A queue row's values, formatted and escaped once in Python.

The queue page shows 50 rows and every agent's browser reloads them whenever something
changes: the row is the hottest markup in Earshot. Django's template engine spends most of a
row's time escaping each value and resolving lookups on it, so `QueueRow` holds what the row
shows, already HTML-escaped (`SafeString`), and templates/responses/queue.html only places
the values. The queue page and the claim view (which swaps one row in) build rows here, so
the two cannot drift apart.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import NamedTuple

from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString

from listening.models import Mention, MentionStatus, Platform
from responses.selectors import priority_explained


class QueueRow(NamedTuple):
    """What one queue row shows. `{% for %}` in queue.html unpacks the fields in this order."""

    mention_id: str
    mention_url: str
    external_id: SafeString
    sentiment: str  # a SentimentLabel value: the row's and the badge's CSS class
    sentiment_label: str
    compound: str
    author_name: SafeString
    handle: SafeString
    followers: str
    amplified: str  # "" when nothing was folded under it
    platform: str  # "" on X, the desk's home platform
    text: SafeString
    why: SafeString
    posted_iso: str
    posted_ago: str
    keyword: SafeString
    # "held" (claimed, lease running), "open" (claimable) or "closed"
    state: str
    lapsed: bool  # open because a claim's lease ran out
    holder: SafeString
    held_by_you: bool
    status: str
    status_label: str


def _escaped(text: str) -> SafeString:
    # Exactly what Django's `escape` filter gives (it calls html.escape too), without the
    # lazy-string check it makes on every call: a row escapes eight values.
    return SafeString(html.escape(text))


def time_ago(moment: datetime, *, now: datetime) -> str:
    """'just now', '34 min ago', '5 h ago', '3 days ago', '4 months ago', '2 years ago'."""
    minutes = int((now - moment).total_seconds() // 60)
    if minutes < 1:
        return "just now"
    if minutes < 60:
        return f"{minutes} min ago"
    hours = minutes // 60
    if hours < 24:
        return f"{hours} h ago"
    days = hours // 24
    if days < 60:
        return f"{days} day{'' if days == 1 else 's'} ago"
    if days < 730:
        return f"{days // 30} months ago"
    return f"{days // 365} years ago"


def mention_url_prefix() -> str:
    """A mention's page is this prefix, its id and a slash (tests/test_urls.py holds that)."""
    return reverse("responses:mention", args=[0]).removesuffix("0/")


def queue_row(mention: Mention, *, now: datetime, viewer_id: int, url_prefix: str) -> QueueRow:
    """The row of `mention` as `viewer_id` sees it at `now`.

    Reads the author, keyword and claimed_by relations: select them with the mention.
    """
    author = mention.author
    held = mention.status == MentionStatus.CLAIMED and not (
        mention.claim_expires_at is not None and mention.claim_expires_at <= now
    )
    return QueueRow(
        mention_id=str(mention.pk),
        mention_url=f"{url_prefix}{mention.pk}/",
        external_id=_escaped(mention.external_id),
        sentiment=mention.sentiment_label,
        sentiment_label=mention.get_sentiment_label_display(),
        compound=f"{mention.sentiment_compound:.2f}",
        author_name=_escaped(author.display_name),
        handle=_escaped(author.username),
        followers=f"{author.followers_count:,}",
        amplified=str(mention.amplification_count or ""),
        platform="" if mention.platform == Platform.X else mention.get_platform_display(),
        text=_escaped(mention.text),
        why=_escaped(priority_explained(mention, now=now)),
        posted_iso=timezone.localtime(mention.posted_at).isoformat(),
        posted_ago=time_ago(mention.posted_at, now=now),
        keyword=_escaped(mention.keyword.query if mention.keyword_id else ""),
        state="held" if held else ("open" if mention.is_open else "closed"),
        lapsed=mention.status == MentionStatus.CLAIMED and not held,
        holder=_escaped(mention.claimed_by.get_username() if held else ""),
        held_by_you=held and mention.claimed_by_id == viewer_id,
        status=mention.status,
        status_label=mention.get_status_display(),
    )


def queue_rows(mentions: list[Mention], *, now: datetime, viewer_id: int) -> list[QueueRow]:
    url_prefix = mention_url_prefix()  # one reverse() a page instead of one a row
    return [
        queue_row(mention, now=now, viewer_id=viewer_id, url_prefix=url_prefix)
        for mention in mentions
    ]
