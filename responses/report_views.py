"""The supervisors' report: the response-time dashboard, its CSV export, its definitions.

Each view validates the period with `ReportPeriodForm`, asks `responses.services.analytics`
for the figures and renders them; nothing here computes a figure.
"""

from __future__ import annotations

import csv
import logging

from django.http import HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from config.http import HtmxHttpRequest
from config.roles import SUPERVISOR, role_required
from responses.forms import ReportPeriodForm
from responses.services.analytics import (
    CSV_COLUMNS,
    Period,
    ReportInputError,
    dashboard,
    default_period,
    definitions,
    mention_rows,
    report_period,
)

logger = logging.getLogger(__name__)

PRESET_DAYS = (7, 30, 90)


def _period_or_errors(request: HtmxHttpRequest) -> tuple[ReportPeriodForm, Period | None]:
    """The period the query string asks for (the last 7 days when it names none)."""
    if "since" in request.GET or "until" in request.GET:
        data = request.GET
    else:
        last_week = default_period()
        data = {"since": last_week.first_day, "until": last_week.last_day}
    form = ReportPeriodForm(data)
    period = None
    if form.is_valid():
        try:
            period = report_period(
                since=form.cleaned_data["since"], until=form.cleaned_data["until"]
            )
        except ReportInputError as exc:
            form.add_error(None, str(exc))
    if period is None:
        logger.info(
            "report: refused the period since=%r until=%r: %s",
            request.GET.get("since"),
            request.GET.get("until"),
            _error_text(form),
        )
    return form, period


def _error_text(form: ReportPeriodForm) -> str:
    return " ".join(
        f"{'' if name == '__all__' else name + ': '}{message}"
        for name, messages in form.errors.items()
        for message in messages
    )


def _presets() -> list[tuple[str, Period]]:
    now = timezone.now()
    return [(f"Last {days} days", default_period(now=now, days=days)) for days in PRESET_DAYS]


@role_required(SUPERVISOR)
def report(request: HtmxHttpRequest) -> HttpResponse:
    form, period = _period_or_errors(request)
    context = {"form": form, "presets": _presets()}
    if period is None:
        return render(request, "responses/report.html", context, status=400)
    context["report"] = dashboard(period=period)
    return render(request, "responses/report.html", context)


class _Echo:
    """A file-like object whose write returns the line: csv.writer for a streamed response."""

    def write(self, value: str) -> str:
        return value


@role_required(SUPERVISOR)
def report_csv(request: HtmxHttpRequest) -> HttpResponse:
    form, period = _period_or_errors(request)
    if period is None:
        return HttpResponseBadRequest(
            f"No export: {_error_text(form)}", content_type="text/plain; charset=utf-8"
        )
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in mention_rows(period=period)),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = (
        f'attachment; filename="earshot-mentions-{period.first_day}-to-{period.last_day}.csv"'
    )
    return response


@role_required(SUPERVISOR)
def report_definitions(request: HtmxHttpRequest) -> HttpResponse:
    return render(
        request,
        "responses/definitions.html",
        {"definitions": definitions(), "csv_columns": CSV_COLUMNS},
    )
