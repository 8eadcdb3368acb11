"""Sentiment scoring with VADER, the lexicon tuned for social media text."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from listening.models import SentimentLabel

# VADER's authors' recommended thresholds on the compound score.
POSITIVE_THRESHOLD = 0.05
NEGATIVE_THRESHOLD = -0.05


@dataclass(frozen=True, slots=True)
class Sentiment:
    compound: float
    positive: float
    neutral: float
    negative: float
    label: str


@lru_cache(maxsize=1)
def sentiment_analyzer() -> SentimentIntensityAnalyzer:
    """VADER, loaded once per process (its lexicon takes ~0.1 s to load)."""
    return SentimentIntensityAnalyzer()


def sentiment_label(compound: float) -> str:
    if compound >= POSITIVE_THRESHOLD:
        return SentimentLabel.POSITIVE
    if compound <= NEGATIVE_THRESHOLD:
        return SentimentLabel.NEGATIVE
    return SentimentLabel.NEUTRAL


def sentiment_score(*, text: str) -> Sentiment:
    scores = sentiment_analyzer().polarity_scores(text)
    return Sentiment(
        compound=scores["compound"],
        positive=scores["pos"],
        neutral=scores["neu"],
        negative=scores["neg"],
        label=sentiment_label(scores["compound"]),
    )


def sentiment_score_many(*, texts: list[str]) -> list[Sentiment]:
    """Score a batch, each distinct text once (reposts and copy-paste complaints repeat)."""
    distinct = {text: sentiment_score(text=text) for text in dict.fromkeys(texts)}
    return [distinct[text] for text in texts]
