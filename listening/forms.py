from __future__ import annotations

from django import forms

from listening.models import TrackedKeyword

X_QUERY_MAX_LENGTH = 512


class KeywordForm(forms.ModelForm):
    class Meta:
        model = TrackedKeyword
        fields = ["brand", "query", "poll_interval_seconds", "is_active"]
        labels = {"poll_interval_seconds": "Poll every (seconds)", "is_active": "Active"}

    def clean_query(self) -> str:
        query = self.cleaned_data["query"].strip()
        if not query:
            raise forms.ValidationError("Enter what to listen for, e.g. the brand's name.")
        if len(query) > X_QUERY_MAX_LENGTH:
            raise forms.ValidationError(
                f"X accepts queries of at most {X_QUERY_MAX_LENGTH} characters; "
                f"this one has {len(query)}."
            )
        if query.count('"') % 2:
            raise forms.ValidationError('A quotation mark is not closed: check your "phrases".')
        return query

    def clean_poll_interval_seconds(self) -> int:
        value = self.cleaned_data["poll_interval_seconds"]
        if value < 5:
            raise forms.ValidationError("Poll at most every 5 seconds.")
        return value
