"""How urgent a mention is, and why, in words a community manager can check.

Urgency comes from negativity, reach and waiting time; a repeat complaint or a question
that expects an answer adds to it. Everything but waiting is known when the mention is
stored, so it becomes a *head start*: the mention counts as if posted that much earlier.
Ordering by `posted_at - head_start` (Mention.urgency_at) is then ordering by priority at
any moment, with one indexed column, because waiting adds the same to every mention.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from listening.models import SentimentLabel

# Head starts, in minutes. A fully negative post (compound -1) is an hour more urgent than a
# neutral one; on a complaint, 10k followers add 40 minutes and 1M an hour; a question a
# quarter of an hour. Reach matters most when the post is a complaint: that is what spreads.
NEGATIVITY_MINUTES = 60
REACH_MINUTES_PER_DECADE = 10
REACH_WEIGHT_UNLESS_NEGATIVE = 0.3
REACH_FROM_FOLLOWERS = 1_000
QUESTION_MINUTES = 15
REPEAT_COMPLAINT_MINUTES = 20
REPEAT_COMPLAINT_CAP_MINUTES = 60
ADVOCATE_MINUTES = 10
ADVOCATE_FROM_POSITIVE = 3
FOLLOW_UP_MINUTES = 30
# Reposts and copies folded under a mention: 10 reposts of a complaint add 10 minutes,
# 100 add 20 (a third of that when it is not a complaint).
AMPLIFICATION_MINUTES_PER_DECADE = 10
_ORDINALS = {2: "second", 3: "third", 4: "fourth", 5: "fifth"}


@dataclass(frozen=True, slots=True)
class PriorityFacts:
    compound: float
    label: str
    followers: int
    text: str
    # The author's earlier mentions: negative ones in the last 7 days, positive ones ever.
    earlier_complaints_this_week: int
    earlier_positive: int
    # They wrote again in a conversation the team had answered: the answer did not settle it.
    follows_up_our_reply: bool = False


@dataclass(frozen=True, slots=True)
class Priority:
    head_start: timedelta
    reasons: list[str]


def _compact(count: int) -> str:
    if count >= 1_000_000:
        return f"{count / 1_000_000:.1f}M".replace(".0M", "M")
    if count >= 1_000:
        return f"{count / 1_000:.0f}k"
    return str(count)


def is_question(text: str) -> bool:
    return "?" in text


def mention_priority(facts: PriorityFacts) -> Priority:
    minutes = 0.0
    reasons: list[str] = []
    negative = facts.label == SentimentLabel.NEGATIVE
    if negative:
        minutes += NEGATIVITY_MINUTES * abs(facts.compound)
        reasons.append(f"negative {facts.compound:+.2f}".replace("-", "−"))
    if facts.followers >= REACH_FROM_FOLLOWERS:
        weight = 1.0 if negative else REACH_WEIGHT_UNLESS_NEGATIVE
        minutes += weight * REACH_MINUTES_PER_DECADE * math.log10(facts.followers)
        reasons.append(f"{_compact(facts.followers)} followers")
    if facts.follows_up_our_reply:
        minutes += FOLLOW_UP_MINUTES
        reasons.append("wrote again after our reply")
    if is_question(facts.text):
        minutes += QUESTION_MINUTES
        reasons.append("asks a question")
    complaints = facts.earlier_complaints_this_week
    if complaints:
        minutes += min(REPEAT_COMPLAINT_MINUTES * complaints, REPEAT_COMPLAINT_CAP_MINUTES)
        if negative:
            nth = complaints + 1
            reasons.append(f"{_ORDINALS.get(nth, f'{nth}th')} complaint this week")
        else:
            reasons.append(f"{complaints} complaint{'s' if complaints > 1 else ''} this week")
    elif facts.earlier_positive >= ADVOCATE_FROM_POSITIVE:
        minutes += ADVOCATE_MINUTES
        reasons.append(f"loyal: {facts.earlier_positive} positive mentions")
    return Priority(head_start=timedelta(minutes=minutes), reasons=reasons)


def amplification_head_start(*, count: int, label: str) -> timedelta:
    """How much earlier `count` folded reposts and copies make a mention."""
    if count <= 0:
        return timedelta(0)
    weight = 1.0 if label == SentimentLabel.NEGATIVE else REACH_WEIGHT_UNLESS_NEGATIVE
    return timedelta(minutes=weight * AMPLIFICATION_MINUTES_PER_DECADE * math.log10(1 + count))


def amplification_reason(count: int) -> str:
    return f"amplified ×{_compact(count)}"


def with_amplification_reason(reasons: list[str], count: int) -> list[str]:
    """`reasons` with its amplification entry (if any) replaced by one for `count`."""
    kept = [reason for reason in reasons if not reason.startswith("amplified ×")]
    return [*kept, amplification_reason(count)] if count else kept
