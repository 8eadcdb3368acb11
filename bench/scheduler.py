"""The scheduler benchmark: 200 keywords on one X app's search budget (450 calls / 15 min).

Earshot's own planner (`plan_poll_intervals`) sets each keyword's interval from its volume;
this simulates three hours of it: posts arrive at random at each keyword's rate, each poll
costs one call plus one per further 100 posts waiting, and we measure each keyword's worst
staleness (the longest any post waited to be fetched) and the calls made in each 15-minute
window against the budget. No database or network: the plan is pure, so the simulation is
exact and repeatable for a seed.
"""

from __future__ import annotations

import math
import random
import statistics
from typing import Any

from bench.report import Figure, Goal
from listening.services.budgets import PLATFORM_LIMITS, BudgetSpec
from listening.services.scheduling import POSTS_PER_PAGE, KeywordLoad, plan_poll_intervals

KEYWORDS = 200
HOURS = 3
MIN_INTERVAL_SECONDS = 30
X_LIMIT, X_WINDOW = PLATFORM_LIMITS["x"]


def _volumes(rng: random.Random) -> list[float]:
    """Posts an hour: most keywords quiet, some steady, a few busy (a brand name in a crisis)."""
    volumes = []
    for _ in range(KEYWORDS):
        kind = rng.random()
        if kind < 0.6:
            volumes.append(rng.uniform(0, 2))
        elif kind < 0.9:
            volumes.append(rng.uniform(5, 50))
        else:
            volumes.append(rng.uniform(100, 2000))
    return volumes


def run(*, seed: int, progress: Any) -> dict[str, Any]:
    rng = random.Random(seed)
    volumes = _volumes(rng)
    loads = [KeywordLoad(n, MIN_INTERVAL_SECONDS, volume) for n, volume in enumerate(volumes)]
    budget = BudgetSpec("x-search:bench", X_LIMIT, X_WINDOW)
    plan = plan_poll_intervals(loads, budget)
    progress(f"scheduler: {KEYWORDS} keywords, {HOURS} h simulated on one X app budget")
    horizon = HOURS * 3600.0
    windows = [0] * math.ceil(horizon / X_WINDOW)
    worst: list[float] = []
    for load in loads:
        interval = plan[load.keyword_id]
        # Posts: a Poisson process at the keyword's rate.
        arrivals, t = (
            [],
            rng.expovariate(load.volume_per_hour / 3600) if load.volume_per_hour else horizon,
        )
        while t < horizon:
            arrivals.append(t)
            t += rng.expovariate(load.volume_per_hour / 3600)
        poll, waiting_from, longest = rng.uniform(0, interval), 0, 0.0
        while poll < horizon:
            fetched = [a for a in arrivals[waiting_from:] if a <= poll]
            if fetched:
                longest = max(longest, poll - fetched[0])
            waiting_from += len(fetched)
            calls = 1 + max(0, math.ceil(len(fetched) / POSTS_PER_PAGE) - 1)
            windows[int(poll // X_WINDOW)] += calls
            poll += interval
        worst.append(longest)
    busiest = max(windows)
    return {
        "benchmark": "scheduler",
        "keywords": KEYWORDS,
        "hours": HOURS,
        "seed": seed,
        "budget": {"limit": X_LIMIT, "window_seconds": X_WINDOW},
        "intervals_seconds": {
            "min": round(min(plan.values()), 1),
            "median": round(statistics.median(plan.values()), 1),
            "max": round(max(plan.values()), 1),
        },
        "worst_staleness_seconds": [round(value, 1) for value in worst],
        "worst_staleness_max": round(max(worst), 1),
        "worst_staleness_median": round(statistics.median(worst), 1),
        "busiest_window_calls": busiest,
        "busiest_keywords": sorted(
            (
                {
                    "volume_per_hour": round(volumes[n], 1),
                    "interval_seconds": round(plan[n], 1),
                    "worst_staleness_seconds": round(worst[n], 1),
                }
                for n in range(KEYWORDS)
            ),
            key=lambda row: -row["volume_per_hour"],
        )[:5],
    }


def figures(results: dict[str, Any]) -> list[Figure]:
    return [
        Figure(
            "scheduler: calls in the busiest 15-min window",
            results["busiest_window_calls"],
            "",
            Goal(at_most=results["budget"]["limit"]),
        ),
        Figure(
            "scheduler: worst staleness, median keyword", results["worst_staleness_median"], "s"
        ),
        Figure("scheduler: worst staleness, worst keyword", results["worst_staleness_max"], "s"),
    ]


def notes(results: dict[str, Any]) -> list[str]:
    intervals = results["intervals_seconds"]
    lines = [
        f"scheduler: {results['keywords']} keywords share {results['budget']['limit']} calls / "
        f"{results['budget']['window_seconds'] // 60} min; poll intervals {intervals['min']}–"
        f"{intervals['max']} s (median {intervals['median']} s). Busiest keywords:"
    ]
    lines += [
        f"  {row['volume_per_hour']:>8.1f} posts/h → every {row['interval_seconds']:>6.1f} s, "
        f"worst staleness {row['worst_staleness_seconds']:.1f} s"
        for row in results["busiest_keywords"]
    ]
    return lines
