"""Forms of the approvals app: giving a delegation (web), editing the policy (admin)."""

from __future__ import annotations

from django import forms

from .models import ApprovalPolicy, Delegation
from .policy import PolicyError, parse_policy
from .selectors import user_by_username
from .services import delegation_errors, policy_unknown_clusters


class DelegationForm(forms.Form):
    delegate = forms.CharField(
        max_length=150, help_text="Username of a colleague in your approver group who decides in your place."
    )
    starts_on = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), help_text="First day included.")
    ends_on = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), help_text="Last day included.")
    reason = forms.CharField(max_length=200, required=False)

    def clean_delegate(self):
        # None for an unknown name: the service refuses it with the same words as anyone ineligible.
        return user_by_username(self.cleaned_data["delegate"].strip())


class PolicyForm(forms.ModelForm):
    """The policy YAML, validated exactly as `manage.py load_policy` validates it."""

    class Meta:
        model = ApprovalPolicy
        fields = ["source", "note"]
        # A class, not a style attribute (the Content-Security-Policy): approvals/admin.css sets the font.
        widgets = {"source": forms.Textarea(attrs={"rows": 30, "cols": 100, "class": "policy-source"})}

    def clean_source(self) -> str:
        source = self.cleaned_data["source"]
        try:
            unknown = policy_unknown_clusters(parse_policy(source))
        except PolicyError as exc:
            raise forms.ValidationError(str(exc)) from exc
        if unknown:
            raise forms.ValidationError(unknown)
        return source


class DelegationAdminForm(forms.ModelForm):
    """A delegation given in the admin, checked like one given on the queue page."""

    class Meta:
        model = Delegation
        fields = ["delegator", "delegate", "starts_on", "ends_on", "reason"]

    def clean(self):
        data = super().clean()
        if self.instance.pk is None and all(data.get(k) for k in ("delegator", "delegate", "starts_on", "ends_on")):
            for name, messages in delegation_errors(
                delegator=data["delegator"],
                delegate=data["delegate"],
                starts_on=data["starts_on"],
                ends_on=data["ends_on"],
            ).items():
                for message in messages:
                    self.add_error(name, message)
        return data
