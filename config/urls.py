from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from config.health import healthz
from responses.people_views import invite_accept_view

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="responses:queue", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Public: the token in the invitation e-mail is the credential (responses/people_views.py).
    path("invite/<str:token>/", invite_accept_view, name="invite-accept"),
    path("admin/", admin.site.urls),
    path("", include("responses.urls")),
    path("listening/", include("listening.urls")),
]
