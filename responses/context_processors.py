from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from config.roles import ADMIN, SUPERVISOR, has_role


def roles(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None:
        return {}
    return {"is_supervisor": has_role(user, SUPERVISOR), "is_admin": has_role(user, ADMIN)}
