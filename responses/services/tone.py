"""The tone guard: warnings about a reply before it goes out, written for the agent.

Each check is a small function of the reply text (and, for the personal checks, the mention
it answers) that returns at most one warning. The guard only advises: it never blocks a send
and has no side effects, so it is safe to run on every keystroke.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from listening.models import Mention
from listening.services.sentiment import sentiment_score
from responses.services.drafts import first_name_or_handle


@dataclass(frozen=True, slots=True)
class ToneWarning:
    code: str
    # For the agent: what reads badly, why, and what would read better.
    message: str
    # The offending words as written in the reply, " … " between several; may be empty.
    excerpt: str = ""


BLAME = "blame"
SARCASM = "sarcasm"
SHOUTING = "shouting"
NEGATIVE_REPLY = "negative_reply"
NO_NAME = "no_name"
NOTHING_FROM_THEM = "nothing_from_them"

EXCERPT_SEPARATOR = " … "

# --- blame and dismissal -----------------------------------------------------------------
# (pattern, what to do instead). Patterns are matched case-insensitively on the text with
# curly apostrophes made straight; a group named "hit" marks the words to quote, when the
# pattern needs context around them (a sentence start).
_SENTENCE_START = r"(?:^|[.!?…]\s+|\n\s*|^(?:hi|hello|hey|dear)\s+[^,.!?\n]{1,40}[,!]\s*)"
BLAME_PHRASES: tuple[tuple[str, str], ...] = (
    (
        r"\bdid you (?:call|try|check|read|restart|contact)\b",
        "Offer the step instead of asking whether they did it: “Could you try …? If that "
        "doesn't help, I'll …”.",
    ),
    (
        # "You should have called us", not "you should have an email from us".
        r"\byou (?:should(?:n't)? have|should've|shouldn't've)(?= \w+(?:ed|en|ought|ad|ld)\b)"
        r"(?! (?:received|gotten|been|had)\b)"
        r"|\byou (?:were supposed to|failed to|forgot to)\b",
        "Leave out what they should have done; say what happens next and what you will do.",
    ),
    (
        # An order, not "where you need to be" or "if you need to reach us".
        r"(?<!\bwhere )(?<!\bwhen )(?<!\bif )(?<!\bwhat )(?<!\bwhenever )"
        r"\byou (?:need to|have to|must)\b",
        "Invite rather than order: “The quickest way is to …” or “Could you …?”.",
    ),
    (
        r"\b(?:as i (?:already |previously )?(?:said|mentioned|explained|stated)"
        r"|as (?:previously |already )?(?:mentioned|stated|explained)|like i said)\b",
        "Repeat the point kindly; reminding them you said it already sounds impatient.",
    ),
    (
        r"\b(?:per|according to|as per) (?:our|the|company) polic(?:y|ies)\b"
        r"|\b(?:our|company) policy (?:is|states|says)\b|\bit'?s (?:our|company) policy\b",
        "Give the reason in plain words and what you can offer; “policy” closes the door.",
    ),
    (
        _SENTENCE_START + r"(?P<hit>(?:well,?\s+)?actually\b)",
        "Drop “Actually”: it corrects them. State the fact plainly.",
    ),
    (
        r"\b(?:obviously|clearly you|as you (?:should|must) know|as you can see)\b",
        "Drop it: what is obvious to us is not obvious to them.",
    ),
    (
        r"\b(?:calm down|no need to (?:shout|be rude|get upset))\b",
        "Acknowledge how they feel instead: “I understand how frustrating this is.”",
    ),
    (
        r"\b(?:unfortunately,? )?(?:that|this|it)(?:'s| is) not possible\b"
        r"|\b(?:there's|there is) nothing (?:more |else )?(?:we|i) can do\b"
        r"|\bnot our (?:fault|problem)\b|\bnothing to do with us\b",
        "Say what you can do for them, even if it is not what they asked for.",
    ),
)

# --- sarcasm -----------------------------------------------------------------------------
SARCASM_PHRASES: tuple[str, ...] = (
    r"(?<!\S)/s\b",
    r"\byeah,? right\b(?! away| now| there| here| after)",
    r"\bsure,? because\b",
    r"\boh,? (?:great|wonderful|joy|perfect|brilliant|lovely)\b",
    r"\bthanks for nothing\b",
    r"\bgood luck with that\b",
    r"🙄|😒|🤦",
    r"[!?]*(?:!\?|\?!)[!?]*",
)
# Sarcastic only where they complained: "thanks a lot!" to praise is sincere, and so is
# "thanks a lot for your patience".
SARCASM_AFTER_COMPLAINT: tuple[str, ...] = (r"\bthanks a lot\b(?! for)",)
# One lowercase word in quotes, as in "our 'help'". Capitalised words in quotes are usually
# button or menu names ("tap 'Settings'"), which support replies quote all the time.
_SCARE_QUOTES = re.compile(r"(?<!\w)(?:'([a-z]+)'|\"([a-z]+)\"|“([a-z]+)”)(?!\w)")

# --- shouting ----------------------------------------------------------------------------
SHOUTING_MIN_RUN = 3
# All-caps words that are names, not raised voices; they do not count as shouted words.
ACRONYMS = frozenset({
    "AM", "PM", "DM", "DMS", "UK", "US", "USA", "EU", "UAE", "NYC", "LA", "ID", "PIN",
    "FAQ", "FAQS", "OK", "ETA", "ASAP", "FYI", "PS", "TV", "PC", "SMS", "URL", "API", "VIP",
    "GPS", "ATM", "PDF", "USB", "HD", "UPS", "DHL", "NHS", "BBC", "CEO", "AI", "IOS",
    "WIFI", "WI-FI", "TBC", "TBA", "RSVP", "IMO",
})  # fmt: skip
_REPEATED_EXCLAMATIONS = re.compile(r"!{2,}|‼")

# --- negativity of the reply itself ------------------------------------------------------
NEGATIVE_REPLY_THRESHOLD = -0.3
# VADER scores apologies as negative ("sorry" −0.08, "unfortunately" −0.34) and so is the
# thing apologised for ("sorry for the inconvenience" −0.36): an apology is the right tone
# for a complaint, so apology phrases, with what they apologise for, are left out before the
# reply is scored. So are sympathy ("sad to hear", "I understand how frustrating this is"),
# owning the failure ("that's not good enough") and support idioms VADER misreads ("shoot us
# a DM": "shoot" is −0.34).
APOLOGY_PHRASES: tuple[str, ...] = (
    r"\b(?:(?:so |very |really |truly |terribly )?sorry|unfortunate|oh,? no|bummer"
    r"|apologies|apologi[sz]e[sd]?|apologi[sz]ing"
    r"|(?:sad|saddened|saddening|hate|disappointed|gutted|upset|upsetting) to "
    r"(?:hear|see|read|learn))\b"
    # What the apology is for, when it ends its clause within a few words.
    r"(?:,? (?:for|about|to hear(?: about| that)?|that|to disappoint) (?:\S+ ){0,5}?\S+?"
    r"(?=[.!?,;\n]|$))?",
    # The bad news an "unfortunately" announces, when it ends its clause within a few words;
    # not a judgment of them ("unfortunately you are …"), which is the reply's own.
    r"\b(?:unfortunately|sadly)\b,?(?! you\b)(?: (?:\S+ ){0,6}?\S+?(?=[.!?,;\n]|$))?",
    r"\b(?:i|we) (?:completely |totally |really |fully |can )?understand "
    r"(?:how|that|your|why|the) [^.!?;\n]*",
    # Owning a failure is an apology in substance; VADER reads "not good" as negative.
    r"\b(?:that|this|it)(?:'s| is| was) not (?:good enough|ok|okay|acceptable|right"
    r"|what we want|the (?:service|experience) we want)\b",
    r"\b(?:shoot|drop|fire) (?:us|me) (?:a|an)\b",
)
_QUOTED = re.compile(r"“[^”]*”|\"[^\"]*\"")

# --- personal: their name, their words ---------------------------------------------------
CONTENT_WORD_MIN_LETTERS = 4
STOP_WORDS = frozenset({
    "about", "above", "after", "again", "against", "also", "always", "another", "anyone",
    "anything", "around", "away", "back", "because", "been", "before", "being", "below",
    "between", "both", "cannot", "could", "couldn", "didn", "does", "doesn", "doing",
    "done", "down", "during", "each", "either", "else", "even", "ever", "every", "from",
    "further", "getting", "going", "gonna", "guys", "hadn", "hasn", "have", "haven",
    "having", "hello", "help", "here", "hers", "herself", "himself", "into", "isn", "just",
    "know", "like", "made", "make", "many", "maybe", "more", "most", "much", "must",
    "myself", "never", "once", "only", "other", "ours", "ourselves", "over", "please",
    "really", "same", "shall", "should", "shouldn", "since", "some", "someone", "something",
    "still", "such", "than", "thank", "thanks", "that", "that's", "their", "theirs", "them",
    "themselves", "then", "there", "these", "they", "thing", "things", "this", "those",
    "though", "through", "today", "together", "under", "until", "upon", "very", "wasn",
    "were", "weren", "what", "when", "where", "which", "while", "whom", "whose", "will",
    "with", "within", "without", "won't", "would", "wouldn", "yeah", "your", "yours",
    "yourself", "yourselves",
})  # fmt: skip
_STRAIGHT_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "`": "'"})
_LINK = re.compile(r"https?://\S+|www\.\S+")
_HANDLE = re.compile(r"@\w+")
_HANDLE_OR_TAG = re.compile(r"[@#]\w+")
_DOUBLED_END = re.compile(r"(?:bb|gg|mm|nn|pp|rr|tt)$")
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


def tone_check(*, text: str, mention: Mention) -> list[ToneWarning]:
    """Warnings about `text` as a reply to `mention`, in a fixed order of codes.

    An empty list means nothing to point out. Reads only the mention, its author and brand.
    """
    checks = (
        _blame(text),
        _sarcasm(text, mention=mention),
        _shouting(text, mention=mention),
        _negative_reply(text, mention=mention),
        _no_name(text, mention=mention),
        _nothing_from_them(text, mention=mention),
    )
    return [warning for warning in checks if warning is not None]


def _straighten(text: str) -> str:
    # One character for one, so positions found in the result are positions in the original.
    return text.translate(_STRAIGHT_APOSTROPHES)


def _blank(pattern: re.Pattern[str], text: str) -> str:
    """`text` with the matches of `pattern` blanked out, every other position unchanged."""
    return pattern.sub(lambda match: " " * len(match[0]), text)


def _hits(patterns: tuple[str, ...], text: str) -> list[tuple[int, str]]:
    """(position, words as written) of every match of any pattern, in order of appearance.

    Matched without links and with straight apostrophes, so one pattern covers "that's" and
    "that’s"; the words are quoted from `text` as the agent wrote them.
    """
    searched = _straighten(_blank(_LINK, text))
    found: list[tuple[int, str]] = []
    for pattern in patterns:
        for match in re.finditer(pattern, searched, flags=re.IGNORECASE):
            group = "hit" if "hit" in match.re.groupindex else 0
            words = text[match.start(group) : match.end(group)].strip(" ,")
            if words:
                found.append((match.start(group), words))
    return sorted(found)


def _excerpt(hits: list[tuple[int, str]]) -> str:
    return EXCERPT_SEPARATOR.join(dict.fromkeys(words for _, words in hits))


def _blame(text: str) -> ToneWarning | None:
    first: tuple[int, str, str] | None = None
    hits: list[tuple[int, str]] = []
    for pattern, advice in BLAME_PHRASES:
        found = _hits((pattern,), text)
        hits.extend(found)
        if found and (first is None or found[0][0] < first[0]):
            first = (found[0][0], found[0][1], advice)
    if first is None:
        return None
    _, words, advice = first
    return ToneWarning(
        code=BLAME,
        message=f"“{words}” can sound like you are blaming them or brushing them off. {advice}",
        excerpt=_excerpt(sorted(hits)),
    )


def _sarcasm(text: str, *, mention: Mention) -> ToneWarning | None:
    patterns = SARCASM_PHRASES + (SARCASM_AFTER_COMPLAINT if mention.is_negative else ())
    hits = _hits(patterns, text)
    their_words = _words(mention.text)
    hits += [
        (match.start(), text[match.start() : match.end()])
        for match in _SCARE_QUOTES.finditer(_straighten(_blank(_LINK, text)))
        # Quoting one of their own words back is quoting them, not mocking.
        if next(word for word in match.groups() if word) not in their_words
    ]
    if not hits:
        return None
    hits.sort()
    return ToneWarning(
        code=SARCASM,
        message=(
            f"“{hits[0][1]}” can read as sarcastic, and in writing sarcasm lands as contempt. "
            "Say what you mean plainly."
        ),
        excerpt=_excerpt(hits),
    )


def _shouting(text: str, *, mention: Mention) -> ToneWarning | None:
    not_shouted = ACRONYMS | _brand_words(mention, upper=True)
    shouted = _shouted_runs(_HANDLE_OR_TAG.sub(" ", _LINK.sub(" ", text)), not_shouted)
    exclamations = _REPEATED_EXCLAMATIONS.findall(text)
    if not shouted and not exclamations:
        return None
    excerpt = EXCERPT_SEPARATOR.join(
        dict.fromkeys([" ".join(run) for run in shouted] + exclamations)
    )
    what = "Capitals read as shouting" if shouted else "Several exclamation marks read as shouting"
    return ToneWarning(
        code=SHOUTING,
        message=f"{what}, even when you mean to stress a point. Use normal case and one "
        "exclamation mark at most; let the words carry the emphasis.",
        excerpt=excerpt,
    )


def _shouted_runs(text: str, not_shouted: frozenset[str]) -> list[list[str]]:
    """Runs of at least three consecutive all-caps words, two or more of them not acronyms.

    Acronyms and single letters ("I", "A") extend a run but cannot make one: "CALL US NOW"
    is shouting, "DM us your PIN" and "the UK FAQ" are not.
    """
    runs: list[list[str]] = []
    current: list[str] = []
    shouted = 0
    for token in [*text.split(), "end"]:
        word = token.strip(".,:;!?…()[]{}\"'“”‘’*-")
        letters = [c for c in word if c.isalpha()]
        if not letters:
            continue  # numbers and emoji neither extend nor break a run
        if any(c.islower() for c in letters):
            if len(current) >= SHOUTING_MIN_RUN and shouted >= 2:
                runs.append(current)
            current, shouted = [], 0
            continue
        current.append(word)
        shouted += len(letters) > 1 and word.upper() not in not_shouted
    return runs


def _negative_reply(text: str, *, mention: Mention) -> ToneWarning | None:
    scored = _scored_part(text, mention=mention)
    compound = sentiment_score(text=scored).compound
    if compound > NEGATIVE_REPLY_THRESHOLD:
        return None
    negative_words = [
        word for word in dict.fromkeys(_WORD.findall(scored)) if _is_negative_word(word)
    ]
    return ToneWarning(
        code=NEGATIVE_REPLY,
        message=(
            f"Your reply itself reads as negative ({_signed(compound)}), apologies aside. "
            "Read it as they will: lead with what you will do for them, and say the bad news "
            "once, plainly."
        ),
        excerpt=EXCERPT_SEPARATOR.join(negative_words),
    )


def _scored_part(text: str, *, mention: Mention) -> str:
    """The reply's own voice: without apologies, links, handles or their name ("Rob" is
    −0.54), and without the negative words they used themselves: "are you getting an error?"
    repeats their problem ("error" is −0.4). Their positive words stay, as taking those out
    would make a warm reply look colder than it is."""
    text = _QUOTED.sub(" ", _HANDLE.sub(" ", _LINK.sub(" ", _straighten(text))))
    for pattern in APOLOGY_PHRASES:
        text = re.sub(pattern, " ", text, flags=re.IGNORECASE)
    theirs = {_stem(word) for word in _words(mention.text) if _is_negative_word(word)}
    theirs.add(_stem(first_name_or_handle(mention).lower()))
    return _WORD.sub(lambda word: " " if _stem(word[0].lower()) in theirs else word[0], text)


def _is_negative_word(word: str) -> bool:
    return sentiment_score(text=word).compound < 0


def _signed(value: float) -> str:
    return f"{value:.2f}".replace("-", "−")


def _no_name(text: str, *, mention: Mention) -> ToneWarning | None:
    name = first_name_or_handle(mention)
    handle = f"@{mention.author.username}"
    text = _straighten(text)
    if _contains_word(text, name) or _contains_word(text, handle):
        return None
    return ToneWarning(
        code=NO_NAME,
        message=(
            f"Your reply does not address them. Start with “Hi {name},” so it reads as "
            "written for them, not for everyone."
        ),
    )


def _contains_word(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w@]){re.escape(word)}(?!\w)", text, flags=re.IGNORECASE) is not None


def _nothing_from_them(text: str, *, mention: Mention) -> ToneWarning | None:
    theirs = _content_words(mention.text, mention=mention)
    if not theirs:
        # "@Brand 👍" leaves nothing to take up.
        return None
    ours = {_stem(word) for word in _words(text)}
    if ours & set(theirs):
        return None
    examples = ", ".join(f"“{word}”" for word in list(theirs.values())[:3])
    return ToneWarning(
        code=NOTHING_FROM_THEM,
        message=(
            "Your reply takes up nothing from their post, so it could be sent to anyone. "
            f"Mention what they told you about ({examples}) so they can see you read it."
        ),
    )


def _content_words(text: str, *, mention: Mention) -> dict[str, str]:
    """Stem → first word as written, for the words of `text` that say something."""
    ignored = _brand_words(mention) | {mention.author.username.lower()}
    words: dict[str, str] = {}
    for word in _words(text):
        stem = _stem(word)
        if (
            len(word) >= CONTENT_WORD_MIN_LETTERS
            and "'" not in word  # "you're", "i've": grammar, not content
            and word not in STOP_WORDS
            and word not in ignored
            and stem not in words
        ):
            words[stem] = word
    return words


def _words(text: str) -> list[str]:
    """Lowercase words, without links and @handles; a #tag counts as its word."""
    text = _HANDLE.sub(" ", _LINK.sub(" ", _straighten(text)))
    return [word.lower() for word in _WORD.findall(text)]


def _stem(word: str) -> str:
    """Crude, on purpose: "arrived", "arrives", "arriving" and "arrive" all give "arriv";
    "stopped" and "stop" give "stop"."""
    word = word.removesuffix("'s")
    for suffix, replacement in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", "e"), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            word = word[: -len(suffix)] + replacement
            if _DOUBLED_END.search(word):
                word = word[:-1]
            break
    return word.removesuffix("e") if len(word) > 4 else word


def _brand_words(mention: Mention, *, upper: bool = False) -> frozenset[str]:
    brand = mention.brand
    words = [*brand.name.split(), brand.x_handle]
    return frozenset(w.upper() if upper else w.lower() for w in words if w)
