from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any, NamedTuple

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm
from django.core.validators import MaxLengthValidator
from django.db.models import QuerySet
from django.forms.utils import pretty_name
from django.utils import timezone

from config.roles import ROLES
from listening.models import Brand, Mention, MentionStatus, SentimentLabel, Team, TrackedKeyword


def team_members():
    """Everyone with a role, who can be given a mention."""
    return (
        get_user_model()
        .objects.filter(is_active=True, groups__name__in=ROLES)
        .distinct()
        .order_by("username")
    )


class FilterSelect(NamedTuple):
    name: str
    label: str
    options: list[tuple[str, str, bool]]  # value, label, chosen


class QueueFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("", "Open"), *MentionStatus.choices])
    sentiment = forms.ChoiceField(
        required=False, choices=[("", "Any sentiment"), *SentimentLabel.choices]
    )
    # The keyword's id. Its choices are read as plain values in __init__: a model choice
    # field would build a model per keyword and read them through a server-side cursor.
    keyword = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    order = forms.ChoiceField(
        required=False,
        label="Sort",
        choices=[("", "Most urgent first"), ("newest", "Newest first"), ("oldest", "Oldest first")],
    )
    # Offered to supervisors and admins only, who see every team (see __init__).
    team = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    unclaimed = forms.BooleanField(required=False, label="Unclaimed only")
    min_followers = forms.IntegerField(
        required=False,
        min_value=0,
        label="Followers at least",
        widget=forms.NumberInput(attrs={"step": 1000, "class": "narrow"}),
    )

    # The parameters a saved view keeps: the filters, never paging or poll state.
    SAVED_FIELDS = (
        "status",
        "sentiment",
        "keyword",
        "team",
        "order",
        "unclaimed",
        "min_followers",
    )
    CHOICE_FIELDS = ("status", "sentiment", "keyword", "team", "order")

    def __init__(self, *args: Any, by_team: bool = False, **kwargs: Any) -> None:
        """`by_team`: offer the team filter (supervisors and admins, who see every team).

        Keywords and teams are read as plain values: a model choice field would build a
        model for each and read them through a server-side cursor, on every queue load.
        """
        super().__init__(*args, **kwargs)
        keywords = TrackedKeyword.objects.order_by("brand__name", "query").values_list(
            "pk", "brand__name", "query"
        )
        self.fields["keyword"].choices = [
            ("", "Any keyword"),
            *((pk, f"{brand}: {query}") for pk, brand, query in keywords),
        ]
        if by_team:
            teams = Team.objects.order_by("brand__name", "name").values_list(
                "pk", "brand__name", "name"
            )
            self.fields["team"].choices = [
                ("", "Every team"),
                *((pk, f"{brand}: {name}") for pk, brand, name in teams),
            ]
        else:
            del self.fields["team"]

    def choice_fields(self) -> list[FilterSelect]:
        """The select filters with their options, each option marked if it is chosen."""
        selects = []
        for name in self.CHOICE_FIELDS:
            field = self.fields.get(name)
            if field is None:
                continue
            chosen = str(self.data.get(name, ""))
            options = [(str(value), label, str(value) == chosen) for value, label in field.choices]
            selects.append(FilterSelect(name, field.label or pretty_name(name), options))
        return selects

    def unclaimed_checked(self) -> bool:
        # As the checkbox widget reads it ("false" unticks it, any other value ticks it).
        return self.fields["unclaimed"].widget.value_from_datadict(self.data, {}, "unclaimed")

    def saved_filters(self) -> dict[str, str]:
        """The non-empty filters as query parameters, for a saved view."""
        return {
            name: str(self.data[name])
            for name in self.SAVED_FIELDS
            if self.data.get(name) not in (None, "")
        }


class SavedViewForm(forms.Form):
    name = forms.CharField(
        max_length=60,
        label="Save these filters as",
        error_messages={"required": "Give the view a name, e.g. “Angry with reach”."},
    )


BULK_ACTIONS = [
    ("resolve", "Resolve"),
    ("ignore", "No reply needed"),
    ("spam", "Spam"),
    ("assign", "Assign"),
]


class BulkActionForm(forms.Form):
    mentions = forms.ModelMultipleChoiceField(
        queryset=Mention.objects.all(),
        error_messages={
            "required": "Select at least one mention first (x on a row).",
            "invalid_choice": "A selected mention is not in your teams' queue: nothing was done.",
        },
    )
    action = forms.ChoiceField(choices=BULK_ACTIONS)
    assignee = forms.ModelChoiceField(queryset=team_members(), required=False)

    def __init__(self, *args: Any, mentions: QuerySet[Mention] | None = None, **kwargs: Any):
        """`mentions`: those the person may act on (by default, all)."""
        super().__init__(*args, **kwargs)
        if mentions is not None:
            self.fields["mentions"].queryset = mentions

    def clean(self) -> dict[str, object]:
        cleaned = super().clean()
        if cleaned.get("action") == "assign" and not cleaned.get("assignee"):
            raise forms.ValidationError("Choose who to assign the selected mentions to.")
        return cleaned


class AssignForm(forms.Form):
    assignee = forms.ModelChoiceField(queryset=team_members(), label="Assign to", empty_label=None)


class ReplyForm(forms.Form):
    # When the agent opened the mention: a colleague's reply after that refuses this one.
    opened_at = forms.DateTimeField(widget=forms.HiddenInput, required=False)
    override_reason = forms.CharField(
        required=False,
        max_length=500,
        label="Send it as it is, because…",
        help_text="Kept with the reply, for the team to learn from.",
    )
    text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "data-counter": "reply-count"}),
        label="Your reply",
        error_messages={"required": "Write a reply before sending."},
    )

    def __init__(self, *args: Any, mention: Mention, **kwargs: Any) -> None:
        """The reply's length limit is that of the mention's platform."""
        super().__init__(*args, **kwargs)
        limit = mention.reply_max_length
        field = self.fields["text"]
        field.max_length = limit
        field.validators.append(MaxLengthValidator(limit))
        field.widget.attrs["maxlength"] = limit
        field.error_messages["max_length"] = (
            f"{mention.get_platform_display()} allows %(limit_value)d characters; "
            "this reply has %(show_value)d."
        )


class ReportPeriodForm(forms.Form):
    since = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), help_text="Included.")

    @classmethod
    def default_period(cls) -> dict[str, object]:
        today = timezone.localdate()
        return {"since": today - timedelta(days=6), "until": today}

    def clean(self) -> dict[str, object]:
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            raise forms.ValidationError("The period must start on or before the day it ends.")
        return cleaned

    def period(self) -> tuple[datetime, datetime]:
        """[since 00:00, the day after until 00:00) in the site's time zone."""
        zone = timezone.get_current_timezone()
        since = datetime.combine(self.cleaned_data["since"], time.min, tzinfo=zone)
        until = datetime.combine(
            self.cleaned_data["until"] + timedelta(days=1), time.min, tzinfo=zone
        )
        return since, until


# --- people (/people/) ---------------------------------------------------------------------

ROLE_CHOICES = [(role, role.title()) for role in ROLES]


def _teams_field() -> forms.ModelMultipleChoiceField:
    return forms.ModelMultipleChoiceField(
        queryset=Team.objects.select_related("brand"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Agents see their teams' mentions and those of no team.",
    )


class InviteForm(forms.Form):
    email = forms.EmailField(
        label="E-mail",
        error_messages={"required": "Enter the address to send the invitation to."},
    )
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial=ROLES[0])
    teams = _teams_field()

    def clean_email(self) -> str:
        email = self.cleaned_data["email"]
        if get_user_model().objects.filter(email__iexact=email, is_active=True).exists():
            raise forms.ValidationError(f"{email} already has an account.")
        return email


class UserAccessForm(forms.Form):
    role = forms.ChoiceField(choices=[("", "No role"), *ROLE_CHOICES], required=False)
    teams = _teams_field()


class TeamCreateForm(forms.Form):
    brand = forms.ModelChoiceField(queryset=Brand.objects.order_by("name"), empty_label=None)
    name = forms.CharField(
        max_length=120, error_messages={"required": "Give the team a name, e.g. “Billing”."}
    )


class TeamEditForm(forms.Form):
    name = forms.CharField(max_length=120, error_messages={"required": "A team needs a name."})
    members = forms.ModelMultipleChoiceField(
        queryset=get_user_model().objects.filter(is_active=True).order_by("username"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )


class InviteAcceptForm(UserCreationForm):
    """Username and password (twice), checked by Django's password validators."""

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username",)

    def __init__(self, *args: Any, email: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The validators compare the password with the e-mail address too.
        self.instance.email = email
