from __future__ import annotations

import json
import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from responses.forms import ReportPeriodForm
from responses.services.analytics import (
    Figures,
    Period,
    ReportInputError,
    dashboard,
    default_period,
    report_period,
)

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Print the report's figures for a period (default: the last 7 days), the same as the "
        "report page shows; --json prints all of them as JSON."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", help="first day of the period, YYYY-MM-DD")
        parser.add_argument("--until", help="last day of the period (included), YYYY-MM-DD")
        parser.add_argument("--json", action="store_true", help="print every figure as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        period = self._period(options["since"], options["until"])
        figures = dashboard(period=period)
        if options["json"]:
            self.stdout.write(json.dumps(figures.as_json(), indent=2, ensure_ascii=False))
            return
        self.stdout.write(
            f"{period.first_day} to {period.last_day} ({figures.time_zone}), "
            f"against {figures.previous_period.first_day} to {figures.previous_period.last_day}"
        )
        self.stdout.write(f"  this period: {_summary(figures.current)}")
        self.stdout.write(f"  previous period: {_summary(figures.previous)}")
        self.stdout.write(
            f"  backlog: {figures.backlog.open} open, the oldest waiting "
            f"{_text(figures.backlog.oldest_age)}"
        )
        if figures.has_removed:
            for label, removed, all_told in (
                ("this period", figures.removed, figures.all_told),
                ("previous period", figures.previous_removed, figures.previous_all_told),
            ):
                self.stdout.write(
                    f"  removed by retention, {label}: {removed.mentions} mentions, "
                    f"{removed.answered} answered, mean first response "
                    f"{_text(removed.mean_first_response)}; all told {all_told.mentions} "
                    f"mentions, {all_told.answered} answered"
                )

    def _period(self, since: str | None, until: str | None) -> Period:
        """The period asked for, checked as the report page checks it; else the last week."""
        if since is None and until is None:
            return default_period()
        if since is None or until is None:
            raise CommandError("Give both --since and --until (YYYY-MM-DD), or neither.")
        form = ReportPeriodForm({"since": since, "until": until})
        if not form.is_valid():
            problems = []
            for name, messages in form.errors.items():
                for message in messages:
                    if name == "__all__":
                        problems.append(message)
                    else:
                        given = since if name == "since" else until
                        problems.append(f"--{name} {given!r}: {message} Use YYYY-MM-DD.")
            logger.info("report: refused the period %r to %r: %s", since, until, problems)
            raise CommandError(" ".join(problems))
        try:
            return report_period(since=form.cleaned_data["since"], until=form.cleaned_data["until"])
        except ReportInputError as exc:
            logger.info("report: refused the period %r to %r: %s", since, until, exc)
            raise CommandError(str(exc)) from exc


def _summary(figures: Figures) -> str:
    rate = "—" if figures.response_rate is None else f"{figures.response_rate:.0%}"
    first = figures.first_response
    return (
        f"{figures.mentions} mentions, {figures.answered} answered ({rate}), first response "
        f"median {_text(first.median)}, p90 {_text(first.p90)}, mean {_text(first.mean)}; "
        f"{figures.sla_breaches} SLA breaches"
    )


def _text(value: object) -> str:
    return "—" if value is None else str(value)
