"""Earshot's three roles, each including the one below it: agent < supervisor < admin.

Roles are Django groups (created by a migration); superusers count as admins. Every view
states the least role it needs with `role_required`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
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
    cached = getattr(user, "_earshot_role_rank", None)
    if cached is None:
        names = user.groups.filter(name__in=ROLES).values_list("name", flat=True)
        cached = max((_RANK[name] for name in names), default=0)
        user._earshot_role_rank = cached
    return cached


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
