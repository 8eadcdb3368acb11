"""Login throttling (django-axes): whose failed logins count together."""

from __future__ import annotations

import logging
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_client_username, get_cool_off
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

logger = logging.getLogger(__name__)


class LoginThrottleBackend(AxesStandaloneBackend):
    """django-axes' lockout check, for logins over HTTP.

    `authenticate()` without a request (a shell, a management command, a test) has no client
    to throttle: it passes on to the next backend instead of failing as axes' own would.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def client_ip_address(request: HttpRequest) -> str | None:
    """The address failed logins are counted for (AXES_CLIENT_IP_CALLABLE).

    Behind TRUSTED_PROXY_COUNT proxies, each appending to X-Forwarded-For, the client is the
    entry that many places from the right: entries further left were written by the client
    and prove nothing. Without proxies, the connection's own address.
    """
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies > 0:
        forwarded = [
            entry.strip()
            for entry in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if entry.strip()
        ]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
        logger.warning(
            "X-Forwarded-For has %d entries behind %d trusted proxies: counting failed logins "
            "for the connection's address",
            len(forwarded),
            proxies,
        )
    return request.META.get("REMOTE_ADDR")


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """The page a locked-out login gets (AXES_LOCKOUT_CALLABLE): 429, saying why and how long."""
    cool_off = get_cool_off(request)
    return render(
        request,
        "registration/locked_out.html",
        {
            "username": get_client_username(request, credentials) or "",
            "failure_limit": settings.AXES_FAILURE_LIMIT,
            "cooloff_minutes": round(cool_off.total_seconds() / 60) if cool_off else None,
        },
        status=settings.AXES_HTTP_RESPONSE_CODE,
    )
