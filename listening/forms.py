from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.core.validators import MaxLengthValidator
from django.urls import reverse_lazy

from config.encryption import secret_mask
from listening.clients.registry import (
    PLATFORM_SYNTAX,
    SOURCE_CREDENTIAL_FIELDS,
    X_CREDENTIAL_FIELDS,
    CredentialField,
)
from listening.models import Brand, Platform, Source, Team, TrackedKeyword
from listening.query import QuerySyntaxError, parse_query

QUERY_HELP_TEXT = (
    'Words must all match; "exact phrase"; OR between alternatives (AND binds first: '
    'a b OR c means (a b) OR c); ( ) to group; -word or -"phrase" to exclude; lang:en; '
    "from:handle or -from:handle; -is:retweet."
)


def validated_query(query: str, source: Source | None) -> str:
    """The query as Earshot stores it (stripped: the admin's own spelling is what the keyword
    list shows), if `source`'s platform (none: X) can run it; else a ValidationError that
    explains why in the platform's terms."""
    query = query.strip()
    platform = source.platform if source is not None else Platform.X
    try:
        parse_query(query).split_for(PLATFORM_SYNTAX[platform])
    except QuerySyntaxError as error:
        raise forms.ValidationError(error.message, code="invalid_query") from error
    max_length = TrackedKeyword._meta.get_field("query").max_length
    if len(query) > max_length:
        # Only reachable with runs of spaces, which X is not sent (to_x normalises them).
        raise forms.ValidationError(
            f"Earshot keeps queries of at most {max_length} characters; this one has "
            f"{len(query)}. Remove the extra spaces."
        )
    return query


def _source_of_brand_error(brand: Brand | None, source: Source | None) -> str | None:
    if source is not None and brand is not None and source.brand_id != brand.pk:
        return f"{source.name} belongs to {source.brand.name}."
    return None


class _QueryOfSource:
    """A form's `query` checked against its `source`'s platform, and the source against its
    `brand` (keyword forms and the studio's draft form)."""

    cleaned_data: dict[str, Any]

    def clean_query(self) -> str:
        # The source is cleaned before the query (field order): its platform decides what
        # the query may ask (X: at most 512 characters; some need a shared word).
        return validated_query(self.cleaned_data["query"], self.cleaned_data.get("source"))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()  # type: ignore[misc]
        if problem := _source_of_brand_error(cleaned.get("brand"), cleaned.get("source")):
            self.add_error("source", problem)  # type: ignore[attr-defined]
        return cleaned


class KeywordForm(_QueryOfSource, forms.ModelForm):
    class Meta:
        model = TrackedKeyword
        fields = ["brand", "source", "query", "poll_interval_seconds", "is_active"]
        labels = {
            "poll_interval_seconds": "Poll at most every (seconds)",
            "is_active": "Active",
            "source": "Where",
        }
        help_texts = {
            "query": QUERY_HELP_TEXT,
            "source": "Blank: X, with the brand's X credentials. Sources are set up in Admin.",
            "poll_interval_seconds": "Earshot polls less often when the platform's rate limit "
            "must be shared with other keywords.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The parser explains an over-long query in X's terms; Django's generic
        # "at most 512 characters" would pre-empt it.
        field = self.fields["query"]
        field.validators = [v for v in field.validators if not isinstance(v, MaxLengthValidator)]
        self.fields["source"].empty_label = "X (the brand's X account)"
        self.fields["source"].queryset = Source.objects.filter(is_active=True).select_related(
            "brand"
        )

    def clean_poll_interval_seconds(self) -> int:
        value = self.cleaned_data["poll_interval_seconds"]
        if value < 5:
            raise forms.ValidationError("Poll at most every 5 seconds.")
        return value


# The studio's live preview asks again whenever the query, brand, source or window changes.
_PREVIEW_ON_TYPING = {
    "hx-get": reverse_lazy("listening:keyword-preview"),
    "hx-trigger": "keyup changed delay:400ms",
    "hx-target": "#keyword-preview",
    "hx-include": "closest form",
    "hx-sync": "closest form:replace",
}
_PREVIEW_ON_CHANGE = {**_PREVIEW_ON_TYPING, "hx-trigger": "change"}


class KeywordStudioForm(KeywordForm):
    """The keyword form of the studio pages: with the team its mentions are routed to, and
    the live preview wired to the query as it is typed."""

    class Meta(KeywordForm.Meta):
        fields = [*KeywordForm.Meta.fields, "team"]
        labels = {**KeywordForm.Meta.labels, "team": "Route to team"}
        help_texts = {
            **KeywordForm.Meta.help_texts,
            "team": "Its mentions go to this team's queue; blank: every agent of the brand. "
            "Changing it moves the open mentions too.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        team = self.fields["team"]
        team.empty_label = "Every agent of the brand"
        brand_id = self.instance.brand_id if self.instance.pk else None
        # An existing keyword offers its brand's teams; a new one every brand's, by name.
        team.queryset = (
            Team.objects.filter(brand_id=brand_id)
            if brand_id
            else Team.objects.select_related("brand")
        )
        self.fields["query"].widget.attrs.update(_PREVIEW_ON_TYPING)
        for name in ("brand", "source"):
            self.fields[name].widget.attrs.update(_PREVIEW_ON_CHANGE)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        brand, team = cleaned.get("brand"), cleaned.get("team")
        if brand is not None and team is not None and team.brand_id != brand.pk:
            self.add_error("team", f"{team.name} is a team of {team.brand.name}, not {brand.name}.")
        return cleaned


class KeywordDraftForm(_QueryOfSource, forms.Form):
    """A query being written, for the live preview and the one-off search: the fields of the
    keyword form they need, and the preview's window."""

    brand = forms.ModelChoiceField(queryset=Brand.objects.all())
    source = forms.ModelChoiceField(
        queryset=Source.objects.filter(is_active=True).select_related("brand"), required=False
    )
    # Blank is refused by the parser, which says what to enter.
    query = forms.CharField(strip=True, required=False)
    poll_interval_seconds = forms.IntegerField(min_value=5, required=False)
    preview_days = forms.TypedChoiceField(
        choices=[("", "All stored mentions"), ("30", "The last 30 days")],
        coerce=int,
        empty_value=None,
        required=False,
    )

    @property
    def problem(self) -> str:
        """The first reason the draft cannot be previewed or searched, for the admin."""
        for name in ("query", "brand", "source", "poll_interval_seconds", "preview_days"):
            for error in self.errors.get(name, ()):
                label = "" if name == "query" else f"{self.fields[name].label or name.title()}: "
                return f"{label}{error}"
        return ""


# --- credentials entered in the app (listening/source_views.py) ------------------------------

# Longer than any token, key or password the platforms issue.
CREDENTIAL_MAX_LENGTH = 2000
X_HANDLE_RE = re.compile(r"[A-Za-z0-9_]{1,15}")
BASE_URL_LABELS = {
    Platform.MASTODON: ("Instance", "e.g. https://mastodon.social (blank: mastodon.social)."),
    Platform.BLUESKY: ("PDS or entryway", "Blank: https://bsky.social."),
    Platform.REDDIT: ("API address", "Blank: Reddit itself."),
    Platform.HACKER_NEWS: ("API address", "Blank: https://hn.algolia.com."),
    Platform.RSS: ("Feed address", "The RSS or Atom feed's own address (http or https)."),
}


class _CredentialInputs:
    """One input per credential of the platform (`listening.clients.registry`).

    A secret's input is a password input, never pre-filled: blank keeps the stored value,
    its "clear" box forgets it. A name (a username, a subreddit) is a text input holding
    its stored value.
    """

    fields: dict[str, forms.Field]
    credential_fields: tuple[CredentialField, ...]

    def _add_credential_inputs(
        self, credential_fields: tuple[CredentialField, ...], stored: dict[str, Any]
    ) -> None:
        self.credential_fields = credential_fields
        self._stored_credentials = stored
        for credential in credential_fields:
            value = stored.get(credential.key)
            value = value if isinstance(value, str) else ""
            if not credential.secret:
                self.fields[f"credential_{credential.key}"] = forms.CharField(
                    label=credential.label,
                    required=False,
                    max_length=CREDENTIAL_MAX_LENGTH,
                    initial=value,
                    help_text=credential.help_text,
                )
                continue
            held = (
                f"Stored: {secret_mask(value)}. Leave blank to keep it."
                if value
                else self._not_set_words(credential)
            )
            self.fields[f"credential_{credential.key}"] = forms.CharField(
                label=credential.label,
                required=False,
                strip=True,
                max_length=CREDENTIAL_MAX_LENGTH,
                widget=forms.PasswordInput(
                    render_value=False, attrs={"autocomplete": "new-password"}
                ),
                help_text=f"{credential.help_text} {held}".strip(),
            )
            if value:
                self.fields[f"clear_{credential.key}"] = forms.BooleanField(
                    label=f"Clear the stored {credential.label[0].lower()}{credential.label[1:]}",
                    required=False,
                )

    def _not_set_words(self, credential: CredentialField) -> str:
        return "Not set."

    def typed_credentials(self) -> dict[str, str]:
        cleaned = self.cleaned_data  # type: ignore[attr-defined]
        return {c.key: cleaned.get(f"credential_{c.key}") or "" for c in self.credential_fields}

    def cleared_credentials(self) -> set[str]:
        cleaned = self.cleaned_data  # type: ignore[attr-defined]
        return {c.key for c in self.credential_fields if cleaned.get(f"clear_{c.key}")}

    def _check_credential_inputs(self, platform_name: str) -> None:
        cleaned = self.cleaned_data  # type: ignore[attr-defined]
        for credential in self.credential_fields:
            typed = cleaned.get(f"credential_{credential.key}")
            clear = cleaned.get(f"clear_{credential.key}")
            if typed and clear:
                self.add_error(  # type: ignore[attr-defined]
                    f"credential_{credential.key}",
                    "Type a new value or clear the stored one, not both.",
                )
            elif (
                credential.required
                and not typed
                and (clear or not self._stored_credentials.get(credential.key))
            ):
                self.add_error(  # type: ignore[attr-defined]
                    f"credential_{credential.key}",
                    f"{platform_name} needs the {credential.label[0].lower()}"
                    f"{credential.label[1:]}.",
                )


class SourceForm(_CredentialInputs, forms.ModelForm):
    """A source of one platform: its address and account, and exactly that platform's
    credentials. The model's own checks (the feed address check among them) run too."""

    class Meta:
        model = Source
        fields = [
            "brand",
            "name",
            "base_url",
            "allow_private_address",
            "account_handle",
            "is_active",
        ]
        labels = {"is_active": "Active", "account_handle": "The brand's account there"}
        help_texts = {
            "account_handle": "Whose posts are read to find replies sent outside Earshot.",
        }

    def __init__(self, *args: Any, platform: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.instance.platform = platform
        self.platform = platform
        label, help_text = BASE_URL_LABELS[platform]
        self.fields["base_url"].label = label
        self.fields["base_url"].help_text = help_text
        self.fields["base_url"].assume_scheme = "https"
        if platform in (Platform.HACKER_NEWS, Platform.RSS):
            del self.fields["account_handle"]  # their clients read no account
        if platform != Platform.RSS:
            del self.fields["allow_private_address"]  # only the feed client checks addresses
        stored = self.instance.credentials if self.instance.pk else {}
        self._add_credential_inputs(
            SOURCE_CREDENTIAL_FIELDS[platform], stored if isinstance(stored, dict) else {}
        )

    def clean_base_url(self) -> str:
        address = self.cleaned_data["base_url"]
        if urlsplit(address).password is not None or "@" in urlsplit(address).netloc:
            # It would be shown on the sources page and in every error message, unmasked.
            raise forms.ValidationError(
                "Put the username and password in their own fields below, not in the address."
            )
        return address

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        no_address = not cleaned.get("base_url") and "base_url" not in self.errors
        if self.platform == Platform.RSS and no_address:
            self.add_error("base_url", "A feed source needs the feed's address.")
        self._check_credential_inputs(Platform(self.platform).label)
        return cleaned


class BrandXForm(_CredentialInputs, forms.Form):
    """A brand's X account: its handle and its own X credentials, each blank for the
    deployment's (X_BEARER_TOKEN and the others)."""

    x_handle = forms.CharField(
        label="X handle",
        required=False,
        max_length=16,
        help_text="The brand's own account, without @: replies are posted from it.",
    )

    def __init__(self, *args: Any, brand: Brand, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {"x_handle": brand.x_handle})
        super().__init__(*args, **kwargs)
        self.brand = brand
        self._add_credential_inputs(
            X_CREDENTIAL_FIELDS, {c.key: getattr(brand, c.key) for c in X_CREDENTIAL_FIELDS}
        )

    def _not_set_words(self, credential: CredentialField) -> str:
        return "Not set: the deployment's own is used."

    def clean_x_handle(self) -> str:
        handle = self.cleaned_data["x_handle"].strip().removeprefix("@")
        if handle and not X_HANDLE_RE.fullmatch(handle):
            raise forms.ValidationError(
                "An X handle is 1 to 15 letters, digits or underscores, e.g. NorthwindHelp."
            )
        return handle

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        self._check_credential_inputs("X")
        return cleaned
