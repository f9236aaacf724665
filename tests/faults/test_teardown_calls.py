"""Teardown makes the fewest API calls that keep the ownership rule, and never deletes what changed hands
between its read and its delete: counted and raced through the fault proxy, on the real API server."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection

from leases.models import Lease
from leases.services.reclaim_pass import reclaim_pass
from provisioning import cluster
from provisioning.models import ManagedObject
from provisioning.services.teardown import TeardownReport, resource_teardown
from requests_app.models import Resource
from tests.integration.conftest import provisioned_namespace

from .conftest import wait_for
from .proxy import Rule

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def through_proxy(proxy, faulty_env, monkeypatch, settings):
    """The service reaches the API server through the proxy (no faults unless a test adds one)."""
    monkeypatch.setenv("KUBECONFIG", faulty_env["KUBECONFIG"])
    settings.LEASEHOLD_CLUSTER = "kubeconfig"
    cluster.reset_clients()
    yield proxy
    cluster.reset_clients()


def teardown_while_delete_held(proxy, namespace: Resource, path: str, meanwhile) -> TeardownReport:
    """Tear `namespace` down while the proxy holds the DELETE of `path` for two seconds, and run
    `meanwhile` (what someone else does to the object) once that DELETE has arrived."""
    held = proxy.add(Rule("delay", method="DELETE", path=rf"{path}$", delay=2, first=1))
    outcome: dict = {}

    def tear_down() -> None:
        try:
            outcome["report"] = resource_teardown(resource=namespace)
        finally:
            connection.close()

    thread = threading.Thread(target=tear_down)
    thread.start()
    try:
        wait_for(lambda: held.fired, timeout=20, interval=0.02, what=f"the DELETE of {path} to reach the proxy")
        meanwhile()
    finally:
        thread.join(timeout=60)
    return outcome["report"]


def calls(proxy, since: int = 0) -> list[str]:
    """The calls through the proxy, without the readiness check a pass makes once before it starts."""
    made = [f"{e.method} {e.path.split('?')[0]}" for e in proxy.log[since:]]
    return [call for call in made if call != "GET /readyz"]


def test_a_namespace_goes_in_two_calls_and_its_follow_up_costs_one(approved_namespace, through_proxy, core):
    namespace = provisioned_namespace(approved_namespace)
    name = namespace.namespace_name
    path = f"/api/v1/namespaces/{name}"
    before = len(through_proxy.log)  # provisioning went through the proxy too

    report = resource_teardown(resource=namespace)

    # A read proves the label; the DELETE (preconditions: that uid and version) says it is terminating.
    assert calls(through_proxy, before) == [f"GET {path}", f"DELETE {path}"]
    assert report.deleted == [f"Namespace {name}"] and report.pending == [f"Namespace {name}: still terminating"]
    assert not report.complete
    # The four objects inside go with it: not deleted one by one, and not marked gone before it is.
    assert ManagedObject.objects.filter(resource=namespace, deleted_at__isnull=True).count() == 5
    assert core.read_namespace(name).status.phase == "Terminating"

    wait_for(lambda: not core.list_namespace(field_selector=f"metadata.name={name}").items, what="the namespace")
    before = len(through_proxy.log)
    report = resource_teardown(resource=namespace)

    assert calls(through_proxy, before) == [f"GET {path}"]
    assert report.complete and len(report.gone) == 5
    assert not ManagedObject.objects.filter(resource=namespace, deleted_at__isnull=True).exists()


def test_a_pass_over_due_namespaces_makes_two_calls_for_each(approved_namespace, through_proxy, settings):
    settings.LEASEHOLD_K8S_CONCURRENCY = 2  # batches of eight: three namespaces span one, nine span two
    namespaces = [provisioned_namespace(approved_namespace) for _ in range(9)]
    leases = Lease.objects.filter(resource__in=namespaces)
    expiry = max(lease.expires_at for lease in leases)
    reclaim_pass(now=expiry + timedelta(minutes=1))  # into grace (quarantine reads its workloads)
    assert leases.filter(state="grace").count() == 9
    before = len(through_proxy.log)

    report = reclaim_pass(now=expiry + timedelta(days=settings.LEASE_GRACE_DAYS, minutes=2))

    assert report.errors == [] and len(report.in_progress) == 9, report.lines()
    made = calls(through_proxy, before)
    assert len(made) == 18
    for namespace in namespaces:
        path = f"/api/v1/namespaces/{namespace.namespace_name}"
        assert made.count(f"GET {path}") == 1 and made.count(f"DELETE {path}") == 1
    assert leases.filter(state="reclaiming").count() == 9


def test_a_namespace_relabelled_while_its_delete_is_in_flight_is_left_alone(approved_namespace, through_proxy, core):
    namespace = provisioned_namespace(approved_namespace)
    name = namespace.namespace_name
    before = len(through_proxy.log)

    def take_over() -> None:  # after the service read the namespace, before its DELETE lands
        core.patch_namespace(name, {"metadata": {"labels": {"leasehold.io/resource": "someone-else"}}})

    report = teardown_while_delete_held(through_proxy, namespace, f"/api/v1/namespaces/{name}", take_over)

    assert core.read_namespace(name).status.phase == "Active"
    assert [line.split(":")[0] for line in report.refused] == [f"Namespace {name}"]
    # The first DELETE was refused by its preconditions (409); the namespace was read again, not deleted.
    assert calls(through_proxy, before).count(f"DELETE /api/v1/namespaces/{name}") == 1
    assert ManagedObject.objects.filter(resource=namespace, kind="Namespace", deleted_at__isnull=True).exists()


def test_an_object_replaced_while_its_delete_is_in_flight_is_left_alone(approved_namespace, through_proxy, core):
    namespace = provisioned_namespace(approved_namespace)
    name = namespace.namespace_name
    # Not ours any more: each object inside is then checked and deleted on its own.
    core.patch_namespace(name, {"metadata": {"labels": {"leasehold.io/resource": "someone-else"}}})
    old_uid = core.read_namespaced_resource_quota("leasehold", name).metadata.uid

    def replace() -> None:  # by someone else's quota of the same name: a new uid, no label of ours
        core.delete_namespaced_resource_quota("leasehold", name)
        foreign = {"metadata": {"name": "leasehold"}, "spec": {"hard": {"pods": "3"}}}
        core.create_namespaced_resource_quota(name, foreign)

    quota = f"/api/v1/namespaces/{name}/resourcequotas/leasehold"
    report = teardown_while_delete_held(through_proxy, namespace, quota, replace)

    live = core.read_namespaced_resource_quota("leasehold", name)
    assert live.metadata.uid != old_uid and live.spec.hard == {"pods": "3"}
    assert any(line.startswith(f"ResourceQuota {name}/leasehold: label") for line in report.refused), report
    # The rest of what was recorded inside went, one object at a time.
    inside = ["LimitRange {}/leasehold", "RoleBinding {}/leasehold-team", "NetworkPolicy {}/leasehold-default"]
    assert sorted(report.deleted) == sorted(line.format(name) for line in inside)
    assert core.read_namespace(name).status.phase == "Active"


def test_a_namespace_recreated_by_someone_else_is_left_alone(approved_namespace, core):
    namespace = provisioned_namespace(approved_namespace)
    name = namespace.namespace_name
    core.delete_namespace(name)
    wait_for(lambda: not core.list_namespace(field_selector=f"metadata.name={name}").items, what="the namespace")
    core.create_namespace({"metadata": {"name": name}})  # same name, no label, a new uid

    report = resource_teardown(resource=namespace)

    assert core.read_namespace(name).status.phase == "Active"
    assert f"Namespace {name}: label leasehold.io/resource=None does not name this resource" in report.refused
    assert report.deleted == []
