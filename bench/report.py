"""The one table every benchmark's figures end up in: figure, value, goal, met?

A goal is reported, never enforced: a missed one says by how much, and the run still succeeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Goal:
    at_most: float | None = None
    at_least: float | None = None

    def met(self, value: float) -> bool:
        if self.at_most is not None:
            return value <= self.at_most
        return self.at_least is None or value >= self.at_least

    @property
    def target(self) -> float:
        target = self.at_most if self.at_most is not None else self.at_least
        assert target is not None
        return target

    def text(self, unit: str) -> str:
        sign = "<=" if self.at_most is not None else ">="
        return f"{sign} {_number(self.target, unit)}"

    def miss(self, value: float, unit: str) -> str:
        """'over by 12.3 ms (25%)': how far a missed goal is; empty when it is met."""
        if self.met(value):
            return ""
        gap = abs(value - self.target)
        side = "over" if self.at_most is not None else "short"
        share = f" ({gap / self.target:.0%})" if self.target else ""
        return f"{side} by {_number(gap, unit)}{share}"


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str = ""
    goal: Goal | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "figure": self.name,
            "value": round(self.value, 4),
            "unit": self.unit,
            "goal": self.goal.text(self.unit) if self.goal else None,
            "met": self.goal.met(self.value) if self.goal else None,
            "miss": self.goal.miss(self.value, self.unit) if self.goal else None,
        }


def _number(value: float, unit: str) -> str:
    if unit == "ms":
        text = f"{value:,.1f}"
    elif unit == "x":
        text = f"{value:.2f}"
    elif float(value).is_integer() or abs(value) >= 100:
        text = f"{value:,.0f}"
    else:
        text = f"{value:,.1f}"
    return f"{text} {unit}".rstrip() if unit not in ("", "x") else text


def table(figures: list[Figure]) -> str:
    """Aligned rows; the 'met?' column says how far off a missed goal is."""
    rows = [("figure", "value", "goal", "met?")]
    for figure in figures:
        if figure.goal is None:
            met = ""
        elif figure.goal.met(figure.value):
            met = "yes"
        else:
            met = "NO, " + figure.goal.miss(figure.value, figure.unit)
        goal = figure.goal.text(figure.unit) if figure.goal else ""
        rows.append((figure.name, _number(figure.value, figure.unit), goal, met))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    return "\n".join(
        f"{name:<{widths[0]}}  {value:>{widths[1]}}  {goal:<{widths[2]}}  {met}".rstrip()
        for name, value, goal, met in rows
    )


def machine_line(machine: dict[str, Any]) -> str:
    return (
        f"Machine: {machine['cpu']}, {machine['cores']} cores ({machine['usable_cores']} usable), "
        f"{machine['python']}, PostgreSQL {machine['postgresql']}"
    )


def percentile(values: list[float], percent: int) -> float:
    """Nearest-rank percentile: always a value that was actually measured."""
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]
