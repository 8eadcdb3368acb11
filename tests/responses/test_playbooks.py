"""Playbooks: the team's plan for each kind of post, and personalised drafts from it."""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime

import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from listening.models import Author, Brand, Mention, Platform
from listening.services.sentiment import sentiment_score
from responses.models import Playbook
from responses.services.drafts import (
    content_words,
    drafts_for_mention,
    playbook_for_mention,
)
from tests.conftest import shared_data_file
from tests.factories import make_author, make_mention

pytestmark = pytest.mark.django_db

STARTER = {
    "Outage",
    "Billing",
    "Late delivery",
    "Account locked",
    "Product defect",
    "Feature request",
    "Praise",
    "Question",
    "Complaint",
    "Other",
}


def test_earshot_ships_a_starter_set_with_guidance_and_several_templates():
    playbooks = {p.name: p for p in Playbook.objects.prefetch_related("templates")}
    assert set(playbooks) == STARTER
    for playbook in playbooks.values():
        replies = [t for t in playbook.templates.all() if not t.is_dm_invite]
        assert playbook.guidance
        assert len(replies) >= 2, playbook.name
        assert all("{name}" in t.text and "{their_words}" in t.text for t in replies)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@NorthwindHelp the app is down again, nothing loads. Awful", "Outage"),
        ("@NorthwindHelp I was charged twice for one latte, terrible", "Billing"),
        (
            "@NorthwindHelp my order still hasn't arrived after a week, so frustrating",
            "Late delivery",
        ),
        (
            "@NorthwindHelp locked out of my account and the reset email never comes, useless",
            "Account locked",
        ),
        ("@NorthwindHelp my new grinder is faulty and leaks everywhere, bad", "Product defect"),
        ("@NorthwindHelp I wish you would add oat milk to the app menu", "Feature request"),
        ("Northwind Coffee's new roast is amazing, best cup all week!", "Praise"),
        ("@NorthwindHelp do you ship to Norway?", "Question"),
        ("@NorthwindHelp the barista was rude to me today, awful experience", "Complaint"),
        ("@NorthwindHelp saw your van downtown today", "Other"),
    ],
)
def test_each_kind_of_post_gets_its_playbook(brand, text, expected):
    mention = make_mention(brand=brand, text=text)
    assert playbook_for_mention(mention).name == expected


def test_an_admins_changes_to_the_playbooks_take_effect(brand):
    mention = make_mention(brand=brand, text="@NorthwindHelp the app is down again. Awful")
    Playbook.objects.filter(name="Outage").update(is_active=False)
    assert playbook_for_mention(mention).name == "Complaint"
    custom = Playbook.objects.create(
        name="App", order=1, match_phrases="app", guidance="Send them the app status page."
    )
    assert playbook_for_mention(mention) == custom


def test_alternatives_are_different_and_all_personal(brand, agent):
    brand.dm_link = "https://x.com/messages/compose?recipient_id=42"
    brand.save()
    mention = make_mention(
        brand=brand,
        text="@NorthwindHelp my order still hasn't arrived after a week, so frustrating",
        author=make_author(username="robin_b", name="Robin Black"),
    )

    drafts = drafts_for_mention(mention=mention, agent=agent)

    assert len(drafts) == 3
    assert len({d.text for d in drafts}) == 3
    for draft in drafts:
        assert draft.playbook.name == "Late delivery"
        assert draft.text.startswith("Hi Robin, ")
        assert "“my order still hasn't arrived after a week”" in draft.text
        assert "https://x.com/messages/compose?recipient_id=42" in draft.text
        assert draft.text.endswith("^AM")
        assert "  " not in draft.text


def test_without_a_dm_link_the_sentence_stays_clean(brand, agent):
    mention = make_mention(brand=brand, text="@NorthwindHelp I was charged twice, terrible")
    for draft in drafts_for_mention(mention=mention, agent=agent):
        assert "{dm_link}" not in draft.text and "  " not in draft.text and " ," not in draft.text


def test_an_angry_post_is_answered_calmly_in_their_calmer_words(brand, agent):
    mention = make_mention(
        brand=brand,
        text="@NorthwindHelp worst, most useless, pathetic service ever. my refund for order 4411",
        author=make_author(name="Dana"),
    )

    drafts = drafts_for_mention(mention=mention, agent=agent)

    assert drafts
    for draft in drafts:
        assert sentiment_score(text=draft.text).compound >= 0
        assert "pathetic" not in draft.text


# --- over every customer tweet of the TWCS sample -------------------------------------------

_WORD = re.compile(r"[^\W\d_][\w'’-]*")


def _twcs_mentions(brand: Brand) -> list[Mention]:
    """Every customer tweet as an (unsaved) mention, scored as Earshot scores them."""
    with open(shared_data_file("twcs_dev.csv"), newline="", encoding="utf-8") as f:
        rows = [row for row in csv.DictReader(f) if row["inbound"] == "True"]
    mentions = []
    for row in rows:
        score = sentiment_score(text=row["text"])
        mentions.append(
            Mention(
                platform=Platform.X,
                external_id=row["tweet_id"],
                brand=brand,
                author=Author(
                    platform=Platform.X, external_id=row["author_id"], username=row["author_id"]
                ),
                text=row["text"],
                posted_at=datetime.now(UTC),
                urgency_at=datetime.now(UTC),
                sentiment_compound=score.compound,
                sentiment_positive=score.positive,
                sentiment_neutral=score.neutral,
                sentiment_negative=score.negative,
                sentiment_label=score.label,
            )
        )
    return mentions


def test_every_customer_tweet_of_the_dataset_gets_a_personal_fitting_calm_draft(brand, agent):
    playbooks = list(Playbook.objects.filter(is_active=True).prefetch_related("templates"))
    vader = SentimentIntensityAnalyzer()
    mentions = _twcs_mentions(brand)
    failures = []
    wordless = 0
    for mention in mentions:
        playbook = playbook_for_mention(mention, playbooks)
        drafts = drafts_for_mention(mention=mention, agent=agent, count=1, playbook=playbook)
        draft = drafts[0].text if drafts else ""
        theirs = {w.lower() for w in content_words(mention.text)}
        quoted = re.findall(r"“([^”]*)”", draft)
        problems = [
            "no name or handle" if f"@{mention.author.username}" not in draft else "",
            # Some posts are only a link or "I did": there is nothing of theirs to quote.
            "none of their words"
            if theirs and (not quoted or not {w.lower() for w in _WORD.findall(quoted[0])} & theirs)
            else "",
            "too long" if len(draft) > mention.reply_max_length else "",
            "negative"
            if mention.is_negative and vader.polarity_scores(draft)["compound"] < 0
            else "",
        ]
        if any(problems):
            failures.append((mention.text, draft, [p for p in problems if p]))
        wordless += not theirs
    assert len(mentions) > 1000
    assert wordless < len(mentions) * 0.05
    assert failures == []


def test_a_template_with_an_unknown_variable_is_refused_in_admin(client, admin_user):
    admin_user.is_staff = admin_user.is_superuser = True
    admin_user.save()
    client.force_login(admin_user)
    playbook = Playbook.objects.get(name="Praise")
    templates = list(playbook.templates.all())
    data = {
        "name": "Praise",
        "order": 70,
        "is_active": "on",
        "guidance": playbook.guidance,
        "match_phrases": "",
        "match_sentiment": "positive",
        "templates-TOTAL_FORMS": len(templates) + 1,
        "templates-INITIAL_FORMS": len(templates),
        "templates-MIN_NUM_FORMS": 0,
        "templates-MAX_NUM_FORMS": 1000,
        **{f"templates-{n}-id": t.pk for n, t in enumerate(templates)},
        **{f"templates-{n}-text": t.text for n, t in enumerate(templates)},
        **{f"templates-{n}-playbook": playbook.pk for n in range(len(templates) + 1)},
        f"templates-{len(templates)}-text": "Hi {nmae}, thanks! ^{agent_initials}",
    }

    response = client.post(f"/admin/responses/playbook/{playbook.pk}/change/", data)

    assert response.status_code == 200
    assert "Unknown variable {nmae}" in response.content.decode()
    assert playbook.templates.count() == len(templates)
