from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import MaxLengthValidator

from listening.clients.registry import PLATFORM_SYNTAX
from listening.models import Platform, Source, TrackedKeyword
from listening.query import QuerySyntaxError, parse_query

QUERY_HELP_TEXT = (
    'Words must all match; "exact phrase"; OR between alternatives (AND binds first: '
    'a b OR c means (a b) OR c); ( ) to group; -word or -"phrase" to exclude; lang:en; '
    "from:handle or -from:handle; -is:retweet."
)


class KeywordForm(forms.ModelForm):
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

    def clean_query(self) -> str:
        # Stored as typed (stripped): the admin's own spelling is what the keyword list shows.
        query = self.cleaned_data["query"].strip()
        # The source is cleaned before the query (field order): its platform decides what
        # the query may ask (X: at most 512 characters; some need a shared word).
        source = self.cleaned_data.get("source")
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

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        brand, source = cleaned.get("brand"), cleaned.get("source")
        if source is not None and brand is not None and source.brand_id != brand.pk:
            self.add_error("source", f"{source.name} belongs to {source.brand.name}.")
        return cleaned

    def clean_poll_interval_seconds(self) -> int:
        value = self.cleaned_data["poll_interval_seconds"]
        if value < 5:
            raise forms.ValidationError("Poll at most every 5 seconds.")
        return value
