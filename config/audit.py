"""How django-auditlog is wired into Earshot: whose address a change came from, and how
secrets are hidden. What gets recorded is listed in settings (AUDITLOG_INCLUDE_TRACKING_MODELS)
and in responses/services/audit.py."""

from __future__ import annotations

from auditlog.middleware import AuditlogMiddleware
from django.http import HttpRequest

from config.security import client_ip_address

SECRET_CHANGED = "(hidden)"
SECRET_EMPTY = "(none)"
# How an empty credential reads once auditlog has made it text: a blank token, an empty
# JSON object of credentials, a missing value.
_EMPTY_VALUES = frozenset({"", "{}", "None", "null"})


def hide_secret(value: str) -> str:
    """What the audit log keeps of a credential: whether there is one, never any of it.

    (auditlog's own mask keeps the second half of the value in clear.) The log still says
    the field changed, from "(none)" to "(hidden)" when a secret is first set, "(hidden)" to
    "(hidden)" when it is replaced, and back to "(none)" when it is removed.
    """
    return SECRET_EMPTY if value.strip() in _EMPTY_VALUES else SECRET_CHANGED


class AuditActorMiddleware(AuditlogMiddleware):
    """auditlog's middleware (the signed-in user becomes each change's actor), with the
    client's address taken as the login throttle takes it.

    auditlog trusts the first X-Forwarded-For entry and X-Forwarded-Port, which any client
    can write; an audit trail must not record an address the client chose. Behind
    TRUSTED_PROXY_COUNT proxies the address is the one the nearest trusted proxy saw.
    """

    @staticmethod
    def _get_remote_addr(request: HttpRequest) -> str | None:
        return client_ip_address(request)

    @staticmethod
    def _get_remote_port(request: HttpRequest) -> int | None:
        return None
