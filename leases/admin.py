from django.contrib import admin

from .models import Backup, Lease


@admin.register(Lease)
class LeaseAdmin(admin.ModelAdmin):
    list_display = ["resource", "state", "starts_at", "expires_at", "grace_until", "extensions", "reclaimed_at"]
    list_filter = ["state"]
    readonly_fields = ["resource", "state", "starts_at", "notices_sent", "reclaimed_at", "last_report"]


@admin.register(Backup)
class BackupAdmin(admin.ModelAdmin):
    list_display = ["resource", "state", "location", "job_namespace", "job_name", "started_at", "finished_at"]
    list_filter = ["state"]
    readonly_fields = [
        "resource",
        "job_namespace",
        "job_name",
        "location",
        "state",
        "detail",
        "started_at",
        "finished_at",
    ]

    def has_add_permission(self, request) -> bool:
        return False
