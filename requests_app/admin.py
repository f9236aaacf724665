from django.contrib import admin

from .models import AuditEvent, Resource, ResourceRequest, Team


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "group", "budget_cpu", "budget_memory", "budget_storage", "budget_namespaces"]
    search_fields = ["slug", "name"]


@admin.register(ResourceRequest)
class ResourceRequestAdmin(admin.ModelAdmin):
    list_display = ["id", "action", "kind", "team", "name", "environment", "state", "requester", "created_at"]
    list_filter = ["state", "kind", "environment", "action", "team"]
    search_fields = ["name", "requester__username", "id"]
    # State moves only through the services (and so through the audit trail).
    readonly_fields = ["state", "resource", "error", "created_at", "updated_at"]
    raw_id_fields = ["requester"]


@admin.register(Resource)
class ResourceAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "team", "name", "environment", "state", "owner", "activated_at"]
    list_filter = ["state", "kind", "environment", "team"]
    search_fields = ["name", "owner__username", "id"]
    readonly_fields = ["state", "created_by_request", "activated_at", "created_at", "updated_at"]
    raw_id_fields = ["owner", "parent"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The audit trail, read-only: no add, change or delete, not even for superusers."""

    list_display = ["at", "actor_name", "verb", "target_type", "target_id", "from_state", "to_state", "detail"]
    list_filter = ["verb", "target_type"]
    search_fields = ["actor_name", "target_id", "detail"]
    date_hierarchy = "at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
