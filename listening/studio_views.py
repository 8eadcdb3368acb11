"""The keyword studio (admins): a live preview of what a draft query matches, a one-off
search on its platform, its estimated volume and X cost, and pause / resume."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from config.http import HtmxHttpRequest
from config.roles import ADMIN, role_required
from listening.forms import KeywordDraftForm
from listening.models import Platform, TrackedKeyword
from listening.query import parse_query
from listening.services.keywords import (
    SearchNotRun,
    keyword_pause,
    keyword_resume,
    keyword_search_once,
)
from listening.studio_selectors import XCostEstimate, keyword_preview, x_cost_estimate

logger = logging.getLogger(__name__)

STUDIO = "listening/_keyword_studio.html"
DEFAULT_POLL_INTERVAL = 60


def _render_part(request: HtmxHttpRequest, part: str, context: dict[str, object]) -> HttpResponse:
    """The fragment for htmx; the same fragment on a page of its own without JavaScript."""
    if request.htmx:
        return render(request, f"{STUDIO}#{part}", context)
    return render(request, "listening/keyword_studio_result.html", {**context, "part": part})


def _platform(form: KeywordDraftForm) -> str:
    source = form.cleaned_data.get("source")
    return source.platform if source is not None else Platform.X


def _estimate(form: KeywordDraftForm, per_day: float | None) -> XCostEstimate | None:
    """X's projected cost at `per_day` posts and the form's poll interval (other platforms:
    None, their search is not billed per post)."""
    if per_day is None or _platform(form) != Platform.X:
        return None
    interval = form.cleaned_data.get("poll_interval_seconds") or DEFAULT_POLL_INTERVAL
    return x_cost_estimate(per_day=per_day, poll_interval_seconds=interval)


@role_required(ADMIN)
@require_GET
def keyword_preview_view(request: HtmxHttpRequest) -> HttpResponse:
    form = KeywordDraftForm(request.GET)
    if not form.is_valid():
        logger.info("Keyword preview not run: %s", form.errors.as_json())
        return _render_part(request, "keyword-preview", {"problem": form.problem})
    preview = keyword_preview(
        brand=form.cleaned_data["brand"],
        query=parse_query(form.cleaned_data["query"]),
        window_days=form.cleaned_data["preview_days"],
    )
    context = {
        "preview": preview,
        "brand": form.cleaned_data["brand"],
        "estimate": _estimate(form, preview.per_day),
    }
    return _render_part(request, "keyword-preview", context)


@role_required(ADMIN)
@require_POST
def keyword_search_view(request: HtmxHttpRequest) -> HttpResponse:
    form = KeywordDraftForm(request.POST)
    if not form.is_valid():
        logger.info("One-off keyword search refused: %s", form.errors.as_json())
        return _render_part(request, "keyword-search", {"problem": form.problem})
    try:
        sample = keyword_search_once(
            brand=form.cleaned_data["brand"],
            source=form.cleaned_data["source"],
            query=form.cleaned_data["query"],
        )
    except SearchNotRun as exc:
        return _render_part(request, "keyword-search", {"problem": str(exc)})
    context = {
        "sample": sample,
        "platform": Platform(_platform(form)).label,
        "estimate": _estimate(form, sample.per_day),
    }
    return _render_part(request, "keyword-search", context)


def _back(request: HtmxHttpRequest, keyword: TrackedKeyword) -> HttpResponseRedirect:
    """Back where the button was: the list or the keyword's page."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    return redirect(reverse("listening:keywords") + f"#keyword-{keyword.pk}")


@role_required(ADMIN)
@require_POST
def keyword_pause_view(request: HtmxHttpRequest, keyword_id: int) -> HttpResponse:
    keyword = get_object_or_404(TrackedKeyword, pk=keyword_id)
    if keyword_pause(keyword=keyword):
        messages.success(request, f"Paused “{keyword.query}”: Earshot no longer polls it.")
    else:
        messages.info(request, f"“{keyword.query}” was already paused.")
    return _back(request, keyword)


@role_required(ADMIN)
@require_POST
def keyword_resume_view(request: HtmxHttpRequest, keyword_id: int) -> HttpResponse:
    keyword = get_object_or_404(TrackedKeyword, pk=keyword_id)
    if keyword_resume(keyword=keyword):
        messages.success(request, f"Listening for “{keyword.query}” again.")
    else:
        messages.info(request, f"“{keyword.query}” was already active.")
    return _back(request, keyword)
