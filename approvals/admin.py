from django.contrib import admin

from .models import ApprovalChain, ApprovalPolicy, ApprovalStep, Decision


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(admin.ModelAdmin):
    list_display = ["id", "loaded_at", "loaded_by", "origin"]
    readonly_fields = ["source", "loaded_at", "loaded_by", "origin"]

    def has_add_permission(self, request) -> bool:
        # Policies are loaded (and validated) with `manage.py load_policy FILE`.
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class StepInline(admin.TabularInline):
    model = ApprovalStep
    fields = ("order", "name", "group", "required", "state", "pending_since")
    readonly_fields = fields
    extra = 0
    can_delete = False
    fk_name = "chain"

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ApprovalChain)
class ApprovalChainAdmin(admin.ModelAdmin):
    list_display = ["request", "rule", "created_at"]
    readonly_fields = ["request", "rule", "policy", "created_at"]
    inlines = [StepInline]


@admin.register(ApprovalStep)
class ApprovalStepAdmin(admin.ModelAdmin):
    list_display = ["id", "request", "order", "name", "group", "required", "state", "pending_since"]
    list_filter = ["state", "name", "group"]
    readonly_fields = ["chain", "request", "order", "name", "group", "required", "state", "pending_since"]


@admin.register(Decision)
class DecisionAdmin(admin.ModelAdmin):
    list_display = ["step", "approver", "verdict", "comment", "at"]
    readonly_fields = ["step", "approver", "verdict", "comment", "at"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
