from django.contrib import admin, messages

from .errors import LeaseholdError
from .models import AllowedRegistry, AppTemplate, AuditEvent, MailState, OutgoingMail, Resource, ResourceRequest, Team
from .services import mail_deliver_pending, request_retry


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
                self.message_user(request, f"{filed}: {exc}", level=messages.ERROR)
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


@admin.register(OutgoingMail)
class OutgoingMailAdmin(admin.ModelAdmin):
    """The outbox: what was sent, and what the mail server has not accepted yet (retried every run)."""

    list_display = ["created_at", "topic", "subject", "recipient_list", "state", "attempts", "last_error", "sent_at"]
    list_filter = ["state", "topic"]
    search_fields = ["subject", "recipients", "key", "last_error"]
    date_hierarchy = "created_at"
    # Mail changes only through the services: what is shown is what was (or will be) sent.
    readonly_fields = [
        "topic",
        "key",
        "subject",
        "body",
        "from_email",
        "recipients",
        "state",
        "attempts",
        "last_error",
        "last_attempt_at",
        "sent_at",
        "created_at",
        "request_id",
        "resource_id",
    ]
    actions = ["retry_now"]

    @admin.display(description="to")
    def recipient_list(self, mail: OutgoingMail) -> str:
        return ", ".join(mail.recipients)

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Retry the selected pending mail now", permissions=["change"])
    def retry_now(self, request, queryset) -> None:
        ids = list(queryset.filter(state=MailState.PENDING).values_list("pk", flat=True))
        result = mail_deliver_pending(limit=len(ids), ids=ids, actor=request.user)
        self.message_user(request, f"{len(result.sent)} mail(s) sent.")
        for mail in result.failed:
            self.message_user(request, f"{mail}: {mail.last_error}", level=messages.ERROR)
