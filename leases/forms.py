"""Forms of the leases app: an admin's correction of a lease's expiry."""

from __future__ import annotations

from typing import Any, cast

from django import forms

from .models import Lease
from .services.extension import lease_expiry_errors
from .services.opening import database_now


class LeaseCorrectionForm(forms.ModelForm):
    """The one thing an admin changes on a lease: its expiry, with a reason, checked and applied by
    `lease_correct_expiry` (audited with before and after). Dates, state and remembered replicas are the
    reclaimer's and stay read-only."""

    reason = forms.CharField(
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Why the expiry changes (kept in the audit trail).",
    )

    class Meta:
        model = Lease
        fields = ["expires_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "expires_at" not in self.fields:  # shown read-only (a reclaimed lease)
            self.fields.pop("reason", None)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if "expires_at" in self.changed_data and data.get("expires_at") is not None:
            stored = Lease.objects.select_related("resource").get(pk=self.instance.pk)
            errors = lease_expiry_errors(lease=stored, expires_at=data["expires_at"], now=database_now())
            for field, messages in errors.items():
                for message in messages:
                    self.add_error(field, message)
            if not (data.get("reason") or "").strip():
                self.add_error("reason", "Say why the expiry changes.")
        return data


class ExtendForm(forms.Form):
    """A lease extension on a resource's page: how many days, why, and (a namespace) which of its apps and
    databases to extend with it. The form only reads the values; `lease_extend` decides what is allowed and
    its messages are shown next to the fields (the same rules as the API's)."""

    days = forms.IntegerField(
        label="Extend by (days)",
        initial=14,
        error_messages={"required": "Give a number of days.", "invalid": "Give a whole number of days."},
        widget=forms.NumberInput(attrs={"class": "w-5", "inputmode": "numeric"}),
    )
    justification = forms.CharField(
        label="Why it is still needed",
        required=False,  # `lease_extend` asks for it, with its own message
        max_length=500,
        widget=forms.TextInput(attrs={"class": "w-14"}),
    )
    children = forms.MultipleChoiceField(label="Extend with it", required=False, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, candidates: list | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.candidates = candidates or []
        # Always a field, so that a stale or foreign choice is an error rather than ignored.
        children = cast(forms.MultipleChoiceField, self.fields["children"])
        children.choices = [(str(c.pk), c.display_name) for c in self.candidates]

    def add_service_errors(self, errors: dict[str, list[str]]) -> None:
        for name, messages in errors.items():
            for message in messages:
                self.add_error(name if name in self.fields else None, message)
