from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from config.encryption import secret_mask
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


BRAND_SECRETS = (
    "x_bearer_token",
    "x_consumer_key",
    "x_consumer_secret",
    "x_access_token",
    "x_access_token_secret",
)


def _remove_box() -> forms.BooleanField:
    return forms.BooleanField(
        required=False, label="Remove", help_text="Forget the stored value (back to the default)."
    )


class BrandAdminForm(forms.ModelForm):
    """A brand's X secrets are never sent back to the browser.

    Each input starts blank, with the stored value shown as a mask ("••••abcd"); a blank input
    keeps the stored value, a new one replaces it, "Remove" forgets it.
    """

    remove_x_bearer_token = _remove_box()
    remove_x_consumer_key = _remove_box()
    remove_x_consumer_secret = _remove_box()
    remove_x_access_token = _remove_box()
    remove_x_access_token_secret = _remove_box()

    class Meta:
        model = Brand
        fields = ["name", "x_handle", *BRAND_SECRETS, "dm_link", "replies_need_approval"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in BRAND_SECRETS:
            field = self.fields[name]
            stored = getattr(self.instance, name)
            field.widget = forms.PasswordInput(
                render_value=False, attrs={"autocomplete": "new-password"}
            )
            self.initial[name] = ""
            field.help_text = (
                f"Stored: {secret_mask(stored)}. Leave blank to keep it."
                if stored
                else "Not set: the deployment's X credentials are used."
            )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for name in BRAND_SECRETS:
            new, remove = cleaned.get(name), cleaned.get(f"remove_{name}")
            if remove and new:
                self.add_error(name, "Type a new value or remove the stored one, not both.")
            elif remove:
                cleaned[name] = ""
            elif not new:
                cleaned[name] = getattr(self.instance, name)
        return cleaned


class SecretsAdmin(admin.ModelAdmin):
    # Django's admin shows a view-only user every field in full: secrets are only for those
    # who may change them.
    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_change_permission(request, obj)


@admin.register(Brand)
class BrandAdmin(SecretsAdmin):
    form = BrandAdminForm
    list_display = ["name", "x_handle", "created_at"]
    search_fields = ["name", "x_handle"]
    inlines = [TrackedKeywordInline]
    fieldsets = [
        (None, {"fields": ["name", "x_handle", "dm_link", "replies_need_approval"]}),
        (
            "X credentials",
            {
                "description": "Blank: the deployment's own (X_BEARER_TOKEN and the others). "
                "Stored encrypted; never shown again in full.",
                "fields": [(name, f"remove_{name}") for name in BRAND_SECRETS],
            },
        ),
    ]


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


class SourceAdminForm(forms.ModelForm):
    """A source's credentials are shown with every value masked ("••••abcd").

    Keys keep their names, so the structure can be edited: a value left as its mask keeps the
    stored secret, a new value replaces it, a key taken out is forgotten. A blank input keeps
    everything; {} forgets everything.
    """

    class Meta:
        model = Source
        fields = [
            "brand",
            "platform",
            "name",
            "base_url",
            "allow_private_address",
            "account_handle",
            "credentials",
            "is_active",
        ]
        widgets = {"credentials": forms.Textarea(attrs={"rows": 4, "autocomplete": "off"})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stored = self._stored()
        field = self.fields["credentials"]
        field.required = False
        self.initial["credentials"] = {key: _masked(value) for key, value in stored.items()}
        field.help_text = (
            'A JSON object of text values, e.g. {"access_token": "..."} (see README: Listening '
            "on other platforms). Stored encrypted; values show masked: leave a mask as it is "
            "to keep that value. Blank keeps everything."
        )

    def _stored(self) -> dict[str, Any]:
        stored = self.instance.credentials if self.instance.pk else {}
        return stored if isinstance(stored, dict) else {}

    def clean_credentials(self) -> dict[str, Any]:
        submitted = self.cleaned_data.get("credentials")
        stored = self._stored()
        if submitted is None or submitted == "":
            return stored
        if not isinstance(submitted, dict):
            raise ValidationError(
                'Credentials are a JSON object of text values, e.g. {"access_token": "..."}.'
            )
        return {
            key: stored[key] if key in stored and value == _masked(stored[key]) else value
            for key, value in submitted.items()
        }


def _masked(value: Any) -> str:
    return secret_mask(value if isinstance(value, str) else str(value)) or ""


@admin.register(Source)
class SourceAdmin(SecretsAdmin):
    form = SourceAdminForm
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
