"""Earshot's one query language: how admins say what to listen for, on every platform.

Syntax (X's recent-search syntax, restricted to what Earshot can also apply itself):

    northwind coffee          bare words: all must match (a space means AND)
    "Northwind Coffee"        an exact phrase: consecutive words
    coffee OR tea             either side (OR in capitals; a lower-case "or" is a word)
    northwind (coffee OR tea) parentheses group
    -spam  -"free gift"       exclusions (no space after the minus)
    lang:en                   the platform's language code (two letters, or lang:und)
    from:NorthwindHelp        posts by an account; -from:NorthwindHelp excludes it
    -is:retweet  is:retweet   leave out (or keep only) retweets

Precedence follows X, which documents it under "Order of operations" in "Build a query"
(docs.x.com/x-api/posts/search/integrate/build-a-query): operators joined by AND are combined
first, then OR is applied; its examples read `apple OR iphone ipad` as
`apple OR (iphone ipad)` and `ipad iphone OR android` as `(iphone ipad) OR android`. So
`a b OR c` means `(a b) OR c`. The same page advises against negating a group, so
`-(spam OR scam)` is refused with a hint to write `-spam -scam`.

Matching (`Query.matches`) is X's tokenized match, as Earshot's X simulator
(`listening/simulators/x_query.py`) implements it: case-insensitive; text splits on
punctuation, symbols and spaces into tokens of Unicode word characters, where a leading `@`,
`#` or `$` stays on its token. A word matches a whole token and a phrase a run of consecutive
tokens, so `"Northwind Coffee"` matches "northwind, coffee!" and `@sprintcare` matches
"@sprintcare's" but not "@sprintcareX". A sigil in the query must be matched (`#outage` only
matches the hashtag) while a bare word ignores one (`outage` also matches "#outage"), as on X.

Pure Python: no Django.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

X_QUERY_MAX_LENGTH = 512  # recent search, self-serve access

_TOKEN_RE = re.compile(r"[@#$]?\w+")
_SIGILS = "@#$"
_OPERATOR_RE = re.compile(r"^([A-Za-z_]+):(.*)$", re.DOTALL)
_LANG_RE = re.compile(r"^(?:[a-z]{2}|und)$")
_HANDLE_RE = re.compile(r"^[A-Za-z0-9_]{1,15}$")
_PREVIEW_LENGTH = 20


def tokenize(text: str) -> tuple[str, ...]:
    """The case-folded tokens of `text`: word-character runs, keeping a leading @, # or $."""
    return tuple(_TOKEN_RE.findall(text.casefold()))


# --- errors -------------------------------------------------------------------------------


class QuerySyntaxError(ValueError):
    """A query Earshot cannot run. `message` is written for the admin; `position` is the
    1-based character it points at."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


class QueryTooLong(QuerySyntaxError):
    """The query is longer than the platform accepts (X: 512 characters for recent search)."""


class QueryNotSupported(QuerySyntaxError):
    """The platform cannot fetch anything this query could match (see `Query.split_for`)."""


# --- the tree -----------------------------------------------------------------------------
# `position` (1-based, where the node starts in the admin's text) only serves error messages:
# it is left out of equality so that a query equals its canonical form parsed again.


@dataclass(frozen=True)
class Term:
    """A bare word (`phrase=False`, kept as typed) or an exact phrase (whitespace collapsed)."""

    text: str
    phrase: bool = False
    position: int = field(default=0, compare=False, repr=False)

    @cached_property
    def tokens(self) -> tuple[str, ...]:
        return tokenize(self.text)


@dataclass(frozen=True)
class From:
    handle: str  # without the @, casing as typed
    position: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class Lang:
    code: str  # lower case
    position: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class IsRetweet:
    position: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class Not:
    child: Term | From | Lang | IsRetweet  # X advises against negating groups; so does Earshot
    position: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]  # never an And itself: nested ANDs are flattened
    position: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]  # never an Or itself: nested ORs are flattened
    position: int = field(default=0, compare=False, repr=False)


Node = Term | From | Lang | IsRetweet | Not | And | Or


@dataclass(frozen=True)
class QueryablePost:
    """What a query can see of a post, on any platform."""

    text: str
    author_username: str = ""
    lang: str = ""
    is_retweet: bool = False

    # Computed once: a post is matched against every keyword of its brand.
    @cached_property
    def tokens(self) -> tuple[str, ...]:
        return tokenize(self.text)

    @cached_property
    def token_set(self) -> frozenset[str]:
        return frozenset(self.tokens)

    @cached_property
    def word_set(self) -> frozenset[str]:
        return frozenset(token.lstrip(_SIGILS) for token in self.tokens)


# --- what platforms can express -----------------------------------------------------------


@dataclass(frozen=True)
class PlatformSyntax:
    """Which parts of Earshot's query language a platform's search can express remotely.

    `Query.split_for` asks the platform for what it can express and leaves the rest to
    `Query.matches`, so one rule matches the same posts everywhere (docs/sources.md has the
    facts each syntax below rests on).
    """

    name: str
    phrases: bool = False
    alternatives: bool = False  # OR and parentheses
    exclusions: bool = False  # -word, -"phrase", -from:, -lang:, -is:retweet
    lang: bool = False
    from_user: bool = False
    retweet_filter: bool = False
    max_length: int | None = None


X_SYNTAX = PlatformSyntax(
    name="X",
    phrases=True,
    alternatives=True,
    exclusions=True,
    lang=True,
    from_user=True,
    retweet_filter=True,
    max_length=X_QUERY_MAX_LENGTH,
)
# Mastodon's status search (a user token on an Elasticsearch-enabled instance) takes plain
# words; phrases, OR, exclusions, lang:, from: and reblogs are checked locally.
MASTODON_SYNTAX = PlatformSyntax(name="Mastodon")
# Bluesky's searchPosts takes words and "phrases" in `q`; the rest is checked locally.
BLUESKY_SYNTAX = PlatformSyntax(name="Bluesky", phrases=True)
# Reddit's search: words and "phrases" (its lucene OR and NOT do not bind as ours do, so
# alternatives and exclusions are checked locally, as are lang:, from: and crossposts).
REDDIT_SYNTAX = PlatformSyntax(name="Reddit", phrases=True, max_length=512)
# Algolia's HN search: plain words that must all appear; everything else local.
HACKER_NEWS_SYNTAX = PlatformSyntax(name="Hacker News")
# A feed is fetched whole: nothing is asked of it, the whole query applies locally.
FEED_SYNTAX = PlatformSyntax(name="RSS/Atom feed")
# The example the tests use: a search box that takes plain words, all of which must match.
WORDS_ONLY_SYNTAX = PlatformSyntax(name="Words-only search")


# --- the query ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    root: Node

    def __str__(self) -> str:
        """The canonical form: single spaces, lower-case operators, only needed parentheses."""
        return _render(self.root)

    def to_x(self) -> str:
        """The query for X API v2 recent search; raises `QueryTooLong` above 512 characters."""
        remote, _ = self.split_for(X_SYNTAX)
        return remote

    def matches(self, post: QueryablePost) -> bool:
        """Whether `post` matches, exactly as X's search would decide it."""
        return _matches(self.root, post)

    def split_for(self, syntax: PlatformSyntax) -> tuple[str, Query | None]:
        """Split the query into what `syntax`'s platform is asked and what Earshot checks.

        Returns `(remote, local)`. `remote` is the platform's query string: the top-level
        AND clauses it can express, plus, for each one it cannot, the words and phrases every
        match of that clause must contain (as plain words where phrases are not supported).
        It finds a superset of the matches. `local` is None when `remote` is exact, otherwise
        the whole query, to apply with `matches` to what the platform returns.

        Raises `QueryNotSupported` when no word, phrase or from: is left to ask for (e.g.
        `coffee OR tea` on a words-only platform), and `QueryTooLong` when `remote` exceeds
        the platform's `max_length`.
        """
        clauses = self.root.children if isinstance(self.root, And) else (self.root,)
        parts: list[Node] = []
        exact = True
        for clause in clauses:
            if _expressible(clause, syntax):
                candidates: list[Node] = [clause]
            else:
                exact = False
                candidates = list(_required_terms(clause))
            parts.extend(part for part in candidates if part not in parts)
        root = parts[0] if len(parts) == 1 else And(tuple(parts))
        if not _anchored(root):
            raise QueryNotSupported(
                f'{syntax.name} cannot run this query: no word or "phrase" has to appear in '
                f"every match, so there is nothing to ask it for. Add a word that every match "
                f"shares, e.g. northwind (coffee OR tea).",
                1,
            )
        remote = _render(root, quote_phrases=syntax.phrases)
        if syntax.max_length is not None and len(remote) > syntax.max_length:
            raise QueryTooLong(
                f"{syntax.name} accepts queries of at most {syntax.max_length} characters; "
                f"this one has {len(remote)}.",
                syntax.max_length + 1,
            )
        return remote, (None if exact else self)


def parse_query(text: str) -> Query:
    """Parse an admin's query; raises `QuerySyntaxError` with a message for the admin."""
    lexemes = _lex(text)
    if not lexemes:
        raise QuerySyntaxError("Enter what to listen for, e.g. the brand's name.", 1)
    parser = _Parser(lexemes)
    root = parser.parse_or()
    if (extra := parser.peek()) is not None:
        raise QuerySyntaxError(_unmatched_paren(extra.position), extra.position)
    _check_something_to_listen_for(root)
    return Query(root)


# --- lexing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Lexeme:
    kind: str  # "(", ")", "OR", "WORD", "PHRASE"
    text: str
    position: int  # 1-based, of the minus when negated
    negated: bool = False

    @property
    def text_position(self) -> int:
        return self.position + 1 if self.negated else self.position


def _lex(text: str) -> list[_Lexeme]:
    lexemes: list[_Lexeme] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
            continue
        if char in "()":
            lexemes.append(_Lexeme(char, char, i + 1))
            i += 1
            continue
        start, negated = i, char == "-"
        if negated:
            following = text[i + 1] if i + 1 < n else ""
            if following == "(":
                raise QuerySyntaxError(
                    f"A minus cannot exclude a whole group (character {start + 1}): exclude "
                    f"each term on its own, e.g. -spam -scam rather than -(spam OR scam).",
                    start + 1,
                )
            if not following or following.isspace() or following in ")-":
                raise QuerySyntaxError(
                    f'A minus must be followed directly by the word or "phrase" to exclude, '
                    f"without a space (character {start + 1}).",
                    start + 1,
                )
            i += 1
        if text[i] == '"':
            end = text.find('"', i + 1)
            if end == -1:
                raise QuerySyntaxError(
                    f"A quotation mark is not closed: the phrase starting at character {i + 1} "
                    f'({_preview(text[i:])}) has no closing ".',
                    i + 1,
                )
            lexemes.append(_Lexeme("PHRASE", text[i + 1 : end], start + 1, negated))
            i = end + 1
            continue
        end = i
        while end < n and not text[end].isspace() and text[end] not in '()"':
            end += 1
        word = text[i:end]
        kind = "OR" if word == "OR" and not negated else "WORD"
        lexemes.append(_Lexeme(kind, word, start + 1, negated))
        i = end
    return lexemes


def _preview(text: str) -> str:
    """The start of `text`, cut at a word boundary when long."""
    if len(text) <= _PREVIEW_LENGTH:
        return text
    cut = text[:_PREVIEW_LENGTH]
    space = cut.rfind(" ")
    return (cut[:space] if space > 1 else cut).rstrip() + "…"


# --- parsing ------------------------------------------------------------------------------


def _or_error(position: int) -> QuerySyntaxError:
    return QuerySyntaxError(f"OR needs a term on both sides (character {position}).", position)


def _unmatched_paren(position: int) -> str:
    return f'The ")" at character {position} closes nothing: there is no "(" before it.'


class _Parser:
    """or := and ("OR" and)*;  and := atom+;  atom := "(" or ")" | term | operator."""

    def __init__(self, lexemes: list[_Lexeme]) -> None:
        self.lexemes = lexemes
        self.index = 0

    def peek(self) -> _Lexeme | None:
        return self.lexemes[self.index] if self.index < len(self.lexemes) else None

    def take(self) -> _Lexeme:
        lexeme = self.lexemes[self.index]
        self.index += 1
        return lexeme

    def parse_or(self) -> Node:
        branches = [self.parse_and()]
        while (lexeme := self.peek()) is not None and lexeme.kind == "OR":
            self.take()
            following = self.peek()
            if following is None or following.kind in ("OR", ")"):
                raise _or_error(lexeme.position)
            branches.append(self.parse_and())
        if len(branches) == 1:
            return branches[0]
        children = [c for b in branches for c in (b.children if isinstance(b, Or) else (b,))]
        return Or(tuple(children), position=children[0].position)

    def parse_and(self) -> Node:
        children: list[Node] = []
        while (lexeme := self.peek()) is not None and lexeme.kind not in ("OR", ")"):
            atom = self.parse_atom()
            children.extend(atom.children if isinstance(atom, And) else (atom,))
        if not children:
            lexeme = self.peek()
            if lexeme is not None and lexeme.kind == "OR":
                raise _or_error(lexeme.position)
            assert lexeme is not None  # parse_or never calls with nothing left
            raise QuerySyntaxError(_unmatched_paren(lexeme.position), lexeme.position)
        if len(children) == 1:
            return children[0]
        return And(tuple(children), position=children[0].position)

    def parse_atom(self) -> Node:
        lexeme = self.take()
        if lexeme.kind == "(":
            return self.parse_group(lexeme)
        if lexeme.kind == "PHRASE":
            return _negate(_phrase(lexeme), lexeme)
        return _negate(_word(lexeme), lexeme)

    def parse_group(self, opening: _Lexeme) -> Node:
        following = self.peek()
        if following is not None and following.kind == ")":
            raise QuerySyntaxError(
                f"Empty parentheses at character {opening.position}: put the terms to group "
                f"inside them, or remove them.",
                opening.position,
            )
        if following is None:
            raise _unclosed_paren(opening.position)
        node = self.parse_or()
        closing = self.peek()
        if closing is None:
            raise _unclosed_paren(opening.position)
        self.take()
        return node


def _unclosed_paren(position: int) -> QuerySyntaxError:
    return QuerySyntaxError(
        f'A parenthesis is not closed: the "(" at character {position} has no matching ")".',
        position,
    )


def _negate(node: Term | From | Lang | IsRetweet, lexeme: _Lexeme) -> Node:
    return Not(node, position=lexeme.position) if lexeme.negated else node


def _phrase(lexeme: _Lexeme) -> Term:
    text = " ".join(lexeme.text.split())
    if not text:
        raise QuerySyntaxError(
            f"The phrase at character {lexeme.text_position} is empty: put words between "
            f"the quotes.",
            lexeme.text_position,
        )
    return _searchable(Term(text, phrase=True, position=lexeme.text_position), f'"{text}"')


def _searchable(term: Term, shown: str) -> Term:
    if not term.tokens:
        raise QuerySyntaxError(
            f"{shown} at character {term.position} has no letters or digits to search for; "
            f"Earshot matches whole words.",
            term.position,
        )
    return term


def _word(lexeme: _Lexeme) -> Term | From | Lang | IsRetweet:
    word, position = lexeme.text, lexeme.text_position
    if word == "OR":  # only reachable as -OR
        raise _or_error(position)
    if word == "AND":
        # X refuses an upper-case AND as ambiguous rather than guess.
        raise QuerySyntaxError(
            f"Leave out AND (character {position}): words side by side must all match "
            f'already. To find the word "and", write it in lower case.',
            position,
        )
    operator = _OPERATOR_RE.match(word)
    if operator is None:
        return _searchable(Term(word, position=position), f'"{word}"')
    name, value = operator.group(1), operator.group(2)
    match name.lower():
        case "lang":
            if not _LANG_RE.match(value.lower()):
                raise QuerySyntaxError(
                    f"lang: needs a two-letter language code such as lang:en, or lang:und for "
                    f"posts in no known language (character {position}).",
                    position,
                )
            return Lang(value.lower(), position=position)
        case "from":
            handle = value.removeprefix("@")
            if not _HANDLE_RE.match(handle):
                raise QuerySyntaxError(
                    f"from: needs an X handle such as from:NorthwindHelp: letters, digits and _, "
                    f"at most 15 characters (character {position}).",
                    position,
                )
            return From(handle, position=position)
        case "is" if value.lower() == "retweet":
            return IsRetweet(position=position)
    label = f"{name}:{value}" if name.lower() == "is" else f"{name}:"
    raise QuerySyntaxError(
        f'Unknown operator "{label}" at character {position}. Earshot understands lang:, '
        f'from:, -from:, is:retweet and -is:retweet. To search for the text itself, put it in "quotes".',
        position,
    )


def _anchored(node: Node) -> bool:
    """Whether every match must contain a word, phrase or from: (X's standalone operators).

    Exclusions, lang: and is:retweet only narrow a search: X refuses a query made of them.
    """
    match node:
        case Term() | From():
            return True
        case And(children):
            return any(_anchored(child) for child in children)
        case Or(children):
            return all(_anchored(child) for child in children)
    return False


def _has_anchor(node: Node) -> bool:
    match node:
        case Term() | From():
            return True
        case And(children) | Or(children):
            return any(_has_anchor(child) for child in children)
    return False


def _check_something_to_listen_for(root: Node) -> None:
    if _anchored(root):
        return
    if not _has_anchor(root):
        raise QuerySyntaxError(
            "Nothing to listen for: exclusions and filters such as -spam, lang:en or "
            "-is:retweet only narrow a search, so on their own they would match almost every "
            'post. Add a word, "phrase" or from:handle.',
            1,
        )
    side = _unanchored_side(root)
    raise QuerySyntaxError(
        f"One side of OR has nothing to listen for: on its own, {_render(side)} (character "
        f"{side.position}) would match almost every post. Give each side a word, "
        f'"phrase" or from:handle.',
        side.position,
    )


def _unanchored_side(node: Node) -> Node:
    """The OR alternative that makes `node` unanchored (`node` is unanchored, has an anchor)."""
    if isinstance(node, Or):
        side = next(child for child in node.children if not _anchored(child))
        return _unanchored_side(side) if _has_anchor(side) else side
    if isinstance(node, And):
        return _unanchored_side(next(child for child in node.children if _has_anchor(child)))
    return node


# --- rendering, splitting, matching -------------------------------------------------------


def _render(node: Node, *, quote_phrases: bool = True) -> str:
    match node:
        case Term(text, phrase):
            return f'"{text}"' if phrase and quote_phrases else text
        case From(handle):
            return f"from:{handle}"
        case Lang(code):
            return f"lang:{code}"
        case IsRetweet():
            return "is:retweet"
        case Not(child):
            return f"-{_render(child)}"
        case And(children):
            # AND binds tighter than OR, so only an OR inside an AND needs parentheses.
            return " ".join(
                f"({_render(child, quote_phrases=quote_phrases)})"
                if isinstance(child, Or)
                else _render(child, quote_phrases=quote_phrases)
                for child in children
            )
        case Or(children):
            return " OR ".join(_render(child, quote_phrases=quote_phrases) for child in children)
    raise TypeError(f"not a query node: {node!r}")


def _expressible(node: Node, syntax: PlatformSyntax) -> bool:
    match node:
        case Term(phrase=phrase):
            return syntax.phrases or not phrase
        case From():
            return syntax.from_user
        case Lang():
            return syntax.lang
        case IsRetweet():
            return syntax.retweet_filter
        case Not(child):
            return syntax.exclusions and _expressible(child, syntax)
        case And(children):
            # An AND below the top level sits inside an OR.
            return syntax.alternatives and all(_expressible(c, syntax) for c in children)
        case Or(children):
            return syntax.alternatives and all(_expressible(c, syntax) for c in children)
    raise TypeError(f"not a query node: {node!r}")


def _required_terms(node: Node) -> tuple[Term, ...]:
    """The words and phrases every post matching `node` contains."""
    match node:
        case Term():
            return (node,)
        case And(children):
            terms: dict[tuple[str, ...], Term] = {}
            for child in children:
                for term in _required_terms(child):
                    terms.setdefault(term.tokens, term)
            return tuple(terms.values())
        case Or(children):
            # Only what every alternative requires (compared as tokens: `Coffee` = `coffee`).
            first, *others = (_required_terms(child) for child in children)
            shared = [{term.tokens for term in other} for other in others]
            return tuple(term for term in first if all(term.tokens in s for s in shared))
    return ()


def _token_matches(term: str, token: str) -> bool:
    # A sigil in the query must be matched; a bare word matches with or without one.
    return term == token if term[0] in _SIGILS else term == token.lstrip(_SIGILS)


def _contains(post: QueryablePost, needle: tuple[str, ...]) -> bool:
    if len(needle) == 1:
        term = needle[0]
        return term in (post.token_set if term[0] in _SIGILS else post.word_set)
    width, tokens = len(needle), post.tokens
    return any(
        all(
            _token_matches(term, token)
            for term, token in zip(needle, tokens[i : i + width], strict=True)
        )
        for i in range(len(tokens) - width + 1)
    )


def _matches(node: Node, post: QueryablePost) -> bool:
    match node:
        case Term():
            return _contains(post, node.tokens)
        case From(handle):
            return handle.casefold() == post.author_username.removeprefix("@").casefold()
        case Lang(code):
            return post.lang.lower() == code
        case IsRetweet():
            return post.is_retweet
        case Not(child):
            return not _matches(child, post)
        case And(children):
            return all(_matches(child, post) for child in children)
        case Or(children):
            return any(_matches(child, post) for child in children)
    raise TypeError(f"not a query node: {node!r}")
