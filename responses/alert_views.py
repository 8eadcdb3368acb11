"""The alert history: every alert Earshot raised, how it was delivered, what was held back."""

from __future__ import annotations

import logging

from django import forms
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render

from config.http import HtmxHttpRequest
from config.roles import SUPERVISOR, role_required
from responses.models import AlertKind
from responses.services.alerts import alert_history

logger = logging.getLogger(__name__)
ALERTS_PER_PAGE = 50


class AlertFilterForm(forms.Form):
    kind = forms.ChoiceField(
        required=False, label="Kind", choices=[("", "Every kind"), *AlertKind.choices]
    )


@role_required(SUPERVISOR)
def alerts(request: HtmxHttpRequest) -> HttpResponse:
    form = AlertFilterForm(request.GET or None)
    kind = ""
    if form.is_bound and not form.is_valid():
        logger.info("alert history: filter refused: %s", form.errors.as_json())
    elif form.is_bound:
        kind = form.cleaned_data["kind"]
    page = Paginator(alert_history(kind=kind), ALERTS_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "responses/alerts.html",
        {"form": form, "page": page, "kind": kind},
    )
