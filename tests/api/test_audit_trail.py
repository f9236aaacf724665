"""The audit trail is append-only in the database too: on PostgreSQL a trigger refuses UPDATE and DELETE of
its rows, however they are issued; nothing deletes a row through a foreign key either."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import IntegrityError, connection, models, transaction
from django.urls import reverse

from requests_app.models import AuditEvent
from requests_app.services import audit_record
from tests.conftest import require_env

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def postgres():
    """The trigger exists on PostgreSQL only (SQLite, for `make run` and `make test-unit`, has none)."""
    require_env("DATABASE_URL")
    assert connection.vendor == "postgresql", "run with `make test`, which sets DATABASE_URL to PostgreSQL"


@pytest.fixture
def event(requester, atlas):
    return audit_record(actor=requester, verb="team_changed", target=atlas, detail="budget_cpu: '' → '8'")


def refused():
    return pytest.raises(IntegrityError, match="audit events are append-only")


@pytest.mark.integration
def test_a_queryset_update_is_refused_by_the_database(postgres, event):
    with refused(), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(detail="nothing happened")
    with refused(), transaction.atomic():
        AuditEvent.objects.update(actor=None, actor_name="")
    event.refresh_from_db()
    assert (event.detail, event.actor_name) == ("budget_cpu: '' → '8'", "dana")


@pytest.mark.integration
def test_a_queryset_delete_is_refused_by_the_database(postgres, event):
    with refused(), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    with refused(), transaction.atomic():
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.integration
def test_raw_sql_cannot_update_or_delete_audit_rows(postgres, event):
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    for sql in (f"UPDATE {table} SET verb = 'forged'", f"DELETE FROM {table}"):  # noqa: S608
        with refused(), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    event.refresh_from_db()
    assert event.verb == "team_changed"


@pytest.mark.integration
def test_appending_still_works(postgres, event, requester, atlas):
    audit_record(actor=requester, verb="team_changed", target=atlas, detail="again")
    assert AuditEvent.objects.count() == 2


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_django_flush_still_empties_the_database(postgres, event):
    """TRUNCATE is left possible on purpose: `flush`, which pytest-django runs after every transactional
    test, empties all tables with it."""
    call_command("flush", interactive=False, verbosity=0)
    assert not AuditEvent.objects.exists()


def test_no_foreign_key_deletes_or_rewrites_audit_rows():
    """SET_NULL would UPDATE audit rows and CASCADE DELETE them: every key from the trail is PROTECT,
    and no key points at the trail."""
    keys = [f for f in AuditEvent._meta.get_fields() if f.is_relation and f.many_to_one]
    assert {f.name for f in keys} == {"actor", "request", "resource"}
    assert {f.name: f.remote_field.on_delete for f in keys} == dict.fromkeys(
        ("actor", "request", "resource"), models.PROTECT
    )
    assert [f for f in AuditEvent._meta.get_fields() if f.auto_created and not f.concrete] == []


def test_a_user_the_trail_names_is_not_deleted(event, requester):
    with pytest.raises(models.ProtectedError):
        requester.delete()
    event.refresh_from_db()
    assert event.actor == requester


def test_the_admin_refuses_to_delete_such_a_user_without_an_error(client, event, admin_user, atlas):
    someone = get_user_model().objects.create_user("sid")
    audit_record(actor=someone, verb="team_changed", target=atlas)
    client.force_login(admin_user)
    url = reverse("admin:auth_user_delete", args=[someone.pk])
    response = client.post(url, {"post": "yes"})
    assert response.status_code == 200
    assert "Cannot delete user" in response.content.decode()
    assert get_user_model().objects.filter(pk=someone.pk).exists()
