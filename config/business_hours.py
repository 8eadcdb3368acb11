"""The team's business hours, read from settings: a time zone, weekly opening windows, holidays.

Pure Python, no Django models: `config/settings.py` parses the three settings with
`business_calendar_parse` at startup, so a mistake stops the process with a message that
names it instead of breaking the report later. The report (`responses/services/analytics.py`)
turns the parsed calendar into SQL parameters and measures business-hours durations in
PostgreSQL.

BUSINESS_HOURS is a list of `days HH:MM-HH:MM` separated by `;` or `,`, e.g.
`mon-fri 09:00-17:30; sat 10:00-14:00`. Days are `mon` … `sun`, one or a range (`fri-mon`
wraps around the week); a day may have several windows (`mon-fri 09:00-12:30 13:30-17:30`).
Times are wall-clock times in BUSINESS_TIME_ZONE, from 00:00 to 24:00; a window ends after it
starts, so a night shift is written as two windows either side of midnight.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ImproperlyConfigured

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_GROUP = re.compile(
    r"^(?P<days>[a-z]{3}(?:-[a-z]{3})?)\s+(?P<windows>\d{2}:\d{2}-\d{2}:\d{2}(?:\s+\d{2}:\d{2}-\d{2}:\d{2})*)$"
)
_EXAMPLE = "e.g. 'mon-fri 09:00-17:30; sat 10:00-14:00'"


@dataclass(frozen=True, slots=True)
class OpeningWindow:
    """Open from `opens` to `closes` (wall-clock offsets from midnight) on ISO weekday
    `weekday` (1 = Monday … 7 = Sunday)."""

    weekday: int
    opens: timedelta
    closes: timedelta


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    time_zone: str
    windows: tuple[OpeningWindow, ...]
    holidays: tuple[date, ...]

    @property
    def windows_per_day(self) -> int:
        """The most windows any weekday has (at least 1): how many slots a day needs in SQL."""
        counts = [sum(w.weekday == day for w in self.windows) for day in range(1, 8)]
        return max(1, *counts)

    @property
    def weekly_seconds(self) -> float:
        return sum((w.closes - w.opens).total_seconds() for w in self.windows)

    def describe(self) -> str:
        """'Mon–Fri 09:00–17:30; Sat 10:00–14:00': runs of days with the same hours."""
        hours = {
            day: " and ".join(
                f"{_clock(w.opens)}–{_clock(w.closes)}"
                for w in sorted(self.windows, key=lambda w: w.opens)
                if w.weekday == day
            )
            for day in range(1, 8)
        }
        runs: list[list[int]] = []
        for day in range(1, 8):
            if hours[day] and runs and runs[-1][-1] == day - 1 and hours[runs[-1][0]] == hours[day]:
                runs[-1].append(day)
            elif hours[day]:
                runs.append([day])
        return (
            "; ".join(f"{_day_range(run[0], run[-1])} {hours[run[0]]}" for run in runs)
            or "never open"
        )


def business_calendar_parse(
    *, time_zone: str, hours: str, holidays: str | Iterable[str]
) -> BusinessCalendar:
    """The calendar the three settings describe; ImproperlyConfigured naming the mistake."""
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ImproperlyConfigured(
            f"BUSINESS_TIME_ZONE={time_zone!r} is not a time zone name: use an IANA name such "
            "as Europe/London or America/New_York."
        ) from exc
    if isinstance(holidays, str):
        holidays = holidays.split(",")
    return BusinessCalendar(
        time_zone=time_zone,
        windows=_windows(hours),
        holidays=tuple(sorted({_holiday(item) for item in holidays if item.strip()})),
    )


def _windows(hours: str) -> tuple[OpeningWindow, ...]:
    groups = [group.strip().lower() for group in re.split(r"[;,]", hours) if group.strip()]
    if not groups:
        raise ImproperlyConfigured(f"BUSINESS_HOURS is empty: list the opening hours, {_EXAMPLE}.")
    windows: list[OpeningWindow] = []
    for group in groups:
        match = _GROUP.match(group)
        if not match:
            raise ImproperlyConfigured(
                f"BUSINESS_HOURS: {group!r} is not 'days HH:MM-HH:MM' ({_EXAMPLE})."
            )
        for weekday in _days(match["days"], group):
            for span in match["windows"].split():
                opens, closes = (_time(part, group) for part in span.split("-"))
                if closes <= opens:
                    raise ImproperlyConfigured(
                        f"BUSINESS_HOURS: in {group!r}, {span} ends before it starts; a night "
                        "shift is two windows, e.g. 'mon-fri 22:00-24:00; tue-sat 00:00-06:00'."
                    )
                windows.append(OpeningWindow(weekday=weekday, opens=opens, closes=closes))
    _refuse_overlaps(windows)
    return tuple(sorted(windows, key=lambda w: (w.weekday, w.opens)))


def _days(spec: str, group: str) -> list[int]:
    names = spec.split("-")
    unknown = [name for name in names if name not in WEEKDAYS]
    if unknown:
        raise ImproperlyConfigured(
            f"BUSINESS_HOURS: {unknown[0]!r} in {group!r} is not a day: use "
            + ", ".join(WEEKDAYS)
            + "."
        )
    first = WEEKDAYS.index(names[0])
    last = WEEKDAYS.index(names[-1])
    span = (last - first) % 7
    return [(first + offset) % 7 + 1 for offset in range(span + 1)]


def _time(text: str, group: str) -> timedelta:
    hours, minutes = (int(part) for part in text.split(":"))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise ImproperlyConfigured(
            f"BUSINESS_HOURS: {text} in {group!r} is not a time between 00:00 and 24:00."
        )
    return timedelta(hours=hours, minutes=minutes)


def _refuse_overlaps(windows: list[OpeningWindow]) -> None:
    ordered = sorted(windows, key=lambda w: (w.weekday, w.opens))
    for before, after in zip(ordered, ordered[1:], strict=False):
        if before.weekday == after.weekday and after.opens < before.closes:
            raise ImproperlyConfigured(
                f"BUSINESS_HOURS: two windows overlap on {WEEKDAYS[before.weekday - 1]} "
                f"({_clock(before.opens)}-{_clock(before.closes)} and "
                f"{_clock(after.opens)}-{_clock(after.closes)})."
            )


def _holiday(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"BUSINESS_HOLIDAYS: {text.strip()!r} is not a date: list days as YYYY-MM-DD, "
            "separated by commas, e.g. 2026-12-25,2026-12-26."
        ) from exc


def _day_range(first: int, last: int) -> str:
    names = (WEEKDAYS[first - 1].title(), WEEKDAYS[last - 1].title())
    return names[0] if first == last else f"{names[0]}–{names[1]}"


def _clock(offset: timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
