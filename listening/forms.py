from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import MaxLengthValidator

from listening.models import TrackedKeyword
from listening.query import QuerySyntaxError, parse_query

QUERY_HELP_TEXT = (
    'Words must all match; "exact phrase"; OR between alternatives (AND binds first: '
    'a b OR c means (a b) OR c); ( ) to group; -word or -"phrase" to exclude; lang:en; '
    "from:handle or -from:handle; -is:retweet."
)


class KeywordForm(forms.ModelForm):
    class Meta:
        model = TrackedKeyword
        fields = ["brand", "query", "poll_interval_seconds", "is_active"]
        labels = {"poll_interval_seconds": "Poll every (seconds)", "is_active": "Active"}
        help_texts = {"query": QUERY_HELP_TEXT}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The parser explains an over-long query in X's terms; Django's generic
        # "at most 512 characters" would pre-empt it.
        field = self.fields["query"]
        field.validators = [v for v in field.validators if not isinstance(v, MaxLengthValidator)]

    def clean_query(self) -> str:
        # Stored as typed (stripped): the admin's own spelling is what the keyword list shows.
        query = self.cleaned_data["query"].strip()
        try:
            parse_query(query).to_x()
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

    def clean_poll_interval_seconds(self) -> int:
        value = self.cleaned_data["poll_interval_seconds"]
        if value < 5:
            raise forms.ValidationError("Poll at most every 5 seconds.")
        return value
