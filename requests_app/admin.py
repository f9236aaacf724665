from django.contrib import admin, messages

from .errors import LeaseholdError, public_message
from .models import AllowedRegistry, AppTemplate, AuditEvent, Resource, ResourceRequest, Team
from .services import request_retry


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
    readonly_fields = ["state", "resource", "parent", "frozen", "error", "deliveries", "created_at", "updated_at"]
    raw_id_fields = ["requester"]
    actions = ["retry_failed"]

    @admin.action(description="Retry the selected failed requests")
    def retry_failed(self, request, queryset) -> None:
        retried = 0
        for filed in queryset.filter(state="failed"):
            try:
                request_retry(request=filed, actor=request.user)
                retried += 1
            except LeaseholdError as exc:
                self.message_user(request, f"{filed}: {public_message(exc)}", level=messages.ERROR)
        self.message_user(request, f"{retried} request(s) sent back to provisioning.")


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


@admin.register(AllowedRegistry)
class AllowedRegistryAdmin(admin.ModelAdmin):
    list_display = ["prefix", "description"]


@admin.register(AppTemplate)
class AppTemplateAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "image_repository", "default_tag", "container_port", "accepts_database", "active"]
    list_filter = ["active", "accepts_database"]
    search_fields = ["slug", "name", "image_repository"]
    prepopulated_fields = {"slug": ["name"]}
