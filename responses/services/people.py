"""Who works in Earshot: roles, teams, deactivation, and invitations by e-mail.

Admins run these from /people/. A role is membership of one of the role groups
(config/roles.py); a person is never deleted, only deactivated, so their replies, claims and
audit entries keep their author.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from config.roles import ADMIN, ROLES, forget_access
from listening.models import Brand, Team
from responses.models import Invite

logger = logging.getLogger(__name__)


class PeopleError(Exception):
    """A change refused, with the sentence to show the admin."""


class InviteInvalid(Exception):
    """An invitation link that cannot be used, with the sentence to show its holder."""


def _role_groups(role: str | None) -> list[Group]:
    # get_or_create: the groups come from a migration, which a flushed test database lacks.
    return [Group.objects.get_or_create(name=role)[0]] if role else []


def user_role_set(*, user: AbstractUser, role: str | None, by: AbstractUser) -> None:
    """Give `user` exactly `role` (None: no role, which opens no page). Admins cannot change
    their own role: demoting yourself by mistake would leave no one to undo it."""
    if role is not None and role not in ROLES:
        raise PeopleError(f"There is no role called “{role}”.")
    if user.pk == by.pk:
        raise PeopleError("You cannot change your own role: ask another admin.")
    with transaction.atomic():
        user.groups.remove(*Group.objects.filter(name__in=ROLES))
        user.groups.add(*_role_groups(role))
        _staff_status_follows_role(user=user, role=role)
    forget_access(user)


def _staff_status_follows_role(*, user: AbstractUser, role: str | None) -> None:
    # Django's admin (for admins, config/admin.py) also asks for is_staff.
    if not user.is_superuser and user.is_staff != (role == ADMIN):
        user.is_staff = role == ADMIN
        user.save(update_fields=["is_staff"])


def user_teams_set(*, user: AbstractUser, teams: Iterable[Team]) -> None:
    """`user` works exactly these teams' queues (and those of no team)."""
    user.teams.set(teams)
    forget_access(user)


def user_deactivate(*, user: AbstractUser, by: AbstractUser) -> bool:
    """Stop `user` signing in; their work stays theirs. True if this call deactivated them.

    Saved through the model, not a bare UPDATE, so that the audit log records who did it.
    """
    if user.pk == by.pk:
        raise PeopleError("You cannot deactivate yourself.")
    return _active_set(user=user, active=False)


def user_reactivate(*, user: AbstractUser) -> bool:
    """Let `user` sign in again, with the role and teams they had. True if this call did."""
    return _active_set(user=user, active=True)


def _active_set(*, user: AbstractUser, active: bool) -> bool:
    with transaction.atomic():
        # Locked: of two admins clicking at once, the second sees it done and changes nothing.
        current = get_user_model().objects.select_for_update().get(pk=user.pk)
        if current.is_active == active:
            return False
        current.is_active = active
        current.save(update_fields=["is_active"])
    user.is_active = active
    forget_access(user)
    return True


def team_create(*, brand: Brand, name: str) -> Team:
    try:
        with transaction.atomic():
            return Team.objects.create(brand=brand, name=name)
    except IntegrityError:
        raise PeopleError(f"{brand.name} already has a team called “{name}”.") from None


def team_update(*, team: Team, name: str, members: Iterable[AbstractUser]) -> None:
    """Rename the team and make `members` exactly its members."""
    try:
        with transaction.atomic():
            team.name = name
            team.save(update_fields=["name"])
            team.members.set(members)
    except IntegrityError:
        team.refresh_from_db(fields=["name"])
        raise PeopleError(f"{team.brand.name} already has a team called “{name}”.") from None


# --- invitations ---------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invite_create(
    *,
    email: str,
    role: str,
    teams: Iterable[Team],
    invited_by: AbstractUser,
    site_url: str,
) -> Invite:
    """Invite `email` to join with `role` and `teams`, and e-mail them the link.

    Replaces a pending invite to the same address (its link stops working). The token is in
    the e-mail only; the row keeps its SHA-256. If the e-mail cannot be sent, no invite is
    left behind and PeopleError says why. `site_url` (e.g. "https://earshot.example.com")
    prefixes the link when SITE_URL is not set.
    """
    if role not in ROLES:
        raise PeopleError(f"There is no role called “{role}”.")
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    with transaction.atomic():
        Invite.objects.filter(email__iexact=email, accepted_at__isnull=True).delete()
        invite = Invite.objects.create(
            email=email,
            role=role,
            token_hash=_token_hash(token),
            invited_by=invited_by,
            created_at=now,
            expires_at=now + timedelta(days=settings.INVITE_VALID_DAYS),
        )
        invite.teams.set(teams)
    link = f"{settings.SITE_URL or site_url.rstrip('/')}{reverse('invite-accept', args=[token])}"
    body = render_to_string(
        "emails/invite.txt",
        {"invite": invite, "link": link, "teams": list(invite.teams.select_related("brand"))},
    )
    try:
        EmailMessage(subject="You are invited to Earshot", body=body, to=[email]).send()
    except OSError as error:  # smtplib's errors are OSErrors, as are refused connections
        logger.warning("invite to %s not sent: %s", email, error)
        invite.delete()
        raise PeopleError(f"The invitation could not be e-mailed ({error}); try again.") from None
    logger.info("invited %s as %s by %s", email, role, invited_by.get_username())
    return invite


def invite_for_token(*, token: str) -> Invite:
    """The pending, unexpired invite of this link; InviteInvalid says what is wrong with it."""
    invite = Invite.objects.filter(token_hash=_token_hash(token)).first()
    if invite is None:
        raise InviteInvalid(
            "This invitation link is not valid: it may have been replaced by a newer one. "
            "Ask an admin to invite you again."
        )
    if invite.accepted_at is not None:
        raise InviteInvalid("This invitation has been used already. Log in instead.")
    if invite.is_expired:
        raise InviteInvalid("This invitation has expired. Ask an admin to invite you again.")
    return invite


def invite_accept(*, token: str, username: str, password: str) -> AbstractUser:
    """Create the invitee's account with the invite's role and teams; the invite is used up.

    The invite is taken by a conditional UPDATE, so a link opened twice at once makes one
    account. Raises InviteInvalid when the link cannot be used (any more), PeopleError when
    the username was taken meanwhile.
    """
    invite = invite_for_token(token=token)
    now = timezone.now()
    User = get_user_model()
    try:
        with transaction.atomic():
            taken = Invite.objects.filter(
                pk=invite.pk, accepted_at__isnull=True, expires_at__gt=now
            ).update(accepted_at=now)
            if taken != 1:
                raise InviteInvalid("This invitation has been used already. Log in instead.")
            user = User.objects.create_user(
                username=username, email=invite.email, password=password
            )
            user.groups.add(*_role_groups(invite.role))
            _staff_status_follows_role(user=user, role=invite.role)
            user.teams.set(invite.teams.all())
            Invite.objects.filter(pk=invite.pk).update(accepted_by=user)
    except IntegrityError:
        raise PeopleError(f"The username “{username}” is taken: choose another.") from None
    logger.info("invite to %s accepted as %s", invite.email, username)
    return user
