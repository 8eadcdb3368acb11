from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize

from config.http import HtmxHttpRequest
from config.roles import ADMIN, SUPERVISOR, role_required
from listening.forms import KeywordStudioForm
from listening.models import TrackedKeyword
from listening.selectors import account_health, keyword_health
from listening.services.keywords import keyword_create, keyword_update


@role_required(ADMIN)
def keyword_list(request: HtmxHttpRequest) -> HttpResponse:
    form = KeywordStudioForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        keyword = keyword_create(
            brand=form.cleaned_data["brand"],
            query=form.cleaned_data["query"],
            poll_interval_seconds=form.cleaned_data["poll_interval_seconds"],
            is_active=form.cleaned_data["is_active"],
            source=form.cleaned_data["source"],
            team=form.cleaned_data["team"],
        )
        messages.success(request, f"Now listening for “{keyword.query}”.")
        return redirect("listening:keywords")
    rows = keyword_health()
    context = {
        "rows": rows,
        "form": form,
        "monthly_x_cost": sum(row.monthly_cost for row in rows if row.monthly_cost is not None),
        "x_prices": (settings.X_PRICE_PER_POST_READ, settings.X_PRICE_PER_USER_READ),
    }
    return render(request, "listening/keywords.html", context)


@role_required(SUPERVISOR)
def source_health(request: HtmxHttpRequest) -> HttpResponse:
    """Is Earshot still listening everywhere? Per keyword and brand account: last success,
    last error in the platform's words, budget left, next poll, last day's volume."""
    return render(
        request,
        "listening/health.html",
        {"rows": keyword_health(), "accounts": account_health()},
    )


@role_required(ADMIN)
def keyword_edit(request: HtmxHttpRequest, keyword_id: int) -> HttpResponse:
    keyword = get_object_or_404(
        TrackedKeyword.objects.select_related("brand", "team"), pk=keyword_id
    )
    form = KeywordStudioForm(request.POST or None, instance=keyword)
    if request.method == "POST" and form.is_valid():
        _, moved = keyword_update(
            keyword=keyword,
            brand=form.cleaned_data["brand"],
            query=form.cleaned_data["query"],
            poll_interval_seconds=form.cleaned_data["poll_interval_seconds"],
            is_active=form.cleaned_data["is_active"],
            source=form.cleaned_data["source"],
            team=form.cleaned_data["team"],
        )
        messages.success(request, _saved_message(keyword, moved))
        return redirect("listening:keywords")
    return render(request, "listening/keyword_edit.html", {"keyword": keyword, "form": form})


def _saved_message(keyword: TrackedKeyword, moved: int) -> str:
    if not moved:
        return "Keyword saved."
    where = f"the {keyword.team.name} team" if keyword.team else "every agent of the brand"
    return f"Keyword saved; {moved} open mention{pluralize(moved)} moved to {where}."
