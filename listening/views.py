from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from config.http import HtmxHttpRequest
from config.roles import ADMIN, role_required
from listening.forms import KeywordForm
from listening.models import TrackedKeyword
from listening.services.keywords import keyword_create, keyword_update


@role_required(ADMIN)
def keyword_list(request: HtmxHttpRequest) -> HttpResponse:
    form = KeywordForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        keyword = keyword_create(
            brand=form.cleaned_data["brand"],
            query=form.cleaned_data["query"],
            poll_interval_seconds=form.cleaned_data["poll_interval_seconds"],
            is_active=form.cleaned_data["is_active"],
        )
        messages.success(request, f"Now listening for “{keyword.query}”.")
        return redirect("listening:keywords")
    keywords = TrackedKeyword.objects.select_related("brand", "cursor").order_by(
        "brand__name", "query"
    )
    return render(request, "listening/keywords.html", {"keywords": keywords, "form": form})


@role_required(ADMIN)
def keyword_edit(request: HtmxHttpRequest, keyword_id: int) -> HttpResponse:
    keyword = get_object_or_404(TrackedKeyword.objects.select_related("brand"), pk=keyword_id)
    form = KeywordForm(request.POST or None, instance=keyword)
    if request.method == "POST" and form.is_valid():
        keyword_update(
            keyword=keyword,
            brand=form.cleaned_data["brand"],
            query=form.cleaned_data["query"],
            poll_interval_seconds=form.cleaned_data["poll_interval_seconds"],
            is_active=form.cleaned_data["is_active"],
        )
        messages.success(request, "Keyword saved.")
        return redirect("listening:keywords")
    return render(request, "listening/keyword_edit.html", {"keyword": keyword, "form": form})
