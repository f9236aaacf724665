"""The reclamation pass runs per cluster, on two real control planes (`platform/with-services.sh ... k8s
k8s-b`): with cluster "b" stopped, the leases on `default` are reclaimed on time while b's wait (the
report names b), and once b is back they are reclaimed too, each deleted once and audited once; a pass
never deletes on the wrong control plane.

Provisioning to a cluster other than `default` is routed by the provisioning engineer's branch, not this
one: here `request_provision` runs inside `cluster.using(the request's cluster)` (the test does the
routing, the pass and its follow-up do their own)."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from kubernetes import client

from leases.models import Lease, ReclaimPass
from leases.services.extension import lease_extend
from leases.services.opening import lease_open
from leases.services.reclaim import resource_release
from leases.services.reclaim_pass import reclaim_follow, reclaim_pass
from provisioning import cluster
from provisioning.models import ManagedObject
from provisioning.renderers import ANNOTATION_LEASE_EXPIRES, rfc3339
from requests_app.models import AuditEvent, Cluster, Resource
from tests.factories import active_namespace

from .conftest import file_and_provision, namespace_gone, wait_for
from .test_two_control_planes import cluster_b_client, services

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        not os.environ.get("LEASEHOLD_K8S_B_SERVER"),
        reason="the second control plane is not running (`platform/with-services.sh ... k8s k8s-b -- ...`)",
    ),
]


@pytest.fixture
def cluster_b(db):
    """Cluster "b" registered as an admin would: its kubeconfig mounted as a file, serving dev."""
    row = Cluster.objects.create(
        name="b", auth="kubeconfig", credentials_path=os.environ["LEASEHOLD_K8S_B_KUBECONFIG"], environments=["dev"]
    )
    cluster.reset_clients()
    yield row
    cluster.reset_clients()


@dataclass
class Planes:
    """The two control planes as a test reads them (CoreV1Api each), and the namespaces made on them."""

    a: client.CoreV1Api
    b: client.CoreV1Api
    made: list[tuple[str, str]] = field(default_factory=list)


@pytest.fixture
def planes(core):
    """Both control planes; the namespaces made on either are deleted afterwards (a 404: the pass did it)."""
    with cluster_b_client() as api_b:
        planes = Planes(core, client.CoreV1Api(api_b))
        yield planes
        for where, name in planes.made:
            api = planes.a if where == "default" else planes.b
            if not namespace_gone(api, name):
                api.delete_namespace(name)


def provisioned(requester, approver, planes: Planes, *, name: str, on: str) -> Resource:
    """A namespace filed for cluster `on`, approved and provisioned there: its resource."""
    planes.made.append((on, f"atlas-{name}"))
    with cluster.using(on):  # the routing of the provisioning branch (see the module's docstring)
        request = file_and_provision(
            requester, approver, kind="namespace", name=name, spec={"plan": "small"}, cluster=on
        )
    assert request.resource.cluster.name == on
    return request.resource


def lease_of(resource: Resource) -> Lease:
    return Lease.objects.get(resource=resource)


# Every step of a reclamation writes one audit line on the lease and one on the resource.
RECLAIM_LINES = {
    ("lease_expired", "lease"),
    ("quarantined", "resource"),
    ("reclaim_started", "lease"),
    ("reclaim_started", "resource"),
    ("lease_reclaimed", "lease"),
    ("reclaimed", "resource"),
}


def reclaim_events(resource: Resource) -> Counter:
    """The reclamation's audit lines of a resource and its lease, by (verb, target type)."""
    lease = lease_of(resource)
    events = AuditEvent.objects.filter(target_id__in=[str(resource.pk), str(lease.pk)])
    return Counter(key for key in events.values_list("verb", "target_type") if key in RECLAIM_LINES)


def follow_until_reclaimed(resource: Resource, what: str) -> None:
    def done() -> bool:
        reclaim_follow()
        return lease_of(resource).state == "reclaimed"

    wait_for(done, timeout=90, interval=1, what=what)


def test_a_stopped_cluster_delays_none_of_the_others_and_its_leases_wait(
    cluster_b, requester, approver, unique_name, planes, settings
):
    on_a = provisioned(requester, approver, planes, name=f"{unique_name}a", on="default")
    on_b = provisioned(requester, approver, planes, name=f"{unique_name}b", on="b")
    assert not namespace_gone(planes.b, on_b.namespace_name) and namespace_gone(planes.a, on_b.namespace_name)

    expired = max(lease_of(on_a).expires_at, lease_of(on_b).expires_at) + timedelta(minutes=1)
    report = reclaim_pass(now=expired)
    assert report.errors == [] and len(report.to_grace) == 2, report.lines()
    assert any(" on cluster b " in line for line in report.to_grace)  # b's lines say where
    after_grace = expired + timedelta(days=settings.LEASE_GRACE_DAYS, minutes=1)

    services("stop", "k8s-b")
    try:
        report = reclaim_pass(now=after_grace)

        assert [e for e in report.errors if e.startswith("cluster b: ")], report.lines()
        assert all("its leases wait for the next pass" in e for e in report.errors), report.errors
        assert len(report.errors) == 1, report.errors
        # A's lease is reclaimed on time: its namespace is going, then gone, while b is still down.
        assert [r for r in report.reclaimed + report.in_progress if on_a.namespace_name in r], report.lines()
        follow_until_reclaimed(on_a, "the lease on default reclaimed with cluster b down")
        assert namespace_gone(planes.a, on_a.namespace_name)
        # b's lease waits as it was.
        assert lease_of(on_b).state == "grace"
        on_b.refresh_from_db()
        assert on_b.state == "grace"
        assert not ManagedObject.objects.filter(resource=on_b, deleted_at__isnull=False).exists()
    finally:
        services("start", "k8s-b")
    wait_for(lambda: _answers(planes.b), timeout=60, what="cluster b answering again")
    cluster.reset_clients()

    report = reclaim_pass(now=after_grace)
    assert report.errors == [], report.lines()
    assert [r for r in report.reclaimed + report.in_progress if on_b.namespace_name in r], report.lines()
    assert not [r for r in report.reclaimed + report.in_progress if on_a.namespace_name in r]  # not again
    follow_until_reclaimed(on_b, "the lease on b reclaimed once b is back")
    wait_for(lambda: namespace_gone(planes.b, on_b.namespace_name), timeout=60, what="b's namespace gone on b")

    report = reclaim_pass(now=after_grace + timedelta(minutes=5))
    assert report.errors == [] and report.reclaimed == [] and report.in_progress == [], report.lines()
    for resource in (on_a, on_b):
        assert reclaim_events(resource) == dict.fromkeys(RECLAIM_LINES, 1), resource.name
        resource.refresh_from_db()
        assert resource.state == "reclaimed"
        objects = ManagedObject.objects.filter(resource=resource)
        assert objects.exists() and not objects.filter(deleted_at__isnull=True).exists()


def test_a_pass_never_deletes_on_the_wrong_control_plane(cluster_b, requester, approver, unique_name, planes, settings):
    # The same name on both clusters: only b's lease ends.
    on_a = provisioned(requester, approver, planes, name=unique_name, on="default")
    on_b = provisioned(requester, approver, planes, name=unique_name, on="b")
    assert on_a.namespace_name == on_b.namespace_name
    Lease.objects.filter(pk=lease_of(on_a).pk).update(expires_at=lease_of(on_b).expires_at + timedelta(days=90))
    expired = lease_of(on_b).expires_at + timedelta(minutes=1)

    report = reclaim_pass(now=expired)
    assert report.errors == [] and len(report.to_grace) == 1, report.lines()
    report = reclaim_pass(now=expired + timedelta(days=settings.LEASE_GRACE_DAYS, minutes=1))
    assert report.errors == [], report.lines()
    follow_until_reclaimed(on_b, "the lease on b reclaimed")

    assert namespace_gone(planes.b, on_b.namespace_name) or planes.b.read_namespace(
        on_b.namespace_name
    ).status.phase == ("Terminating")
    assert planes.a.read_namespace(on_a.namespace_name).status.phase == "Active"
    assert lease_of(on_a).state == "active"
    assert not ManagedObject.objects.filter(resource=on_a, deleted_at__isnull=False).exists()


def test_an_extension_and_a_release_call_their_resources_cluster_only(
    cluster_b, requester, approver, unique_name, planes
):
    on_a = provisioned(requester, approver, planes, name=unique_name, on="default")
    on_b = provisioned(requester, approver, planes, name=unique_name, on="b")
    stamped_on_a = planes.a.read_namespace(on_a.namespace_name).metadata.annotations[ANNOTATION_LEASE_EXPIRES]

    outcome, lease = lease_extend(resource=on_b, actor=requester, days=3, justification="still testing")

    assert outcome == "extended"
    stamped_on_b = planes.b.read_namespace(on_b.namespace_name).metadata.annotations[ANNOTATION_LEASE_EXPIRES]
    assert stamped_on_b == rfc3339(lease.expires_at) != stamped_on_a
    assert planes.a.read_namespace(on_a.namespace_name).metadata.annotations[ANNOTATION_LEASE_EXPIRES] == stamped_on_a

    resource_release(resource=on_b, actor=requester)
    follow_until_reclaimed(on_b, "the released namespace on b reclaimed")

    assert planes.a.read_namespace(on_a.namespace_name).status.phase == "Active"
    assert lease_of(on_a).state == "active"
    wait_for(lambda: namespace_gone(planes.b, on_b.namespace_name), timeout=60, what="the namespace gone on b")


def test_a_cluster_without_usable_credentials_holds_up_only_its_own_leases(
    atlas, requester, approver, unique_name, planes, tmp_path
):
    on_a = provisioned(requester, approver, planes, name=unique_name, on="default")
    missing = str(tmp_path / "kubeconfig")
    broken = Cluster.objects.create(name="c", auth="kubeconfig", credentials_path=missing, environments=["dev"])
    Cluster.objects.create(name="idle", auth="kubeconfig", credentials_path=missing, environments=["dev"])
    on_c = lease_open(resource=active_namespace(atlas, requester, name=f"{unique_name}c", cluster=broken))
    expired = max(lease_of(on_a).expires_at, on_c.expires_at) + timedelta(minutes=1)

    report = reclaim_pass(now=expired)

    assert report.errors == [
        f"cluster c: no credentials file at {missing}: the pass does nothing on it; its leases wait for the next pass"
    ]
    assert [line for line in report.to_grace if on_a.namespace_name in line] == report.to_grace != []
    assert (lease_of(on_a).state, Lease.objects.get(pk=on_c.pk).state) == ("grace", "active")
    assert not [line for line in report.lines() if "idle" in line]  # no lease there: not asked at all


def test_a_pass_for_one_cluster_works_on_its_leases_only(cluster_b, requester, approver, unique_name, planes):
    on_a = provisioned(requester, approver, planes, name=f"{unique_name}a", on="default")
    on_b = provisioned(requester, approver, planes, name=f"{unique_name}b", on="b")
    expired = max(lease_of(on_a).expires_at, lease_of(on_b).expires_at) + timedelta(minutes=1)

    out = StringIO()
    call_command("reclaim_leases", "--now", expired.isoformat(), "--cluster", "b", stdout=out)

    assert "move to grace (quarantine): 1" in out.getvalue(), out.getvalue()
    assert (lease_of(on_a).state, lease_of(on_b).state) == ("active", "grace")
    assert ReclaimPass.objects.filter(completed=True, origin="command").count() == 1


def test_an_unknown_cluster_is_refused_with_the_names_that_exist(cluster_b):
    with pytest.raises(CommandError, match=r"--cluster 'nowhere': no cluster of that name is registered .*b"):
        call_command("reclaim_leases", "--cluster", "nowhere")
    assert not ReclaimPass.objects.exists()


def _answers(core_b) -> bool:
    try:
        core_b.list_namespace(limit=1, _request_timeout=3)
    except Exception:  # noqa: BLE001 - anything but an answer: not back yet
        return False
    return True


def test_the_beats_pass_sends_each_clusters_part_to_that_clusters_queue(
    cluster_b, requester, approver, unique_name, planes, settings
):
    import redis

    from leases.tasks import reclaim_leases

    on_a = provisioned(requester, approver, planes, name=f"{unique_name}a", on="default")
    on_b = provisioned(requester, approver, planes, name=f"{unique_name}b", on="b")
    # Both clusters have a lease that has just ended: work for their passes.
    Lease.objects.filter(resource__in=[on_a, on_b]).update(expires_at=timezone.now() - timedelta(minutes=1))
    Cluster.objects.create(name="nothing-due", environments=["dev"])  # no work there: no pass sent
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    queues = ("cluster.default", "cluster.b", "cluster.nothing-due")
    broker.delete(*queues)
    try:
        reclaim_leases.apply()  # the beat's task, run here; what it sends goes to the real broker

        sent = {queue: [json.loads(m)["headers"] for m in broker.lrange(queue, 0, -1)] for queue in queues}
    finally:
        broker.delete(*queues)
    assert {q: [(h["task"], h["argsrepr"]) for h in headers] for q, headers in sent.items()} == {
        "cluster.default": [("leases.tasks.reclaim_cluster", "['default']")],
        "cluster.b": [("leases.tasks.reclaim_cluster", "['b']")],
        "cluster.nothing-due": [],
    }
    assert all(h["expires"] for headers in sent.values() for h in headers)
    assert ReclaimPass.objects.filter(completed=True, origin="task").count() == 1  # the shared part
    assert (lease_of(on_a).state, lease_of(on_b).state) == ("active", "active")  # left to the clusters' passes


def test_the_backup_storage_is_made_on_the_cluster_named(cluster_b, planes, settings):
    out = StringIO()
    call_command("ensure_backup_storage", "--cluster", "b", stdout=out)

    assert f"Namespace {settings.LEASEHOLD_BACKUP_NAMESPACE}: present on cluster b" in out.getvalue(), out.getvalue()
    assert planes.b.read_namespace(settings.LEASEHOLD_BACKUP_NAMESPACE).status.phase == "Active"
    with pytest.raises(CommandError, match="No cluster named 'nowhere' is registered"):
        call_command("ensure_backup_storage", "--cluster", "nowhere")
