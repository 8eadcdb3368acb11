"""Admins edit the team's playbooks (and their reply templates) in Django's admin."""

from django.contrib import admin

from responses.models import Playbook, ReplyTemplate


class ReplyTemplateInline(admin.TabularInline):
    model = ReplyTemplate
    extra = 1
    fields = ["text", "is_dm_invite"]


@admin.register(Playbook)
class PlaybookAdmin(admin.ModelAdmin):
    list_display = ["name", "order", "match_sentiment", "match_questions_only", "is_active"]
    list_editable = ["order", "is_active"]
    search_fields = ["name", "match_phrases", "guidance"]
    inlines = [ReplyTemplateInline]
    fieldsets = [
        (None, {"fields": ["name", "order", "is_active", "guidance"]}),
        (
            "When it applies",
            {
                "fields": ["match_phrases", "match_sentiment", "match_questions_only"],
                "description": "The first active playbook, in order, that matches a mention is "
                "its plan. Phrases: one per line, any of them in the post. Templates may use "
                "{name}, {handle}, {their_words}, {agent_initials}, {brand} and {dm_link}.",
            },
        ),
    ]
