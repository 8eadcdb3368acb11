from django.urls import path

from listening import studio_views, views

app_name = "listening"
urlpatterns = [
    path("keywords/", views.keyword_list, name="keywords"),
    path("keywords/<int:keyword_id>/", views.keyword_edit, name="keyword-edit"),
    path("keywords/preview/", studio_views.keyword_preview_view, name="keyword-preview"),
    path("keywords/search/", studio_views.keyword_search_view, name="keyword-search"),
    path(
        "keywords/<int:keyword_id>/pause/", studio_views.keyword_pause_view, name="keyword-pause"
    ),
    path(
        "keywords/<int:keyword_id>/resume/",
        studio_views.keyword_resume_view,
        name="keyword-resume",
    ),
    path("health/", views.source_health, name="health"),
]
