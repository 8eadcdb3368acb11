"""What counts as lost, doubled or answered twice, and one scenario's outcome."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Outcome:
    """One scenario's row of the table."""

    scenario: str
    faults: int
    posts: int
    lost: int = 0
    duplicated: int = 0
    double_replies: int = 0
    first_poll_seconds: float | None = None
    recovery_seconds: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return (
            self.lost == 0
            and self.duplicated == 0
            and self.double_replies == 0
            and self.recovery_seconds is not None
        )

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def stored_counts() -> Counter[str]:
    """How many times each external id is stored, as a mention or folded under one."""
    from listening.models import Amplification, Mention

    counts: Counter[str] = Counter(Mention.objects.values_list("external_id", flat=True))
    counts.update(Amplification.objects.values_list("external_id", flat=True))
    return counts


def miscounted_amplifications() -> int:
    """Mentions whose amplification_count is not the number of posts folded under them."""
    from django.db import connection

    from listening.models import Amplification, Mention

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FROM {Mention._meta.db_table} m WHERE m.amplification_count <> "
            f"(SELECT COUNT(*) FROM {Amplification._meta.db_table} a WHERE a.mention_id = m.id)"
        )
        return cursor.fetchone()[0]


def count_duplicates() -> int:
    """Posts stored more than once (every copy past the first), and mentions whose folded
    posts were counted more than once."""
    extra = sum(count - 1 for count in stored_counts().values() if count > 1)
    return extra + miscounted_amplifications()


def missing_posts(ids: list[str]) -> list[str]:
    """The posts of `ids` that are neither a mention nor folded under one."""
    stored = stored_counts()
    return [post_id for post_id in ids if post_id not in stored]


def count_double_replies(received_posts: list[dict[str, Any]]) -> int:
    """Posts the brand made on X beyond the first to the same customer post."""
    per_post = Counter(post["in_reply_to_tweet_id"] for post in received_posts)
    return sum(count - 1 for count in per_post.values() if count > 1)
