"""django.contrib.admin without its autodiscovery at start-up (README "Performance").

Django's default AdminConfig imports every app's admin module in `django.setup()`, so every process
(each `manage.py` command, the reclaimer's CronJob, a worker) paid for the ModelAdmins and their forms.
Here, as Django documents for `SimpleAdminConfig`, the URLconf calls `admin.autodiscover()`
(config/urls.py), so the web has every ModelAdmin registered before it serves a page; and the admin's
system checks import them before they check them, so `manage.py check` and the tests still check
every ModelAdmin.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.apps import SimpleAdminConfig
from django.contrib.admin.checks import check_admin_app, check_dependencies
from django.core import checks


def check_every_model_admin(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Django's admin checks (`check_admin_app`), after the apps' admin modules are imported."""
    admin.autodiscover()
    return check_admin_app(app_configs, **kwargs)


class AdminConfig(SimpleAdminConfig):
    """The admin app (label `admin`), registering the admin checks with `check_every_model_admin`."""

    def ready(self) -> None:
        checks.register(check_dependencies, checks.Tags.admin)
        checks.register(check_every_model_admin, checks.Tags.admin)
