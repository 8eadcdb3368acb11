"""Earshot's query language: parsing, admin-facing errors, X queries, platform splits,
local matching (which must agree with the X simulator), and the keyword form."""

from __future__ import annotations

import pytest
from django.urls import reverse

from listening.forms import KeywordForm
from listening.query import (
    WORDS_ONLY_SYNTAX,
    X_SYNTAX,
    And,
    From,
    IsRetweet,
    Lang,
    Not,
    Or,
    PlatformSyntax,
    Query,
    QueryablePost,
    QueryNotSupported,
    QuerySyntaxError,
    QueryTooLong,
    Term,
    parse_query,
)
from listening.simulators import x_query as simulator


def post(
    text: str, author: str = "someone", lang: str = "en", is_retweet: bool = False
) -> QueryablePost:
    return QueryablePost(text=text, author_username=author, lang=lang, is_retweet=is_retweet)


def matches(query: str, text: str, **fields: object) -> bool:
    return parse_query(query).matches(post(text, **fields))  # type: ignore[arg-type]


# --- parsing ------------------------------------------------------------------------------


def test_it_parses_every_operator_into_the_tree():
    query = parse_query(
        'northwind "Northwind Coffee" (tea OR latte) -spam -"free gift" lang:EN '
        "from:Alice -from:@bob -is:retweet"
    )
    assert query.root == And(
        (
            Term("northwind"),
            Term("Northwind Coffee", phrase=True),
            Or((Term("tea"), Term("latte"))),
            Not(Term("spam")),
            Not(Term("free gift", phrase=True)),
            Lang("en"),
            From("Alice"),
            Not(From("bob")),
            Not(IsRetweet()),
        )
    )


# X, "Build a query", Order of operations: "operators connected by AND logic are combined
# first, then operators connected with OR logic are applied"; `apple OR iphone ipad` is
# `apple OR (iphone ipad)` (docs.x.com/x-api/posts/search/integrate/build-a-query).
def test_and_binds_tighter_than_or_as_on_x():
    assert parse_query("a b OR c").root == Or((And((Term("a"), Term("b"))), Term("c")))
    assert parse_query("apple OR iphone ipad").root == Or(
        (Term("apple"), And((Term("iphone"), Term("ipad"))))
    )
    assert matches("a b OR c", "just c")
    assert not matches("a b OR c", "just a")
    assert not matches("a (b OR c)", "just c")
    assert matches("a (b OR c)", "a and c")


def test_nested_groups_of_the_same_kind_are_flattened():
    assert parse_query("a (b (c d))").root == And((Term("a"), Term("b"), Term("c"), Term("d")))
    assert parse_query("a OR (b OR c)").root == Or((Term("a"), Term("b"), Term("c")))
    assert parse_query("((a))").root == Term("a")


def test_lower_case_or_is_a_word_as_on_x():
    assert parse_query("coffee or tea").root == And((Term("coffee"), Term("or"), Term("tea")))


# --- matching, operator by operator -------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "text", "fields", "expected"),
    [
        # bare words: all must match, whole tokens, any case
        ("northwind coffee", "Coffee at NORTHWIND today", {}, True),
        ("northwind coffee", "Northwind tea today", {}, False),
        ("coffee", "coffees are great", {}, False),
        ("café", "Un CAFÉ, s'il vous plaît", {}, True),
        # phrases: consecutive tokens, across punctuation
        ('"Northwind Coffee"', "northwind, coffee!", {}, True),
        ('"Northwind Coffee"', "Northwind's coffee", {}, False),
        ('"coca-cola"', "I like coca cola", {}, True),
        ('"Northwind Coffee"', "coffee northwind", {}, False),
        # OR
        ("coffee OR tea", "tea time", {}, True),
        ("coffee OR tea", "juice time", {}, False),
        # exclusions
        ("northwind -spam", "northwind rocks", {}, True),
        ("northwind -spam", "northwind SPAM offer", {}, False),
        ('northwind -"free gift"', "northwind gift free", {}, True),
        ('northwind -"free gift"', "northwind free gift inside", {}, False),
        # lang:
        ("northwind lang:de", "northwind ist gut", {"lang": "de"}, True),
        ("northwind lang:de", "northwind is good", {"lang": "en"}, False),
        ("northwind -lang:de", "northwind ist gut", {"lang": "de"}, False),
        ("northwind lang:und", "northwind 🙂", {"lang": "und"}, True),
        # from: and -from:
        ("from:NorthwindHelp", "we are on it", {"author": "northwindhelp"}, True),
        ("from:NorthwindHelp", "we are on it", {"author": "someone"}, False),
        ("northwind -from:NorthwindHelp", "northwind news", {"author": "NorthwindHelp"}, False),
        ("northwind -from:NorthwindHelp", "northwind news", {"author": "alice"}, True),
        # is:retweet and -is:retweet
        ("northwind is:retweet", "RT @a: northwind", {"is_retweet": True}, True),
        ("northwind is:retweet", "northwind", {"is_retweet": False}, False),
        ("northwind -is:retweet", "RT @a: northwind", {"is_retweet": True}, False),
        ("northwind -is:retweet", "northwind", {"is_retweet": False}, True),
        # @handles and #hashtags are words that keep their sigil
        ("@sprintcare", "thanks @sprintcare's team", {}, True),
        ("@sprintcare", "thanks @sprintcareX", {}, False),
        ("@sprintcare", "thanks sprintcare", {}, False),
        ("#outage", "big #outage today", {}, True),
        ("#outage", "big outage today", {}, False),
        ("outage", "big #outage today", {}, True),
        ("$NWC", "buy $nwc now", {}, True),
    ],
)
def test_each_operator_matches_and_refuses(query, text, fields, expected):
    assert matches(query, text, **fields) is expected


def test_a_phrase_matches_across_punctuation_and_line_breaks():
    assert matches('"Northwind Coffee is late"', "Northwind — coffee... is\nLATE?!")
    assert matches('"order #1234"', "my order #1234 never came")


def test_from_ignores_case_and_a_leading_at_sign():
    assert matches("from:@NorthwindHelp", "hi", author="@NORTHWINDHELP")


# --- errors: the admin-facing messages ----------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message", "position"),
    [
        (
            '"unclosed phrase',
            'A quotation mark is not closed: the phrase starting at character 1 ("unclosed '
            'phrase) has no closing ".',
            1,
        ),
        (
            'coffee -tea "Northwind Coffee is the best',
            "A quotation mark is not closed: the phrase starting at character 13 "
            '("Northwind Coffee…) has no closing ".',
            13,
        ),
        ("coffee OR", "OR needs a term on both sides (character 8).", 8),
        ("OR coffee", "OR needs a term on both sides (character 1).", 1),
        ("coffee OR OR tea", "OR needs a term on both sides (character 8).", 8),
        ("(coffee OR) tea", "OR needs a term on both sides (character 9).", 9),
        ("coffee -OR tea", "OR needs a term on both sides (character 9).", 9),
        (
            "tea sentiment:negative",
            'Unknown operator "sentiment:" at character 5. Earshot understands lang:, from:, '
            '-from:, is:retweet and -is:retweet. To search for the text itself, put it in "quotes".',
            5,
        ),
        (
            "tea is:reply",
            'Unknown operator "is:reply" at character 5. Earshot understands lang:, from:, '
            '-from:, is:retweet and -is:retweet. To search for the text itself, put it in "quotes".',
            5,
        ),
        (
            "-spam",
            "Nothing to listen for: exclusions and filters such as -spam, lang:en or -is:retweet "
            "only narrow a search, so on their own they would match almost every post. Add a "
            'word, "phrase" or from:handle.',
            1,
        ),
        (
            "lang:en -is:retweet",
            "Nothing to listen for: exclusions and filters such as -spam, lang:en or -is:retweet "
            "only narrow a search, so on their own they would match almost every post. Add a "
            'word, "phrase" or from:handle.',
            1,
        ),
        (
            "northwind OR -spam",
            "One side of OR has nothing to listen for: on its own, -spam (character 14) would "
            'match almost every post. Give each side a word, "phrase" or from:handle.',
            14,
        ),
        (
            "tea ()",
            "Empty parentheses at character 5: put the terms to group inside them, or remove them.",
            5,
        ),
        (
            "tea (coffee OR latte",
            'A parenthesis is not closed: the "(" at character 5 has no matching ")".',
            5,
        ),
        (
            "tea coffee)",
            'The ")" at character 11 closes nothing: there is no "(" before it.',
            11,
        ),
        (
            "tea lang:english",
            "lang: needs a two-letter language code such as lang:en, or lang:und for posts in "
            "no known language (character 5).",
            5,
        ),
        (
            "tea -lang:",
            "lang: needs a two-letter language code such as lang:en, or lang:und for posts in "
            "no known language (character 6).",
            6,
        ),
        (
            "tea from:",
            "from: needs an X handle such as from:NorthwindHelp: letters, digits and _, at most "
            "15 characters (character 5).",
            5,
        ),
        (
            "tea -from:not-a-handle",
            "from: needs an X handle such as from:NorthwindHelp: letters, digits and _, at most "
            "15 characters (character 6).",
            6,
        ),
        (
            "tea - coffee",
            'A minus must be followed directly by the word or "phrase" to exclude, without a '
            "space (character 5).",
            5,
        ),
        (
            "tea -(spam OR scam)",
            "A minus cannot exclude a whole group (character 5): exclude each term on its own, "
            "e.g. -spam -scam rather than -(spam OR scam).",
            5,
        ),
        (
            "tea AND coffee",
            "Leave out AND (character 5): words side by side must all match already. To find "
            'the word "and", write it in lower case.',
            5,
        ),
        ('tea ""', "The phrase at character 5 is empty: put words between the quotes.", 5),
        (
            "tea !!!",
            '"!!!" at character 5 has no letters or digits to search for; Earshot matches whole '
            "words.",
            5,
        ),
        ("   ", "Enter what to listen for, e.g. the brand's name.", 1),
    ],
)
def test_each_mistake_is_explained_with_its_position(query, message, position):
    with pytest.raises(QuerySyntaxError) as raised:
        parse_query(query)
    assert (raised.value.message, raised.value.position) == (message, position)
    assert str(raised.value) == message


def test_exclusions_and_filters_are_fine_beside_something_to_listen_for():
    parse_query("northwind (lang:en OR lang:de) -spam -is:retweet")
    parse_query("from:NorthwindHelp -is:retweet")


# --- X queries ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "for_x"),
    [
        ("  northwind    coffee ", "northwind coffee"),
        ('"Northwind \t  Coffee"', '"Northwind Coffee"'),
        ("(a b) OR c", "a b OR c"),
        ("a (b OR (c OR d))", "a (b OR c OR d)"),
        ("FROM:@NorthwindHelp LANG:EN -IS:RETWEET", "from:NorthwindHelp lang:en -is:retweet"),
        ('NorthWind -"Free  Gift" -from:Bob', 'NorthWind -"Free Gift" -from:Bob'),
        ('tea(coffee)"latte art"', 'tea coffee "latte art"'),
        ("@NorthwindHelp #Outage", "@NorthwindHelp #Outage"),
    ],
)
def test_to_x_normalises_spacing_and_keeps_the_admins_casing(typed, for_x):
    query = parse_query(typed)
    assert query.to_x() == for_x == str(query)
    assert parse_query(for_x) == query  # the canonical form means the same query
    simulator.parse_query(for_x)  # and the X stand-in accepts it


def _query_of_length(length: int) -> str:
    return "northwind " + "x" * (length - len("northwind "))


@pytest.mark.parametrize("length", [511, 512])
def test_x_takes_queries_up_to_512_characters(length):
    assert len(parse_query(_query_of_length(length)).to_x()) == length


def test_x_refuses_a_513_character_query_naming_its_length():
    with pytest.raises(QueryTooLong) as raised:
        parse_query(_query_of_length(513)).to_x()
    assert raised.value.message == "X accepts queries of at most 512 characters; this one has 513."
    assert raised.value.position == 513
    assert isinstance(raised.value, QuerySyntaxError)


def test_the_limit_counts_the_query_x_receives_not_the_spaces_typed():
    assert parse_query("northwind" + " " * 600 + "coffee").to_x() == "northwind coffee"


# --- splitting for platforms --------------------------------------------------------------

QUERY = '"Northwind Coffee" (refund OR "money back") -spam lang:en -is:retweet'


def test_x_runs_the_whole_query_remotely():
    query = parse_query(QUERY)
    assert query.split_for(X_SYNTAX) == (query.to_x(), None)


def test_a_words_only_platform_gets_the_required_words_and_earshot_filters_the_rest():
    query = parse_query(QUERY)
    assert query.split_for(WORDS_ONLY_SYNTAX) == ("Northwind Coffee", query)


def test_a_words_only_platform_gets_the_words_every_alternative_shares():
    query = parse_query("northwind (Coffee latte OR tea coffee)")
    assert query.split_for(WORDS_ONLY_SYNTAX) == ("northwind Coffee", query)


def test_a_words_only_query_needs_no_local_filter():
    assert parse_query("northwind  coffee").split_for(WORDS_ONLY_SYNTAX) == (
        "northwind coffee",
        None,
    )


def test_a_words_only_platform_cannot_run_a_query_without_a_shared_word():
    with pytest.raises(QueryNotSupported) as raised:
        parse_query("coffee OR tea").split_for(WORDS_ONLY_SYNTAX)
    assert raised.value.message == (
        'Words-only search cannot run this query: no word or "phrase" has to appear in every '
        "match, so there is nothing to ask it for. Add a word that every match shares, e.g. "
        "northwind (coffee OR tea)."
    )


def test_a_platform_with_some_operators_gets_the_clauses_it_can_express():
    syntax = PlatformSyntax(name="Some search", phrases=True, lang=True, from_user=True)
    query = parse_query(QUERY)
    assert query.split_for(syntax) == ('"Northwind Coffee" lang:en', query)


def test_a_platforms_length_limit_applies_to_what_it_is_sent():
    syntax = PlatformSyntax(name="Tiny search", max_length=10)
    with pytest.raises(QueryTooLong, match="at most 10 characters; this one has 16"):
        parse_query('"Northwind Coffee" -spam').split_for(syntax)


def test_the_remote_part_finds_every_post_the_query_matches():
    for text in [p.text for p in POSTS]:
        for typed in QUERIES:
            query = parse_query(typed)
            try:
                remote, local = query.split_for(WORDS_ONLY_SYNTAX)
            except QueryNotSupported:
                continue
            candidate = post(text)
            if query.matches(candidate):
                assert parse_query(remote).matches(candidate), (typed, text)


# --- Earshot's local filter agrees with the X simulator -----------------------------------

POSTS = [
    post("Northwind Coffee is the best!", "alice"),
    post("northwind, coffee... and cake", "bob"),
    post("Coffee at Northwind? Never again. #outage", "carol"),
    post("RT @NorthwindHelp: Our app is back after the outage", "dave", is_retweet=True),
    post("@NorthwindHelp my order #1234 never came, I want a refund", "erin"),
    post("@NorthwindHelp's reply was quick, thanks", "frank"),
    post("@NorthwindHelpDesk is a fake account", "grace"),
    post("Northwind tea is fine but coffee is better", "heidi"),
    post("FREE GIFT from northwind, click now", "spammer", lang="en"),
    post("northwind free gift card spam", "spammer2"),
    post("Northwind Kaffee ist lecker", "ingrid", lang="de"),
    post("Der Northwind-Kaffee war kalt, Geld zurück bitte", "jonas", lang="de"),
    post("Un café Northwind, s'il vous plaît", "louise", lang="fr"),
    post("northwind straße filiale geschlossen", "max", lang="de"),
    post("We are looking into the outage now", "NorthwindHelp"),
    post("Thanks for your patience, refund issued", "northwindhelp"),
    post("money back guarantee at northwind?", "nina"),
    post("I want my money back from Northwind", "oscar", is_retweet=True),
    post("$NWC up 5% after northwind earnings", "trader"),
    post("coca-cola vs northwind cold brew", "pat"),
    post("東京のNorthwindコーヒー 美味しい", "yuki", lang="ja"),
    post("northwind_coffee fan account here", "quinn"),
    post("NORTHWIND COFFEE LATTE ART", "rita", lang="und"),
    post("latte or tea? northwind has both", "sam"),
    post("The #Northwind outage is over", "tom"),
    post("outage outage outage", "uma"),
    post("refund please @northwindhelp", "victor", lang="en"),
    post("rt northwind coffee", "wendy"),
    post("Just tea.", "xavier"),
    post("", "empty"),
]

QUERIES = [
    "northwind",
    '"Northwind Coffee"',
    "northwind coffee OR tea",
    "northwind (coffee OR tea)",
    "@NorthwindHelp -from:NorthwindHelp",
    "#outage OR outage -is:retweet",
    'northwind -spam -"free gift"',
    "northwind lang:de",
    "from:NorthwindHelp OR from:oscar northwind",
    '(refund OR "money back") northwind -lang:fr',
    "is:retweet northwind",
    "café OR straße",
    '$NWC OR "coca-cola"',
    "@NorthwindHelp",
    "northwind (lang:en OR lang:de) -is:retweet",
    '"northwind\'s coffee" OR "Northwind Kaffee"',
    "northwind_coffee OR 東京のnorthwindコーヒー",
    "(latte tea) OR (refund from:victor)",
]


def _simulator_post(candidate: QueryablePost) -> simulator.Post:
    return simulator.Post(
        text=candidate.text,
        username=candidate.author_username,
        lang=candidate.lang,
        is_retweet=candidate.is_retweet,
    )


@pytest.mark.parametrize("typed", QUERIES)
def test_the_local_filter_agrees_with_the_x_simulator(typed):
    query = parse_query(typed)
    on_x = simulator.parse_query(query.to_x())
    ours = [query.matches(candidate) for candidate in POSTS]
    xs = [simulator.matches(on_x, _simulator_post(candidate)) for candidate in POSTS]
    assert ours == xs
    assert any(ours) and not all(ours), "a query that tells no post apart proves nothing"


# --- the keyword form ---------------------------------------------------------------------


def _form(query: str, brand) -> KeywordForm:
    return KeywordForm(
        data={"brand": brand.pk, "query": query, "poll_interval_seconds": 60, "is_active": "on"}
    )


def test_the_form_explains_a_bad_query(db, brand):
    form = _form("northwind OR", brand)
    assert not form.is_valid()
    assert form.errors["query"] == ["OR needs a term on both sides (character 11)."]


def test_the_form_refuses_a_query_too_long_for_x_in_xs_terms(db, brand):
    form = _form(_query_of_length(513), brand)
    assert not form.is_valid()
    assert form.errors["query"] == [
        "X accepts queries of at most 512 characters; this one has 513."
    ]


def test_the_form_refuses_a_query_too_long_to_store_even_when_x_would_take_it(db, brand):
    form = _form("northwind" + " " * 600 + "coffee", brand)
    assert not form.is_valid()
    assert form.errors["query"] == [
        "Earshot keeps queries of at most 512 characters; this one has 615. Remove the extra "
        "spaces."
    ]


def test_the_form_keeps_a_good_query_as_typed(db, brand):
    typed = '  "Northwind  Coffee"   (refund OR "money back") -from:@NorthwindHelp  '
    form = _form(typed, brand)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["query"] == typed.strip()


def test_the_keywords_page_shows_the_message_and_saves_a_good_query_unchanged(
    client, admin_user, brand
):
    client.force_login(admin_user)
    url = reverse("listening:keywords")
    data = {"brand": brand.pk, "poll_interval_seconds": 60, "is_active": "on"}

    bad = client.post(url, {**data, "query": "northwind sentiment:negative"})

    assert bad.status_code == 200
    assert "Unknown operator &quot;sentiment:&quot; at character 11." in bad.content.decode()
    assert "Query syntax" in bad.content.decode()
    assert not brand.keywords.exists()

    typed = "Northwind   (coffee OR tea) -is:retweet"
    client.post(url, {**data, "query": f"  {typed} "})

    assert list(brand.keywords.values_list("query", flat=True)) == [typed]


def test_the_edit_page_shows_the_syntax_cheat_sheet(client, admin_user, keyword):
    client.force_login(admin_user)
    page = client.get(reverse("listening:keyword-edit", args=[keyword.pk]))
    assert "Query syntax" in page.content.decode()


def test_a_query_is_a_value():
    assert parse_query("a  b") == parse_query("a b") == Query(And((Term("a"), Term("b"))))
