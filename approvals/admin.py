"""Django admin for approvals: the policy (viewable, and editable as a new validated version), the
frozen chains and their decisions (read-only), and delegations (given through the service, revoked,
never edited or deleted). Every change goes through a service and so into the audit trail."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.html import format_html_join

from requests_app.admin import ReadOnlyAdmin
from requests_app.errors import LeaseholdError, public_message

from .forms import DelegationAdminForm, PolicyForm
from .models import ApprovalChain, ApprovalPolicy, ApprovalStep, Decision, Delegation
from .policy import parse_policy
from .selectors import policy_in_force, policy_source_in_force
from .services import delegation_create, delegation_revoke, policy_load


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(admin.ModelAdmin):
    """Each version is kept; "Add" starts from the policy in force, validates it exactly like
    `manage.py load_policy`, and saves a new version (audited with who, a note and a diff)."""

    form = PolicyForm
    list_display = ["id", "in_force", "loaded_at", "loaded_by", "origin", "note", "rules"]
    readonly_fields = ["loaded_at", "loaded_by", "origin", "rules"]

    class Media:
        css = {"all": ["approvals/admin.css"]}

    @admin.display(boolean=True, description="in force")
    def in_force(self, obj: ApprovalPolicy) -> bool:
        _, row = policy_in_force()
        return row is not None and row.pk == obj.pk

    @admin.display(description="rules")
    def rules(self, obj: ApprovalPolicy) -> str:
        try:
            policy = parse_policy(obj.source)
        except ValueError as exc:  # only rows written before validation existed could fail here
            return f"invalid: {exc}"
        return format_html_join(
            ", ", "{} ({})", ((r.name, " → ".join(s.name for s in r.steps) or "auto") for r in policy.rules)
        )

    def get_fields(self, request, obj=None):
        return ["source", "note"] if obj is None else ["source", "note", "loaded_at", "loaded_by", "origin"]

    def get_readonly_fields(self, request, obj=None):
        # A stored version is history: it is never edited in place. Change it by adding a new version.
        return ["source", "note", "loaded_at", "loaded_by", "origin"] if obj is not None else []

    def get_changeform_initial_data(self, request: HttpRequest) -> dict:
        return {"source": policy_source_in_force()}

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj: ApprovalPolicy, form, change: bool) -> None:
        row, _ = policy_load(
            source=form.cleaned_data["source"], origin="admin", actor=request.user, note=form.cleaned_data["note"]
        )
        # The admin goes on to log and redirect to `obj`: make it the stored row.
        obj.pk, obj.loaded_at, obj.loaded_by, obj.origin = row.pk, row.loaded_at, row.loaded_by, row.origin
        obj._state.adding = False
        obj._state.db = row._state.db


class StepInline(admin.TabularInline):
    model = ApprovalStep
    fields = ("order", "name", "group", "required", "escalate_to", "state", "pending_since", "escalated_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    fk_name = "chain"

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ApprovalChain)
class ApprovalChainAdmin(ReadOnlyAdmin):
    list_display = ["request", "rule", "policy", "created_at"]
    # What the request's title (`create database atlas-web / orders`) is made of, in the list's one query.
    list_select_related = ["request__team", "request__parent__team", "policy"]
    readonly_fields = ["request", "rule", "policy", "created_at"]
    inlines = [StepInline]


@admin.register(ApprovalStep)
class ApprovalStepAdmin(ReadOnlyAdmin):
    list_display = ["id", "request", "order", "name", "group", "required", "state", "pending_since", "escalated_at"]
    list_select_related = ["request__team", "request__parent__team"]
    list_filter = ["state", "name", "group"]
    readonly_fields = [
        "chain",
        "request",
        "order",
        "name",
        "group",
        "required",
        "escalate_to",
        "state",
        "pending_since",
        "reminded_at",
        "reminders_sent",
        "escalated_at",
    ]


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = ["step", "approver", "on_behalf_of", "verdict", "comment", "at"]
    list_filter = ["verdict"]
    search_fields = ["approver__username", "on_behalf_of__username", "comment"]
    readonly_fields = ["step", "approver", "on_behalf_of", "delegation", "verdict", "comment", "at"]


@admin.register(Delegation)
class DelegationAdmin(admin.ModelAdmin):
    """Admins may give a delegation for anyone (e.g. for someone who fell ill) and revoke one; a
    delegation is never edited or deleted, so the trail of who could decide when stays true."""

    list_display = ["delegator", "delegate", "starts_on", "ends_on", "reason", "revoked_at", "created_by"]
    list_filter = ["starts_on", "ends_on"]
    search_fields = ["delegator__username", "delegate__username", "reason"]
    raw_id_fields = ["delegator", "delegate"]
    fields = [
        "delegator",
        "delegate",
        "starts_on",
        "ends_on",
        "reason",
        "created_by",
        "created_at",
        "revoked_at",
        "revoked_by",
    ]
    actions = ["revoke"]
    form = DelegationAdminForm

    def get_readonly_fields(self, request, obj=None):
        base = ["created_by", "created_at", "revoked_at", "revoked_by"]
        return base if obj is None else ["delegator", "delegate", "starts_on", "ends_on", "reason", *base]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj: Delegation, form, change: bool) -> None:
        if change:
            return  # every field is read-only once given
        row = delegation_create(
            delegator=obj.delegator,
            delegate=obj.delegate,
            starts_on=obj.starts_on,
            ends_on=obj.ends_on,
            reason=obj.reason,
            actor=request.user,
        )
        obj.pk = row.pk
        obj._state.adding = False
        obj._state.db = row._state.db

    @admin.action(description="Revoke the selected delegations now")
    def revoke(self, request, queryset) -> None:
        done = 0
        for delegation in queryset:
            try:
                delegation_revoke(delegation=delegation, actor=request.user, is_admin=True)
                done += 1
            except LeaseholdError as exc:
                self.message_user(request, f"{delegation}: {public_message(exc)}", level=messages.WARNING)
        self.message_user(request, f"Revoked {done} delegation{'s' if done != 1 else ''}.")
