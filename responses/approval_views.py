"""Supervisors approve, edit or send back replies by agents who need approval."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from config.http import HtmxHttpRequest
from config.roles import SUPERVISOR, role_required
from responses.services.replies import (
    ReplyRefused,
    replies_awaiting_approval,
    reply_approve,
    reply_return,
)


@role_required(SUPERVISOR)
def approvals(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "responses/approvals.html", {"replies": replies_awaiting_approval()})


@require_POST
@role_required(SUPERVISOR)
def reply_approve_view(request: HtmxHttpRequest, reply_id: int) -> HttpResponse:
    try:
        reply = reply_approve(
            reply_id=reply_id, reviewer=request.user, text=request.POST.get("text", "")
        )
    except ReplyRefused as refusal:
        messages.error(request, str(refusal))
    else:
        messages.success(
            request, f"Approved: the reply to @{reply.mention.author.username} leaves."
        )
    return redirect("responses:approvals")


@require_POST
@role_required(SUPERVISOR)
def reply_return_view(request: HtmxHttpRequest, reply_id: int) -> HttpResponse:
    try:
        reply = reply_return(
            reply_id=reply_id, reviewer=request.user, note=request.POST.get("note", "")
        )
    except ReplyRefused as refusal:
        messages.error(request, str(refusal))
    else:
        messages.info(request, f"Sent back to {reply.agent.get_username()} with your note.")
    return redirect("responses:approvals")
