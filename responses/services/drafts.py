"""A first, personal draft for every mention: greet by name, answer what they wrote.

Later work (playbooks) replaces the phrase lists with the team's own; the rules stay: name
the person, use their own words, apologise and offer a next step when they are unhappy,
thank them when they are happy, answer when they ask, sign with the agent's initials.
"""

from __future__ import annotations

import random
import re

from django.contrib.auth.models import AbstractBaseUser

from listening.models import Mention

DRAFT_MAX_LENGTH = 280
_HANDLE_OR_LINK = re.compile(r"(@\w+|#|https?://\S+)")
_NAME_WORD = re.compile(r"^[^\W\d_]{2,}$")
_SPACES = re.compile(r"\s+")
# Sentence and clause ends; a "." or ":" only when a space follows ("10:30", "3.5" stay whole).
_CLAUSE_END = re.compile(r"[!?;\n]|[.:](?=\s|$)")

_APOLOGIES = (
    "I'm really sorry about {topic}.",
    "Sorry to hear about {topic}, that's not the experience we want for you.",
    "I'm sorry {topic} let you down.",
)
_NEXT_STEPS = (
    "Could you DM us your order or account details so I can look into it right away?",
    "Send us a DM with the details and I'll get this sorted for you.",
    "If you DM us, I'll pick this up personally and keep you posted.",
)
_THANKS = (
    "Thank you so much for the kind words about {topic}!",
    "This made our day, thank you for sharing {topic}!",
    "We love hearing this, thanks for the shout-out about {topic}!",
)
_CELEBRATE = (
    "We'll pass it on to the team.",
    "Enjoy, and see you again soon!",
    "It's customers like you who keep us going.",
)
_QUESTION = (
    "Thanks for reaching out about {topic}, let me look into it for you.",
    "Thanks for asking about {topic}, happy to help with that.",
)
_NEUTRAL = (
    "Thanks for mentioning us and for sharing {topic}.",
    "Thanks for the mention about {topic}!",
)


def first_name_or_handle(mention: Mention) -> str:
    first = (mention.author.name or "").split(" ")[0].strip()
    return first if _NAME_WORD.match(first) else f"@{mention.author.username}"


def their_words(text: str, *, limit: int = 60, brand_name: str = "") -> str:
    """The customer's own description: their longest clause, without handles, links or the
    brand's own name (quoting "Wow Northwind Coffee" back says nothing)."""
    cleaned = _HANDLE_OR_LINK.sub("", text)
    if brand_name:
        cleaned = re.sub(re.escape(brand_name) + r"(?:'s)?", "", cleaned, flags=re.IGNORECASE)
    clauses = [
        _SPACES.sub(" ", part).strip(" ,:-")
        for part in _CLAUSE_END.split(cleaned)
        if part.strip(" ,:-")
    ]
    # The longest clause says the most about what happened ("the kettle is even better than
    # I expected"), more than an opener such as "Have to say it".
    clause = max(clauses, key=lambda c: len(c.split()), default="")
    if len(clause) > limit:
        clause = clause[:limit].rsplit(" ", 1)[0] + "…"
    return f"“{clause}”" if clause else "this"


def agent_initials(agent: AbstractBaseUser) -> str:
    full = " ".join(
        part for part in (getattr(agent, "first_name", ""), getattr(agent, "last_name", "")) if part
    )
    letters = "".join(word[0] for word in full.split() if word) or agent.get_username()[:2]
    return letters.upper()


def draft_for_mention(*, mention: Mention, agent: AbstractBaseUser) -> str:
    """A personalised draft within X's 280 characters. Varies by mention, stable per mention."""
    # Seeded by the mention: a reload shows the same draft, but two customers differ.
    rng = random.Random(f"{mention.platform}:{mention.external_id}")
    template = _template(mention=mention, rng=rng)
    name = first_name_or_handle(mention)
    signature = f" ^{agent_initials(agent)}"
    # Quote less of their words until it fits.
    for limit in (60, 40, 20):
        topic = their_words(mention.text, limit=limit, brand_name=mention.brand.name)
        draft = f"Hi {name}, {_after_comma(template.format(topic=topic))}"
        if len(draft) + len(signature) <= DRAFT_MAX_LENGTH:
            return draft + signature
    draft = f"Hi {name}, {_after_comma(template.format(topic='this'))}"
    return draft[: DRAFT_MAX_LENGTH - len(signature)].rstrip() + signature


def _after_comma(sentence: str) -> str:
    """Continue the greeting's sentence: "Hi Ana, we love…", but "Hi Ana, I'm sorry…"."""
    if sentence.startswith(("I ", "I'")):
        return sentence
    return sentence[:1].lower() + sentence[1:]


def _template(*, mention: Mention, rng: random.Random) -> str:
    if mention.is_negative:
        return f"{rng.choice(_APOLOGIES)} {rng.choice(_NEXT_STEPS)}"
    if "?" in mention.text:
        return f"{rng.choice(_QUESTION)} {rng.choice(_NEXT_STEPS)}"
    if mention.is_positive:
        return f"{rng.choice(_THANKS)} {rng.choice(_CELEBRATE)}"
    return rng.choice(_NEUTRAL)
