"""A first, personal draft for every mention, from the playbook for its kind of post.

The playbook (the team's own plan: see responses.models.Playbook) gives the guidance and the
templates; this module personalises them: the customer's first name (else their @handle),
their own description of the problem in their words, the agent's initials, the brand, the
brand's DM link. Phrasing varies by mention, so two customers with the same problem don't
get the same text, and alternatives are one click away. A draft fits the platform's limit
and, for an unhappy customer, never reads as negative itself: quoting their angriest words
back at them is not empathy, so a calmer clause of theirs is chosen when one exists.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser

from listening.models import Mention
from listening.services.sentiment import sentiment_analyzer, sentiment_score
from responses.models import Playbook, PlaybookSentiment

# Longer than any platform's own words budget here: a reply is short, even on Reddit.
DRAFT_MAX_LENGTH = 280
ALTERNATIVES = 3
_HANDLE_OR_LINK = re.compile(r"(@\w+|#|https?://\S+)")
_NAME_WORD = re.compile(r"^[^\W\d_]{2,}$")
_SPACES = re.compile(r"\s+")
# Sentence and clause ends; a "." or ":" only when a space follows ("10:30", "3.5" stay whole).
_CLAUSE_END = re.compile(r"[!?;,\n]|[.:](?=\s|$)")
_WORD = re.compile(r"[^\W\d_][\w'’-]*")
_STOP_WORDS = frozenset(
    [
        "the",
        "a",
        "an",
        "and",
        "or",
        "but",
        "so",
        "to",
        "of",
        "in",
        "on",
        "at",
        "for",
        "with",
        "from",
        "by",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "my",
        "your",
        "our",
        "their",
        "his",
        "her",
        "me",
        "you",
        "we",
        "they",
        "i",
        "im",
        "i'm",
        "just",
        "not",
        "no",
        "very",
        "really",
        "still",
        "again",
        "all",
        "any",
        "some",
        "can",
        "cant",
        "can't",
        "do",
        "does",
        "did",
        "dont",
        "don't",
        "have",
        "has",
        "had",
        "will",
        "would",
        "what",
        "when",
        "why",
        "how",
        "who",
        "where",
        "there",
        "here",
        "than",
        "then",
        "too",
        "also",
        "about",
        "into",
        "out",
        "up",
        "get",
        "got",
    ]
)
QUOTE_LIMITS = (60, 40, 25)
# A clause this negative (VADER compound) is an outburst, not a description of the problem.
ANGRY = -0.5


# Interchangeable phrasings: each draft takes one of each at random (seeded by the mention),
# so two customers whose posts match the same template still read different replies.
_PHRASINGS = (
    ("thanks for", ("thanks for", "thank you for", "many thanks for")),
    ("happy to help", ("happy to help", "glad to help", "here to help")),
    ("let us know", ("let us know", "tell us", "drop us a line")),
    ("we appreciate", ("we appreciate", "we value", "we're grateful for")),
    ("right away", ("right away", "straight away", "today")),
    ("the team", ("the team", "everyone here", "our crew")),
    ("so glad", ("so glad", "really glad", "delighted")),
    ("any time", ("any time", "whenever you like", "at any point")),
    ("I'll", ("I'll", "I will")),
)


@dataclass(frozen=True, slots=True)
class Draft:
    text: str
    playbook: Playbook | None
    template_id: int | None


def first_name_or_handle(mention: Mention) -> str:
    first = (mention.author.name or "").split(" ")[0].strip()
    return first if _NAME_WORD.match(first) else f"@{mention.author.username}"


def agent_initials(agent: AbstractBaseUser) -> str:
    full = " ".join(
        part for part in (getattr(agent, "first_name", ""), getattr(agent, "last_name", "")) if part
    )
    letters = "".join(word[0] for word in full.split() if word) or agent.get_username()[:2]
    return letters.upper()


def _clauses(text: str, *, brand_name: str = "") -> list[str]:
    """The post's clauses without handles, links or the brand's own name, those that say the
    most first (most words that carry meaning, then longest)."""
    cleaned = _HANDLE_OR_LINK.sub("", text)
    if brand_name:
        cleaned = re.sub(re.escape(brand_name) + r"(?:'s)?", "", cleaned, flags=re.IGNORECASE)
    clauses = [
        _SPACES.sub(" ", part).strip(" ,:-\"'“”")
        for part in _CLAUSE_END.split(cleaned)
        if len(_WORD.findall(part)) >= 2
    ]
    return sorted(clauses, key=lambda clause: (-len(content_words(clause)), -len(clause.split())))


def _quote(clause: str, limit: int) -> str:
    if len(clause) > limit:
        clause = clause[:limit].rsplit(" ", 1)[0] + "…"
    return f"“{clause}”"


def their_words(text: str, *, limit: int = 60, brand_name: str = "") -> str:
    """The customer's own description: their longest clause, without handles, links or the
    brand's own name (quoting "Wow Northwind Coffee" back says nothing)."""
    clauses = _clauses(text, brand_name=brand_name)
    return _quote(clauses[0], limit) if clauses else "this"


def content_words(text: str) -> list[str]:
    """Words that carry meaning (no stop words, no handles or links), in order."""
    cleaned = _HANDLE_OR_LINK.sub("", text)
    return [w for w in _WORD.findall(cleaned) if len(w) > 2 and w.lower() not in _STOP_WORDS]


def _topics(mention: Mention) -> list[str]:
    """Ways to say what they wrote about, best first.

    Their clauses that carry meaning come first, calm ones before angry ones ("my refund for
    order 4411" before "pathetic service ever": the problem, not the insult), each at
    shorter and shorter lengths; then single words of theirs that are not negative. A post
    with nothing to quote ("Thanks!", a bare link) is referred to as "this": quoting
    "Thanks" back at someone reads as a form letter.
    """
    analyzer = sentiment_analyzer()
    clauses = _clauses(mention.text, brand_name=mention.brand.name)
    meaningful = [c for c in clauses if content_words(c)]
    meaningful.sort(key=lambda c: analyzer.polarity_scores(c)["compound"] <= ANGRY)
    brand_words = {w.lower() for w in _WORD.findall(mention.brand.name)}
    words = [
        f"“{word}”"
        for word in content_words(mention.text)
        if analyzer.lexicon.get(word.lower(), 0) >= 0 and word.lower() not in brand_words
    ]
    topics = [_quote(c, limit) for limit in QUOTE_LIMITS for c in meaningful]
    topics += words
    return list(dict.fromkeys(topics)) or ["this"]


def playbook_for_mention(
    mention: Mention, playbooks: list[Playbook] | None = None
) -> Playbook | None:
    """The first active playbook, in order, whose phrases and sentiment match the mention."""
    if playbooks is None:
        playbooks = list(Playbook.objects.filter(is_active=True).prefetch_related("templates"))
    text = f" {' '.join(_WORD.findall(mention.text.lower()))} "
    for playbook in playbooks:
        if not _sentiment_matches(playbook.match_sentiment, mention.sentiment_label):
            continue
        if playbook.match_questions_only and "?" not in mention.text:
            continue
        phrases = playbook.phrases
        if phrases and not any(f" {phrase.lower()} " in text for phrase in phrases):
            continue
        return playbook
    return None


def _sentiment_matches(wanted: str, label: str) -> bool:
    if wanted == PlaybookSentiment.ANY:
        return True
    if wanted == PlaybookSentiment.NOT_NEGATIVE:
        return label != "negative"
    return wanted == label


def drafts_for_mention(
    *,
    mention: Mention,
    agent: AbstractBaseUser,
    count: int = ALTERNATIVES,
    playbook: Playbook | None = None,
    dm_invite: bool = False,
) -> list[Draft]:
    """Up to `count` different personalised drafts, the best first. Stable per mention (a
    reload shows the same ones) and different between mentions."""
    playbook = playbook or playbook_for_mention(mention)
    templates = [
        t for t in (playbook.templates.all() if playbook else []) if t.is_dm_invite == dm_invite
    ]
    rng = random.Random(f"{mention.platform}:{mention.external_id}")
    rng.shuffle(templates)
    limit = min(mention.reply_max_length or DRAFT_MAX_LENGTH, DRAFT_MAX_LENGTH)
    values = {
        "name": first_name_or_handle(mention),
        "handle": f"@{mention.author.username}",
        "agent_initials": agent_initials(agent),
        "brand": mention.brand.name,
        "dm_link": mention.brand.dm_link,
    }
    topics = _topics(mention)
    drafts: list[Draft] = []
    for template in templates:
        text = _personalise(
            _vary(template.text, rng), values, topics, limit=limit, calm=mention.is_negative
        )
        if text and text not in (d.text for d in drafts):
            drafts.append(Draft(text=text, playbook=playbook, template_id=template.pk))
        if len(drafts) == count:
            break
    return drafts


def _vary(template: str, rng: random.Random) -> str:
    """The template with some of its stock phrases swapped for equivalents."""
    for phrase, choices in _PHRASINGS:
        if phrase in template:
            template = template.replace(phrase, rng.choice(choices), 1)
    return template


def _personalise(
    template: str, values: dict[str, str], topics: list[str], *, limit: int, calm: bool
) -> str:
    """The template with the first topic that fits `limit` and, when `calm`, keeps the
    reply's own sentiment at or above neutral. Empty when none does."""
    for topic in topics:
        text = _tidy(template.format(**values, their_words=topic))
        if len(text) > limit:
            continue
        if calm and sentiment_score(text=text).compound < 0:
            continue
        return text
    return ""


def _tidy(text: str) -> str:
    # An empty {dm_link} leaves "DM us  and"; keep the sentence clean.
    return _SPACES.sub(" ", text.replace(" ,", ",").replace(" .", ".")).strip()


def draft_for_mention(*, mention: Mention, agent: AbstractBaseUser) -> str:
    """The first draft for the mention (empty when no playbook applies)."""
    drafts = drafts_for_mention(mention=mention, agent=agent, count=1)
    return drafts[0].text if drafts else ""
