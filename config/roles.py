"""Earshot's three roles, each including the one below it: agent < supervisor < admin.

Roles are Django groups (created by a migration); superusers count as admins. Every view
states the least role it needs with `role_required`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import HttpRequest, HttpResponse

AGENT = "agent"
SUPERVISOR = "supervisor"
ADMIN = "admin"
ROLES = (AGENT, SUPERVISOR, ADMIN)
# Not a role: agents in this group have their replies approved by a supervisor first, on
# brands whose `replies_need_approval` is set (new hires, a sensitive account).
NEEDS_APPROVAL = "needs approval"
_RANK = {role: rank for rank, role in enumerate(ROLES, start=1)}


def role_rank(user: Any) -> int:
    """0 for anyone without a role; cached on the user object for the request."""
    if not user.is_authenticated or not user.is_active:
        return 0
    if user.is_superuser:
        return _RANK[ADMIN]
    if getattr(user, "_earshot_role_rank", None) is None:
        _load_access(user)
    return user._earshot_role_rank


def visible_team_ids(user: Any) -> frozenset[int] | None:
    """The teams whose mentions `user` works, besides those routed to no team.

    None means every mention: supervisors and admins, and agents on every team there is (in
    particular when no team exists at all), so that their queue needs no filter. Cached on the
    user object with the role: both come from one query.
    """
    if role_rank(user) >= _RANK[SUPERVISOR]:
        return None
    if not user.is_authenticated or not user.is_active:
        return frozenset()
    if not hasattr(user, "_earshot_team_ids"):
        _load_access(user)
    return user._earshot_team_ids


def forget_access(user: Any) -> None:
    """Drop the cached role and teams of this user object, after they changed."""
    for attribute in ("_earshot_role_rank", "_earshot_team_ids"):
        if hasattr(user, attribute):
            delattr(user, attribute)


def _load_access(user: Any) -> None:
    """Role and teams in one round trip: every page asks for the role, the queue for both."""
    # Imported when first used: config.admin imports this module before the apps are loaded.
    from django.contrib.auth.models import Group

    from listening.models import Team

    memberships = Team.members.through._meta.db_table
    user_groups = get_user_model().groups.through._meta.db_table
    group_table = Group._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT
                ARRAY(SELECT g.name FROM {group_table} g JOIN {user_groups} ug ON ug.group_id = g.id
                      WHERE ug.user_id = %(user)s AND g.name = ANY(%(roles)s)),
                ARRAY(SELECT m.team_id FROM {memberships} m WHERE m.user_id = %(user)s),
                EXISTS(SELECT 1 FROM {Team._meta.db_table} t WHERE NOT EXISTS (
                    SELECT 1 FROM {memberships} m WHERE m.team_id = t.id AND m.user_id = %(user)s))
            """,
            {"user": user.pk, "roles": list(ROLES)},
        )
        role_names, team_ids, outside_some_team = cursor.fetchone()
    user._earshot_role_rank = max((_RANK[name] for name in role_names), default=0)
    user._earshot_team_ids = frozenset(team_ids) if outside_some_team else None


def has_role(user: Any, role: str) -> bool:
    return role_rank(user) >= _RANK[role]


def role_required(
    role: str,
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_required
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not has_role(request.user, role):
                raise PermissionDenied(f"This page needs the {role} role.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


class AdminRoleBackend:
    """Earshot's admins may do everything in Django's admin, as superusers may.

    Django's admin asks for model permissions, which only superusers hold by default: an
    admin invited from /people/ would open the admin's index and nothing in it (brands,
    playbooks). Everyone else gets no permission from here; agents and supervisors never
    reach the admin at all (config/admin.py). Authenticates no one.
    """

    def authenticate(self, request: HttpRequest | None, **credentials: Any) -> None:
        return None

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        return has_role(user_obj, ADMIN)

    def has_module_perms(self, user_obj: Any, app_label: str) -> bool:
        return has_role(user_obj, ADMIN)
