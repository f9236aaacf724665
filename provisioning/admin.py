"""Django admin for provisioning: what was applied (managed objects, releases) and where each request's
provisioning stands. All read-only: teardown deletes exactly the recorded objects and a rollback re-applies
a release as it was, so none of them is added, changed or deleted by hand."""

from django.contrib import admin

from requests_app.admin import ReadOnlyAdmin

from .models import ManagedObject, ProvisioningJob, Release


@admin.register(ManagedObject)
class ManagedObjectAdmin(ReadOnlyAdmin):
    """Read-only: the reclaimer deletes exactly these objects from the cluster."""

    list_display = ["resource", "api_version", "kind", "namespace", "name", "uid", "applied_at", "deleted_at", "drift"]
    # What the resource's name (`atlas-web / orders`) is made of, in the list's one query.
    list_select_related = ["resource__team", "resource__parent__team"]
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
class ProvisioningJobAdmin(ReadOnlyAdmin):
    """Read-only: where each request's provisioning stands. Retry failed requests from the request admin."""

    list_display = ["request", "phase", "enqueued_at", "claimed_until", "retry_at", "last_error", "updated_at"]
    list_select_related = ["request__team", "request__parent__team"]
    list_filter = ["phase"]
    search_fields = ["request__id", "request__name"]
    readonly_fields = [
        "request",
        "phase",
        "enqueued_at",
        "claim_token",
        "claimed_by",
        "claimed_until",
        "retry_at",
        "ready_deadline",
        "last_error",
        "updated_at",
    ]


@admin.register(Release)
class ReleaseAdmin(ReadOnlyAdmin):
    """An app's releases: kept as applied, so a rollback re-applies them exactly. Read-only."""

    list_display = ["resource", "number", "image_tag", "rolled_back_from", "request", "created_at"]
    list_select_related = ["resource__team", "resource__parent__team", "request__team", "request__parent__team"]
    search_fields = ["resource__name", "image_tag"]
    readonly_fields = [
        "resource",
        "number",
        "request",
        "image_tag",
        "spec",
        "manifests",
        "rolled_back_from",
        "created_at",
    ]
