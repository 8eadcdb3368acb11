"""Queue actions beyond one mention: bulk changes and saved views."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from config.http import HtmxHttpRequest
from config.roles import AGENT, SUPERVISOR, has_role, role_required
from listening.models import Mention, MentionStatus
from responses.forms import BulkActionForm, QueueFilterForm, SavedViewForm
from responses.models import SavedView
from responses.selectors import mentions_visible_to
from responses.services.claims import mentions_assign_many, mentions_close_many

logger = logging.getLogger(__name__)

BULK_OUTCOMES = {
    "resolve": MentionStatus.RESOLVED,
    "ignore": MentionStatus.NO_REPLY_NEEDED,
    "spam": MentionStatus.SPAM,
}


def _back_to_queue(request: HtmxHttpRequest) -> HttpResponse:
    query = request.POST.get("return_query", "")
    return redirect(f"{reverse('responses:queue')}{'?' + query if query else ''}")


@require_POST
@role_required(AGENT)
def bulk_action_view(request: HtmxHttpRequest) -> HttpResponse:
    form = BulkActionForm(
        request.POST, mentions=mentions_visible_to(Mention.objects, user=request.user)
    )
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        logger.info(
            "bulk action refused for %s: %s", request.user.get_username(), form.errors.as_json()
        )
        return _back_to_queue(request)
    ids = [mention.pk for mention in form.cleaned_data["mentions"]]
    action = form.cleaned_data["action"]
    if action == "assign":
        if not has_role(request.user, SUPERVISOR):
            raise PermissionDenied("Assigning mentions needs the supervisor role.")
        assignee = form.cleaned_data["assignee"]
        done = mentions_assign_many(mention_ids=ids, assignee=assignee, assigned_by=request.user)
        verb = f"assigned to {assignee.get_username()}"
    else:
        done = mentions_close_many(
            mention_ids=ids, agent=request.user, outcome=BULK_OUTCOMES[action]
        )
        verb = dict(BulkActionForm.base_fields["action"].choices)[action].lower()
    skipped = len(ids) - done
    note = f" {skipped} skipped: closed already, or someone else holds them." if skipped else ""
    messages.success(request, f"{done} mention{'s' if done != 1 else ''} {verb}.{note}")
    return _back_to_queue(request)


@require_POST
@role_required(AGENT)
def saved_view_create_view(request: HtmxHttpRequest) -> HttpResponse:
    form = SavedViewForm(request.POST)
    filters = QueueFilterForm(request.POST).saved_filters()
    if not form.is_valid():
        messages.error(request, form.errors["name"][0])
    else:
        name = form.cleaned_data["name"]
        try:
            with transaction.atomic():
                SavedView.objects.create(owner=request.user, name=name, filters=filters)
        except IntegrityError:
            messages.error(request, f"You already have a view called “{name}”.")
        else:
            messages.success(request, f"Saved “{name}”.")
    return redirect(f"{reverse('responses:queue')}?{urlencode(filters)}")


@require_POST
@role_required(AGENT)
def saved_view_delete_view(request: HtmxHttpRequest, view_id: int) -> HttpResponse:
    saved = get_object_or_404(SavedView, pk=view_id, owner=request.user)
    saved.delete()
    messages.info(request, f"Removed “{saved.name}”.")
    return redirect("responses:queue")
