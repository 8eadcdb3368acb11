from __future__ import annotations

from datetime import timedelta

import pytest

from listening.services.priority import PriorityFacts, mention_priority


def facts(**overrides) -> PriorityFacts:
    base = {
        "compound": 0.0,
        "label": "neutral",
        "followers": 50,
        "text": "hello",
        "earlier_complaints_this_week": 0,
        "earlier_positive": 0,
    }
    return PriorityFacts(**{**base, **overrides})


def test_a_plain_mention_has_no_head_start_and_no_reasons():
    assert mention_priority(facts()) == mention_priority(facts(followers=999))
    priority = mention_priority(facts())
    assert (priority.head_start, priority.reasons) == (timedelta(0), [])


def test_each_factor_adds_its_head_start_and_says_so():
    priority = mention_priority(
        facts(
            compound=-0.82,
            label="negative",
            followers=48_000,
            text="Why is my order late again?",
            earlier_complaints_this_week=2,
        )
    )
    assert priority.reasons == [
        "negative −0.82",
        "48k followers",
        "asks a question",
        "third complaint this week",
    ]
    # 60 × 0.82 + 10 × log10(48,000) + 15 + 2 × 20 minutes
    assert priority.head_start.total_seconds() / 60 == pytest.approx(
        49.2 + 46.81 + 15 + 40, abs=0.01
    )


def test_repeat_complaints_are_capped_and_loyal_advocates_noticed():
    many = mention_priority(facts(label="negative", compound=-0.5, earlier_complaints_this_week=9))
    assert many.reasons[-1] == "10th complaint this week"
    assert many.head_start == timedelta(minutes=30 + 60)
    loyal = mention_priority(facts(label="positive", compound=0.9, earlier_positive=5))
    assert loyal.reasons == ["loyal: 5 positive mentions"]
    assert loyal.head_start == timedelta(minutes=10)
    grumbling_fan = mention_priority(facts(earlier_complaints_this_week=1, earlier_positive=5))
    assert grumbling_fan.reasons == ["1 complaint this week"]


@pytest.mark.parametrize(
    ("followers", "shown"), [(1_000, "1k"), (1_234_567, "1.2M"), (2_000_000, "2M")]
)
def test_reach_is_shown_compactly(followers, shown):
    assert mention_priority(facts(followers=followers)).reasons == [f"{shown} followers"]


def test_reach_weighs_most_on_a_complaint():
    complaint = mention_priority(facts(label="negative", compound=-0.1, followers=1_000_000))
    praise = mention_priority(facts(label="positive", compound=0.9, followers=1_000_000))
    assert complaint.head_start == timedelta(minutes=6 + 60)
    assert praise.head_start == timedelta(minutes=18)
    assert praise.reasons == ["1M followers"]
