"""How many Kubernetes API calls provisioning makes, and that the fewer calls still prove ownership before
anything is overwritten — in-process, through the request-logging proxy (tests/faults/proxy.py) in front of
the real API server."""

from __future__ import annotations

import os

import pytest
from django.test import override_settings

from provisioning import cluster
from provisioning.errors import PermanentClusterError
from provisioning.models import ManagedObject
from provisioning.services.plan import resource_id_for
from provisioning.services.provision import request_provision
from requests_app.models import AuditEvent
from tests.conftest import require_env
from tests.faults.proxy import FaultProxy, write_kubeconfig

pytestmark = pytest.mark.django_db

INSIDE = ("resourcequotas", "limitranges", "rolebindings", "networkpolicies")


@pytest.fixture
def logged(tmp_path, monkeypatch):
    """The proxy, with this process's cluster client sent through it: `logged.entries()` is every call."""
    require_env("LEASEHOLD_K8S_SERVER", "LEASEHOLD_K8S_CA_FILE", "LEASEHOLD_K8S_ADMIN_TOKEN")
    proxy = FaultProxy(os.environ["LEASEHOLD_K8S_SERVER"], ca_file=os.environ["LEASEHOLD_K8S_CA_FILE"]).start()
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", proxy.url, os.environ["LEASEHOLD_K8S_ADMIN_TOKEN"])
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    cluster.reset_clients()
    with override_settings(LEASEHOLD_CLUSTER="kubeconfig"):
        yield proxy
    cluster.reset_clients()
    proxy.stop()


def calls(proxy: FaultProxy) -> list[str]:
    """Each call as "METHOD what", what being the kind's plural, or "namespace"."""
    out = []
    for entry in proxy.entries():
        path = entry.path.split("?", 1)[0]
        parts = path.strip("/").split("/")
        out.append(f"{entry.method} {'namespace' if len(parts) == 4 else parts[-2]}")
    return out


def our_namespace(core, request) -> str:
    """The request's namespace, made beforehand carrying its resource label (as a run that died after
    applying it leaves it)."""
    name = f"atlas-{request.name}"
    labels = {"leasehold.io/resource": str(resource_id_for(request))}
    core.create_namespace({"metadata": {"name": name, "labels": labels}})
    return name


def test_a_fresh_namespace_takes_one_read_and_five_applies(approved_namespace, logged):
    request = approved_namespace()

    request_provision(request_id=request.pk)

    request.refresh_from_db()
    assert request.state == "active", request.error
    made = calls(logged)
    # The Namespace is read (it does not exist: nothing inside it can), applied, then the four objects
    # inside are applied at once; its apply answer says it is Active, so readiness reads nothing.
    assert made[:2] == ["GET namespace", "PATCH namespace"]
    assert sorted(made[2:]) == sorted(f"PATCH {plural}" for plural in INSIDE)
    assert len(made) == 6
    rows = ManagedObject.objects.filter(resource_id=request.resource_id)
    assert rows.count() == 5
    assert all(row.applied_at and row.ready_at and row.uid for row in rows)
    assert AuditEvent.objects.filter(verb="object_applied", resource_id=request.resource_id).count() == 5


def test_in_a_namespace_that_exists_every_object_is_read_before_any_is_applied(approved_namespace, logged, core):
    request = approved_namespace()
    our_namespace(core, request)
    logged.log.clear()

    request_provision(request_id=request.pk)

    request.refresh_from_db()
    assert request.state == "active", request.error
    made = calls(logged)
    assert made[:2] == ["GET namespace", "PATCH namespace"]
    assert sorted(made[2:6]) == sorted(f"GET {plural}" for plural in INSIDE)
    assert sorted(made[6:]) == sorted(f"PATCH {plural}" for plural in INSIDE)


def test_a_foreign_object_inside_an_existing_namespace_is_refused_and_nothing_inside_is_applied(
    approved_namespace, logged, core
):
    request = approved_namespace()
    name = our_namespace(core, request)
    core.create_namespaced_limit_range(
        name,
        {
            "metadata": {"name": "leasehold", "labels": {"owner": "someone"}},
            "spec": {"limits": [{"type": "Container", "default": {"cpu": "3"}}]},
        },
    )

    with pytest.raises(PermanentClusterError, match="LimitRange .*already exists and does not belong"):
        request_provision(request_id=request.pk)

    foreign = core.read_namespaced_limit_range("leasehold", name)
    assert foreign.metadata.labels == {"owner": "someone"}
    assert foreign.spec.limits[0].default == {"cpu": "3"}
    assert all(m.manager != "leasehold" for m in foreign.metadata.managed_fields)
    assert not [c for c in calls(logged) if c.startswith("PATCH") and c != "PATCH namespace"]
    row = ManagedObject.objects.get(resource_id=resource_id_for(request), kind="LimitRange")
    assert row.deleted_at is not None  # forgotten: teardown never touches it


def test_a_foreign_namespace_is_refused_before_anything_is_written(approved_namespace, logged, core):
    request = approved_namespace()
    name = f"atlas-{request.name}"
    core.create_namespace({"metadata": {"name": name, "labels": {"owner": "someone"}}})
    logged.log.clear()

    with pytest.raises(PermanentClusterError, match="already exists and does not belong"):
        request_provision(request_id=request.pk)

    assert calls(logged) == ["GET namespace"]
    assert core.read_namespace(name).metadata.labels.get("leasehold.io/resource") is None


def test_a_namespace_made_by_someone_else_between_the_read_and_the_apply_is_refused(
    approved_namespace, core, monkeypatch
):
    request = approved_namespace()
    name = f"atlas-{request.name}"
    real_read = cluster.read

    def read_then_someone_creates_it(ref):
        live = real_read(ref)
        if ref.kind == "Namespace" and live is None:
            # Someone else takes the name right after Leasehold saw it free.
            core.create_namespace({"metadata": {"name": name, "labels": {"owner": "someone"}}})
        return live

    monkeypatch.setattr(cluster, "read", read_then_someone_creates_it)

    with pytest.raises(PermanentClusterError, match="created by someone else while it was being applied"):
        request_provision(request_id=request.pk)

    ns_row = ManagedObject.objects.get(resource_id=resource_id_for(request), kind="Namespace")
    assert ns_row.deleted_at is not None  # forgotten: teardown never deletes it
    assert core.list_namespaced_resource_quota(name).items == []
    assert not AuditEvent.objects.filter(verb="object_applied", resource_id=resource_id_for(request)).exists()
