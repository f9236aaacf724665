from __future__ import annotations

from typing import cast

from django import forms
from django.conf import settings
from django.core.validators import MaxValueValidator

from .models import Environment
from .specs import NAMESPACE_PLANS

PLAN_CHOICES = [(k, f"{k} — {v.cpu} CPU, {v.memory} memory, {v.storage} storage") for k, v in NAMESPACE_PLANS.items()]
PLAN_CHOICES.append(("custom", "custom quantities"))


class NamespaceRequestForm(forms.Form):
    """The web form for a namespace; the service does the checking, the form places its messages."""

    team = forms.ChoiceField()
    name = forms.CharField(
        max_length=63, help_text="Lower-case letters, digits and '-'; the namespace is <team>-<name>."
    )
    environment = forms.ChoiceField(choices=Environment.choices, initial=Environment.DEV)
    plan = forms.ChoiceField(choices=PLAN_CHOICES, initial="small")
    cpu = forms.CharField(required=False, help_text="e.g. 2 or 500m (custom only)")
    memory = forms.CharField(required=False, help_text="e.g. 4Gi (custom only)")
    storage = forms.CharField(required=False, help_text="e.g. 20Gi (custom only)")
    lease_days = forms.IntegerField(min_value=1)
    justification = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    def __init__(self, *args, teams: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        team_field = cast(forms.ChoiceField, self.fields["team"])
        team_field.choices = [(t, t) for t in teams]
        lease_field = cast(forms.IntegerField, self.fields["lease_days"])
        lease_field.max_value = settings.LEASE_MAX_DAYS
        lease_field.validators.append(MaxValueValidator(settings.LEASE_MAX_DAYS))
        lease_field.initial = settings.LEASE_DEFAULT_DAYS
        lease_field.help_text = f"1 to {settings.LEASE_MAX_DAYS} days"

    def service_fields(self) -> dict:
        data = self.cleaned_data
        if data["plan"] == "custom":
            spec = {k: data[k] for k in ("cpu", "memory", "storage") if data.get(k)}
        else:
            spec = {"plan": data["plan"]}
        return {
            "kind": "namespace",
            "team": data["team"],
            "name": data["name"],
            "environment": data["environment"],
            "lease_days": data["lease_days"],
            "justification": data["justification"],
            "spec": spec,
        }

    def add_service_errors(self, errors: dict[str, list[str]]) -> None:
        for key, messages in errors.items():
            name = key.removeprefix("spec.")
            for message in messages:
                self.add_error(name if name in self.fields else None, message)
