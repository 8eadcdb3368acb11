"""The subset of X's search query language the simulator understands: parse, then match.

Grammar (X joins juxtaposed clauses with AND, and applies AND before OR):

    query    := or_expr
    or_expr  := and_expr ("OR" and_expr)*
    and_expr := unary unary*
    unary    := "-"? atom                      (no space after the minus, as on X)
    atom     := "(" or_expr ")" | "phrase" | operator:value | word

Supported operators: `from:`, `lang:`, `is:retweet`, `is:reply`, `is:quote`. Matching is
case-insensitive and token-based, as X documents it: text is split on punctuation, symbols and
spaces into tokens (`@handle`, `#tag`, `$cashtag` keep their sigil), and a term must match whole
tokens, a phrase a run of consecutive ones. `@sprintcare` therefore matches "@sprintcare's"
(tokens `@sprintcare`, `s`) but not "@sprintcareX"; a bare word ignores sigils, so `outage`
also matches "#outage", while `#outage` matches only the hashtag.

Pure functions only; the simulator turns `QueryError` into X's 400 invalid-request body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# A token is an optional @/#/$ sigil and a run of word characters (Unicode-aware).
_TOKEN_RE = re.compile(r"[@#$]?\w+")
_OPERATOR_RE = re.compile(r"^([A-Za-z_]+):(.*)$", re.DOTALL)
_LANG_RE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]+)?$")
_USERNAME_RE = re.compile(r"^\w{1,50}$")
_SIGILS = "@#$"
_IS_VALUES = frozenset({"retweet", "reply", "quote"})
_OPERATORS_HELP = (
    "Operator is not available in current product or product packaging. Please refer to "
    "complete available operator list at "
    "https://developer.twitter.com/en/docs/twitter-api/tweets/search/integrate/build-a-query#list."
)


class QueryError(ValueError):
    """A query X would refuse; `position` is 1-based, as in X's messages."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at position {position})")
        self.message = message
        self.position = position


@dataclass(frozen=True)
class Term:
    """A bare word or a quoted phrase, kept as the token sequence it must match."""

    tokens: tuple[str, ...]


@dataclass(frozen=True)
class From:
    user: str  # a username or a numeric user id


@dataclass(frozen=True)
class Lang:
    code: str


@dataclass(frozen=True)
class Is:
    kind: str


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


Node = Term | From | Lang | Is | Not | And | Or


@dataclass
class Post:
    """What a query can see of a post."""

    text: str
    username: str = ""
    author_id: str = ""
    lang: str = ""
    is_retweet: bool = False
    is_reply: bool = False
    is_quote: bool = False
    tokens: tuple[str, ...] = field(init=False, repr=False)
    token_set: frozenset[str] = field(init=False, repr=False)
    word_set: frozenset[str] = field(init=False, repr=False)
    username_folded: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Computed once: a post is matched against many queries over a simulator's life.
        self.tokens = tokenize(self.text)
        self.token_set = frozenset(self.tokens)
        self.word_set = frozenset(token.lstrip(_SIGILS) for token in self.tokens)
        self.username_folded = self.username.casefold()


def tokenize(text: str) -> tuple[str, ...]:
    return tuple(_TOKEN_RE.findall(text.casefold()))


# --- lexing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # "(", ")", "OR", "NEG", "PHRASE", "WORD"
    value: str
    position: int  # 1-based


def _lex(query: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(query)
    while i < n:
        char = query[i]
        if char.isspace():
            i += 1
        elif char in "()":
            tokens.append(_Token(char, char, i + 1))
            i += 1
        elif char == "-":
            if i + 1 >= n or query[i + 1].isspace() or query[i + 1] == ")":
                raise QueryError("A negation must be followed by a term, without a space", i + 1)
            tokens.append(_Token("NEG", "-", i + 1))
            i += 1
        elif char == '"':
            end = query.find('"', i + 1)
            if end == -1:
                raise QueryError("Unterminated quoted phrase", i + 1)
            tokens.append(_Token("PHRASE", query[i + 1 : end], i + 1))
            i = end + 1
        else:
            start = i
            while i < n and not query[i].isspace() and query[i] not in '()"':
                i += 1
            word = query[start:i]
            tokens.append(_Token("OR" if word == "OR" else "WORD", word, start + 1))
    return tokens


# --- parsing ------------------------------------------------------------------------------


class _Parser:
    def __init__(self, tokens: list[_Token], length: int) -> None:
        self.tokens = tokens
        self.index = 0
        self.end_position = length + 1

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def parse_or(self) -> Node:
        children = [self.parse_and()]
        while (token := self.peek()) is not None and token.kind == "OR":
            self.take()
            if self.peek() is None or self.peek().kind in ("OR", ")"):
                raise QueryError(
                    "Ambiguous use of OR: it must stand between two clauses", token.position
                )
            children.append(self.parse_and())
        return children[0] if len(children) == 1 else Or(tuple(children))

    def parse_and(self) -> Node:
        children: list[Node] = []
        while (token := self.peek()) is not None and token.kind not in ("OR", ")"):
            children.append(self.parse_unary())
        if not children:
            token = self.peek()
            position = token.position if token else self.end_position
            if token is not None and token.kind == "OR":
                raise QueryError("Ambiguous use of OR: it must stand between two clauses", position)
            raise QueryError("Expected a term", position)
        return children[0] if len(children) == 1 else And(tuple(children))

    def parse_unary(self) -> Node:
        token = self.peek()
        if token is not None and token.kind == "NEG":
            self.take()
            return Not(self.parse_atom())
        return self.parse_atom()

    def parse_atom(self) -> Node:
        token = self.peek()
        if token is None:
            raise QueryError("Expected a term", self.end_position)
        self.take()
        if token.kind == "(":
            if (inner := self.peek()) is not None and inner.kind == ")":
                raise QueryError("Empty parentheses", token.position)
            node = self.parse_or()
            closing = self.peek()
            if closing is None or closing.kind != ")":
                raise QueryError("Unmatched '('", token.position)
            self.take()
            return node
        if token.kind == "PHRASE":
            return _term(token.value, token)
        if token.kind == "WORD":
            return _word(token)
        raise QueryError(f"Unexpected '{token.value}'", token.position)


def _term(text: str, token: _Token) -> Term:
    tokens = tokenize(text)
    if not tokens:
        raise QueryError(f"'{text}' contains nothing searchable", token.position)
    return Term(tokens)


def _word(token: _Token) -> Node:
    if token.value == "AND":
        # X refuses an upper-case AND rather than guessing what it means.
        raise QueryError(
            'Ambiguous use of AND as a keyword. Use a space to join two clauses, or "AND" to '
            "find occurrences of AND in text",
            token.position,
        )
    match = _OPERATOR_RE.match(token.value)
    if match is None:
        return _term(token.value, token)
    name, value = match.group(1).lower(), match.group(2)
    if name == "from" and _USERNAME_RE.match(value):
        return From(value)
    if name == "lang" and _LANG_RE.match(value.lower()):
        return Lang(value.lower())
    if name == "is" and value.lower() in _IS_VALUES:
        return Is(value.lower())
    if name in ("from", "lang"):
        raise QueryError(f"Invalid value '{value}' for operator '{name}:'", token.position)
    label = f"{name}:{value}" if name == "is" else name
    raise QueryError(f"Reference to invalid operator '{label}'. {_OPERATORS_HELP}", token.position)


def _has_positive_clause(node: Node) -> bool:
    """X refuses queries made only of negations or of operators that cannot stand alone."""
    match node:
        case Term() | From():
            return True
        case And(children):
            return any(_has_positive_clause(child) for child in children)
        case Or(children):
            return all(_has_positive_clause(child) for child in children)
        case _:
            return False


def parse_query(query: str) -> Node:
    """Parse `query`; raises `QueryError` for anything X's recent search would refuse."""
    tokens = _lex(query)
    if not tokens:
        raise QueryError("The query is empty", 1)
    parser = _Parser(tokens, len(query))
    node = parser.parse_or()
    if (extra := parser.peek()) is not None:
        raise QueryError(f"Unmatched '{extra.value}'", extra.position)
    if not _has_positive_clause(node):
        raise QueryError(
            "A query needs at least one positive keyword, phrase or from: clause; negations, "
            "lang: and is: cannot stand alone",
            1,
        )
    return node


# --- matching -----------------------------------------------------------------------------


def _token_matches(term: str, token: str) -> bool:
    # A sigil in the query must be matched; a bare word matches with or without one.
    return term == token if term[0] in _SIGILS else term == token.lstrip(_SIGILS)


def _contains(post: Post, needle: tuple[str, ...]) -> bool:
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


def matches(node: Node, post: Post) -> bool:
    match node:
        case Term(tokens):
            return _contains(post, tokens)
        case From(user):
            return user.casefold() == post.username_folded or user == post.author_id
        case Lang(code):
            return post.lang.lower() == code
        case Is("retweet"):
            return post.is_retweet
        case Is("reply"):
            return post.is_reply
        case Is("quote"):
            return post.is_quote
        case Not(child):
            return not matches(child, post)
        case And(children):
            return all(matches(child, post) for child in children)
        case Or(children):
            return any(matches(child, post) for child in children)
    raise TypeError(f"not a query node: {node!r}")
