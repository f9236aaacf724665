"""Django admin: every model has a page, and the audit trail cannot be edited from it."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from requests_app.models import AuditEvent
from tests.conftest import namespace_body

pytestmark = pytest.mark.django_db
OUR_APPS = ("requests_app", "approvals", "provisioning", "leases", "accounts")


def test_every_model_of_ours_is_in_the_admin():
    ours = [m for m in apps.get_models() if m._meta.app_label in OUR_APPS]
    assert ours
    assert [m.__name__ for m in ours if m not in admin.site._registry] == []


def test_every_changelist_and_change_page_renders_for_an_admin(client, api, requester, admin_user):
    api.as_(requester).post("/api/v1/requests/", namespace_body(), format="json")
    client.force_login(admin_user)
    for model in admin.site._registry:
        if model._meta.app_label not in OUR_APPS:
            continue
        info = (model._meta.app_label, model._meta.model_name)
        assert client.get(reverse("admin:{}_{}_changelist".format(*info))).status_code == 200, info
        obj = model.objects.first()
        if obj is not None:
            assert client.get(reverse("admin:{}_{}_change".format(*info), args=[obj.pk])).status_code == 200, info


def test_the_audit_trail_is_read_only_in_the_admin(client, api, requester, admin_user):
    api.as_(requester).post("/api/v1/requests/", namespace_body(), format="json")
    event = AuditEvent.objects.first()
    client.force_login(admin_user)
    url = reverse("admin:requests_app_auditevent_change", args=[event.pk])
    client.post(url, {"verb": "forged", "detail": "x"})
    assert client.get(reverse("admin:requests_app_auditevent_delete", args=[event.pk])).status_code == 403
    event.refresh_from_db()
    assert event.verb == "submitted"
    with pytest.raises(ValueError, match="append-only"):
        event.save()
