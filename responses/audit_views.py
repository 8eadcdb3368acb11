"""/audit/: who did what, when. Admins see everything; supervisors the desk's events."""

from __future__ import annotations

import logging

from django import forms
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render

from config.http import HtmxHttpRequest
from config.roles import ADMIN, SUPERVISOR, has_role, role_required
from responses.audit_selectors import (
    DESK_OBJECT_TYPES,
    MODEL_ACTION_LABELS,
    OBJECT_TYPE_LABELS,
    AuditFilters,
    audit_actors,
    audit_entries,
    audit_entry_sentence,
)
from responses.services.audit import AuditEvent

logger = logging.getLogger(__name__)
ENTRIES_PER_PAGE = 50


class AuditFilterForm(forms.Form):
    actor = forms.ModelChoiceField(
        queryset=audit_actors(), required=False, label="Who", empty_label="Anyone"
    )
    event = forms.ChoiceField(required=False, label="What")
    object_type = forms.ChoiceField(required=False, label="About")
    q = forms.CharField(
        required=False,
        max_length=200,
        label="Object contains",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "mention #123, acme"}),
    )
    since = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args: object, viewer_is_admin: bool, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["actor"].queryset = audit_actors()
        events = list(AuditEvent.choices)
        if viewer_is_admin:
            events += list(MODEL_ACTION_LABELS.items())
        self.fields["event"].choices = [("", "Anything"), *events]
        types = OBJECT_TYPE_LABELS if viewer_is_admin else {
            name: OBJECT_TYPE_LABELS[name] for name in DESK_OBJECT_TYPES
        }  # fmt: skip
        self.fields["object_type"].choices = [("", "Anything"), *types.items()]

    def clean(self) -> dict:
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            raise forms.ValidationError("“From” must be on or before “To”.")
        return cleaned

    def filters(self) -> AuditFilters:
        data = self.cleaned_data
        return AuditFilters(
            actor_id=data["actor"].pk if data.get("actor") else None,
            event=data.get("event") or "",
            object_type=data.get("object_type") or "",
            text=(data.get("q") or "").strip(),
            since=data.get("since"),
            until=data.get("until"),
        )


@role_required(SUPERVISOR)
def audit_log(request: HtmxHttpRequest) -> HttpResponse:
    viewer_is_admin = has_role(request.user, ADMIN)
    form = AuditFilterForm(request.GET or None, viewer_is_admin=viewer_is_admin)
    filters = AuditFilters()
    if form.is_bound and not form.is_valid():
        logger.info(
            "audit log: filter refused for %s: %s",
            request.user.get_username(),
            form.errors.as_json(),
        )
    elif form.is_bound:
        filters = form.filters()
    entries = audit_entries(viewer_is_admin=viewer_is_admin, filters=filters)
    page = Paginator(entries, ENTRIES_PER_PAGE).get_page(request.GET.get("page"))
    rows = [(entry, audit_entry_sentence(entry)) for entry in page]
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "rows": rows,
        "viewer_is_admin": viewer_is_admin,
        "filter_query": query.urlencode(),
    }
    template = "responses/audit.html"
    if request.htmx and request.htmx.target == "audit-rows":
        template += "#audit-rows"
    return render(request, template, context)
