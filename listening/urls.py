from django.urls import path

from listening import source_views, studio_views, views

app_name = "listening"
urlpatterns = [
    path("keywords/", views.keyword_list, name="keywords"),
    path("keywords/<int:keyword_id>/", views.keyword_edit, name="keyword-edit"),
    path("keywords/preview/", studio_views.keyword_preview_view, name="keyword-preview"),
    path("keywords/search/", studio_views.keyword_search_view, name="keyword-search"),
    path("keywords/<int:keyword_id>/pause/", studio_views.keyword_pause_view, name="keyword-pause"),
    path(
        "keywords/<int:keyword_id>/resume/",
        studio_views.keyword_resume_view,
        name="keyword-resume",
    ),
    path("health/", views.source_health, name="health"),
    path("sources/", source_views.source_list, name="sources"),
    path("sources/new/<str:platform>/", source_views.source_add, name="source-add"),
    path("sources/<int:source_id>/", source_views.source_edit, name="source-edit"),
    path("sources/<int:source_id>/test/", source_views.source_test, name="source-test"),
    path("brands/<int:brand_id>/x/", source_views.brand_x_edit, name="brand-x"),
    path("brands/<int:brand_id>/x/test/", source_views.brand_x_test, name="brand-x-test"),
]
