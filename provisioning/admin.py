from django.contrib import admin

from .models import ManagedObject


@admin.register(ManagedObject)
class ManagedObjectAdmin(admin.ModelAdmin):
    list_display = ["resource", "api_version", "kind", "namespace", "name", "uid", "applied_at", "deleted_at"]
    list_filter = ["kind"]
    search_fields = ["name", "namespace", "uid"]
    readonly_fields = ["resource", "api_version", "kind", "namespace", "name", "uid", "applied_at", "deleted_at"]
