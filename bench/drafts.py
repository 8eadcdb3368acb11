"""The drafts benchmark: how fast drafts are made, and how much they sound like form letters.

Over every customer tweet of ../shared/data/twcs_dev.csv:

- drafts per second: Earshot's first draft for each tweet (playbook matched, personalised);
- sameness: the share of texts that have a near-identical twin (word-shingle similarity at
  the form-letter detector's threshold, 0.85) among the texts of the same playbook category,
  for Earshot's drafts and, beside it, for the real brand replies those tweets received. The
  goal: Earshot's drafts are less alike than the brands' own replies.

Everything comes from the same file in the same run; the data lives outside the project.
"""

from __future__ import annotations

import csv
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.report import Figure, Goal

REPO_ROOT = Path(__file__).resolve().parent.parent
DATASET = REPO_ROOT.parent / "shared" / "data" / "twcs_dev.csv"


def run(*, progress: Any) -> dict[str, Any]:
    from django.contrib.auth.models import User

    from listening.models import Author, Brand, Mention, Platform
    from listening.services.sentiment import sentiment_score
    from responses.models import Playbook
    from responses.services.drafts import drafts_for_mention, playbook_for_mention

    if not DATASET.exists():
        progress(f"drafts: skipped, {DATASET} is missing (it lives outside the project)")
        return {"benchmark": "drafts", "skipped": f"{DATASET} is missing"}
    with DATASET.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    by_id = {row["tweet_id"]: row for row in rows}
    customers = [row for row in rows if row["inbound"] == "True"]
    brand = Brand(name="Bench Brand")
    agent = User(username="bench", first_name="Bea", last_name="Nch")
    playbooks = list(Playbook.objects.filter(is_active=True).prefetch_related("templates"))
    mentions = []
    for row in customers:
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
    progress(f"drafts: {len(mentions):,} customer tweets")
    categories = [playbook_for_mention(m, playbooks) for m in mentions]
    start = time.perf_counter()
    drafts = [
        drafts_for_mention(mention=m, agent=agent, count=1, playbook=p)
        for m, p in zip(mentions, categories, strict=True)
    ]
    seconds = time.perf_counter() - start
    ours: dict[str, list[str]] = defaultdict(list)
    theirs: dict[str, list[str]] = defaultdict(list)
    category_of = {}
    for mention, playbook, made in zip(mentions, categories, drafts, strict=True):
        name = playbook.name if playbook else "(none)"
        category_of[mention.external_id] = name
        if made:
            ours[name].append(made[0].text)
    for row in rows:
        answered = by_id.get(row["in_response_to_tweet_id"])
        if row["inbound"] == "False" and answered is not None and answered["inbound"] == "True":
            theirs[category_of[answered["tweet_id"]]].append(row["text"])
    return {
        "benchmark": "drafts",
        "tweets": len(mentions),
        "drafts_per_second": round(len(mentions) / seconds, 1),
        "sameness_earshot": round(sameness(ours), 4),
        "sameness_brands": round(sameness(theirs), 4),
        "earshot_texts": sum(map(len, ours.values())),
        "brand_texts": sum(map(len, theirs.values())),
    }


def sameness(groups: dict[str, list[str]]) -> float:
    """The share of texts with a near-identical twin in their own group."""
    from responses.services.form_letters import DEFAULT_THRESHOLD, jaccard, shingles

    total = twinned = 0
    for texts in groups.values():
        sets = [shingles(text) for text in texts]
        for i, mine in enumerate(sets):
            total += 1
            twinned += any(
                jaccard(mine, other) >= DEFAULT_THRESHOLD for j, other in enumerate(sets) if j != i
            )
    return twinned / total if total else 0.0


def figures(results: dict[str, Any]) -> list[Figure]:
    if "skipped" in results:
        return []
    return [
        Figure("drafts: drafts per second", results["drafts_per_second"], "/s"),
        Figure("drafts: sameness, real brand replies", 100 * results["sameness_brands"], "%"),
        Figure(
            "drafts: sameness, Earshot's drafts",
            100 * results["sameness_earshot"],
            "%",
            Goal(at_most=100 * results["sameness_brands"]),
        ),
    ]


def notes(results: dict[str, Any]) -> list[str]:
    if "skipped" in results:
        return [f"drafts: {results['skipped']}"]
    return [
        f"drafts: {results['tweets']:,} customer tweets of the TWCS sample; sameness is the share "
        f"of texts with a near-identical twin (shingle similarity >= 0.85) in the same playbook "
        f"category: {results['earshot_texts']:,} Earshot drafts, {results['brand_texts']:,} "
        f"real brand replies."
    ]
