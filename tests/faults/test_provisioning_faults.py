"""Provisioning under injected faults, on real PostgreSQL, Redis, real worker processes and the real
Kubernetes API server, with the fault proxy (tests/faults/proxy.py) between the workers and the server.
"""

from __future__ import annotations

import time
import uuid

import pytest
from kubernetes.client.exceptions import ApiException

from provisioning.models import ManagedObject
from provisioning.tasks import provision_request
from requests_app.models import ResourceRequest

from .checks import assert_recorded_objects_match_the_cluster, audit_count
from .conftest import wait_for
from .proxy import Rule

pytestmark = pytest.mark.django_db(transaction=True)


def ends(request_id, states=("active", "failed"), timeout: float = 60) -> ResourceRequest:
    def settled():
        request = ResourceRequest.objects.get(pk=request_id)
        return request if request.state in states else None

    return wait_for(settled, timeout=timeout, interval=0.2, what=f"request {request_id} to reach {states}")


def assert_active_exactly_once(request: ResourceRequest, kube_api) -> None:
    assert request.state == "active", request.error
    assert request.resource.state == "active"
    assert audit_count("activated", target_type="resourcerequest", target_id=str(request.pk)) == 1
    assert audit_count("activated", target_type="resource", target_id=str(request.resource_id)) == 1
    assert audit_count("object_applied", resource_id=request.resource_id) == 5
    assert_recorded_objects_match_the_cluster(request, kube_api)


def test_thirty_percent_transient_failures_still_end_every_request_active_once(
    proxy, faulty_env, celery_processes, approved_namespace, kube_api
):
    # About 30% of all calls fail: 1 - (1 - 0.085)^4 ≈ 0.30, spread over 503, 500, 429 and resets.
    proxy.add(Rule("status", status=503, probability=0.085))
    proxy.add(Rule("status", status=500, probability=0.085))
    proxy.add(Rule("status", status=429, retry_after=0, probability=0.085))
    proxy.add(Rule("reset", probability=0.085))
    workers = [celery_processes("worker", env=faulty_env) for _ in range(2)]
    for w in workers:
        w.wait_ready()

    requests = [approved_namespace(f"t{uuid.uuid4().hex[:10]}") for _ in range(4)]

    for request in requests:
        ends(request.pk, timeout=90)
    failed = sum(r.fired for r in proxy.rules)
    assert failed >= 8, f"only {failed} faults were injected"
    assert not proxy.entries() or not [e for e in proxy.entries() if e.upstream_status == 409]
    for request in requests:
        request.refresh_from_db()
        assert_active_exactly_once(request, kube_api)


def test_a_lost_apply_response_converges_without_a_conflict_or_a_duplicate(
    proxy, faulty_env, celery_processes, approved_namespace, kube_api, core
):
    lost = proxy.add(Rule("drop", method="PATCH", path=r"/resourcequotas/leasehold\?", first=1))
    celery_processes("worker", env=faulty_env).wait_ready()

    request = approved_namespace()

    request = ends(request.pk)
    assert lost.fired == 1
    applies = proxy.entries("PATCH", r"/resourcequotas/leasehold\?")
    # The write reached the server twice (the first answer was lost); both were plain 200/201 applies.
    assert [e.upstream_status for e in applies] in ([201, 200], [200, 200])
    assert not [e for e in proxy.entries() if e.upstream_status == 409]
    assert len(core.list_namespaced_resource_quota(f"atlas-{request.name}").items) == 1
    assert_active_exactly_once(request, kube_api)


def test_a_worker_killed_mid_apply_still_ends_active_exactly_once(
    proxy, faulty_env, celery_processes, approved_namespace, kube_api
):
    # The LimitRange's apply hangs for a while, so the worker is surely in the middle of applying.
    proxy.add(Rule("delay", method="PATCH", path=r"/limitranges/", delay=3, first=1))
    doomed = celery_processes("worker", env=faulty_env).wait_ready()

    request = approved_namespace()
    wait_for(lambda: proxy.entries("PATCH", r"/limitranges/") or None, timeout=30, what="the apply of the LimitRange")
    doomed.kill()
    request.refresh_from_db()
    assert request.state == "provisioning"
    # Every object was recorded before anything was applied; the Namespace and the objects applied
    # beside the LimitRange are in the cluster, but their applies are confirmed (and audited) only
    # when the batch ends, which this worker never saw.
    rows = ManagedObject.objects.filter(resource_id=request.resource_id)
    assert rows.count() == 5
    assert rows.filter(applied_at__isnull=False).count() < 5

    # The message died with the worker (not acknowledged, and Redis would redeliver it only after the
    # visibility timeout) and its claim has not run out. Its database session is gone, though: the
    # sweep that a new worker runs when it starts takes the request at once, without beat and without
    # waiting LEASEHOLD_PROVISION_STUCK_MINUTES (set long here to prove it).
    killed = time.monotonic()
    celery_processes("worker", env={**faulty_env, "LEASEHOLD_PROVISION_STUCK_MINUTES": "10"}).wait_ready()

    request = ends(request.pk, timeout=60)
    recovered = time.monotonic() - killed
    assert_active_exactly_once(request, kube_api)
    assert audit_count("requeued", request=request) == 1
    assert request.deliveries == 2
    print(f"killed mid-apply -> active in {recovered:.1f}s")


def test_a_request_approved_while_redis_is_down_is_provisioned_once_it_is_back(
    private_redis, celery_processes, approved_namespace, kube_api
):
    env = {**faulty_env_free(), "REDIS_URL": private_redis.url}
    celery_processes("worker", env=env).wait_ready()
    celery_processes("beat", env=env)

    private_redis.stop()
    started = time.monotonic()
    request = approved_namespace()  # the enqueue after commit fails: the approval itself must not
    assert time.monotonic() - started < 15
    time.sleep(2)
    request.refresh_from_db()
    assert request.state == "approved"

    private_redis.start()

    request = ends(request.pk, timeout=60)
    assert_active_exactly_once(request, kube_api)
    assert audit_count("requeued", request=request) >= 1


def faulty_env_free() -> dict[str, str]:
    from tests.integration.conftest import FAST_RETRIES

    return dict(FAST_RETRIES)


def test_a_permanent_403_fails_at_once_with_the_reason_and_leaves_nothing(
    proxy, faulty_env, celery_processes, approved_namespace, core
):
    refused = proxy.add(Rule("status", method="PATCH", path=r"/networkpolicies/", status=403))
    celery_processes("worker", env=faulty_env).wait_ready()
    celery_processes("beat", env=faulty_env)

    request = approved_namespace()

    request = ends(request.pk)
    assert request.state == "failed"
    assert "403" in request.error and "injected fault" in request.error
    assert request.resource.state == "failed"
    assert refused.fired == 1  # no retry, in-process or by the task
    assert audit_count("retry_scheduled", request=request) == 0
    assert request.deliveries == 1

    def namespace_gone():
        try:
            core.read_namespace(f"atlas-{request.name}")
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(namespace_gone, timeout=60, what="the failed request's namespace to be deleted")
    # The reconcile finishes the teardown the failure started: every recorded object is marked gone.
    wait_for(
        lambda: not ManagedObject.objects.filter(resource_id=request.resource_id, deleted_at__isnull=True).exists(),
        timeout=30,
        what="the recorded objects to be marked deleted",
    )


def test_the_same_task_delivered_twice_makes_one_set_of_objects_and_one_audit_event(
    proxy, faulty_env, celery_processes, approved_namespace, kube_api
):
    # Slow the first apply so that the duplicate arrives at the other worker while the first one works.
    proxy.add(Rule("delay", method="PATCH", path=r"/api/v1/namespaces/[^/]+\?", delay=1, first=1))
    for _ in range(2):
        celery_processes("worker", env=faulty_env).wait_ready()

    request = approved_namespace()  # one delivery on approval...
    provision_request.delay(str(request.pk))  # ...and the same task twice more
    provision_request.delay(str(request.pk))

    request = ends(request.pk)
    time.sleep(2)  # let the duplicates run to their end
    request.refresh_from_db()
    assert_active_exactly_once(request, kube_api)
    assert request.deliveries == 1
