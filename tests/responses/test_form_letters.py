from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

import pytest

from listening.models import Brand
from responses.models import Reply
from responses.services import form_letters
from responses.services.form_letters import (
    FormLetterResult,
    form_letter_check,
    jaccard,
    normalise,
    shingles,
)
from tests.factories import make_author, make_mention

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 9, 12, 0, tzinfo=UTC)
LETTER = (
    "Hi {name}, we're sorry to hear about this. Please send us a DM with your order number and "
    "email address so we can look into it for you. ^{initials}"
)
NEW_REPLY = LETTER.format(name="Zoe", initials="AM")
_external_ids = count(1)


def sent(brand, agent, text, *, ago=timedelta(hours=1), status="sent", name="Ana") -> Reply:
    mention = make_mention(
        brand=brand, text="@NorthwindHelp my order is late", author=make_author(name=name)
    )
    is_sent = status == "sent"
    return Reply.objects.create(
        mention=mention,
        agent=agent,
        text=text,
        status=status,
        external_id=str(next(_external_ids)) if is_sent else "",
        posted_at=NOW - ago if is_sent else None,
    )


def letter_to(brand, agent, name: str, initials: str = "BL", **kwargs) -> Reply:
    return sent(brand, agent, LETTER.format(name=name, initials=initials), name=name, **kwargs)


def check(brand, text=NEW_REPLY, **kwargs) -> FormLetterResult:
    return form_letter_check(text=text, brand_id=brand.pk, now=NOW, **kwargs)


def test_three_near_identical_replies_to_other_customers_make_a_form_letter(brand, agent):
    replies = [
        letter_to(brand, agent, "Ana", ago=timedelta(hours=3)),
        letter_to(brand, agent, "Bob", "AM", ago=timedelta(days=2)),
        letter_to(brand, agent, "Chiara", ago=timedelta(days=6, hours=23)),
    ]

    result = check(brand)

    assert result.is_form_letter is True
    assert [similar.reply_id for similar in result.similar] == [r.pk for r in replies]
    assert [similar.similarity for similar in result.similar] == [1.0, 1.0, 1.0]
    assert [similar.text for similar in result.similar] == [r.text for r in replies]
    assert [similar.posted_at for similar in result.similar] == [r.posted_at for r in replies]
    assert result.match_count == 3
    assert result.message == (
        "This reply is nearly identical to 3 replies sent in the last 7 days. Customers notice "
        "form letters: say something about their situation."
    )


def test_small_edits_still_count_as_the_same_letter(brand, agent):
    sent(
        brand,
        agent,
        "Hey @bob_the_builder, we're sorry to hear about this! Please send us a DM with your "
        "order number and email address so we can look into it for you. https://t.co/abc ^BL",
    )
    sent(
        brand,
        agent,
        "Hi Chiara Rossi, we're sorry to hear about this. Please send us a DM with your order "
        "number and email address so we can look into it for you today. ^SR",
    )
    letter_to(brand, agent, "Dmitri")

    result = check(brand)

    assert result.is_form_letter is True
    assert len(result.similar) == 3
    assert all(similar.similarity >= 0.85 for similar in result.similar)
    assert result.similar[0].similarity == 1.0
    assert result.similar[-1].similarity < 1.0  # the one that added "today"


def test_two_near_identical_replies_are_not_yet_a_form_letter(brand, agent):
    letter_to(brand, agent, "Ana")
    letter_to(brand, agent, "Bob")

    result = check(brand)

    assert result.is_form_letter is False
    assert result.match_count == 2
    assert len(result.similar) == 2
    assert result.message == ""


@pytest.mark.parametrize(
    "third",
    [
        pytest.param({"ago": timedelta(days=7, minutes=1)}, id="older-than-the-window"),
        pytest.param({"status": "queued"}, id="queued"),
        pytest.param({"status": "failed"}, id="failed"),
        pytest.param({"ago": -timedelta(minutes=5)}, id="after-now"),
    ],
)
def test_only_replies_sent_within_the_window_count(brand, agent, third):
    letter_to(brand, agent, "Ana")
    letter_to(brand, agent, "Bob")
    letter_to(brand, agent, "Chiara", **third)

    result = check(brand)

    assert result.is_form_letter is False
    assert result.match_count == 2


def test_replies_for_another_brands_mentions_do_not_count(brand, agent):
    other = Brand.objects.create(name="Contoso Tea", x_handle="ContosoTea")
    letter_to(brand, agent, "Ana")
    letter_to(brand, agent, "Bob")
    letter_to(other, agent, "Chiara")
    letter_to(other, agent, "Dmitri")

    assert check(brand).match_count == 2
    assert check(other).match_count == 2
    assert check(brand).is_form_letter is False


def test_a_genuinely_personal_reply_is_not_a_form_letter(brand, agent):
    for name in ("Ana", "Bob", "Chiara", "Dmitri"):
        letter_to(brand, agent, name)

    result = check(
        brand,
        "Hi Zoe, a grinder that stops after 45 minutes is not what we promised. I've sent a "
        "replacement burr set to the address on your order; it should be with you on Friday. ^AM",
    )

    assert result == FormLetterResult(is_form_letter=False, similar=[], match_count=0, message="")


def test_a_reply_sharing_one_sentence_with_the_letter_is_not_a_form_letter(brand, agent):
    for name in ("Ana", "Bob", "Chiara"):
        letter_to(brand, agent, name)

    result = check(
        brand,
        "Hi Zoe, I'm so sorry the oat milk was missing from your order again, two weeks in a "
        "row is not OK. Please send us a DM with your order number and email address. ^AM",
    )

    assert result.is_form_letter is False
    assert result.similar == []


def test_the_list_is_capped_at_five_most_similar_first_and_the_message_counts_all(brand, agent):
    for name in ("Ana", "Bob", "Chiara", "Dmitri", "Eve"):
        letter_to(brand, agent, name)
    # One word longer than the letter: similar, but less than the exact copies.
    changed = sent(brand, agent, LETTER.format(name="Femi", initials="BL") + " Thanks")

    result = check(brand)

    assert result.match_count == 6
    assert len(result.similar) == 5
    assert changed.pk not in [similar.reply_id for similar in result.similar]
    assert [similar.similarity for similar in result.similar] == [1.0] * 5
    assert "nearly identical to 6 replies sent in the last 7 days" in result.message


def test_the_window_threshold_and_minimum_are_the_callers(brand, agent):
    letter_to(brand, agent, "Ana", ago=timedelta(hours=2))
    letter_to(brand, agent, "Bob", ago=timedelta(hours=30))

    assert check(brand, window=timedelta(days=1)).match_count == 1
    result = check(brand, window=timedelta(days=2), min_matches=2)
    assert result.is_form_letter is True
    assert "2 replies sent in the last 2 days" in result.message
    assert check(brand, window=timedelta(hours=3), min_matches=1).message.startswith(
        "This reply is nearly identical to 1 reply sent in the last 3 hours."
    )
    partly = check(brand, "Hi Zoe, please send us a DM with your order number. ^AM", threshold=0.2)
    # 7 shingles shared ("please send us" … "your order number"), 9 + 26 - 7 in all.
    assert [similar.similarity for similar in partly.similar] == [0.25, 0.25]


def test_only_the_most_recent_candidates_are_compared(brand, agent, monkeypatch):
    monkeypatch.setattr(form_letters, "MAX_CANDIDATES", 2)
    for name in ("Ana", "Bob", "Chiara"):
        letter_to(brand, agent, name, ago=timedelta(days=3))
    sent(brand, agent, "Hi Dmitri, enjoy the new roast! ^BL", ago=timedelta(hours=1))
    sent(brand, agent, "Hi Eve, the kettle is back in stock. ^BL", ago=timedelta(hours=2))

    assert check(brand).match_count == 0


def test_the_comparison_is_one_query_however_many_candidates(
    brand, agent, django_assert_num_queries
):
    for n in range(30):
        letter_to(brand, agent, f"Name{n}", ago=timedelta(minutes=n + 1))

    with django_assert_num_queries(1):
        result = check(brand)

    assert result.match_count == 30


# --- normalising ---------------------------------------------------------------------------


def test_the_greeting_name_handles_links_numbers_and_signature_are_normalised():
    words = ["hi", "<name>", "order", "<n>", "is", "on", "its", "way", "thanks", "<handle>"]
    assert (
        normalise("Hi Ana, order 12345 is on its way: https://t.co/x1 Thanks @ana_b! ^AM") == words
    )
    assert normalise("Dear Ana Maria, we’re on it") == normalise("dear Bob, we're on it")
    assert normalise("Hey @bob: on it") == normalise("Hey Ana! on it")


def test_emoji_are_words_so_different_emoji_are_different_replies():
    assert jaccard(shingles("@ana 😳 ^AM"), shingles("@bob 🙏 ^AM")) == 0.0
    assert jaccard(shingles("@ana 🙏 ^AM"), shingles("@bob 🙏🏽 ^BL")) == 1.0


def test_jaccard_of_three_word_shingles():
    a = shingles("we will look into it")  # we will look / will look into / look into it
    b = shingles("we will look into this")  # ... / look into this
    assert jaccard(a, b) == pytest.approx(2 / 4)
    assert jaccard(shingles(""), shingles("anything")) == 0.0
