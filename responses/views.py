from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from config.http import HtmxHttpRequest
from config.roles import AGENT, SUPERVISOR, has_role, role_required
from listening.models import UNCLAIMED_STATUSES, AuthorTagKind, Mention, MentionStatus
from responses.forms import (
    AssignForm,
    BulkActionForm,
    QueueFilterForm,
    ReplyForm,
    SavedViewForm,
)
from responses.models import Reply, ReplyStatus, SavedView
from responses.presence import presence_beat, presence_leave, presence_others
from responses.queue_rows import mention_url_prefix, queue_row, queue_rows
from responses.selectors import (
    QUEUE_PAGE_SIZE,
    conversation_thread,
    customer_profile,
    mention_amplifiers,
    mention_replies,
    mentions_visible_to,
    priority_explained,
    queue_mentions,
    queue_state,
    undoable_replies,
    undone_reply_text,
)
from responses.services.claims import (
    claim_renew,
    mention_assign,
    mention_claim,
    mention_claim_next,
    mention_close,
    mention_release,
)
from responses.services.customers import author_tag_add, author_tag_remove
from responses.services.drafts import Draft, drafts_for_mention, playbook_for_mention
from responses.services.replies import (
    ReplyNeedsReview,
    ReplyRefused,
    reply_mark_handled,
    reply_submit,
    reply_undo,
)


@role_required(AGENT)
def queue(request: HtmxHttpRequest) -> HttpResponse:
    now = timezone.now()
    can_assign = has_role(request.user, SUPERVISOR)
    # Supervisors and admins see every team's mentions and may look at one team's queue.
    form = QueueFilterForm(request.GET or None, by_team=can_assign)
    filters = form.cleaned_data if form.is_valid() else {}
    mentions = queue_mentions(
        viewer=request.user,
        team_id=filters.get("team"),
        status=filters.get("status", ""),
        sentiment=filters.get("sentiment", ""),
        keyword_id=filters.get("keyword"),
        order=filters.get("order", ""),
        unclaimed_only=filters.get("unclaimed", False),
        min_followers=filters.get("min_followers"),
    )[:QUEUE_PAGE_SIZE]
    since = request.GET.get("since") if request.htmx else None
    if since and since == queue_state(mentions, now=now):
        # What this browser shows is still what it would get: htmx swaps nothing on a 204.
        return HttpResponse(status=204)
    mentions = list(mentions)
    poll_params = request.GET.copy()
    poll_params["since"] = queue_state(mentions, now=now)  # of the rows loaded: no query
    rows = queue_rows(mentions, now=now, viewer_id=request.user.pk)
    context = {
        "rows": rows,
        "form": form,
        "poll_url": f"{request.path}?{poll_params.urlencode()}",
        "filters_query": urlencode(form.saved_filters()),
        "saved_views": SavedView.objects.filter(owner=request.user),
        "saved_view_form": SavedViewForm(),
        "bulk_form": BulkActionForm(),
        "can_assign": can_assign,
        "undoable": undoable_replies(agent=request.user, now=now),
    }
    template = "responses/queue.html"
    if request.htmx and request.htmx.target == "queue-rows":
        template += "#queue-rows"
    return render(request, template, context)


@require_POST
@role_required(AGENT)
def claim_next_view(request: HtmxHttpRequest) -> HttpResponse:
    mention = mention_claim_next(agent=request.user)
    if mention is None:
        messages.info(request, "Nothing left to claim: every open mention has someone on it.")
        return redirect("responses:queue")
    return redirect("responses:mention", mention_id=mention.pk)


def _mention_or_404(request: HtmxHttpRequest, mention_id: int) -> Mention:
    """The mention, if `request.user` may work it: another team's is not found, for agents."""
    mentions = Mention.objects.select_related("author", "keyword", "brand", "claimed_by")
    return get_object_or_404(mentions_visible_to(mentions, user=request.user), pk=mention_id)


@role_required(AGENT)
def mention_detail(request: HtmxHttpRequest, mention_id: int) -> HttpResponse:
    # Opening the mention is activity: the holder's lease runs on from now (renewed before
    # the one load, so the page shows the new lease), and colleagues who have it open see
    # this person at once.
    claim_renew(mention_id=mention_id, agent=request.user)
    mention = _mention_or_404(request, mention_id)
    presence_beat(mention_id=mention_id, username=request.user.get_username(), state="viewing")
    # Made once: the first fills the reply box, all are offered as alternatives.
    drafts = drafts_for_mention(mention=mention, agent=request.user)
    form = ReplyForm(initial=_initial_reply(request, mention, drafts), mention=mention)
    return _render_mention(request, mention, form, drafts=drafts)


def _initial_reply(
    request: HtmxHttpRequest, mention: Mention, drafts: list[Draft]
) -> dict[str, object]:
    undone = undone_reply_text(
        mention=mention, agent=request.user, reply_id=request.GET.get("undone", "")
    )
    return {
        "text": undone or (drafts[0].text if drafts else ""),
        "opened_at": timezone.now(),
    }


def _render_mention(
    request: HtmxHttpRequest,
    mention: Mention,
    form: ReplyForm,
    status: int = 200,
    other_reply: Reply | None = None,
    review: ReplyNeedsReview | None = None,
    drafts: list[Draft] | None = None,
) -> HttpResponse:
    can_reply = (
        mention.status in UNCLAIMED_STATUSES
        or mention.is_claim_expired
        or (mention.status == MentionStatus.CLAIMED and mention.claimed_by_id == request.user.pk)
    )
    context = {
        "mention": mention,
        "mention_id": mention.pk,
        "form": form,
        "replies": mention_replies(mention=mention),
        "amplifications": mention_amplifiers(mention=mention),
        "can_reply": can_reply,
        "priority": priority_explained(mention, now=timezone.now()),
        "assign_form": AssignForm() if has_role(request.user, SUPERVISOR) else None,
        "other_reply": other_reply,
        "review": review,
        "others": presence_others(mention_id=mention.pk, username=request.user.get_username()),
        "customer": customer_profile(author=mention.author, before=mention, viewer=request.user),
        "thread": conversation_thread(mention=mention, viewer=request.user),
        **_playbook_context(request, mention, drafts),
    }
    return render(request, "responses/mention.html", context, status=status)


def _playbook_context(
    request: HtmxHttpRequest, mention: Mention, drafts: list[Draft] | None
) -> dict[str, object]:
    """The mention's playbook (its guidance), alternative drafts, and where its reply stands
    in approval: waiting for a supervisor, or sent back with a note."""
    if drafts is None:
        drafts = drafts_for_mention(mention=mention, agent=request.user)
    latest = (
        Reply.objects.filter(
            mention=mention,
            status__in=[ReplyStatus.AWAITING_APPROVAL, ReplyStatus.RETURNED],
        )
        .select_related("reviewed_by")
        .order_by("-created_at")
        .first()
    )
    return {
        "playbook": drafts[0].playbook if drafts else playbook_for_mention(mention),
        "drafts": drafts,
        "awaiting_approval": latest
        if latest and latest.status == ReplyStatus.AWAITING_APPROVAL
        else None,
        "returned": latest if latest and latest.status == ReplyStatus.RETURNED else None,
    }


@require_POST
@role_required(AGENT)
def mention_claim_view(request: HtmxHttpRequest, mention_id: int) -> HttpResponse:
    _mention_or_404(request, mention_id)
    result = mention_claim(mention_id=mention_id, agent=request.user)
    if not result.won:
        if result.holder_name:
            messages.warning(request, f"{result.holder_name} claimed this mention first.")
        else:
            messages.warning(request, "This mention is no longer open.")
    if request.htmx:
        row = queue_row(
            result.mention,
            now=timezone.now(),
            viewer_id=request.user.pk,
            url_prefix=mention_url_prefix(),
        )
        return render(
            request,
            "responses/queue.html#mention-row",
            {**row._asdict(), "claim_lost": not result.won},
        )
    return redirect("responses:mention", mention_id=mention_id)


@require_POST
@role_required(SUPERVISOR)
def mention_assign_view(request: HtmxHttpRequest, mention_id: int) -> HttpResponse:
    _mention_or_404(request, mention_id)
    form = AssignForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose someone on the team to assign it to.")
    elif mention_assign(
        mention_id=mention_id, assignee=form.cleaned_data["assignee"], assigned_by=request.user
    ):
        messages.success(request, f"Assigned to {form.cleaned_data['assignee'].get_username()}.")
    else:
        messages.warning(request, "This mention is closed: there is nothing to assign.")
    return redirect("responses:mention", mention_id=mention_id)


@require_POST
@role_required(AGENT)
def mention_release_view(request: HtmxHttpRequest, mention_id: int) -> HttpResponse:
    _mention_or_404(request, mention_id)
    if mention_release(mention_id=mention_id, agent=request.user):
        messages.info(request, "Released back to the queue.")
    else:
        messages.warning(request, "Only the agent holding a mention can release it.")
    return redirect("responses:queue")


CLOSED_AS = {
    MentionStatus.RESOLVED: "Resolved.",
    MentionStatus.NO_REPLY_NEEDED: "Marked as needing no reply.",
    MentionStatus.SPAM: "Marked as spam.",
}


@require_POST
@role_required(AGENT)
def mention_close_view(request: HtmxHttpRequest, mention_id: int, outcome: str) -> HttpResponse:
    _mention_or_404(request, mention_id)
    if mention_close(mention_id=mention_id, agent=request.user, outcome=outcome):
        messages.success(request, CLOSED_AS[outcome])
        return redirect("responses:queue")
    messages.warning(request, "Someone else holds this mention, or it is already closed.")
    return redirect("responses:mention", mention_id=mention_id)


@require_POST
@role_required(AGENT)
def mention_handled_view(request: HtmxHttpRequest, mention_id: int) -> HttpResponse:
    _mention_or_404(request, mention_id)
    if reply_mark_handled(mention_id=mention_id, agent=request.user):
        messages.success(request, "Marked handled: answered on the platform.")
        return redirect("responses:queue")
    messages.warning(request, "Someone else holds this mention, or it is already answered.")
    return redirect("responses:mention", mention_id=mention_id)


@require_POST
@role_required(AGENT)
def reply_send_view(request: HtmxHttpRequest, mention_id: int) -> HttpResponse:
    mention = _mention_or_404(request, mention_id)
    form = ReplyForm(request.POST, mention=mention)
    if not form.is_valid():
        return _render_mention(request, mention, form, status=400)
    return _reply_submitted(
        request,
        mention,
        form,
        override_reason=form.cleaned_data["override_reason"],
        playbook=playbook_for_mention(mention),
    )


def _reply_submitted(
    request: HtmxHttpRequest,
    mention: Mention,
    form: ReplyForm,
    *,
    success_prefix: str = "",
    **submit: Any,
) -> HttpResponse:
    """Submit the form's reply (`submit`: reply_submit's other arguments) and answer: the
    queue when it went, the mention page again when the tone guard or a colleague stops it."""
    try:
        reply = reply_submit(
            mention_id=mention.pk,
            agent=request.user,
            text=form.cleaned_data["text"],
            opened_at=form.cleaned_data["opened_at"],
            **submit,
        )
    except ReplyNeedsReview as review:
        return _render_mention(request, mention, form, status=422, review=review)
    except ReplyRefused as refusal:
        messages.error(request, str(refusal))
        return _render_mention(
            request,
            _mention_or_404(request, mention.pk),
            form,
            status=409,
            other_reply=refusal.other_reply,
        )
    presence_leave(mention_id=mention.pk, username=request.user.get_username())
    messages.success(request, f"{success_prefix}{_sent_message(reply)}")
    return redirect("responses:queue")


def _sent_message(reply: Reply) -> str:
    handle = f"@{reply.mention.author.username}"
    if reply.status == ReplyStatus.AWAITING_APPROVAL:
        return f"Your reply to {handle} waits for a supervisor's approval."
    return f"Your reply to {handle} is on its way."


@require_POST
@role_required(AGENT)
def mention_take_private_view(request: HtmxHttpRequest, mention_id: int) -> HttpResponse:
    """One action: post the team's invitation to a direct message, personalised, and record
    that the case moved to a private channel."""
    mention = _mention_or_404(request, mention_id)
    invites = drafts_for_mention(mention=mention, agent=request.user, count=1, dm_invite=True)
    form = ReplyForm(
        {"text": invites[0].text if invites else "", "opened_at": request.POST.get("opened_at")},
        mention=mention,
    )
    if not invites or not form.is_valid():
        messages.error(request, "No DM template applies to this mention: write the invitation.")
        return _render_mention(request, mention, form, status=409)
    return _reply_submitted(
        request,
        mention,
        form,
        success_prefix="Taken private. ",
        dm_invite=True,
        playbook=invites[0].playbook,
    )


@require_POST
@role_required(AGENT)
def mention_presence_view(request: HtmxHttpRequest, mention_id: int) -> HttpResponse:
    """Heartbeat of an open mention page: record this person, show who else is here."""
    _mention_or_404(request, mention_id)
    username = request.user.get_username()
    presence_beat(mention_id=mention_id, username=username, state=request.POST.get("state", ""))
    if request.POST.get("state") == "drafting":
        claim_renew(mention_id=mention_id, agent=request.user)
    others = presence_others(mention_id=mention_id, username=username)
    return render(
        request, "responses/mention.html#presence", {"others": others, "mention_id": mention_id}
    )


@require_POST
@role_required(AGENT)
def reply_undo_view(request: HtmxHttpRequest, reply_id: int) -> HttpResponse:
    reply = reply_undo(reply_id=reply_id, agent=request.user)
    if reply is None:
        messages.warning(request, "Too late to undo: the reply has left.")
        return redirect("responses:queue")
    messages.info(request, "Reply undone: it is back in the reply box.")
    return redirect(f"{reverse('responses:mention', args=[reply.mention_id])}?undone={reply.pk}")


def _customer_panel(request: HtmxHttpRequest, mention: Mention) -> HttpResponse:
    """The customer panel alone for htmx to swap in; without JavaScript, back to the page."""
    if request.htmx:
        customer = customer_profile(author=mention.author, before=mention, viewer=request.user)
        return render(
            request, "responses/_customer.html", {"mention": mention, "customer": customer}
        )
    return redirect(reverse("responses:mention", args=[mention.pk]) + "#customer")


def _tag_or_404(tag: str) -> AuthorTagKind:
    if tag not in AuthorTagKind.values:
        raise Http404("No such customer tag.")
    return AuthorTagKind(tag)


@require_POST
@role_required(AGENT)
def customer_tag_add_view(request: HtmxHttpRequest, mention_id: int, tag: str) -> HttpResponse:
    mention = _mention_or_404(request, mention_id)
    kind = _tag_or_404(tag)
    added = author_tag_add(author=mention.author, tag=kind, by=request.user)
    if added and not request.htmx:
        messages.success(request, f"@{mention.author.username} is tagged {kind.label}.")
    return _customer_panel(request, mention)


@require_POST
@role_required(AGENT)
def customer_tag_remove_view(request: HtmxHttpRequest, mention_id: int, tag: str) -> HttpResponse:
    mention = _mention_or_404(request, mention_id)
    kind = _tag_or_404(tag)
    removed = author_tag_remove(author=mention.author, tag=kind)
    if removed and not request.htmx:
        messages.info(request, f"@{mention.author.username} is no longer tagged {kind.label}.")
    return _customer_panel(request, mention)
