from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from config.roles import ADMIN, has_role


class EarshotAdminSite(admin.AdminSite):
    site_header = "Earshot administration"
    site_title = "Earshot admin"

    def has_permission(self, request: HttpRequest) -> bool:
        return super().has_permission(request) and has_role(request.user, ADMIN)

    def admin_view(self, view, cacheable=False):  # type: ignore[no-untyped-def]
        inner = super().admin_view(view, cacheable)

        def guarded(request: HttpRequest, *args, **kwargs):  # type: ignore[no-untyped-def]
            # Signed-in people without the admin role get a plain 403, not a login form.
            if request.user.is_authenticated and not has_role(request.user, ADMIN):
                raise PermissionDenied("Django's admin is for Earshot admins.")
            return inner(request, *args, **kwargs)

        return guarded


class EarshotAdminConfig(AdminConfig):
    default_site = "config.admin.EarshotAdminSite"
