"""The form-letter detector: is this reply nearly the same text the team keeps sending?

Replies are compared as sets of word shingles (every run of three consecutive words) by
Jaccard similarity, after normalising away what always differs between two customers: the
name in the greeting, @handles, links, numbers and the agent's "^XX" signature. So
"Hi Ana, sorry about the wait. DM us! ^AM" and "Hi Bob, sorry about the wait. DM us! ^BL"
are the same letter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

from responses.models import Reply, ReplyStatus

SHINGLE_WORDS = 3
MAX_CANDIDATES = 500
MAX_LISTED = 5
DEFAULT_WINDOW = timedelta(days=7)
DEFAULT_THRESHOLD = 0.85
DEFAULT_MIN_MATCHES = 3

NAME = "<name>"
HANDLE = "<handle>"
NUMBER = "<n>"

_LINK = re.compile(r"https?://\S+|www\.\S+")
_SIGNATURE = re.compile(r"\^\w+")
_HANDLE = re.compile(r"@\w+")
# "Hi Ana," / "Hello there!" / "Dear Ana Maria," / "Hey @ana_b": the name after a greeting
# at the start, up to the punctuation that closes it (at most three words).
_GREETING = re.compile(
    r"^\s*(hi|hello|hey|hiya|heya|dear|good (?:morning|afternoon|evening))\s+"
    r"(?:[^\W\d_][\w'’-]*(?:\s+[^\W\d_][\w'’-]*){0,2}|<handle>)\s*(?=[,!.:;—-])",
    flags=re.IGNORECASE,
)
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
# Words, placeholders, and single symbols such as emoji: "😳" and "🙏" are different replies.
_TOKEN = re.compile(r"<\w+>|[^\W_]+(?:['’][^\W_]+)*|[^\w\s.,;:!?'\"“”‘’()\[\]{}…*—–-]")
_EMOJI_MODIFIERS = re.compile("[\ufe0e\ufe0f\u200d\U0001f3fb-\U0001f3ff]")


@dataclass(frozen=True, slots=True)
class SimilarReply:
    reply_id: int
    text: str
    similarity: float
    posted_at: datetime


@dataclass(frozen=True, slots=True)
class FormLetterResult:
    is_form_letter: bool
    # The sent replies at or above the threshold, most similar first, at most five.
    similar: list[SimilarReply] = field(default_factory=list)
    # How many sent replies are at or above the threshold (may exceed len(similar)).
    match_count: int = 0
    # For the agent; empty unless this is a form letter.
    message: str = ""


def form_letter_check(
    *,
    text: str,
    brand_id: int,
    now: datetime | None = None,
    window: timedelta = DEFAULT_WINDOW,
    threshold: float = DEFAULT_THRESHOLD,
    min_matches: int = DEFAULT_MIN_MATCHES,
) -> FormLetterResult:
    """Compare `text` with the brand's replies sent within `window` before `now`.

    It is a form letter when at least `min_matches` of them are at least `threshold`
    similar. Only the 500 most recently sent replies are compared, so the cost is bounded on
    a busy desk. Reads only; safe to call as often as the agent edits.
    """
    now = now or timezone.now()
    ours = shingles(text)
    matches: list[SimilarReply] = []
    for reply_id, sent_text, posted_at in _recent_sent_replies(
        brand_id=brand_id, since=now - window, until=now
    ):
        similarity = jaccard(ours, shingles(sent_text))
        if similarity >= threshold:
            matches.append(
                SimilarReply(
                    reply_id=reply_id,
                    text=sent_text,
                    similarity=round(similarity, 2),
                    posted_at=posted_at,
                )
            )
    matches.sort(key=lambda match: (-match.similarity, -match.posted_at.timestamp()))
    is_form_letter = len(matches) >= min_matches
    return FormLetterResult(
        is_form_letter=is_form_letter,
        similar=matches[:MAX_LISTED],
        match_count=len(matches),
        message=_message(len(matches), window) if is_form_letter else "",
    )


def _recent_sent_replies(
    *, brand_id: int, since: datetime, until: datetime
) -> list[tuple[int, str, datetime]]:
    return list(
        Reply.objects.filter(
            mention__brand_id=brand_id,
            status=ReplyStatus.SENT,
            posted_at__gte=since,
            posted_at__lte=until,
        )
        .order_by("-posted_at", "-id")
        .values_list("id", "text", "posted_at")[:MAX_CANDIDATES]
    )


def normalise(text: str) -> list[str]:
    """The words that make the letter, the same for every customer it is sent to."""
    text = _LINK.sub(" ", text)
    text = _SIGNATURE.sub(" ", text)
    text = _HANDLE.sub(HANDLE, text)
    text = _GREETING.sub(lambda m: f"{m.group(1)} {NAME}", text, count=1)
    text = _NUMBER.sub(NUMBER, text)
    text = _EMOJI_MODIFIERS.sub("", text)
    return [token.replace("’", "'") for token in _TOKEN.findall(text.lower())]


def shingles(text: str) -> frozenset[tuple[str, ...]]:
    words = normalise(text)
    if len(words) < SHINGLE_WORDS:
        # "Thanks!" is one shingle of its own: two such replies are the same letter.
        return frozenset([tuple(words)]) if words else frozenset()
    return frozenset(
        tuple(words[i : i + SHINGLE_WORDS]) for i in range(len(words) - SHINGLE_WORDS + 1)
    )


def jaccard(a: frozenset, b: frozenset) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def _message(count: int, window: timedelta) -> str:
    replies = "reply" if count == 1 else "replies"
    return (
        f"This reply is nearly identical to {count} {replies} sent in {_period(window)}. "
        "Customers notice form letters: say something about their situation."
    )


def _period(window: timedelta) -> str:
    if window % timedelta(days=1) == timedelta(0):
        days = window // timedelta(days=1)
        return "the last day" if days == 1 else f"the last {days} days"
    hours = max(1, round(window / timedelta(hours=1)))
    return "the last hour" if hours == 1 else f"the last {hours} hours"
