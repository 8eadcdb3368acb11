"""Sentiment scoring with VADER, the lexicon tuned for social media text."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from listening.models import SentimentLabel

# VADER's authors' recommended thresholds on the compound score.
POSITIVE_THRESHOLD = 0.05
NEGATIVE_THRESHOLD = -0.05
# Distinct texts whose scores a process remembers. Reposts, copy-paste complaints and
# templated posts repeat the same words across pages and polls, and VADER always gives the
# same words the same score. Each entry keeps its text alive: 250 to 600 bytes, so at most
# about 2.5 MB per worker child (the worker's memory goal has little room, BENCHMARKS.md).
SCORE_CACHE_SIZE = 4_096


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


@lru_cache(maxsize=SCORE_CACHE_SIZE)
def _score(text: str) -> Sentiment:
    scores = sentiment_analyzer().polarity_scores(text)
    return Sentiment(
        compound=scores["compound"],
        positive=scores["pos"],
        neutral=scores["neu"],
        negative=scores["neg"],
        label=sentiment_label(scores["compound"]),
    )


def sentiment_score(*, text: str) -> Sentiment:
    """VADER's scores for `text`; a text scored recently in this process is not scored again."""
    return _score(text)


def sentiment_score_many(*, texts: list[str]) -> list[Sentiment]:
    """Score a batch, each distinct text once (reposts and copy-paste complaints repeat)."""
    return [_score(text) for text in texts]


def sentiment_cache_clear() -> None:
    """Forget every remembered score (the benchmark starts each ingest from a cold cache)."""
    _score.cache_clear()


def sentiment_texts_scored() -> int:
    """How many texts VADER actually scored since the cache was last cleared."""
    return _score.cache_info().misses
