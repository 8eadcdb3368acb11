"""Sources and the brands' X accounts, for admins: credentials entered in the app, shown back
only masked, and "test connection" with the saved values or the ones just typed."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from config.http import HtmxHttpRequest
from config.roles import ADMIN, role_required
from listening.forms import BrandXForm, SourceForm
from listening.models import Brand, Platform, Source
from listening.services.sources import (
    ConnectionReport,
    brand_with_x_values,
    brand_x_connection_test,
    brand_x_credentials_save,
    source_connection_test,
    source_save,
    source_with_typed_values,
    sources_overview,
)

logger = logging.getLogger(__name__)

RESULT_PARTIAL = "listening/sources.html#connection-result"
# The submit button's value that asks for a test of the typed values instead of a save.
TEST_ACTION = "test"


@role_required(ADMIN)
def source_list(request: HtmxHttpRequest) -> HttpResponse:
    platforms = [p for p in Platform if p != Platform.X]
    return render(
        request, "listening/sources.html", {"overview": sources_overview(), "platforms": platforms}
    )


@role_required(ADMIN)
def source_add(request: HtmxHttpRequest, platform: str) -> HttpResponse:
    if platform not in Platform.values or platform == Platform.X:
        raise Http404("No such platform for a source.")
    return _source_form_page(request, Source(platform=platform), platform=platform)


@role_required(ADMIN)
def source_edit(request: HtmxHttpRequest, source_id: int) -> HttpResponse:
    source = get_object_or_404(Source.objects.select_related("brand"), pk=source_id)
    return _source_form_page(request, source, platform=source.platform)


def _source_form_page(request: HtmxHttpRequest, source: Source, *, platform: str) -> HttpResponse:
    form = SourceForm(request.POST or None, instance=source, platform=platform)
    report = None
    if request.method == "POST" and request.POST.get("action") == TEST_ACTION:
        report = _typed_source_test(form)
        if request.htmx:
            return render(request, RESULT_PARTIAL, {"report": report})
    elif request.method == "POST" and form.is_valid():
        saved = source_save(
            source=form.instance,
            typed_credentials=form.typed_credentials(),
            cleared=form.cleared_credentials(),
        )
        messages.success(request, f"{saved.name} saved.")
        return redirect("listening:sources")
    elif request.method == "POST":
        logger.info("Source form refused: %s", form.errors.as_json())
    context = {"form": form, "source": source, "platform": platform, "report": report}
    return render(request, "listening/sources_form.html", context)


def _typed_source_test(form: SourceForm) -> ConnectionReport:
    """The values just typed, over the saved ones, unsaved: the form's own checks (the feed
    address check among them) come first, as they would before a save."""
    if not form.is_valid():
        return _form_refused(form)
    source = source_with_typed_values(
        source=form.instance,
        typed_credentials=form.typed_credentials(),
        cleared=form.cleared_credentials(),
    )
    return source_connection_test(source=source)


@role_required(ADMIN)
@require_POST
def source_test(request: HtmxHttpRequest, source_id: int) -> HttpResponse:
    """The saved source's credentials, as polling uses them."""
    source = get_object_or_404(Source.objects.select_related("brand"), pk=source_id)
    return _report_answer(request, source_connection_test(source=source), name=source.name)


@role_required(ADMIN)
def brand_x_edit(request: HtmxHttpRequest, brand_id: int) -> HttpResponse:
    brand = get_object_or_404(Brand, pk=brand_id)
    form = BrandXForm(request.POST or None, brand=brand)
    report = None
    if request.method == "POST" and request.POST.get("action") == TEST_ACTION:
        report = _typed_brand_x_test(form, brand)
        if request.htmx:
            return render(request, RESULT_PARTIAL, {"report": report})
    elif request.method == "POST" and form.is_valid():
        brand_x_credentials_save(
            brand=brand,
            x_handle=form.cleaned_data["x_handle"],
            typed_credentials=form.typed_credentials(),
            cleared=form.cleared_credentials(),
        )
        messages.success(request, f"{brand.name}'s X account saved.")
        return redirect("listening:sources")
    elif request.method == "POST":
        logger.info("X account form of brand %s refused: %s", brand.pk, form.errors.as_json())
    context = {"form": form, "brand": brand, "report": report}
    return render(request, "listening/sources_brand_x.html", context)


def _typed_brand_x_test(form: BrandXForm, brand: Brand) -> ConnectionReport:
    if not form.is_valid():
        return _form_refused(form)
    # A fresh copy: the typed values must never reach the brand the page still renders.
    unsaved = brand_with_x_values(
        brand=Brand.objects.get(pk=brand.pk),
        x_handle=form.cleaned_data["x_handle"],
        typed_credentials=form.typed_credentials(),
        cleared=form.cleared_credentials(),
    )
    return brand_x_connection_test(brand=unsaved)


@role_required(ADMIN)
@require_POST
def brand_x_test(request: HtmxHttpRequest, brand_id: int) -> HttpResponse:
    """The brand's saved X credentials (or the deployment's), as polling and replies use them."""
    brand = get_object_or_404(Brand, pk=brand_id)
    report = brand_x_connection_test(brand=brand)
    return _report_answer(request, report, name=f"{brand.name} on X")


def _report_answer(
    request: HtmxHttpRequest, report: ConnectionReport, *, name: str
) -> HttpResponse:
    if request.htmx:
        return render(request, RESULT_PARTIAL, {"report": report})
    # Without JavaScript: the outcome as a message on the list.
    words = " ".join([report.message, *report.warnings])
    if report.ok:
        messages.success(request, f"{name}: {words}")
    else:
        messages.error(request, f"{name}: {words}")
    return redirect("listening:sources")


def _form_refused(form: SourceForm | BrandXForm) -> ConnectionReport:
    problems = [str(error) for field_errors in form.errors.values() for error in field_errors]
    logger.info("Connection test not run, the form has errors: %s", form.errors.as_json())
    return ConnectionReport(
        ok=False, message="Not tested: fix the form first. " + " ".join(problems)
    )
