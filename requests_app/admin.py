"""Django admin for the bottom layer.

What approvers decided on is read-only after filing: a request, and a resource's identity, are never
edited, added or deleted here; a change is a new request through the approval chain. What admins may do
goes through a service and into the audit trail: retry a failed request, hand a resource to another
member of its team. Teams, app templates, allowed registries and clusters stay editable; every save and delete of
them is audited with the fields before and after.
"""

from django import forms
from django.contrib import admin, messages

from .errors import LeaseholdError, public_message
from .forms import ResourceHandOverForm
from .models import (
    AllowedRegistry,
    AppTemplate,
    AuditEvent,
    Cluster,
    Environment,
    Heartbeat,
    MailState,
    OutgoingMail,
    Resource,
    ResourceRequest,
    Team,
)
from .names import count_of
from .services import catalog_delete, catalog_save, mail_deliver_pending, request_retry, resource_hand_over


class ReadOnlyAdmin(admin.ModelAdmin):
    """A record the workflow (or the reclaimer, or a restore) relies on: viewable, never added, changed
    or deleted from the admin, not even by superusers."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class CatalogAdmin(admin.ModelAdmin):
    """Edited in place by admins; each add, change and delete is audited through the services."""

    def save_model(self, request, obj, form, change: bool) -> None:
        catalog_save(obj=obj, actor=request.user)

    def delete_model(self, request, obj) -> None:
        catalog_delete(obj=obj, actor=request.user)

    def delete_queryset(self, request, queryset) -> None:
        for obj in queryset:
            catalog_delete(obj=obj, actor=request.user)


@admin.display(description="Name", ordering="name")
def display_name(obj: ResourceRequest | Resource) -> str:
    """`atlas-web / orders`, as every page names it (CONTRACT.md §6)."""
    return obj.display_name


@admin.register(Team)
class TeamAdmin(CatalogAdmin):
    list_display = ["slug", "name", "group", "budget_cpu", "budget_memory", "budget_storage", "budget_namespaces"]
    search_fields = ["slug", "name"]

    def get_readonly_fields(self, request, obj=None):
        # The slug names the team's namespaces (`<team>-<name>`) and labels: fixed once the team exists.
        return ["slug", "created_at"] if obj is not None else ["created_at"]


class ClusterForm(forms.ModelForm):
    api_server = forms.URLField(
        required=False, assume_scheme="https", help_text=Cluster._meta.get_field("api_server").help_text
    )
    environments = forms.MultipleChoiceField(
        choices=Environment.choices, widget=forms.CheckboxSelectMultiple, required=False
    )

    class Meta:
        model = Cluster
        fields = [
            "name",
            "api_server",
            "auth",
            "credentials_path",
            "environments",
            "region",
            "allocatable_cpu",
            "allocatable_memory",
            "allocatable_storage",
            "overcommit",
            "accepting",
            "timeout_seconds",
        ]


@admin.register(Cluster)
class ClusterAdmin(CatalogAdmin):
    """Where requests are placed. Only the path of the mounted credentials is stored and shown, never the
    credentials; each add, change and delete is audited. A cluster that requests or resources name cannot
    be deleted (PROTECT): stop it taking new requests instead."""

    form = ClusterForm
    list_display = ["name", "api_server", "auth", "region", "environments", "accepting", "overcommit", "healthy"]
    list_filter = ["accepting", "auth", "region"]
    search_fields = ["name", "region"]
    readonly_fields = [
        "healthy",
        "unhealthy_since",
        "health_checked_at",
        "health_detail",
        "nodes_cpu",
        "nodes_memory",
        "created_at",
    ]

    def get_readonly_fields(self, request, obj=None):
        # The name is what requests, resources and the policy file name: fixed once the cluster exists.
        return ["name", *self.readonly_fields] if obj is not None else self.readonly_fields


@admin.register(ResourceRequest)
class ResourceRequestAdmin(ReadOnlyAdmin):
    """Every field is what approvers decided on (or the workflow's record of it): read-only. A failed
    request may be sent back to provisioning through `request_retry`."""

    list_display = [
        "id",
        "action",
        "kind",
        display_name,
        "team",
        "environment",
        "cluster",
        "state",
        "requester",
        "created_at",
    ]
    list_select_related = ["team", "requester", "parent__team", "cluster"]
    list_filter = ["state", "kind", "environment", "cluster", "action", "team"]
    search_fields = ["name", "requester__username", "id"]
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
        self.message_user(request, f"{count_of(retried, 'request')} sent back to provisioning.")


RESOURCE_FIELDS = (
    "owner",
    "reason",
    "kind",
    "name",
    "team",
    "environment",
    "cluster",
    "spec",
    "lease_days",
    "parent",
    "state",
    "created_by_request",
    "activated_at",
    "lease_expires_at",
    "created_at",
    "updated_at",
)


@admin.register(Resource)
class ResourceAdmin(admin.ModelAdmin):
    """Read-only but for the owner: an admin may hand the resource to another member of its team (or to
    the team), through `resource_hand_over`, audited with the owner before and after."""

    list_display = ["id", "kind", display_name, "team", "environment", "cluster", "state", "owner", "activated_at"]
    list_select_related = ["team", "owner", "parent__team", "cluster"]
    list_filter = ["state", "kind", "environment", "cluster", "team"]
    search_fields = ["name", "owner__username", "id"]
    form = ResourceHandOverForm
    fields = RESOURCE_FIELDS
    readonly_fields = [f for f in RESOURCE_FIELDS if f not in ("owner", "reason")]

    def get_fields(self, request, obj=None):
        if obj is not None and obj.state in Resource.TERMINAL:
            return [f for f in RESOURCE_FIELDS if f != "reason"]  # reclaimed or failed: nothing to hand over
        return RESOURCE_FIELDS

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.state in Resource.TERMINAL:
            return self.get_fields(request, obj)
        return self.readonly_fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj: Resource, form, change: bool) -> None:
        if "owner" not in form.changed_data:
            return
        try:
            resource_hand_over(
                resource=obj,
                new_owner=form.cleaned_data["owner"],
                actor=request.user,
                reason=form.cleaned_data["reason"],
            )
        except LeaseholdError as exc:  # the resource changed since the form was checked
            self.message_user(request, f"Not handed over: {exc}", level=messages.ERROR)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """The audit trail, read-only: no add, change or delete, not even for superusers (and on PostgreSQL
    a trigger refuses UPDATE and DELETE of its rows, see migration 0005)."""

    list_display = ["at", "actor_name", "verb", "target_type", "target_id", "from_state", "to_state", "detail"]
    list_filter = ["verb", "target_type"]
    search_fields = ["actor_name", "target_id", "detail"]
    date_hierarchy = "at"


@admin.register(AllowedRegistry)
class AllowedRegistryAdmin(CatalogAdmin):
    list_display = ["prefix", "description"]


@admin.register(AppTemplate)
class AppTemplateAdmin(CatalogAdmin):
    """Changes apply to requests filed from now on: filed ones froze the template as it was."""

    list_display = ["slug", "name", "image_repository", "default_tag", "container_port", "accepts_database", "active"]
    list_filter = ["active", "accepts_database"]
    search_fields = ["slug", "name", "image_repository"]

    def get_readonly_fields(self, request, obj=None):
        # Requests and resources name their template by slug.
        return ["slug"] if obj is not None else []

    def get_prepopulated_fields(self, request, obj=None):
        return {"slug": ["name"]} if obj is None else {}


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

    def has_delete_permission(self, request, obj=None) -> bool:
        # What was sent, or is still to be sent, stays on record; a mail nobody should get is left pending.
        return False

    @admin.action(description="Retry the selected pending mail now", permissions=["change"])
    def retry_now(self, request, queryset) -> None:
        ids = list(queryset.filter(state=MailState.PENDING).values_list("pk", flat=True))
        result = mail_deliver_pending(limit=len(ids), ids=ids, actor=request.user)
        self.message_user(request, f"{count_of(len(result.sent), 'mail', 'mails')} sent.")
        for mail in result.failed:
            self.message_user(request, f"{mail}: {mail.last_error}", level=messages.ERROR)


@admin.register(Heartbeat)
class HeartbeatAdmin(ReadOnlyAdmin):
    """When each periodic job last finished: a job far behind its schedule means beat (or every worker)
    is not running."""

    list_display = ["task", "last_success_at"]
    readonly_fields = ["task", "last_success_at"]
    ordering = ["task"]
