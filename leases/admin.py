from django.contrib import admin

from .models import Lease


@admin.register(Lease)
class LeaseAdmin(admin.ModelAdmin):
    list_display = ["resource", "state", "starts_at", "expires_at", "grace_until", "extensions", "reclaimed_at"]
    list_filter = ["state"]
    readonly_fields = ["resource", "state", "starts_at", "notices_sent", "reclaimed_at", "last_report"]
