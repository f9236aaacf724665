"""The live reclamation pass against raw deletes (issue 12): one real `reclaim_pass()` deleting N
namespaces that were really provisioned on the local API server, against `delete_namespace` × N.

Seeding (not timed): N small dev namespaces are filed (the built-in policy approves them at once) and
provisioned in-process by the worker's own service (`request_provision`: the five objects of each are
applied to the API server); their leases are then put past grace (`grace`, `grace_until` in the past),
and RECLAIM_MAX_PER_RUN is raised to N for this one pass. Timed: that one pass, whole (notices, the
hand-over batch, selection, claims, teardown, records, the follow-up). "Reclaimed" here means the API
server accepted the namespace's DELETE: the namespace is Terminating (the lease is `reclaiming`); the
local namespace controller empties it afterwards, and the follow-up (`reclaim_follow`, every
LEASEHOLD_RECLAIM_FOLLOW_SECONDS and at the end of every pass) then marks the records reclaimed; how
long that takes is printed too, untimed against the target. The raw figure deletes N other
namespaces one after another with the Kubernetes client, as the issue measured it.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from kubernetes import client

from bench.common import Out, median
from bench.seed import seed
from leases.models import Lease, LeaseState
from leases.services.opening import database_now
from leases.services.reclaim_pass import reclaim_follow, reclaim_pass
from provisioning import cluster
from provisioning.services.provision import request_provision
from requests_app.models import Resource, ResourceState
from requests_app.services import request_submit

N = int(os.environ.get("BENCH_TEARDOWN_N", "200"))
ROUNDS = int(os.environ.get("BENCH_TEARDOWN_ROUNDS", "3"))


def _seed(prefix: str, count: int, requester) -> list[Resource]:
    resources = []
    for i in range(count):
        request = request_submit(
            requester=requester,
            team="benchtd",
            kind="namespace",
            name=f"{prefix}{i}",
            environment="dev",
            lease_days=14,
            justification="bench: live reclamation pass",
            spec={"plan": "small"},
        )
        request_provision(request_id=request.pk)
        request.refresh_from_db()
        if request.state != "active":
            raise RuntimeError(f"seeding {request.name}: {request.state} {request.error}")
        resources.append(request.resource)
    return resources


def _counting_calls() -> tuple[Counter, object]:
    """Count the HTTP calls the service makes, by method (a measurement aid only)."""
    calls: Counter = Counter()
    original = cluster._request

    def counted(method, path, **kwargs):
        calls[method] += 1
        return original(method, path, **kwargs)

    cluster._request = counted  # type: ignore[assignment]
    return calls, original


def _gone(core: client.CoreV1Api, names: list[str], timeout: float = 180) -> float:
    """Wait until the namespace controller has removed `names`; the seconds it took."""
    started = time.perf_counter()
    left = set(names)
    while left and time.perf_counter() - started < timeout:
        present = {ns.metadata.name for ns in core.list_namespace().items}
        left &= present
        if left:
            time.sleep(1)
    return time.perf_counter() - started


def _one_round(out: Out, core: client.CoreV1Api, requester, round_no: int) -> tuple[float, float]:
    prefix = f"td{uuid.uuid4().hex[:5]}"
    started = time.perf_counter()
    resources = _seed(prefix, N, requester)
    raw_names = [f"{prefix}raw{i}" for i in range(N)]
    for name in raw_names:
        core.create_namespace({"metadata": {"name": name}})
    out.note(
        f"round {round_no}: seeded {N} namespaces through request_provision and {N} plain ones "
        f"in {time.perf_counter() - started:.1f} s"
    )

    # The raw deletes first, on the same quiet cluster the pass then meets: both are measured with no
    # namespace controller busy emptying the other's namespaces.
    time.sleep(2)
    started = time.perf_counter()
    for name in raw_names:
        core.delete_namespace(name)
    raw = time.perf_counter() - started
    out.note(f"round {round_no}: raw delete_namespace × {N}: {raw:.2f} s (gone {_gone(core, raw_names):.0f} s later)")

    now = database_now()
    ids = [r.pk for r in resources]
    Lease.objects.filter(resource_id__in=ids).update(state=LeaseState.GRACE, grace_until=now - timedelta(minutes=1))
    Resource.objects.filter(pk__in=ids).update(state=ResourceState.GRACE)
    calls, original = _counting_calls()
    try:
        started = time.perf_counter()
        report = reclaim_pass(now=now)
        live = time.perf_counter() - started
    finally:
        cluster._request = original  # type: ignore[assignment]
    done = len(report.reclaimed) + len(report.in_progress)
    if report.errors or done != N:
        out.note(f"round {round_no}: {done}/{N} started; errors: {report.errors[:3]}")
    out.note(
        f"round {round_no}: pass {live:.2f} s for {done} namespaces ({len(report.reclaimed)} reclaimed at once, "
        f"{len(report.in_progress)} terminating); API calls {dict(calls)} = {sum(calls.values()) / max(1, N):.2f}"
        " per namespace"
    )

    started = time.perf_counter()
    deadline = started + 180
    while time.perf_counter() < deadline:
        reclaim_follow(now=database_now())
        if not Lease.objects.filter(resource_id__in=ids).exclude(state=LeaseState.RECLAIMED).exists():
            out.note(
                f"round {round_no}: the follow-up marked all {N} reclaimed {time.perf_counter() - started:.1f} s "
                "after the pass (the namespace controller empties them meanwhile)"
            )
            break
        time.sleep(1)
    else:
        left = Lease.objects.filter(resource_id__in=ids).exclude(state=LeaseState.RECLAIMED).count()
        out.note(f"round {round_no}: {left} still reclaiming after 180 s of follow-ups")
    return live, raw


def run(out: Out, sizes: list[int]) -> None:
    out.note(f"N = {N} namespaces (fixed, as in issue 12; --sizes does not apply), {ROUNDS} round(s)")
    # On an empty database: the leases past grace that bench/reclaim.py seeded would be due in this pass too.
    seed(0)
    group, _ = Group.objects.get_or_create(name="team-benchtd")
    requester, _ = get_user_model().objects.get_or_create(username="bench-td", defaults={"email": "td@example.org"})
    requester.set_password("bench-only")
    requester.save()
    requester.groups.add(group)
    old_cap = settings.RECLAIM_MAX_PER_RUN
    settings.RECLAIM_MAX_PER_RUN = max(old_cap, N)
    core = client.CoreV1Api(cluster.api_client())
    try:
        rounds = [_one_round(out, core, requester, r + 1) for r in range(ROUNDS)]
    finally:
        settings.RECLAIM_MAX_PER_RUN = old_cap
    live = median([r[0] for r in rounds])
    raw = median([r[1] for r in rounds])
    out.row(
        "teardown", f"one live pass, {N} namespaces (DELETE accepted)", f"{live:.2f} s ({live / N * 1000:.1f} ms each)"
    )
    out.row("teardown", f"raw delete_namespace × {N}, sequential", f"{raw:.2f} s ({raw / N * 1000:.1f} ms each)")
    # Each round's two figures were measured a minute apart on the same cluster: their ratio is the figure.
    ratio = median([r[1] / r[0] for r in rounds])
    out.row(
        "teardown",
        f"live-pass throughput ÷ raw delete throughput (median of {ROUNDS} rounds)",
        f"{ratio:.0%}",
        target="≥ 50%",
        ok=ratio >= 0.5,
    )
