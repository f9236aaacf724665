from __future__ import annotations

from django.contrib import admin

from .forms import AdminLoginForm

# The admin's login page also says so when too many failed logins locked it.
admin.site.login_form = AdminLoginForm
