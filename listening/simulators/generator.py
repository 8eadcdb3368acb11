"""Earshot's own demo mentions: plausible posts about a brand, written from templates here.

Nothing is taken from any dataset. A stream mixes complaints (outage, billing, late delivery,
locked account, product defect), praise, questions and neutral chatter; about a third only
name the brand in the text, because listening must reach beyond @-mentions. Phrasing varies
(templates x fragments x intensity) so a sentiment scorer sees a spread, not three clusters.
Authors come from a fixed pool, so some post more than once, with a skewed follower count.

Every result is a dict of keyword arguments for `XApiSimulator.add_tweet`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from itertools import islice
from typing import Any

MAX_LENGTH = 280
AUTHOR_POOL_SIZE = 80

FIRST_NAMES = (
    "Maya", "Jonah", "Priya", "Liam", "Sofia", "Marcus", "Aisha", "Tom", "Elena", "Kenji",
    "Grace", "Omar", "Hannah", "Diego", "Chloe", "Ravi", "Nora", "Sam", "Zoe", "Mateo",
    "Ines", "Felix", "Amara", "Ben", "Lucia", "Theo", "Yara", "Daniel", "Freya", "Malik",
    "Rosa", "Ethan", "Leila", "Jack", "Mei", "Oscar", "Nadia", "Hugo", "Ivy", "Kwame",
)  # fmt: skip
LAST_NAMES = (
    "Okafor", "Lindqvist", "Patel", "Moreau", "Brennan", "Nakamura", "Costa", "Whitfield",
    "Haddad", "Kowalski", "Reyes", "Ferreira", "Novak", "ONeill", "Schmidt", "Adeyemi",
    "Larsen", "Rossi", "Chen", "Murphy",
)  # fmt: skip

DURATIONS = (
    "two hours",
    "the whole morning",
    "three days",
    "over a week",
    "45 minutes",
    "two days",
)
WHEN = ("yesterday", "Monday", "last week", "this morning", "the weekend")
ITEMS = ("travel mug", "kettle", "gift set", "starter kit", "bundle", "grinder")

PROBLEMS = {
    "outage": (
        "the app has been down for {duration}",
        "the website keeps timing out at checkout",
        "online ordering has been broken since {when}",
        "the app logs me out every few minutes",
        "I keep getting an error 503 when I try to pay",
        "the app shows a blank screen since the update",
    ),
    "billing": (
        "I was charged twice for the same order",
        "I got billed again after cancelling my subscription",
        "there's a charge on my card I don't recognise",
        "my refund still hasn't shown up after {duration}",
        "the promo code was accepted but I paid full price",
        "I've been overcharged on every order since {when}",
    ),
    "delivery": (
        "my order is {days} days late",
        "tracking says delivered but nothing arrived",
        "the delivery window came and went with no driver",
        "my parcel has been sitting at the depot since {when}",
        "half of my order was missing from the box",
        "my order was cancelled without a word and nobody can tell me why",
    ),
    "account": (
        "my account got locked and the reset email never arrives",
        "I've been locked out of my account since {when}",
        "the two-factor codes never come through so I can't sign in",
        "my account was suspended with no explanation",
        "I can't reset my password, the link is broken",
    ),
    "defect": (
        "the {item} I ordered arrived broken",
        "the lid on my {item} cracked the first time I used it",
        "my {item} stopped working after {duration}",
        "the {item} leaks every single time",
        "the {item} I got is damaged and clearly used",
    ),
}
# From flat to furious: how negative a complaint reads is mostly decided here.
COMPLAINT_TONES = (
    "", "", "Still waiting.", "Third time this month.", "Not great.", "Really frustrating.",
    "This is ridiculous.", "Unacceptable.", "Honestly so disappointed.",
    "Worst experience I've had in ages.", "Absolutely furious right now.", "Terrible service.",
    "So annoyed.", "Never ordering again.", "Hopeless.",
)  # fmt: skip
COMPLAINT_ASKS = (
    "",
    "Can someone help?",
    "Please sort this out.",
    "Who do I talk to?",
    "Any update?",
    "DM sent.",
)
COMPLAINT_EMOJI = ("", "", "", " 😡", " 🙄", " 😤")
COMPLAINT_INTROS = (
    "Wow {brand}.", "Come on {brand}.", "Not impressed with {brand} today:", "Dear {brand},",
    "Anyone else having trouble with {brand}?", "{brand} update:", "So {brand},",
)  # fmt: skip

PRAISE = (
    "just wanted to say thanks, support fixed my issue in minutes",
    "my order arrived a day early",
    "the new app update is so much smoother",
    "{first} on the support chat was incredibly helpful",
    "really impressed with how fast the refund came through",
    "the {item} is even better than I expected",
    "best customer service I've had all year",
    "you replaced my broken {item} without any fuss",
)
PRAISE_CLOSERS = (
    "", "", "Thank you!", "Great work.", "You made my day.", "Love it!", "🙌", "❤️", "Keep it up!",
    "Nice one.",
)  # fmt: skip
PRAISE_INTROS = (
    "Shout-out to {brand}:",
    "Have to say it, {brand}:",
    "Credit where it's due, {brand}:",
    "{brand} 👏",
)

QUESTIONS = (
    "do you ship to Ireland?",
    "is there a student discount?",
    "how do I change the delivery address on an order?",
    "when is the holiday range coming back?",
    "can I pause my subscription while I'm away?",
    "do gift cards expire?",
    "what time do you open on Sundays?",
    "is the {item} dishwasher safe?",
)
QUESTION_PREFIXES = ("", "", "Quick question:", "Hi,", "Hey there,")
QUESTION_SUFFIXES = ("", "", "Thanks in advance.", "Cheers")
THIRD_PERSON_QUESTIONS = (
    "Does anyone know if {brand} ships to Ireland?",
    "Is {brand} doing a student discount this year?",
    "Has anyone tried the {item} from {brand}?",
    "Does {brand} have a loyalty scheme or not?",
)

CHATTER = (
    "Stopped by {brand} on the way to work.",
    "Trying {brand} for the first time today.",
    "Apparently {brand} is opening a new store near the station.",
    "Picked up a {item} from {brand} for the office.",
    "Saw an ad for {brand} on the train this morning.",
    "Comparing {brand} with a couple of others before I order.",
    "My sister swears by {brand}, we'll see.",
)
CHATTER_AT = (
    "saw your new store on the high street",
    "is the {item} the same one as last year?",
    "just placed my first order",
    "following for the restock news",
)

# Category weights: complaints dominate a support desk's inbound stream.
CATEGORIES = (("complaint", 0.42), ("praise", 0.2), ("question", 0.2), ("chatter", 0.18))


def _author(rng: random.Random) -> dict[str, Any]:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    handle = rng.choice(
        (
            f"{first}{last}",
            f"{first}_{last[0]}",
            f"{first.lower()}{rng.randint(1, 999)}",
            f"the{first}{last[:3]}",
            f"{first[0]}{last}".lower(),
        )
    )
    roll = rng.random()
    if roll < 0.04:  # the occasional large account whose complaint is seen by many
        followers = rng.randint(50_000, 2_000_000)
    elif roll < 0.15:
        followers = rng.randint(2_000, 50_000)
    else:
        followers = int(rng.lognormvariate(4.5, 1.2))
    return {
        "id": str(rng.randrange(10**8, 16 * 10**17)),
        "username": re.sub(r"\W", "", handle)[:15],
        "name": f"{first} {last}" if rng.random() < 0.7 else first,
        "followers_count": followers,
        "following_count": rng.randint(20, 1500),
        "tweet_count": rng.randint(50, 40_000),
        "listed_count": followers // rng.randint(80, 400),
        "verified": followers > 100_000 and rng.random() < 0.5,
    }


def _fill(template: str, rng: random.Random, brand: str) -> str:
    return template.format(
        brand=brand,
        duration=rng.choice(DURATIONS),
        when=rng.choice(WHEN),
        days=rng.randint(3, 12),
        item=rng.choice(ITEMS),
        first=rng.choice(FIRST_NAMES),
    )


def _join(*parts: str) -> str:
    return " ".join(part for part in parts if part)


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:]


def _complaint(rng: random.Random, name: str, at: str) -> str:
    problem = _fill(rng.choice(PROBLEMS[rng.choice(tuple(PROBLEMS))]), rng, name)
    tail = _join(rng.choice(COMPLAINT_TONES), rng.choice(COMPLAINT_ASKS)) + rng.choice(
        COMPLAINT_EMOJI
    )
    style = rng.random()
    if style < 0.5:
        return _join(at, _sentence(problem) + ".", tail)
    if style < 0.65:
        return _join(_sentence(problem) + ".", tail, at)
    intro = rng.choice(COMPLAINT_INTROS).format(brand=name)
    # After "Dear Brand," or "today:" the sentence carries on in lower case.
    return _join(intro, (problem if intro[-1] in ",:" else _sentence(problem)) + ".", tail)


def _praise(rng: random.Random, name: str, at: str) -> str:
    body = _sentence(_fill(rng.choice(PRAISE), rng, name))
    closer = rng.choice(PRAISE_CLOSERS)
    style = rng.random()
    if style < 0.4:
        return _join(at, body + "!", closer)
    if style < 0.6:
        return _join(body + ".", closer, at)
    intro = rng.choice(PRAISE_INTROS).format(brand=name)
    return _join(intro, (body[0].lower() + body[1:] if intro[-1] == ":" else body) + ".", closer)


def _question(rng: random.Random, name: str, at: str) -> str:
    if rng.random() < 0.25:
        return _fill(rng.choice(THIRD_PERSON_QUESTIONS), rng, name)
    question = _fill(rng.choice(QUESTIONS), rng, name)
    prefix = rng.choice(QUESTION_PREFIXES)
    return _join(
        at, prefix, question if prefix else _sentence(question), rng.choice(QUESTION_SUFFIXES)
    )


def _chatter(rng: random.Random, name: str, at: str) -> str:
    if rng.random() < 0.2:
        return _join(at, _fill(rng.choice(CHATTER_AT), rng, name))
    return _fill(rng.choice(CHATTER), rng, name)


_WRITERS = {"complaint": _complaint, "praise": _praise, "question": _question, "chatter": _chatter}


def iter_mentions(
    *, brand_name: str, brand_handle: str, seed: int | None = None
) -> Iterator[dict[str, Any]]:
    """An endless, seed-deterministic stream of `add_tweet` kwargs about the brand."""
    rng = random.Random(seed)
    at = "@" + brand_handle.lstrip("@")
    authors = [_author(rng) for _ in range(AUTHOR_POOL_SIZE)]
    names, weights = zip(*CATEGORIES, strict=True)
    while True:
        writer = _WRITERS[rng.choices(names, weights)[0]]
        text = writer(rng, brand_name, at)
        if len(text) > MAX_LENGTH:  # only a very long brand name can get here; skip that draw
            continue
        yield {"text": text, "author": dict(rng.choice(authors)), "lang": "en"}


def generate_mentions(
    *, brand_name: str, brand_handle: str, count: int, seed: int | None = None
) -> list[dict[str, Any]]:
    """`count` mentions from `iter_mentions`; the same seed gives the same list."""
    return list(
        islice(iter_mentions(brand_name=brand_name, brand_handle=brand_handle, seed=seed), count)
    )
