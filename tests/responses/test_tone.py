from __future__ import annotations

import csv
from collections import Counter

import pytest

from listening.models import Author, Brand, Mention
from listening.services.sentiment import sentiment_score
from listening.simulators.generator import generate_mentions
from responses.services.drafts import draft_for_mention
from responses.services.tone import ToneWarning, tone_check
from tests.conftest import shared_data_file
from tests.factories import make_author, make_mention

pytestmark = pytest.mark.django_db

COMPLAINT = "@NorthwindHelp my order never arrived and the tracking page is broken"


@pytest.fixture
def complaint(brand) -> Mention:
    return make_mention(
        brand=brand, text=COMPLAINT, author=make_author(username="ana_l", name="Ana Lopez")
    )


@pytest.fixture
def praise(brand) -> Mention:
    return make_mention(
        brand=brand,
        text="Loving the new autumn roast from @NorthwindHelp, best flat white in town!",
        author=make_author(username="ben_k", name="Ben Kowalczyk"),
    )


def codes(text: str, mention: Mention) -> list[str]:
    return [warning.code for warning in tone_check(text=text, mention=mention)]


def only(code: str, text: str, mention: Mention) -> ToneWarning:
    warnings = tone_check(text=text, mention=mention)
    assert [w.code for w in warnings] == [code], warnings
    return warnings[0]


# --- good replies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name"),
    [
        (COMPLAINT, "Ana Lopez"),
        ("@NorthwindHelp my card was charged twice for one latte. Useless. Awful.", "Joanna"),
        ("Wow Northwind Coffee. My grinder stopped working after 45 minutes. Ridiculous.", ""),
        ("Northwind Coffee's new roast is amazing, best cup all week!", "Kai"),
        ("@NorthwindHelp do you ship beans to Norway?", "Ingrid Dahl"),
        ("Picked up a bag of the Ethiopian at @NorthwindHelp today", "Sam"),
        ("@NorthwindHelp the barista at Kings Cross was rude and the cup was cold", "✨🌙"),
    ],
)
def test_the_draft_writers_own_replies_raise_no_warning(brand, agent, text, name):
    mention = make_mention(brand=brand, text=text, author=make_author(name=name))
    draft = draft_for_mention(mention=mention, agent=agent)

    assert tone_check(text=draft, mention=mention) == [], draft


def test_drafts_for_two_hundred_demo_mentions_raise_no_warning(brand, agent):
    """Complaints, praise, questions and chatter as the demo generator writes them."""
    posts = generate_mentions(brand_name=brand.name, brand_handle=brand.x_handle, count=200, seed=5)
    warned = []
    for post in posts:
        author = make_author(username=post["author"]["username"], name=post["author"]["name"])
        mention = make_mention(brand=brand, text=post["text"], author=author)
        draft = draft_for_mention(mention=mention, agent=agent)
        if warnings := tone_check(text=draft, mention=mention):
            warned.append((draft, warnings))

    assert warned == []


@pytest.mark.parametrize(
    "reply",
    [
        "Hi Ana, I'm so sorry your order never arrived. Could you DM us the order number so I "
        "can chase it with the courier today? ^AM",
        "Ana, that's not good enough from us and I apologise. I've asked the warehouse to resend "
        "your order by express; the tracking link will follow by email.",
        "@ana_l Sorry for the trouble with the tracking page! We're fixing it now, and I'll DM "
        "you the status of your order.",
        "Hi Ana, unfortunately the courier lost your order. I've booked a replacement for "
        "tomorrow and refunded the delivery fee.",
        "Hi Ana, I understand how frustrating a missing order is. I'll look into it right away.",
    ],
)
def test_personal_empathetic_replies_raise_no_warning(complaint, reply):
    assert tone_check(text=reply, mention=complaint) == []


def test_a_reply_that_is_negative_only_through_its_apologies_is_not_flagged(complaint):
    reply = (
        "Hi Ana, I'm so sorry, and sorry for the inconvenience with your order. Unfortunately "
        "the courier is late; apologies for the trouble. I'll DM you the new date."
    )
    assert sentiment_score(text=reply).compound <= -0.3  # VADER alone would flag it

    assert codes(reply, complaint) == []


# --- blame ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sentence", "excerpt"),
    [
        ("Did you call the store about it?", "Did you call"),
        ("did you try turning the app off and on?", "did you try"),
        ("You should have checked the tracking page first.", "You should have"),
        ("You should’ve ordered before noon.", "You should’ve"),
        ("You need to log in again.", "You need to"),
        ("As I said, the tracking page is being fixed.", "As I said"),
        ("As I already said, the order is on its way.", "As I already said"),
        ("As mentioned, the order is on its way.", "As mentioned"),
        ("Per our policy, orders ship within five days.", "Per our policy"),
        ("According to our policy the order is on its way.", "According to our policy"),
        ("Actually, the order left our warehouse yesterday.", "Actually"),
        ("The order is obviously on its way.", "obviously"),
        ("Clearly you missed the tracking email.", "Clearly you"),
        ("Please calm down, the order is coming.", "calm down"),
        ("Unfortunately that’s not possible for this order.", "Unfortunately that’s not possible"),
        ("There’s nothing we can do about the order.", "There’s nothing we can do"),
    ],
)
def test_blame_and_dismissal_are_flagged(complaint, sentence, excerpt):
    reply = f"Hi Ana, the tracking page is up again. {sentence}"

    assert "blame" in codes(reply, complaint)
    (warning,) = [w for w in tone_check(text=reply, mention=complaint) if w.code == "blame"]
    assert warning.excerpt == excerpt


def test_blame_phrases_match_in_any_case_with_curly_or_straight_apostrophes(complaint):
    for phrase in ("AS I SAID", "as i said", "As I Said"):
        assert "blame" in codes(f"Hi Ana, {phrase}, your order is on its way.", complaint)
    for apostrophe in ("'", "’"):
        reply = f"Hi Ana, sorry, that{apostrophe}s not possible for this order."
        assert "blame" in codes(reply, complaint)


def test_blame_lists_every_phrase_found_and_explains_the_first(complaint):
    warning = only(
        "blame",
        "Hi Ana, as I said, per our policy your order will arrive. Did you try the tracking page?",
        complaint,
    )

    assert warning == ToneWarning(
        code="blame",
        message=(
            "“as I said” can sound like you are blaming them or brushing them off. Repeat the "
            "point kindly; reminding them you said it already sounds impatient."
        ),
        excerpt="as I said … per our policy … Did you try",
    )


@pytest.mark.parametrize(
    "reply",
    [
        "Hi Ana, we actually have your order here: I'll resend it today.",
        "Hi Ana, your order is on its way. If you need to reach us, DM us any time.",
        "Hi Ana, you should have an email from us with the new tracking link for your order.",
        "Hi Ana, glad we could get your order where you need to be!",
        "Hi Ana, we'll call you about the order; it's now possible to track it in the app.",
    ],
)
def test_phrases_that_only_look_like_blame_are_not_flagged(complaint, reply):
    assert "blame" not in codes(reply, complaint)


def test_actually_is_flagged_at_the_start_of_a_sentence_after_the_greeting(complaint):
    warning = only("blame", "Hi Ana, actually the order left yesterday.", complaint)
    assert warning.excerpt == "actually"
    assert only("blame", "Hi Ana! Well, actually, the order left.", complaint).excerpt == (
        "Well, actually"
    )


# --- sarcasm -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ending", "excerpt"),
    [
        ("Great timing /s", "/s"),
        ("Yeah right, like the courier would do that.", "Yeah right"),
        ("Sure, because couriers never get lost.", "Sure, because"),
        ("Oh great, another lost order.", "Oh great"),
        ("The courier strikes again 🙄", "🙄"),
        ("Couriers 😒", "😒"),
        ("Our 'help' desk is on it.", "'help'"),
        ("Lost again?!", "?!"),
        ("Lost again!?", "!?"),
    ],
)
def test_sarcasm_markers_are_flagged(complaint, ending, excerpt):
    reply = f"Hi Ana, your order is with the courier. {ending}"

    warnings = [w for w in tone_check(text=reply, mention=complaint) if w.code == "sarcasm"]
    assert [w.excerpt for w in warnings] == [excerpt]


def test_thanks_a_lot_is_sarcastic_after_a_complaint_only(complaint, praise):
    assert "sarcasm" in codes("Hi Ana, your order never arrived. Thanks a lot.", complaint)
    assert "sarcasm" not in codes(
        "Hi Ana, thanks a lot for your patience while we find the order.", complaint
    )
    assert "sarcasm" not in codes(
        "Hi Ben, thanks a lot! The autumn roast is our favourite too.", praise
    )


def test_quoted_buttons_and_their_own_words_are_not_scare_quotes(complaint):
    assert "sarcasm" not in codes(
        "Hi Ana, tap 'Orders' then \"Track\" to see where your order is.", complaint
    )
    assert "sarcasm" not in codes(
        "Hi Ana, sorry the tracking page is “broken”, I'll look into your order.", complaint
    )


def test_the_sarcasm_message(complaint):
    assert only("sarcasm", "Hi Ana, oh great, your order is lost.", complaint).message == (
        "“oh great” can read as sarcastic, and in writing sarcasm lands as contempt. "
        "Say what you mean plainly."
    )


# --- shouting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "excerpt"),
    [
        ("Hi Ana, your order WILL ARRIVE TOMORROW.", "WILL ARRIVE TOMORROW"),
        ("Hi Ana, PLEASE DM US NOW about your order.", "PLEASE DM US NOW"),
        ("Hi Ana, WE ARE ON IT, your order is coming.", "WE ARE ON IT"),
        ("Hi Ana, your order is on its way!!", "!!"),
        ("Hi Ana, your order is on its way!!!", "!!!"),
    ],
)
def test_shouting_is_flagged(complaint, text, excerpt):
    assert only("shouting", text, complaint).excerpt == excerpt


@pytest.mark.parametrize(
    "text",
    [
        "Hi Ana, please DM us your order ID and PIN, or see the FAQ.",
        "Hi Ana, your order left the UK for the USA via UPS: ETA Friday, FYI.",
        "Hi Ana, I checked: your order is on its way!",
        "Hi Ana, @NORTHWIND_TEAM has your order https://example.com/ORDER/TRACK/NOW #LOST",
        "Hi Ana, NORTHWIND COFFEE has your order.",
    ],
)
def test_acronyms_handles_links_and_the_brand_are_not_shouting(complaint, text):
    assert "shouting" not in codes(text, complaint)


def test_the_shouting_message(complaint):
    assert only("shouting", "Hi Ana, WE ARE ON IT with your order.", complaint).message == (
        "Capitals read as shouting, even when you mean to stress a point. Use normal case and "
        "one exclamation mark at most; let the words carry the emphasis."
    )


# --- negative reply ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Hi Ana, that is a stupid complaint and your order is lost.",
        "Hi Ana, this is your own mistake with the order, and a terrible one.",
        "Hi Ana, we hate dealing with orders like yours. Bad luck.",
        # An apology word does not excuse what follows it when that is about them.
        "Hi Ana, unfortunately you are an idiot, and sorry but your order is lost.",
    ],
)
def test_a_reply_that_itself_reads_negative_is_flagged(complaint, text):
    assert "negative_reply" in codes(text, complaint)


def test_the_negative_reply_message_gives_the_score_and_the_words(complaint):
    text = "Hi Ana, that is a stupid question about your order."
    compound = sentiment_score(text=text).compound  # nothing to leave out here

    warning = only("negative_reply", text, complaint)
    assert compound == -0.5267
    assert warning == ToneWarning(
        code="negative_reply",
        message=(
            "Your reply itself reads as negative (−0.53), apologies aside. Read it as they will: "
            "lead with what you will do for them, and say the bad news once, plainly."
        ),
        excerpt="stupid",
    )


def test_their_own_negative_words_and_quotes_of_them_do_not_count_against_the_reply(brand):
    mention = make_mention(
        brand=brand,
        text="@NorthwindHelp the app shows an error and the checkout is broken and useless",
        author=make_author(name="Ana"),
    )
    assert codes("Hi Ana, which error does the app show at checkout?", mention) == []
    assert codes("Hi Ana, sorry the checkout is “broken and useless”, on it!", mention) == []


# --- their name, their words ---------------------------------------------------------------


def test_a_reply_without_their_name_or_handle_is_flagged(complaint):
    warning = only("no_name", "Sorry your order never arrived, DM us the details.", complaint)

    assert warning == ToneWarning(
        code="no_name",
        message=(
            "Your reply does not address them. Start with “Hi Ana,” so it reads as written for "
            "them, not for everyone."
        ),
        excerpt="",
    )


@pytest.mark.parametrize(
    "text",
    [
        "Hi Ana, sorry your order never arrived.",
        "hi ana, sorry your order never arrived.",
        "@ana_l sorry your order never arrived.",
        "Sorry your order never arrived, Ana.",
    ],
)
def test_their_first_name_or_handle_is_enough(complaint, text):
    assert "no_name" not in codes(text, complaint)


def test_a_name_inside_another_word_or_handle_does_not_count(complaint):
    assert "no_name" in codes("Hi Anastasia, sorry your order never arrived.", complaint)
    assert "no_name" in codes("@ana_lopez sorry your order never arrived.", complaint)


def test_without_a_usable_name_the_handle_is_expected(brand):
    mention = make_mention(
        brand=brand, text=COMPLAINT, author=make_author(username="x_99", name="✨🌙")
    )
    assert "no_name" in codes("Hi there, sorry your order never arrived.", mention)
    assert "no_name" not in codes("Hi @x_99, sorry your order never arrived.", mention)


def test_a_reply_that_takes_up_nothing_from_their_post_is_flagged(complaint):
    warning = only("nothing_from_them", "Hi Ana, please DM us and we'll look into it.", complaint)

    assert warning == ToneWarning(
        code="nothing_from_them",
        message=(
            "Your reply takes up nothing from their post, so it could be sent to anyone. "
            "Mention what they told you about (“order”, “arrived”, “tracking”) so they can see "
            "you read it."
        ),
        excerpt="",
    )


@pytest.mark.parametrize(
    "text",
    [
        "Hi Ana, DM us and we'll look at your orders.",
        "Hi Ana, DM us and we'll make sure it arrives.",
        "Hi Ana, DM us: the TRACKING team is on it.",
        "Hi Ana, DM us and we'll check why it is not arriving.",
        "Hi Ana, it's the breaking of a page we're fixing.",
    ],
)
def test_one_of_their_words_in_any_form_is_enough(complaint, text):
    assert "nothing_from_them" not in codes(text, complaint)


def test_the_brands_name_stop_words_and_short_words_are_not_their_words(brand):
    mention = make_mention(
        brand=brand,
        text="@NorthwindHelp Northwind Coffee, why would my new espresso machine be so bad?",
        author=make_author(name="Ana"),
    )

    warning = only("nothing_from_them", "Hi Ana, Northwind Coffee is here for you, why?", mention)
    assert "(“espresso”, “machine”)" in warning.message


def test_a_post_with_nothing_to_take_up_needs_nothing(brand):
    mention = make_mention(brand=brand, text="@NorthwindHelp 👍", author=make_author(name="Ana"))
    assert codes("Hi Ana, thank you!", mention) == []


# --- together ------------------------------------------------------------------------------


def test_warnings_come_in_a_stable_order(complaint):
    text = "AS I SAID YESTERDAY, it is a stupid, terrible mess /s"

    assert codes(text, complaint) == [
        "blame",
        "sarcasm",
        "shouting",
        "negative_reply",
        "no_name",
        "nothing_from_them",
    ]


def test_real_brand_replies_are_rarely_flagged_for_tone():
    """Replies support teams really sent: blame, sarcasm and shouting should be rare."""
    path = shared_data_file("twcs_dev.csv")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    by_id = {row["tweet_id"]: row for row in rows}
    found: Counter[str] = Counter()
    replies = 0
    for row in rows:
        post = by_id.get(row["in_response_to_tweet_id"])
        if row["inbound"] != "False" or post is None:
            continue
        replies += 1
        mention = Mention(
            text=post["text"],
            brand=Brand(name=row["author_id"], x_handle=row["author_id"]),
            author=Author(username=post["author_id"]),
            sentiment_label=sentiment_score(text=post["text"]).label,
        )
        found.update(w.code for w in tone_check(text=row["text"], mention=mention))

    assert replies > 1000
    assert found["blame"] / replies < 0.01
    assert found["sarcasm"] / replies < 0.005
    assert found["shouting"] / replies < 0.015
    assert found["negative_reply"] / replies < 0.05
