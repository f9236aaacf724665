"""Django admin for leases and backups. A lease's dates, state and remembered replicas belong to the
reclaimer; an admin may only correct its expiry, through `lease_correct_expiry` (audited). Backups are
what a restore needs: read-only, never deleted."""

from django.contrib import admin, messages

from requests_app.admin import ReadOnlyAdmin
from requests_app.errors import LeaseholdError

from .forms import LeaseCorrectionForm
from .models import Backup, Lease, LeaseState, OwnerCheck, ReclaimPass
from .services.extension import lease_correct_expiry

LEASE_FIELDS = (
    "resource",
    "state",
    "expires_at",
    "reason",
    "starts_at",
    "grace_until",
    "extensions",
    "notices_sent",
    "reclaimed_at",
    "quarantined_replicas",
    "last_manifests",
    "last_report",
)


@admin.register(Lease)
class LeaseAdmin(admin.ModelAdmin):
    list_display = ["resource", "state", "starts_at", "expires_at", "grace_until", "extensions", "reclaimed_at"]
    # What the resource's name (`atlas-web / orders`) is made of, in the list's one query.
    list_select_related = ["resource__team", "resource__parent__team"]
    list_filter = ["state"]
    form = LeaseCorrectionForm
    fields = LEASE_FIELDS
    readonly_fields = [f for f in LEASE_FIELDS if f not in ("expires_at", "reason")]

    def get_fields(self, request, obj=None):
        if obj is not None and obj.state not in (LeaseState.ACTIVE, LeaseState.GRACE):
            return [f for f in LEASE_FIELDS if f != "reason"]  # reclaiming or reclaimed: nothing to correct
        return LEASE_FIELDS

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.state not in (LeaseState.ACTIVE, LeaseState.GRACE):
            return self.get_fields(request, obj)
        return self.readonly_fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj: Lease, form, change: bool) -> None:
        if "expires_at" not in form.changed_data:
            return
        try:
            lease_correct_expiry(
                lease_id=obj.pk,
                expires_at=form.cleaned_data["expires_at"],
                actor=request.user,
                reason=form.cleaned_data["reason"],
            )
        except LeaseholdError as exc:  # the lease changed since the form was checked
            self.message_user(request, f"Expiry not corrected: {exc}", level=messages.ERROR)


@admin.register(Backup)
class BackupAdmin(ReadOnlyAdmin):
    list_display = ["resource", "kind", "state", "location", "job_namespace", "job_name", "started_at", "finished_at"]
    list_select_related = ["resource__team", "resource__parent__team"]
    list_filter = ["state", "kind"]
    readonly_fields = [
        "resource",
        "kind",
        "job_namespace",
        "job_name",
        "location",
        "state",
        "detail",
        "started_at",
        "finished_at",
    ]


@admin.register(OwnerCheck)
class OwnerCheckAdmin(ReadOnlyAdmin):
    """When the reclamation pass last checked an owner's teams (it picks the oldest checks next)."""

    list_display = ["user", "checked_at"]
    readonly_fields = ["user", "checked_at"]
    ordering = ["checked_at"]


@admin.register(ReclaimPass)
class ReclaimPassAdmin(ReadOnlyAdmin):
    """The reclamation passes that ran (the CronJob's and beat's), what they did and how long they took."""

    list_display = ["finished_at", "completed", "origin", "duration_seconds", "outcomes"]
    list_filter = ["completed", "origin"]
    readonly_fields = ["started_at", "finished_at", "duration_seconds", "completed", "origin", "outcomes", "error"]
    ordering = ["-finished_at"]
