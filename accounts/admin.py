"""API tokens in the admin: who holds one and until when — never a key or a digest.

Admins may end tokens (delete) but not make or edit them: a token minted in the admin would let an
admin act as someone else through the API.
"""

from __future__ import annotations

from django.contrib import admin
from knox.models import AuthToken

from .forms import AdminLoginForm
from .models import ApiToken
from .services import token_end

# Knox registers its own token admin, which lists digests and mints keys; our model replaces it.
if admin.site.is_registered(AuthToken):
    admin.site.unregister(AuthToken)

# The admin's login page also says so when too many failed logins locked it.
admin.site.login_form = AdminLoginForm


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "created", "expiry")
    list_filter = ("expiry",)
    search_fields = ("user__username",)
    fields = ("user", "created", "expiry")
    readonly_fields = fields
    list_select_related = ("user",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj: ApiToken) -> None:
        token_end(token=obj, actor=request.user)

    def delete_queryset(self, request, queryset) -> None:
        for token in queryset:
            token_end(token=token, actor=request.user)
