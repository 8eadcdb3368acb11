"""/people/: admins invite people, give them a role and teams, and deactivate them; and
/invite/<token>/, where an invitee makes their account."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.forms import Form
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from config.http import HtmxHttpRequest
from config.roles import ADMIN, role_required
from listening.models import Team
from responses.forms import (
    InviteAcceptForm,
    InviteForm,
    TeamCreateForm,
    TeamEditForm,
    UserAccessForm,
)
from responses.models import Invite
from responses.selectors import brands_with_teams, invites_pending, people_list, user_role
from responses.services.people import (
    InviteInvalid,
    PeopleError,
    invite_accept,
    invite_create,
    invite_for_token,
    team_create,
    team_update,
    user_deactivate,
    user_reactivate,
    user_role_set,
    user_teams_set,
)

logger = logging.getLogger(__name__)


def _refused(request: HtmxHttpRequest, what: str, form: Form) -> None:
    logger.info("%s refused for %s: %s", what, request.user.get_username(), form.errors.as_json())


def _render_people(
    request: HtmxHttpRequest,
    *,
    invite_form: InviteForm | None = None,
    team_form: TeamCreateForm | None = None,
    status: int = 200,
) -> HttpResponse:
    context = {
        "people": people_list(),
        "brands": brands_with_teams(),
        "invites": invites_pending(),
        "invite_form": invite_form or InviteForm(),
        "team_form": team_form or TeamCreateForm(),
    }
    return render(request, "responses/people/people.html", context, status=status)


@role_required(ADMIN)
def people(request: HtmxHttpRequest) -> HttpResponse:
    return _render_people(request)


@require_POST
@role_required(ADMIN)
def invite_create_view(request: HtmxHttpRequest) -> HttpResponse:
    form = InviteForm(request.POST)
    if not form.is_valid():
        _refused(request, "invite", form)
        return _render_people(request, invite_form=form, status=400)
    try:
        invite = invite_create(
            email=form.cleaned_data["email"],
            role=form.cleaned_data["role"],
            teams=form.cleaned_data["teams"],
            invited_by=request.user,
            site_url=request.build_absolute_uri("/"),
        )
    except PeopleError as error:
        messages.error(request, str(error))
        return _render_people(request, invite_form=form, status=502)
    messages.success(request, f"Invitation sent to {invite.email} ({invite.role}).")
    return redirect("responses:people")


@require_POST
@role_required(ADMIN)
def invite_revoke_view(request: HtmxHttpRequest, invite_id: int) -> HttpResponse:
    invite = get_object_or_404(Invite, pk=invite_id, accepted_at__isnull=True)
    invite.delete()
    messages.info(request, f"The invitation to {invite.email} no longer works.")
    return redirect("responses:people")


@role_required(ADMIN)
def user_edit(request: HtmxHttpRequest, user_id: int) -> HttpResponse:
    person = get_object_or_404(get_user_model(), pk=user_id)
    if request.method == "POST":
        form = UserAccessForm(request.POST)
        if form.is_valid():
            try:
                user_role_set(user=person, role=form.cleaned_data["role"] or None, by=request.user)
                user_teams_set(user=person, teams=form.cleaned_data["teams"])
            except PeopleError as error:
                messages.error(request, str(error))
                return redirect("responses:person", user_id=person.pk)
            messages.success(request, f"Saved {person.get_username()}'s role and teams.")
            return redirect("responses:people")
        _refused(request, "role and teams", form)
        status = 400
    else:
        form = UserAccessForm(initial={"role": user_role(person), "teams": person.teams.all()})
        status = 200
    return render(
        request,
        "responses/people/person.html",
        {"person": person, "form": form, "is_self": person.pk == request.user.pk},
        status=status,
    )


@require_POST
@role_required(ADMIN)
def user_deactivate_view(request: HtmxHttpRequest, user_id: int) -> HttpResponse:
    person = get_object_or_404(get_user_model(), pk=user_id)
    try:
        user_deactivate(user=person, by=request.user)
    except PeopleError as error:
        logger.info("deactivation of %s refused: %s", person.get_username(), error)
        messages.error(request, str(error))
    else:
        messages.success(request, f"{person.get_username()} can no longer sign in.")
    return redirect("responses:people")


@require_POST
@role_required(ADMIN)
def user_reactivate_view(request: HtmxHttpRequest, user_id: int) -> HttpResponse:
    person = get_object_or_404(get_user_model(), pk=user_id)
    user_reactivate(user=person)
    messages.success(request, f"{person.get_username()} can sign in again.")
    return redirect("responses:people")


@require_POST
@role_required(ADMIN)
def team_create_view(request: HtmxHttpRequest) -> HttpResponse:
    form = TeamCreateForm(request.POST)
    if not form.is_valid():
        _refused(request, "new team", form)
        return _render_people(request, team_form=form, status=400)
    try:
        team = team_create(brand=form.cleaned_data["brand"], name=form.cleaned_data["name"])
    except PeopleError as error:
        logger.info("new team refused: %s", error)
        form.add_error("name", str(error))
        return _render_people(request, team_form=form, status=400)
    messages.success(request, f"Team {team} created: add its members below.")
    return redirect("responses:team", team_id=team.pk)


@role_required(ADMIN)
def team_edit(request: HtmxHttpRequest, team_id: int) -> HttpResponse:
    team = get_object_or_404(Team.objects.select_related("brand"), pk=team_id)
    if request.method == "POST":
        form = TeamEditForm(request.POST)
        if form.is_valid():
            try:
                team_update(
                    team=team, name=form.cleaned_data["name"], members=form.cleaned_data["members"]
                )
            except PeopleError as error:
                form.add_error("name", str(error))
            else:
                messages.success(request, f"Saved team {team}.")
                return redirect("responses:people")
        _refused(request, "team change", form)
        status = 400
    else:
        form = TeamEditForm(initial={"name": team.name, "members": team.members.all()})
        status = 200
    return render(
        request, "responses/people/team.html", {"team": team, "form": form}, status=status
    )


def invite_accept_view(request: HtmxHttpRequest, token: str) -> HttpResponse:
    """Public: the link in the invitation e-mail. The token is the credential."""
    try:
        invite = invite_for_token(token=token)
    except InviteInvalid as problem:
        logger.info("invitation link refused: %s", problem)
        return render(
            request, "responses/people/invite.html", {"problem": str(problem)}, status=410
        )
    form = InviteAcceptForm(request.POST or None, email=invite.email)
    if request.method == "POST":
        if form.is_valid():
            try:
                user = invite_accept(
                    token=token,
                    username=form.cleaned_data["username"],
                    password=form.cleaned_data["password1"],
                )
            except InviteInvalid as problem:
                return render(
                    request, "responses/people/invite.html", {"problem": str(problem)}, status=410
                )
            except PeopleError as error:
                form.add_error("username", str(error))
            else:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                messages.success(request, f"Welcome to Earshot, {user.get_username()}.")
                return redirect("responses:queue")
        logger.info("invitation sign-up refused: %s", form.errors.as_json())
    return render(
        request,
        "responses/people/invite.html",
        {"invite": invite, "form": form},
        status=400 if form.errors else 200,
    )
