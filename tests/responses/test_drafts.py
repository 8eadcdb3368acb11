from __future__ import annotations

import pytest

from responses.services.drafts import DRAFT_MAX_LENGTH, draft_for_mention, their_words
from tests.factories import make_author, make_mention

pytestmark = pytest.mark.django_db


def test_a_complaint_draft_greets_by_name_uses_their_words_apologises_and_signs(brand, agent):
    mention = make_mention(
        brand=brand,
        text="@NorthwindHelp my delivery is three days late and the app is useless. Awful.",
        author=make_author(username="jo_b", name="Joanna Baker"),
    )
    draft = draft_for_mention(mention=mention, agent=agent)
    assert draft.startswith("Hi Joanna, ")
    assert "“my delivery is three days late and the app is useless”" in draft
    assert "sorry" in draft.lower() or "apologies" in draft.lower()
    assert "DM" in draft
    assert draft.endswith(" ^AM")
    assert len(draft) <= DRAFT_MAX_LENGTH


def test_praise_is_thanked_not_apologised_for(brand, agent):
    mention = make_mention(
        brand=brand,
        text="Northwind Coffee's new roast is amazing, best cup all week!",
        author=make_author(username="kai", name="Kai"),
    )
    draft = draft_for_mention(mention=mention, agent=agent)
    assert draft.startswith("Hi Kai, ")
    assert "thank" in draft.lower()
    assert "sorry" not in draft.lower()


def test_a_question_gets_an_answer_not_an_apology(brand, agent):
    mention = make_mention(brand=brand, text="@NorthwindHelp do you ship to Norway?")
    draft = draft_for_mention(mention=mention, agent=agent)
    assert "about “do you ship to Norway”" in draft
    assert "sorry" not in draft.lower()


def test_without_a_usable_name_it_greets_the_handle(brand, agent):
    mention = make_mention(
        brand=brand, text="hello Northwind", author=make_author(username="x_99", name="✨🌙")
    )
    assert draft_for_mention(mention=mention, agent=agent).startswith("Hi @x_99, ")


def test_a_long_post_still_fits_280_characters(brand, agent):
    text = "@NorthwindHelp " + "this is a very long complaint about terrible service " * 5
    mention = make_mention(brand=brand, text=text, author=make_author(name="Maximiliana" * 3))
    draft = draft_for_mention(mention=mention, agent=agent)
    assert len(draft) <= DRAFT_MAX_LENGTH
    assert draft.endswith(" ^AM")


def test_customers_with_the_same_problem_do_not_all_get_the_same_text(brand, agent):
    drafts = {
        draft_for_mention(
            mention=make_mention(
                brand=brand,
                text="@NorthwindHelp my order never arrived, really disappointed",
                author=make_author(name="Robin"),
            ),
            agent=agent,
        )
        for _ in range(8)
    }
    assert len(drafts) >= 3


def test_their_words_drops_handles_and_links():
    assert their_words("@Brand @other my card was charged twice! https://t.co/x Help") == (
        "“my card was charged twice”"
    )


def test_the_brands_own_name_is_not_quoted_back_as_their_words(brand, agent):
    mention = make_mention(
        brand=brand,
        text="Wow Northwind Coffee. My grinder stopped working after 45 minutes. Ridiculous.",
        author=make_author(name="Amara Novak"),
    )
    draft = draft_for_mention(mention=mention, agent=agent)
    assert "“My grinder stopped working after 45 minutes”" in draft
    assert "Wow" not in draft


def test_their_words_is_the_clause_that_says_the_most():
    assert (
        their_words(
            "Have to say it, Northwind Coffee: the kettle is even better than I expected.",
            brand_name="Northwind Coffee",
        )
        == "“the kettle is even better than I expected”"
    )
    assert their_words("@NorthwindHelp the 10:30 train of 3.5 hours was late") == (
        "“the 10:30 train of 3.5 hours was late”"
    )
