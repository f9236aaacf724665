from django.contrib import admin

from .models import ManagedObject, ProvisioningJob


@admin.register(ManagedObject)
class ManagedObjectAdmin(admin.ModelAdmin):
    list_display = ["resource", "api_version", "kind", "namespace", "name", "uid", "applied_at", "deleted_at", "drift"]
    list_filter = ["kind"]
    search_fields = ["name", "namespace", "uid"]
    readonly_fields = [
        "resource",
        "api_version",
        "kind",
        "namespace",
        "name",
        "uid",
        "applied_at",
        "ready_at",
        "deleted_at",
        "drift",
        "drift_at",
    ]


@admin.register(ProvisioningJob)
class ProvisioningJobAdmin(admin.ModelAdmin):
    """Read-only: where each request's provisioning stands. Retry failed requests from the request admin."""

    list_display = ["request", "phase", "enqueued_at", "claimed_until", "retry_at", "last_error", "updated_at"]
    list_filter = ["phase"]
    search_fields = ["request__id", "request__name"]
    readonly_fields = [
        "request",
        "phase",
        "enqueued_at",
        "claim_token",
        "claimed_until",
        "retry_at",
        "ready_deadline",
        "last_error",
        "updated_at",
    ]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
