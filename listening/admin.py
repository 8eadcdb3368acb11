from django.contrib import admin

from listening.forms import KeywordForm
from listening.models import (
    Author,
    Brand,
    Mention,
    PollCursor,
    QuarantinedItem,
    Source,
    TrackedKeyword,
)


class TrackedKeywordInline(admin.TabularInline):
    model = TrackedKeyword
    extra = 0


@admin.register(Brand)
class BrandAdmin(admin.ModelAdmin):
    list_display = ["name", "x_handle", "created_at"]
    search_fields = ["name", "x_handle"]
    inlines = [TrackedKeywordInline]


@admin.register(TrackedKeyword)
class TrackedKeywordAdmin(admin.ModelAdmin):
    # The same validation as the in-app keyword page: a bad query is explained, not saved.
    form = KeywordForm
    list_display = ["query", "brand", "platform", "is_active", "poll_interval_seconds"]
    list_filter = ["brand", "platform", "is_active"]
    search_fields = ["query"]


@admin.register(PollCursor)
class PollCursorAdmin(admin.ModelAdmin):
    list_display = ["keyword", "since_id", "next_poll_at", "blocked_until", "last_error"]
    readonly_fields = [f.name for f in PollCursor._meta.fields]


@admin.register(Author)
class AuthorAdmin(admin.ModelAdmin):
    list_display = ["username", "name", "platform", "followers_count"]
    search_fields = ["username", "name"]


@admin.register(Mention)
class MentionAdmin(admin.ModelAdmin):
    list_display = ["external_id", "brand", "author", "sentiment_label", "status", "posted_at"]
    list_filter = ["brand", "status", "sentiment_label", "platform"]
    search_fields = ["text", "external_id"]
    raw_id_fields = ["author", "keyword", "claimed_by"]


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ["name", "brand", "platform", "base_url", "account_handle", "is_active"]
    list_filter = ["brand", "platform", "is_active"]
    search_fields = ["name", "base_url", "account_handle"]


@admin.register(QuarantinedItem)
class QuarantinedItemAdmin(admin.ModelAdmin):
    """What platforms sent that could not be read: for an admin to look at, never edited."""

    list_display = ["received_at", "platform", "keyword", "reason"]
    list_filter = ["platform", "keyword"]
    search_fields = ["reason", "raw"]
    readonly_fields = ["keyword", "platform", "reason", "raw", "received_at"]

    def has_add_permission(self, request) -> bool:
        return False
