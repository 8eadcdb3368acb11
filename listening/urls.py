from django.urls import path

from listening import views

app_name = "listening"
urlpatterns = [
    path("keywords/", views.keyword_list, name="keywords"),
    path("keywords/<int:keyword_id>/", views.keyword_edit, name="keyword-edit"),
    path("health/", views.source_health, name="health"),
]
