"""How often each keyword is polled, so that no budget is exceeded and each gets its share.

Keywords that share a credential share its budget. Fetching the posts themselves costs what
it costs whatever the interval (one call per page of 100); what is left is shared out as
polls, by weight: busier keywords are polled more often (weight grows with the square root
of their volume, so a busy keyword cannot starve a quiet one), and no keyword is polled
more often than its admin asked. Budget a keyword does not use goes to the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from listening.services.budgets import BudgetSpec

# Kept back from polling: the brand's own-post reads, backfill, a retry after an error.
RESERVE = 0.1
POSTS_PER_PAGE = 100


@dataclass(frozen=True, slots=True)
class KeywordLoad:
    keyword_id: int
    # The admin's setting: never poll more often than this.
    min_interval_seconds: float
    volume_per_hour: float

    @property
    def weight(self) -> float:
        return math.sqrt(1.0 + max(self.volume_per_hour, 0.0))


def plan_poll_intervals(loads: list[KeywordLoad], budget: BudgetSpec) -> dict[int, float]:
    """Seconds between polls for each keyword sharing `budget`."""
    if not loads:
        return {}
    usable = budget.calls_per_second * (1 - RESERVE)
    # Every post has to be fetched once, in pages: that part does not depend on intervals.
    paging = sum(max(load.volume_per_hour, 0.0) for load in loads) / 3600 / POSTS_PER_PAGE
    poll_rate = max(usable - paging, usable * 0.05)
    intervals: dict[int, float] = {}
    sharing = list(loads)
    # Water-filling: a keyword whose share exceeds what its own minimum interval allows
    # takes only that; the rest is shared again among the others.
    while sharing:
        total_weight = sum(load.weight for load in sharing)
        capped = [
            load
            for load in sharing
            if poll_rate * load.weight / total_weight > 1 / load.min_interval_seconds
        ]
        if not capped:
            for load in sharing:
                intervals[load.keyword_id] = total_weight / (poll_rate * load.weight)
            break
        for load in capped:
            intervals[load.keyword_id] = load.min_interval_seconds
            poll_rate -= 1 / load.min_interval_seconds
            sharing.remove(load)
    return intervals


def worst_calls_per_second(intervals: dict[int, float], loads: list[KeywordLoad]) -> float:
    """The call rate a plan leads to: polls plus the pages their posts fill."""
    polls = sum(1 / seconds for seconds in intervals.values())
    paging = sum(max(load.volume_per_hour, 0.0) for load in loads) / 3600 / POSTS_PER_PAGE
    return polls + paging
