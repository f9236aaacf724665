"""A dry run lists what a pass would reclaim, back up and defer, in queries that do not grow with the
leases it lists (issue 12: Leasehold's dry run against kube-janitor's), and changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from leases.models import Lease
from leases.services.opening import database_now, lease_open
from leases.services.reclaim_pass import reclaim_pass
from provisioning.models import ManagedObject
from requests_app.models import AuditEvent
from tests.factories import active_child, active_namespace

# needs the Kubernetes API server: a pass, even a dry run, checks the cluster first
pytestmark = [pytest.mark.django_db, pytest.mark.integration]

INSIDE = [("v1", "ResourceQuota", "leasehold"), ("rbac.authorization.k8s.io/v1", "RoleBinding", "leasehold-team")]


def due_namespace(team, owner, name: str, now, past: int = 1):
    """A namespace `past` minutes past grace with its recorded objects, as a pass finds it."""
    resource = active_namespace(team, owner, name=name)
    lease = lease_open(resource=resource)
    ns = resource.namespace_name
    ManagedObject.objects.create(resource=resource, api_version="v1", kind="Namespace", namespace="", name=ns)
    for api_version, kind, object_name in INSIDE:
        ManagedObject.objects.create(
            resource=resource, api_version=api_version, kind=kind, namespace=ns, name=object_name
        )
    Lease.objects.filter(pk=lease.pk).update(state="grace", grace_until=now - timedelta(minutes=past))
    type(resource).objects.filter(pk=resource.pk).update(state="grace")
    return resource


def test_a_dry_run_lists_the_objects_and_the_backups_and_defers_beyond_the_cap(atlas, requester, settings):
    settings.RECLAIM_MAX_PER_RUN = 2
    now = database_now()
    first = due_namespace(atlas, requester, "a", now, past=3)  # the longest past grace: first in the order
    orders = active_child(first, "database", "orders", {"version": "16", "storage": "1Gi", "plan": "small"})
    gone = ManagedObject.objects.create(resource=first, api_version="v1", kind="Secret", namespace="x", name="old")
    ManagedObject.objects.filter(pk=gone.pk).update(deleted_at=now)
    second = due_namespace(atlas, requester, "bb", now, past=2)
    due_namespace(atlas, requester, "ccc", now, past=1)  # past the cap
    events = AuditEvent.objects.count()

    report = reclaim_pass(now=now + timedelta(hours=1), dry_run=True)

    assert report.backups == [f"database {first.namespace_name}/{orders.name}"]
    assert [line.split(" (resource ")[0] for line in report.reclaimed] == [
        f"namespace {first.namespace_name}",
        f"namespace {second.namespace_name}",
    ]
    assert report.reclaimed[0].endswith(
        f": Namespace {first.namespace_name}, ResourceQuota {first.namespace_name}/leasehold, "
        f"RoleBinding {first.namespace_name}/leasehold-team"
    )
    assert f"resource {first.pk}, lease expires" in report.reclaimed[0]
    assert [line.split(" (resource ")[0] for line in report.deferred] == ["namespace atlas-ccc"]
    assert AuditEvent.objects.count() == events
    assert Lease.objects.filter(state="grace").count() == 3


def test_a_dry_runs_queries_do_not_grow_with_the_leases_it_lists(atlas, requester, settings):
    settings.RECLAIM_MAX_PER_RUN = 100
    now = database_now()

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            report = reclaim_pass(now=now + timedelta(hours=1), dry_run=True)
        return len(captured), len(report.reclaimed)

    for i in range(3):
        due_namespace(atlas, requester, f"n{i}", now)
    with_3 = queries()
    for i in range(3, 30):
        due_namespace(atlas, requester, f"n{i}", now)
    with_30 = queries()
    assert (with_3[1], with_30[1]) == (3, 30)
    assert with_30[0] == with_3[0]


def test_due_and_expired_leases_are_read_a_page_at_a_time_in_order_and_none_is_missed(
    atlas, requester, settings, monkeypatch
):
    """Both selections a pass makes on a lease index are read in keyset pages (in_key_order), so that
    PostgreSQL walks the index whatever it estimates; ties on the time are ordered by id, and no lease
    is listed twice or left out at a page's edge."""
    from requests_app import selectors

    monkeypatch.setattr(selectors, "KEY_PAGE", 2)
    settings.RECLAIM_MAX_PER_RUN = 100
    now = database_now()
    due = [due_namespace(atlas, requester, f"d{i}", now, past=2 if i < 3 else 1) for i in range(5)]  # 3 tie
    expired = [active_namespace(atlas, requester, name=f"e{i}") for i in range(3)]
    for resource in expired:
        lease_open(resource=resource)
        Lease.objects.filter(resource=resource).update(expires_at=now - timedelta(minutes=5))

    with CaptureQueriesContext(connection) as captured:
        report = reclaim_pass(now=now + timedelta(hours=1), dry_run=True)

    leases = {lease.resource_id: lease for lease in Lease.objects.filter(resource__in=due)}
    in_order = sorted(due, key=lambda r: (leases[r.pk].grace_until, leases[r.pk].pk))
    assert [line.split(" (resource ")[0] for line in report.reclaimed] == [
        f"namespace {r.namespace_name}" for r in in_order
    ]
    assert sorted(line.split(" (resource ")[0] for line in report.to_grace) == [
        f"namespace {r.namespace_name}" for r in expired
    ]
    paged = [q["sql"] for q in captured.captured_queries if 'FROM "leases_lease"' in q["sql"] and "LIMIT 2" in q["sql"]]
    assert len(paged) == 3 + 2  # 5 due: pages of 2, 2 and 1; 3 expired: 2 and 1
