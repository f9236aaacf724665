"""Apply and tear down a resource's Kubernetes objects. The only writer of ManagedObject."""

from __future__ import annotations

import base64
import copy
import logging
import os
import random
import secrets
import socket
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import yaml
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from requests_app.errors import InvalidState, NotAllowed, ValidationFailed
from requests_app.models import Action, AuditEvent, Kind, RequestState, Resource, ResourceRequest, ResourceState
from requests_app.selectors import teams_of, user_is_admin
from requests_app.services import audit_record, request_file_followup, reserved_namespaces, transition_apply
from requests_app.specs import IMAGE_TAG, RESERVED_NAMES

from . import cluster
from .drift import differences, only_stamps, path_text
from .errors import ClaimLost, ClusterError, PermanentClusterError, TransientClusterError
from .models import ManagedObject, Phase, ProvisioningJob, Release
from .renderers import (
    ANNOTATION_LEASE_EXPIRES,
    ANNOTATION_OWNER,
    ANNOTATION_REQUEST,
    LABEL_RESOURCE,
    AppSpec,
    AppTemplateSpec,
    ComputeResources,
    DatabaseBinding,
    DatabaseSpec,
    RenderContext,
    app_manifests,
    database_connection,
    database_manifests,
    database_secret_name,
    manifests_for,
    pod_security_labels_of,
    pod_templates_hardened,
    rfc3339,
)

log = logging.getLogger(__name__)
# The actions whose approval makes the worker apply objects.
PROVISIONED_ACTIONS = (Action.CREATE, Action.UPGRADE, Action.ROLLBACK)

# The namespaces that belong to Kubernetes: never requested (requests_app.specs), never torn down here.
PROTECTED_NAMESPACES = RESERVED_NAMES
RESOURCE_ID_NAMESPACE = uuid.UUID("0f3c4a4e-6d0b-4c36-9b7b-6c2f1f0d9a11")


def resource_id_for(request: ResourceRequest) -> uuid.UUID:
    """The id of the resource a request makes or changes; for a create request it is known before the
    resource exists (the plan shows it)."""
    if request.action != Action.CREATE and request.resource_id is not None:
        return request.resource_id
    return uuid.uuid5(RESOURCE_ID_NAMESPACE, str(request.pk))


# The plan shows where the generated password goes, never a password.
PASSWORD_PLACEHOLDER = "(generated when applied)"


def render_request(
    request: ResourceRequest,
    *,
    lease_start: datetime | None = None,
    password: str | None = None,
    lease_expires: datetime | None = None,
) -> list[dict]:
    """The manifests a create request applies. Before provisioning, the lease is taken to start now.

    Uses only the request and what was frozen on it when it was filed, so the plan an approver saw is
    what the worker applies. `password` is given only by the worker, for a database's Secret.
    """
    start = lease_start or timezone.now()
    # An extended lease (kept on the resource by the leases app) wins over the first term, and a
    # database's or app's lease never outlives its namespace's (as the leases app opens it).
    expires = lease_expires or start + timedelta(days=request.lease_days)
    if lease_expires is None and request.parent is not None and request.parent.lease_expires_at is not None:
        expires = min(expires, request.parent.lease_expires_at)
    ctx = RenderContext(
        resource_id=str(resource_id_for(request)),
        request_id=str(request.pk),
        team=request.team.slug,
        team_group=request.team.group.name,
        environment=request.environment,
        owner=request.requester.get_username(),
        lease_expires=expires,
    )
    spec = request.spec
    if request.action == Action.ROLLBACK:
        return rollback_manifests(request, ctx)
    if request.kind == Kind.NAMESPACE:
        # The level in force, not one frozen on the request: a changed setting reaches every namespace
        # at its next apply, which the reconcile does for the ones already running.
        return manifests_for(
            kind=request.kind,
            team=request.team.slug,
            name=request.name,
            spec=spec,
            ctx=ctx,
            pod_security=settings.LEASEHOLD_POD_SECURITY[request.environment],
            pod_security_version=settings.LEASEHOLD_POD_SECURITY_VERSION,
        )
    namespace = request.parent.namespace_name if request.parent else ""
    if request.kind == Kind.DATABASE:
        return database_manifests(
            db=database_spec_of(request.name, namespace, spec),
            password=password or PASSWORD_PLACEHOLDER,
            ctx=ctx,
            provider=request.frozen.get("provider", "statefulset"),
        )
    template = request.frozen["template"]
    binding = None
    if spec.get("database"):
        bound = (
            Resource.objects.filter(pk=spec["database"], kind=Kind.DATABASE)
            .exclude(state__in=Resource.TERMINAL)
            .first()
        )
        if bound is None:
            raise InvalidState(f"The database {spec['database']} that this app binds to no longer exists.")
        binding = DatabaseBinding(secret_name=database_secret_name(bound.name))
    app = AppSpec(
        name=request.name,
        namespace=namespace,
        template=AppTemplateSpec(
            slug=template["slug"],
            image_repository=template["image_repository"],
            container_port=template["container_port"],
            health_path=template["health_path"],
            default_env=template["default_env"],
            resources=ComputeResources(
                template["cpu_request"], template["cpu_limit"], template["memory_request"], template["memory_limit"]
            ),
            accepts_database=template["accepts_database"],
        ),
        image_tag=spec["image_tag"],
        replicas=spec["replicas"],
        env=spec.get("env") or {},
        host=spec.get("host"),
        database=binding,
        ingress_class=request.frozen.get("ingress_class"),
    )
    return app_manifests(app=app, ctx=ctx)


def rollback_manifests(request: ResourceRequest, ctx: RenderContext) -> list[dict]:
    """Exactly what ran in the release rolled back to, stamped with this request and today's lease, with
    today's pod protections (a release from before one was added must not take it away again)."""
    release = Release.objects.filter(resource=request.resource, number=request.frozen.get("release")).first()
    if release is None:
        raise InvalidState(f"Release {request.frozen.get('release')} of this app does not exist.")
    manifests = pod_templates_hardened(copy.deepcopy(release.manifests))
    for manifest in manifests:
        annotations = manifest["metadata"].setdefault("annotations", {})
        annotations[ANNOTATION_REQUEST] = ctx.request_id
        annotations[ANNOTATION_LEASE_EXPIRES] = rfc3339(ctx.lease_expires)
    return manifests


def resource_manifests(resource: Resource, *, with_secrets: bool = True) -> list[dict]:
    """The objects a live resource has now, stamped with its current lease expiry and owner.

    An app runs its newest release (what its last create, upgrade or rollback applied); a namespace
    or database runs what the request that made it rendered (they have no day-2 changes). Every
    re-apply after provisioning (drift repair, the lease re-stamp, what a restore keeps) uses this,
    never the first request's render, so it never undoes an upgrade or a rollback. `with_secrets`
    reads a database's password from its Secret in the cluster; without it the plan's placeholder
    stands in (for what is kept in the database).
    """
    release = resource.releases.order_by("-number").first() if resource.kind == Kind.APP else None
    if release is None:
        request = resource.created_by_request
        password = _database_password(request) if with_secrets and resource.kind == Kind.DATABASE else None
        manifests = render_request(
            request, lease_start=resource.activated_at, lease_expires=resource.lease_expires_at, password=password
        )
    else:
        # With today's pod protections: a release rendered before one existed must not take it away.
        manifests = pod_templates_hardened(copy.deepcopy(release.manifests))
    for manifest in manifests:
        annotations = manifest["metadata"].setdefault("annotations", {})
        if resource.lease_expires_at is not None:
            annotations[ANNOTATION_LEASE_EXPIRES] = rfc3339(resource.lease_expires_at)
        if resource.owner is not None:
            annotations[ANNOTATION_OWNER] = resource.owner.get_username()
    return manifests


def change_in_flight(resource: Resource) -> bool:
    """Whether an approved upgrade or rollback of the resource is being applied right now: its worker
    owns the objects until it finishes, and a re-apply of the current release would undo its work."""
    return ResourceRequest.objects.filter(
        resource=resource,
        action__in=(Action.UPGRADE, Action.ROLLBACK),
        state__in=(RequestState.APPROVED, RequestState.PROVISIONING),
    ).exists()


def resource_reapply(*, resource: Resource) -> bool:
    """Apply the resource's current objects again (after its lease or owner changed): False, and nothing
    applied, while an upgrade or rollback is in flight (the next reconcile brings the stamps up to date)."""
    if change_in_flight(resource):
        return False
    for manifest in resource_manifests(resource):
        cluster.apply(manifest)
    return True


def database_spec_of(name: str, namespace: str, spec: dict) -> DatabaseSpec:
    return DatabaseSpec(
        name=name, namespace=namespace, version=spec["version"], storage=spec["storage"], plan=spec["plan"]
    )


def connection_section(resource: Resource) -> dict | None:
    """How to reach a database (never its password): the `connection` part of a resource."""
    if resource.kind != Kind.DATABASE or resource.parent is None:
        return None
    provider = resource.created_by_request.frozen.get("provider", "statefulset")
    return database_connection(database_spec_of(resource.name, resource.parent.namespace_name, resource.spec), provider)


def _database_password(request: ResourceRequest) -> str:
    """The password already in the cluster (a re-run must not rotate it), else a new one."""
    return _password_in(cluster.read(_secret_ref(request)))


def request_plan(*, request: ResourceRequest) -> list[dict]:
    """What the request applies (or applied): the same render the worker uses."""
    resource = Resource.objects.filter(pk=resource_id_for(request)).first()
    if resource is None:
        return render_request(request)
    return render_request(request, lease_start=resource.activated_at, lease_expires=resource.lease_expires_at)


def plan_yaml(request: ResourceRequest) -> str:
    """The plan as YAML documents, for people to read."""
    if request.action != "create":
        return ""
    return yaml.safe_dump_all(request_plan(request=request), sort_keys=False)


# --- provisioning: claim, apply, readiness, activation ------------------------------------------------------


class DeliveriesExhausted(Exception):
    """The request was delivered LEASEHOLD_MAX_DELIVERIES times without finishing: it is failed."""


@dataclass
class Claim:
    """A worker's hold on one request's provisioning, renewed after every step."""

    request: ResourceRequest
    resource: Resource
    job: ProvisioningJob
    token: uuid.UUID
    # For a resource made by this claim: its manifests, and the rows recorded for them in the claim's
    # transaction (None: the run renders and records them itself).
    manifests: list[dict] | None = None
    rows: dict[cluster.ObjectRef, ManagedObject] | None = None
    # The claim was given up already (with the run's last write): nothing left to release.
    released: bool = False


@dataclass(frozen=True)
class ProvisionOutcome:
    """What a provisioning run ended with: finished (or nothing to do), or waiting for readiness."""

    retry_in: float | None = None


def _claim_seconds() -> timedelta:
    return timedelta(seconds=settings.LEASEHOLD_PROVISION_CLAIM_SECONDS)


def _session_identity() -> str:
    """This worker's database session, host, process and thread: who holds a claim."""
    where = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
    if connection.vendor == "postgresql":
        # psycopg knows the backend's pid from the connection's start: no query for it.
        connection.ensure_connection()
        return f"pg:{connection.connection.info.backend_pid}@{where}"
    return f"proc@{where}"


def claim_alive(job: ProvisioningJob, *, me: str | None = None) -> bool:
    """Whether another worker still holds the job: its claim has not run out and, on PostgreSQL, its
    database session still exists (a worker killed with -9 loses its session at once). The same
    session as ours cannot be running another provisioning of it: its earlier run is over."""
    if job.claimed_until is None or job.claimed_until <= timezone.now():
        return False
    if me is not None and job.claimed_by == me:
        return False
    if job.claimed_by.startswith("pg:") and connection.vendor == "postgresql":
        backend = job.claimed_by[3:].split("@", 1)[0]
        with connection.cursor() as cursor:
            cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = %s)", [int(backend)])
            return bool(cursor.fetchone()[0])
    return True


@transaction.atomic
def _claim(request_id) -> Claim | None:
    """Take the request for this worker: a row lock, a re-read of the state, a claim that runs out.

    Moves an approved request to provisioning (creating its resource), or picks up one in progress.
    Returns None when there is nothing to do (done, no longer wanted, or another worker holds it).
    Every claim except a readiness re-check counts as one delivery; raises DeliveriesExhausted when
    the request has had LEASEHOLD_MAX_DELIVERIES of them already.
    """
    # Lock the request row only (`of`): the team and requester rows are shared by many requests, and
    # locking them too would serialise every worker provisioning that team's or that person's requests.
    # What rendering reads (team and group, requester, parent, resource) comes in the same query.
    request = (
        ResourceRequest.objects.select_for_update(of=("self",))
        .select_related("team__group", "requester", "parent", "resource")
        .filter(pk=request_id)
        .first()
    )
    if (
        request is None
        or request.action not in PROVISIONED_ACTIONS
        or request.state not in (RequestState.APPROVED, RequestState.PROVISIONING)
    ):
        return None
    job, _ = ProvisioningJob.objects.select_for_update().get_or_create(request=request)
    now = timezone.now()
    me = _session_identity()
    if claim_alive(job, me=me):
        return None
    if job.phase != Phase.READINESS:
        if request.deliveries >= settings.LEASEHOLD_MAX_DELIVERIES:
            last = job.last_error or "the worker was lost while provisioning"
            raise DeliveriesExhausted(
                f"Stopped after {request.deliveries} deliveries without finishing (last error: {last})."
            )
        request.deliveries += 1
        if request.state != RequestState.APPROVED:
            # An approved request is saved by its transition below, deliveries with it.
            ResourceRequest.objects.filter(pk=request.pk).update(deliveries=F("deliveries") + 1)
    job.claim_token = uuid.uuid4()
    job.claimed_until = now + _claim_seconds()
    job.claimed_by = me
    job.retry_at = None
    if job.phase not in (Phase.READINESS,):
        job.phase = Phase.APPLYING
    job.save()
    if request.state == RequestState.APPROVED and request.action != Action.CREATE:
        # An upgrade or rollback changes a running app: it must still be active.
        if request.resource is None or request.resource.state != ResourceState.ACTIVE:
            state = request.resource.state if request.resource else "gone"
            raise InvalidState(f"The app is {state}; only an active app can be changed.")
        transition_apply(request, "start_provisioning", actor=None, verb="provisioning_started")
        return Claim(request, request.resource, job, job.claim_token)
    if request.state == RequestState.APPROVED:
        # The claim that makes the resource links it to the request in the same transaction, under the
        # request's row lock: an approved request without one has none yet (no read, no savepoint).
        resource = request.resource
        if resource is None:
            resource = Resource.objects.create(
                pk=resource_id_for(request),
                kind=request.kind,
                name=request.name,
                team=request.team,
                owner=request.requester,
                environment=request.environment,
                spec=request.spec,
                lease_days=request.lease_days,
                created_by_request=request,
                parent=request.parent,
                activated_at=now,
            )
        made = request.resource is None
        request.resource = resource
        transition_apply(request, "start_provisioning", actor=None, verb="provisioning_started")
        claim = Claim(request, resource, job, job.claim_token)
        if made:
            _record_intent_of_new(claim)
        return claim
    if request.resource is None:
        return None
    return Claim(request, request.resource, job, job.claim_token)


def _record_intent_of_new(claim: Claim) -> None:
    """A new resource has no object rows yet: render its manifests and record them in the claim's
    transaction (one insert that returns the ids; no transaction, read or check of its own)."""
    try:
        manifests = _rendered(claim.request, claim.resource)
    except InvalidState:
        return  # the run renders again, and the request fails with this reason after the claim
    claim.manifests = manifests
    claim.rows = _record_intent(claim.resource, manifests, fresh=True)


def _renew(claim: Claim, *, release: bool = False, **fields) -> None:
    """Extend the claim (and save `fields` on the job); ClaimLost when another worker took it over.
    With `release`, the same write gives the claim up instead (the run's last write: one update)."""
    held = {"claim_token": None, "claimed_until": None, "claimed_by": ""} if release else {}
    updated = ProvisioningJob.objects.filter(pk=claim.job.pk, claim_token=claim.token).update(
        **{"claimed_until": timezone.now() + _claim_seconds(), **held}, updated_at=timezone.now(), **fields
    )
    if not updated:
        raise ClaimLost(f"the claim on request {claim.request.pk} ran out and was taken over")
    for name, value in fields.items():
        setattr(claim.job, name, value)


def _release(claim: Claim) -> None:
    if claim.released:
        return
    ProvisioningJob.objects.filter(pk=claim.job.pk, claim_token=claim.token).update(
        claim_token=None, claimed_until=None, claimed_by=""
    )


def _rendered(request: ResourceRequest, resource: Resource, *, password: str | None = None) -> list[dict]:
    """The manifests this run applies; a database's Secret carries `password` (given once the Secret in
    the cluster was read: a re-run must not rotate it), the plan's placeholder until then."""
    return render_request(
        request,
        lease_start=resource.activated_at,
        lease_expires=getattr(resource, "lease_expires_at", None),
        password=password,
    )


def _row_ref(row: ManagedObject) -> cluster.ObjectRef:
    return cluster.ObjectRef(row.api_version, row.kind, row.namespace, row.name)


def _is_namespace(ref: cluster.ObjectRef) -> bool:
    return ref.api_version == "v1" and ref.kind == "Namespace"


def _record_intent(
    resource: Resource, manifests: list[dict], *, fresh: bool = False
) -> dict[cluster.ObjectRef, ManagedObject]:
    """A row for every object before anything is applied: whatever reaches the cluster is known.

    One insert for all of them (rows that exist already are kept as they are), one read back, and one
    update for the rows torn down after an earlier failure, which are applied afresh now. For a `fresh`
    resource (made by this run's claim, so it has no rows yet) the insert alone, which returns the ids."""
    refs = [cluster.ref_of(manifest) for manifest in manifests]
    planned = [
        ManagedObject(resource=resource, api_version=r.api_version, kind=r.kind, namespace=r.namespace, name=r.name)
        for r in refs
    ]
    if fresh:
        ManagedObject.objects.bulk_create(planned)
        return dict(zip(refs, planned, strict=True))
    with transaction.atomic():
        return _record_intent_again(resource, refs, planned)


def _record_intent_again(
    resource: Resource, refs: list[cluster.ObjectRef], planned: list[ManagedObject]
) -> dict[cluster.ObjectRef, ManagedObject]:
    ManagedObject.objects.bulk_create(planned, ignore_conflicts=True)
    known = {_row_ref(row): row for row in resource.managed_objects.all()}
    rows = {ref: known[ref] for ref in refs}
    again = [row for row in rows.values() if row.deleted_at is not None]
    if again:
        ManagedObject.objects.filter(pk__in=[row.pk for row in again]).update(
            applied_at=None, ready_at=None, deleted_at=None, uid=""
        )
        for row in again:
            row.applied_at = row.ready_at = row.deleted_at = None
            row.uid = ""
    return rows


def _check_ownership(ref: cluster.ObjectRef, row: ManagedObject, resource: Resource, live: dict | None) -> None:
    """Refuse to take over an object that exists (`live`, as just read) and is not this resource's:
    neither its `leasehold.io/resource` label nor its recorded uid says so. Wait for one going away."""
    if live is None:
        return
    meta = live.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        raise TransientClusterError(f"{ref} is still being deleted; it is applied again once it is gone.")
    owner = (meta.get("labels") or {}).get(LABEL_RESOURCE)
    if owner == str(resource.pk) or (row.uid and meta.get("uid") == row.uid):
        return
    _refuse(ref, row, f"already exists and does not belong to this request ({LABEL_RESOURCE}={owner!r})")


def _refuse(ref: cluster.ObjectRef, row: ManagedObject, why: str) -> None:
    # Never ours (or no longer): forget the row, so that teardown never touches that object.
    ManagedObject.objects.filter(pk=row.pk).update(
        deleted_at=timezone.now(), drift="exists and belongs to someone else: left alone", drift_at=timezone.now()
    )
    raise PermanentClusterError(f"{ref} {why}; it was left as it is. Choose another name.")


def _made_by_this_apply(stored: dict) -> bool:
    """Whether the apply that answered `stored` created the object: then only Leasehold's apply manages
    any field of it (an object someone else made carries their field manager too)."""
    managed = (stored.get("metadata") or {}).get("managedFields") or []
    return bool(managed) and all(
        entry.get("manager") == settings.LEASEHOLD_FIELD_MANAGER and entry.get("operation") == "Apply"
        for entry in managed
    )


def _record_applied(
    rows: dict[cluster.ObjectRef, ManagedObject],
    stored: dict[cluster.ObjectRef, dict],
    request: ResourceRequest,
    resource: Resource,
) -> None:
    """Note the uid of every object in `stored` (the apply answers); the first confirmed apply of an
    object writes one audit event (see _mark_applied: two runs that race still write one). One
    transaction for the lot: one update, the audit events in one insert."""
    if not stored:
        return
    now = timezone.now()
    applied = [rows[ref] for ref in stored]
    uids = {rows[ref].pk: (answer.get("metadata") or {}).get("uid", "") for ref, answer in stored.items()}
    with transaction.atomic():
        first = _mark_applied(uids, now)
        AuditEvent.objects.bulk_create(
            AuditEvent(
                verb="object_applied",
                target_type=resource._meta.model_name or "",
                target_id=str(resource.pk),
                request=request,
                resource=resource,
                detail=str(row),
            )
            for row in applied
            if row.pk in first
        )
    for row in applied:
        row.uid = uids[row.pk]
        if row.pk in first:
            row.applied_at = now


def _mark_applied(uids: dict[int, str], now: datetime) -> set[int]:
    """Set `applied_at` (where it is empty) and the uid of the rows `uids` names; returns the ids whose
    `applied_at` this set: their first confirmed apply.

    On PostgreSQL one statement, which locks each row as it updates it: a run racing this one waits,
    then sees `applied_at` set and leaves it (a compare-and-set per row, without reading the rows
    first; Django's bulk_update would build a CASE expression per row, costlier than the call itself).
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE provisioning_managedobject AS m SET applied_at = COALESCE(m.applied_at, %s), uid = v.uid "
                "FROM unnest(%s::bigint[], %s::text[]) AS v(id, uid) "
                "WHERE m.id = v.id AND (m.applied_at IS NULL OR m.uid <> v.uid) "
                "RETURNING m.id, m.applied_at = %s",
                [now, list(uids), list(uids.values()), now],
            )
            return {pk for pk, first in cursor.fetchall() if first}
    first = set()
    for pk, uid in uids.items():
        if ManagedObject.objects.filter(pk=pk, applied_at__isnull=True).update(applied_at=now, uid=uid):
            first.add(pk)
        else:
            ManagedObject.objects.filter(pk=pk).exclude(uid=uid).update(uid=uid)
    return first


def _apply_each(manifests: list[dict]) -> tuple[dict[cluster.ObjectRef, dict], list[ClusterError]]:
    """Apply independent objects at once (at most LEASEHOLD_K8S_CONCURRENCY in flight): the answers of
    those that were applied, and the errors of those that were not."""

    def attempt(manifest: dict) -> dict | ClusterError:
        try:
            return cluster.apply(manifest)
        except ClusterError as exc:
            return exc

    answers = cluster.map_bounded(attempt, manifests)
    stored = {cluster.ref_of(m): a for m, a in zip(manifests, answers, strict=True) if isinstance(a, dict)}
    return stored, [a for a in answers if isinstance(a, ClusterError)]


def _read_all(refs: list[cluster.ObjectRef]) -> dict[cluster.ObjectRef, dict | None]:
    return dict(zip(refs, cluster.map_bounded(cluster.read, refs), strict=True))


def _apply_all(claim: Claim) -> dict[cluster.ObjectRef, dict]:
    """Apply the request's objects once their ownership is proven; returns the apply answers.

    API calls: a Namespace is read, then applied. When it did not exist (and the apply created it),
    nothing inside it can exist yet: the objects inside are applied at once without reading them.
    Otherwise every object is read first (at once) and one that is not this resource's stops the run
    before anything else is applied. A database's Secret is read there too, for the password it holds.
    What was applied is recorded once at the end, also when an apply failed (its error is raised after).
    """
    request, resource = claim.request, claim.resource
    manifests = claim.manifests or _rendered(request, resource)
    rows = claim.rows or _record_intent(resource, manifests)
    stored: dict[cluster.ObjectRef, dict] = {}
    errors: list[ClusterError] = []
    try:
        namespace = next((m for m in manifests if _is_namespace(cluster.ref_of(m))), None)
        rest = [m for m in manifests if m is not namespace]
        fresh = ""  # a namespace this run created: nothing of anyone else's can be inside it
        if namespace is not None:
            ref = cluster.ref_of(namespace)
            live = cluster.read(ref)
            _check_ownership(ref, rows[ref], resource, live)
            stored[ref] = cluster.apply(namespace)
            if live is None:
                if not _made_by_this_apply(stored[ref]):
                    del stored[ref]
                    _refuse(ref, rows[ref], "was created by someone else while it was being applied")
                fresh = ref.name
        lives = _read_all([ref for ref in map(cluster.ref_of, rest) if not (fresh and ref.namespace == fresh)])
        for ref, live in lives.items():
            _check_ownership(ref, rows[ref], resource, live)
        if request.kind == Kind.DATABASE:
            password = _password_in(lives.get(_secret_ref(request)))
            rest = _rendered(request, resource, password=password)  # a database has no Namespace of its own
        applied, errors = _apply_each(rest)
        stored.update(applied)
    finally:
        _record_applied(rows, stored, request, resource)
    if errors:
        raise errors[0]
    return stored


def _secret_ref(request: ResourceRequest) -> cluster.ObjectRef:
    namespace = request.parent.namespace_name if request.parent else ""
    return cluster.ObjectRef("v1", "Secret", namespace, database_secret_name(request.name))


def _password_in(secret: dict | None) -> str:
    """The password a database's Secret in the cluster holds (a re-run must not rotate it), else a new one."""
    data = (secret or {}).get("data") or {}
    if data.get("password"):
        return base64.b64decode(data["password"]).decode()
    return secrets.token_urlsafe(24)


WORKLOAD_KINDS = ("Deployment", "StatefulSet")


def workload_unready(live: dict | None) -> str:
    """Why a Deployment or StatefulSet is not available yet; empty when it is."""
    if live is None:
        return "does not exist"
    meta, spec, status = live.get("metadata") or {}, live.get("spec") or {}, live.get("status") or {}
    want = spec.get("replicas", 1)
    if status.get("observedGeneration", 0) < meta.get("generation", 1):
        return "its latest spec is not observed yet"
    have = status.get("availableReplicas" if live.get("kind") == "Deployment" else "readyReplicas") or 0
    if have < want:
        return f"{have}/{want} replicas available"
    return ""


def _unready(claim: Claim, stored: dict[cluster.ObjectRef, dict]) -> tuple[list[str], int]:
    """What is not ready yet, and how many objects the resource has; marks the objects that are. The
    namespace must be Active; with LEASEHOLD_WAIT_FOR_READY, Deployments and StatefulSets must be available too.

    `stored` holds this run's apply answers, as fresh as a read: the objects in it are not read again
    (a Namespace the run applied says its phase; a workload it just applied is not available yet).
    """
    resource = claim.resource
    waiting: list[str] = []
    ns_name = resource.namespace_name
    ns_ref = cluster.ObjectRef("v1", "Namespace", "", ns_name)
    ns = stored[ns_ref] if ns_ref in stored else cluster.read(ns_ref)
    if ns is None:
        raise PermanentClusterError(f"Namespace {ns_name} does not exist (deleted while provisioning?).")
    ns_phase = (ns.get("status") or {}).get("phase")
    if ns_phase != "Active":
        waiting.append(f"Namespace {ns_name} is {ns_phase or 'not active yet'}")
    # A resource made by this run has exactly the rows its claim recorded: no read back.
    present = (
        list(claim.rows.values())
        if claim.rows is not None
        else list(resource.managed_objects.filter(deleted_at__isnull=True))
    )
    rows = [
        row for row in present if row.ready_at is None and not (_is_namespace(_row_ref(row)) and ns_phase != "Active")
    ]
    workloads = [row for row in rows if settings.LEASEHOLD_WAIT_FOR_READY and row.kind in WORKLOAD_KINDS]
    unread = [_row_ref(row) for row in workloads if _row_ref(row) not in stored]
    live = {**stored, **_read_all(unread)}
    ready = []
    for row in rows:
        why = workload_unready(live.get(_row_ref(row))) if row in workloads else ""
        if why:
            waiting.append(f"{row}: {why}")
        else:
            ready.append(row.pk)
    if ready:
        ManagedObject.objects.filter(pk__in=ready).update(ready_at=timezone.now())
    return waiting, len(present)


@transaction.atomic
def _activate(claim: Claim, *, count: int) -> None:
    """Mark request and resource active (`count`: the resource's objects, for the audit trail) and give
    the claim up in the same transaction; ClaimLost (and nothing changed) when another worker took it."""
    request = ResourceRequest.objects.select_for_update().get(pk=claim.request.pk)
    resource = Resource.objects.select_for_update().get(pk=claim.resource.pk)
    if request.state != RequestState.PROVISIONING:
        return
    if resource.created_by_request_id == request.pk:
        resource.created_by_request = request  # the same row, locked above: the lease's audit needs it
    if request.action == Action.CREATE:
        transition_apply(resource, "activate", actor=None, verb="activated", request=request, detail=f"{count} objects")
    if resource.kind == Kind.APP:
        release = _record_release(request, resource)
        if request.action != Action.CREATE:
            Resource.objects.filter(pk=resource.pk).update(spec=release.spec)
            audit_record(
                actor=None,
                verb=f"{request.action}d" if request.action == Action.UPGRADE else "rolled_back",
                target=resource,
                request=request,
                detail=f"release {release.number}: image tag {release.image_tag}"
                + (f" (as release {release.rolled_back_from})" if release.rolled_back_from else ""),
            )
    transition_apply(request, "activate", actor=None, verb="activated", resource=resource)
    _renew(claim, release=True, phase=Phase.DONE, last_error="")


def _record_release(request: ResourceRequest, resource: Resource) -> Release:
    """Keep the configuration this request made the app run (once per request)."""
    existing = Release.objects.filter(request=request).first()
    if existing is not None:
        return existing
    previous = Release.objects.filter(resource=resource).order_by("-number").first()
    rolled_back_from = None
    spec = request.spec
    if request.action == Action.ROLLBACK:
        source = Release.objects.get(resource=resource, number=request.frozen["release"])
        rolled_back_from, spec = source.number, source.spec
    return Release.objects.create(
        resource=resource,
        number=(previous.number + 1) if previous else 1,
        request=request,
        image_tag=spec.get("image_tag", ""),
        spec=spec,
        manifests=render_request(request, lease_start=resource.activated_at, lease_expires=resource.lease_expires_at),
        rolled_back_from=rolled_back_from,
    )


def request_provision(*, request_id) -> ProvisionOutcome:
    """Apply an approved request's objects, record them, wait for readiness, and mark request and
    resource active.

    Idempotent and safe to deliver any number of times, also concurrently: the run claims the request
    (one worker at a time), re-reads its state and does nothing when it is done; objects are recorded
    before they are applied and written with server-side apply, so a re-run converges on the same
    objects. Raises TransientClusterError (retry later), PermanentClusterError or InvalidState (fail),
    or returns how long to wait before checking readiness again.
    """
    try:
        claim = _claim(request_id)
    except DeliveriesExhausted as exc:
        request_fail(request_id=request_id, reason=str(exc))
        return ProvisionOutcome()
    if claim is None:
        return ProvisionOutcome()
    try:
        applying = claim.job.phase != Phase.READINESS
        stored = _apply_all(claim) if applying else {}
        waiting, count = _unready(claim, stored)
        if waiting:
            now = timezone.now()
            # Just applied: the readiness phase starts now (recorded with the wait below, in one write).
            started = {"phase": Phase.READINESS} if applying else {}
            deadline = now + timedelta(seconds=settings.LEASEHOLD_READY_TIMEOUT_SECONDS) if applying else None
            deadline = deadline or claim.job.ready_deadline or now
            if now >= deadline:
                raise PermanentClusterError(
                    f"Not ready within {settings.LEASEHOLD_READY_TIMEOUT_SECONDS:g}s: {'; '.join(waiting)}."
                )
            poll = settings.LEASEHOLD_READY_POLL_SECONDS
            _renew(
                claim,
                release=True,
                **started,
                ready_deadline=deadline,
                last_error=f"waiting for: {'; '.join(waiting)}",
                retry_at=now + timedelta(seconds=poll),
            )
            claim.released = True
            return ProvisionOutcome(retry_in=poll)
        _activate(claim, count=count)
        claim.released = True
        return ProvisionOutcome()
    finally:
        _release(claim)


def retry_delay(attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter for the `attempt`-th retry (from 1), at least `Retry-After`,
    at most LEASEHOLD_RETRY_BACKOFF_MAX_SECONDS."""
    base = settings.LEASEHOLD_RETRY_BACKOFF_SECONDS * (2 ** max(0, attempt - 1))
    jittered = base * random.uniform(0.5, 1.0)  # noqa: S311 (jitter, not cryptography)
    return min(settings.LEASEHOLD_RETRY_BACKOFF_MAX_SECONDS, max(jittered, retry_after or 0))


def provisioning_retry_later(*, request_id, error: Exception) -> float | None:
    """After a transient failure: the seconds until the next attempt (recorded, so the sweep leaves the
    request alone meanwhile), or None when the attempts are used up and the request was failed."""
    reason = str(error) or error.__class__.__name__
    with transaction.atomic():
        request = ResourceRequest.objects.select_for_update().get(pk=request_id)
        if request.state not in (RequestState.APPROVED, RequestState.PROVISIONING):
            return None
        exhausted = request.deliveries >= settings.LEASEHOLD_MAX_DELIVERIES
        if not exhausted:
            delay = retry_delay(request.deliveries, getattr(error, "retry_after", None))
            now = timezone.now()
            ProvisioningJob.objects.update_or_create(
                request=request,
                defaults={
                    "phase": Phase.RETRYING,
                    "retry_at": now + timedelta(seconds=delay),
                    "enqueued_at": now,
                    "last_error": reason,
                },
            )
            audit_record(actor=None, verb="retry_scheduled", target=request, detail=f"in {delay:.1f}s after: {reason}")
            return delay
    request_fail(
        request_id=request_id,
        reason=f"Gave up after {request.deliveries} attempts; the last error was: {reason}",
    )
    return None


def request_fail(*, request_id, reason: str) -> None:
    """Mark a request (and its resource) failed with the reason, and remove what was applied."""
    with transaction.atomic():
        request = ResourceRequest.objects.select_for_update().get(pk=request_id)
        if request.state not in (RequestState.APPROVED, RequestState.PROVISIONING):
            return
        resource = request.resource
        transition_apply(request, "fail", actor=None, verb="failed", detail=reason, reason=reason)
        if resource is not None and resource.state == ResourceState.PROVISIONING:
            transition_apply(resource, "fail", actor=None, verb="failed", detail=reason, request=request)
        ProvisioningJob.objects.update_or_create(
            request=request,
            defaults={
                "phase": Phase.FAILED,
                "last_error": reason,
                "claim_token": None,
                "claimed_until": None,
                "claimed_by": "",
            },
        )
    # A failed upgrade or rollback leaves the running app alone (retry it, or roll back).
    if resource is not None and request.action == Action.CREATE:
        try:
            resource_teardown(resource=resource)
        except ClusterError:
            # The periodic reconcile finishes the teardown of failed resources.
            log.exception("could not remove the objects of failed resource %s yet", resource.pk)


# --- enqueueing and the stuck-request sweep ------------------------------------------------------------------


def _publish(request_id: str) -> None:
    from .tasks import provision_request

    try:
        provision_request.delay(request_id)
    except Exception:  # the broker is down: the sweep re-enqueues the request later
        log.warning("could not enqueue provisioning of %s; the sweep will", request_id, exc_info=True)


def provisioning_enqueue(*, request: ResourceRequest, reset: bool = False) -> None:
    """Record that the request is due for provisioning and publish its task after commit.

    The database is the source of truth: if the message is lost (broker down, worker killed before
    the ack), `provisioning_sweep` finds the request by `enqueued_at` and publishes it again.
    """
    defaults: dict = {"enqueued_at": timezone.now()}
    if reset:
        defaults.update(
            phase=Phase.QUEUED,
            retry_at=None,
            ready_deadline=None,
            last_error="",
            claim_token=None,
            claimed_until=None,
            claimed_by="",
        )
    # One upsert (INSERT ... ON CONFLICT DO UPDATE): no read, no savepoints, on every approval.
    ProvisioningJob.objects.bulk_create(
        [ProvisioningJob(request_id=request.pk, **defaults)],
        update_conflicts=True,
        unique_fields=["request"],
        update_fields=[*defaults, "updated_at"],
    )
    request_id = str(request.pk)
    transaction.on_commit(lambda: _publish(request_id))


def _dead_claims(now) -> list:
    """Requests whose claim has not run out but whose worker is gone: its database session no longer
    exists (a worker killed with -9, a node lost). They are stuck at once, not after the claim runs out."""
    if connection.vendor != "postgresql":
        return []
    held = list(
        ProvisioningJob.objects.filter(
            claimed_until__gt=now,
            claimed_by__startswith="pg:",
            request__state__in=(RequestState.APPROVED, RequestState.PROVISIONING),
        ).values_list("pk", "claimed_by")
    )
    if not held:
        return []
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity")
        live = {row[0] for row in cursor.fetchall()}
    return [pk for pk, by in held if int(by[3:].split("@", 1)[0]) not in live]


def provisioning_sweep() -> list[str]:
    """Re-enqueue requests stuck in approved or provisioning, exactly once per stuck spell:
    - a claim whose worker is gone (its database session ended): at once;
    - no live claim, no retry due, and nothing enqueued for LEASEHOLD_PROVISION_STUCK_MINUTES (a message
      lost with the broker, or never published).
    Runs every LEASEHOLD_SWEEP_SECONDS and when a worker starts. Safe to run anywhere, any number of times
    at once (compare-and-set on the claim and `enqueued_at`). Returns the ids it re-enqueued."""
    now = timezone.now()
    cutoff = now - timedelta(minutes=settings.LEASEHOLD_PROVISION_STUCK_MINUTES)
    dead = _dead_claims(now)
    idle = (
        ResourceRequest.objects.filter(
            action__in=PROVISIONED_ACTIONS, state__in=(RequestState.APPROVED, RequestState.PROVISIONING)
        )
        .filter(
            Q(provisioning_job__isnull=True, updated_at__lt=cutoff)
            | Q(provisioning_job__enqueued_at__isnull=True, updated_at__lt=cutoff)
            | Q(provisioning_job__enqueued_at__lt=cutoff)
        )
        .exclude(provisioning_job__retry_at__gte=cutoff)
        .order_by("updated_at")
        .values_list("pk", flat=True)[: settings.LEASEHOLD_SWEEP_MAX_PER_RUN]
    )
    requeued = []
    for request_id in [*dead, *(pk for pk in idle if pk not in dead)]:
        with transaction.atomic():
            job, _ = ProvisioningJob.objects.get_or_create(request_id=request_id)
            if claim_alive(job):
                continue
            gone = job.claimed_until is not None and job.claimed_until > now
            taken = (
                ProvisioningJob.objects.filter(pk=request_id, claim_token=job.claim_token)
                .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=cutoff) | Q(claimed_until__gt=now))
                .update(enqueued_at=now, claim_token=None, claimed_until=None, claimed_by="")
            )
            if not taken:
                continue
            request = ResourceRequest.objects.get(pk=request_id)
            why = (
                f"its worker ({job.claimed_by}) is gone"
                if gone
                else f"no progress for {settings.LEASEHOLD_PROVISION_STUCK_MINUTES:g} min"
            )
            audit_record(actor=None, verb="requeued", target=request, detail=f"{why}; enqueued again")
            transaction.on_commit(lambda rid=str(request_id): _publish(rid))  # type: ignore[misc]
        requeued.append(str(request_id))
    return requeued


# --- progress ------------------------------------------------------------------------------------------------


def provisioning_progress(request: ResourceRequest) -> dict | None:
    """Where a create request's provisioning stands, step by step: for the request page and the API."""
    if request.action not in PROVISIONED_ACTIONS or request.state in (
        RequestState.PENDING_APPROVAL,
        RequestState.REJECTED,
        RequestState.CANCELLED,
    ):
        return None
    job = ProvisioningJob.objects.filter(pk=request.pk).first()
    rows = list(ManagedObject.objects.filter(resource_id=resource_id_for(request)).order_by("pk"))
    steps = []
    for row in rows:
        if row.deleted_at is not None:
            state = "removed"
        elif row.ready_at is not None:
            state = "ready"
        elif row.applied_at is not None:
            state = "applied"
        else:
            state = "pending"
        steps.append(
            {
                "object": str(row),
                "kind": row.kind,
                "state": state,
                "applied_at": row.applied_at,
                "ready_at": row.ready_at,
            }
        )
    return {
        "state": request.state,
        "live": request.state in (RequestState.APPROVED, RequestState.PROVISIONING),
        "phase": job.phase if job else Phase.QUEUED,
        "phase_display": (job.get_phase_display() if job else Phase.QUEUED.label),
        "attempts": request.deliveries,
        "max_attempts": settings.LEASEHOLD_MAX_DELIVERIES,
        "retry_at": job.retry_at if job else None,
        "note": job.last_error if job else "",
        "error": request.error,
        "steps": steps,
    }


@dataclass
class TeardownReport:
    """What a teardown did: deleted, already gone, still going away, and refused (left alone)."""

    deleted: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    # The rows of the objects that are gone now (deleted at once, or found gone): marked by `teardown_record`.
    gone_rows: list[int] = field(default_factory=list, repr=False)

    @property
    def complete(self) -> bool:
        return not self.pending

    def add(self, other: TeardownReport) -> None:
        self.deleted += other.deleted
        self.gone += other.gone
        self.pending += other.pending
        self.refused += other.refused
        self.gone_rows += other.gone_rows


def _protected(obj: ManagedObject | TeardownItem) -> bool:
    names = reserved_namespaces()
    if obj.kind == "Namespace" and obj.api_version == "v1":
        return obj.name in names
    return obj.namespace in names


def teardown_order(objects: list[ManagedObject]) -> list[ManagedObject]:
    """Objects inside namespaces first, cluster-scoped ones (the Namespace) last."""
    return sorted(objects, key=lambda o: (o.namespace == "", o.pk))


@dataclass(frozen=True)
class TeardownItem:
    """One recorded object to remove, as plain data: what the cluster calls need, read before they start
    (they may run in other threads, which must not touch the ORM)."""

    pk: int
    api_version: str
    kind: str
    namespace: str
    name: str

    @property
    def ref(self) -> cluster.ObjectRef:
        return cluster.ObjectRef(self.api_version, self.kind, self.namespace, self.name)

    @property
    def is_namespace(self) -> bool:
        return self.kind == "Namespace" and self.api_version == "v1"

    def __str__(self) -> str:
        return str(self.ref)


@dataclass(frozen=True)
class TeardownPlan:
    """What a teardown of one resource works on: its recorded objects not yet deleted, in teardown order,
    and the protected ones it refuses without a call. Read from the database by `teardown_plan`; carried
    out by `teardown_run` (cluster calls only); its outcome written by `teardown_record`."""

    resource_id: str
    items: tuple[TeardownItem, ...]
    refused: tuple[str, ...] = ()


def teardown_plan(resource: Resource, *, objects: list[ManagedObject] | None = None) -> TeardownPlan:
    """The resource's recorded objects still to remove (one query, none when the caller read `objects`,
    the rows not deleted yet, for many resources at once)."""
    items, refused = [], []
    if objects is None:
        objects = list(resource.managed_objects.filter(deleted_at__isnull=True))
    for obj in teardown_order(objects):
        item = TeardownItem(obj.pk, obj.api_version, obj.kind, obj.namespace, obj.name)
        if _protected(item):
            refused.append(f"{item}: protected namespace")
        else:
            items.append(item)
    return TeardownPlan(str(resource.pk), tuple(items), tuple(refused))


# A read and a conditional delete that keep meeting a changed object give up for this pass after this many tries.
TEARDOWN_ATTEMPTS = 3


def _remove(item: TeardownItem, resource_id: str, *, dry_run: bool) -> tuple[str, str]:
    """Delete one object if, and only if, it carries the resource's label: a read, then a DELETE whose
    preconditions (the uid and resourceVersion just read) make the label check and the deletion one
    atomic decision; the DELETE's answer says whether it is gone or still terminating (no read after).
    Returns (verdict, note): gone, deleted (gone at once), pending (terminating), refused."""
    for _ in range(TEARDOWN_ATTEMPTS):
        live = cluster.read(item.ref)
        if live is None:
            return "gone", ""
        meta = live.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(LABEL_RESOURCE)
        if owner != resource_id:
            return "refused", f"label {LABEL_RESOURCE}={owner!r} does not name this resource"
        if dry_run:
            return "deleted", ""
        if meta.get("deletionTimestamp"):
            return "pending", "still terminating"
        outcome = cluster.delete(item.ref, uid=meta.get("uid", ""), resource_version=meta.get("resourceVersion", ""))
        if outcome == cluster.Deletion.CONFLICT:
            continue  # changed (or replaced) since the read: decide again on what is there now
        if outcome == cluster.Deletion.TERMINATING:
            return "deleted+pending", "still terminating"
        return "deleted" if outcome == cluster.Deletion.DELETED else "gone", ""
    return "pending", "kept changing while being deleted; tried again by the next pass"


def _note(report: TeardownReport, item: TeardownItem, verdict: str, note: str) -> None:
    label = str(item)
    if verdict == "gone":
        report.gone.append(label)
        report.gone_rows.append(item.pk)
    elif verdict == "refused":
        report.refused.append(f"{label}: {note}")
    elif verdict == "pending":
        report.pending.append(f"{label}: {note}")
    else:
        report.deleted.append(label)
        if verdict == "deleted+pending":
            report.pending.append(f"{label}: {note}")
        else:
            report.gone_rows.append(item.pk)


def teardown_run(plan: TeardownPlan, *, dry_run: bool = False, concurrent: bool = True) -> TeardownReport:
    """Remove the plan's objects from the cluster: cluster calls only, no database (safe in a thread).

    A namespace resource's Namespace goes first: once it is proven the resource's (its label) and its
    DELETE accepted, it takes everything inside with it, so the objects recorded inside it are not
    deleted one by one (they are pending with it, and gone when it is gone: two calls per namespace,
    not three per object). A Namespace that is not the resource's is left alone, and each object
    recorded inside it is checked and deleted on its own. Independent objects are removed with at most
    LEASEHOLD_K8S_CONCURRENCY calls in flight (`concurrent`; a caller that already runs many plans at
    once passes False).
    """
    report = TeardownReport(refused=list(plan.refused))
    items = list(plan.items)
    namespace = next((i for i in items if i.is_namespace), None)
    if namespace is not None:
        verdict, note = _remove(namespace, plan.resource_id, dry_run=dry_run)
        if verdict != "refused":
            _note(report, namespace, verdict, note)
            inside = [i for i in items if i.namespace == namespace.name]
            if dry_run and verdict == "deleted":  # would go with it
                report.deleted += [str(i) for i in inside]
            elif verdict in ("gone", "deleted"):  # gone already: so is everything that was inside it
                report.gone += [str(i) for i in inside]
                report.gone_rows += [i.pk for i in inside]
            items = [i for i in items if i is not namespace and i not in inside]
        else:
            report.refused.append(f"{namespace}: {note}")
            items = [i for i in items if i is not namespace]

    def remove(item: TeardownItem) -> tuple[str, str]:
        return _remove(item, plan.resource_id, dry_run=dry_run)

    verdicts = cluster.map_bounded(remove, items) if concurrent else [remove(i) for i in items]
    for item, (verdict, note) in zip(items, verdicts, strict=True):
        _note(report, item, verdict, note)
    return report


def teardown_record(report: TeardownReport) -> None:
    """Mark the objects the teardown found gone (one query)."""
    if report.gone_rows:
        ManagedObject.objects.filter(pk__in=report.gone_rows, deleted_at__isnull=True).update(deleted_at=timezone.now())


def resource_teardown(*, resource: Resource, dry_run: bool = False) -> TeardownReport:
    """Delete the objects recorded for `resource` that still carry its `leasehold.io/resource` label.

    An object whose label is missing or names another resource is left alone and reported; protected
    namespaces are never touched. Objects that are going away (a Terminating namespace) are `pending`.
    Each object costs a read and a conditional delete (see `teardown_run`), and a namespace resource's
    objects go with its Namespace.
    """
    report = teardown_run(teardown_plan(resource), dry_run=dry_run)
    if not dry_run:
        teardown_record(report)
    return report


# --- drift: the periodic reconcile ---------------------------------------------------------------------------


@dataclass
class ReconcileReport:
    """What one reconcile pass found: per resource, the objects it restored or reported."""

    checked: int = 0
    findings: list[str] = field(default_factory=list)
    cleaned: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _note_drift(row: ManagedObject, note: str, *, uid: str | None, resource: Resource, audit: bool) -> bool:
    """Keep the finding on the object and audit it, once: a compare-and-set on `drift_at`, so that two
    reconcile passes that met the same drift at the same time write one audit row. False when another
    pass noted it first."""
    fields = {"drift": note, "drift_at": timezone.now()}
    if uid is not None:
        fields["uid"] = uid
    with transaction.atomic():
        if not ManagedObject.objects.filter(pk=row.pk, drift_at=row.drift_at).update(**fields):
            return False
        if audit:
            audit_record(
                actor=None,
                verb="object_restored" if "re-applied" in note or "restored" in note else "drift_detected",
                target=resource,
                request=resource.created_by_request,
                detail=f"{row}: {note}",
            )
    return True


def _still_reconcilable(resource: Resource) -> bool:
    """Read just before a write: the resource is still active and no upgrade or rollback took it over."""
    return Resource.objects.filter(pk=resource.pk, state=ResourceState.ACTIVE).exists() and not change_in_flight(
        resource
    )


def resource_reconcile(*, resource_id) -> list[str]:
    """Compare an active resource's recorded objects with what it should run now and converge them.

    What it should run is `resource_manifests` (an app's current release). A missing object is
    re-applied; for an existing one, a dry-run apply shows what applying would change in the fields
    Leasehold owns: nothing, and nothing is written; only Leasehold's own stamps (a new lease
    expiry), and they are brought up to date quietly; anything else was changed outside Leasehold
    and is restored. An object being deleted by someone is reported and re-applied once it is gone.
    No row lock is held while the cluster is called: every write is preceded by a fresh read that the
    resource is still active and not being upgraded (a reclamation or an upgrade that starts meanwhile
    wins), and each finding is recorded once however many passes run. Every finding is kept on the
    object (the `objects` section of the resource) and written to the audit trail.
    """
    findings: list[str] = []
    resource = (
        Resource.objects.filter(pk=resource_id, state=ResourceState.ACTIVE)
        .select_related("created_by_request__team__group", "created_by_request__requester", "team", "parent", "owner")
        .first()
    )
    if resource is None or change_in_flight(resource):  # no longer active, or an upgrade owns it now
        return findings
    request = resource.created_by_request
    manifests = {cluster.ref_of(m): m for m in resource_manifests(resource)}
    for row in resource.managed_objects.filter(deleted_at__isnull=True, applied_at__isnull=False):
        ref = cluster.ObjectRef(row.api_version, row.kind, row.namespace, row.name)
        manifest = manifests.get(ref)
        if manifest is None:
            continue
        live = cluster.read(ref)
        if live is None:
            if not _still_reconcilable(resource):
                break
            stored = cluster.apply(manifest)
            note = "was deleted outside Leasehold; re-applied"
            if row.kind == "Secret" and request.kind == Kind.DATABASE:
                note += " with a new password (the old one existed only in the deleted Secret)"
        elif (live.get("metadata") or {}).get("deletionTimestamp"):
            note = "is being deleted outside Leasehold; it is re-applied once it is gone"
            if row.drift != note and _note_drift(row, note, uid=None, resource=resource, audit=True):
                findings.append(f"{row}: {note}")
            continue
        else:
            changed = differences(live, cluster.apply(manifest, dry_run=True))
            if not changed:
                continue
            if not _still_reconcilable(resource):
                break
            stored = cluster.apply(manifest)
            if only_stamps(changed):
                continue
            shown = ", ".join(path_text(path) for path in changed[:5]) + (" …" if len(changed) > 5 else "")
            note = f"fields owned by Leasehold were changed outside it ({shown}); restored"
            if pod_security_labels_of(live) != pod_security_labels_of(manifest):
                note = "Pod Security labels restored to the configured level (LEASEHOLD_POD_SECURITY)"
        if _note_drift(row, note, uid=(stored.get("metadata") or {}).get("uid", ""), resource=resource, audit=True):
            findings.append(f"{row}: {note}")
    return findings


def resources_reconcile() -> ReconcileReport:
    """One reconcile pass: every active resource (namespaces first), then the teardown of failed
    resources whose objects could not all be removed when they failed."""
    report = ReconcileReport()
    active = (
        Resource.objects.filter(state=ResourceState.ACTIVE)
        .order_by(F("parent_id").asc(nulls_first=True), "created_at")
        .values_list("pk", flat=True)
    )
    for resource_id in active:
        report.checked += 1
        try:
            report.findings += resource_reconcile(resource_id=resource_id)
        except (ClusterError, InvalidState) as exc:
            report.errors.append(f"{resource_id}: {exc}")
            log.warning("reconcile of %s: %s", resource_id, exc)
    failed = Resource.objects.filter(state=ResourceState.FAILED, managed_objects__deleted_at__isnull=True).distinct()
    for resource in failed:
        try:
            torn = resource_teardown(resource=resource)
        except ClusterError as exc:
            report.errors.append(f"{resource.pk}: {exc}")
            continue
        for refused in torn.refused:
            log.warning("failed resource %s: left alone: %s", resource.pk, refused)
        report.cleaned += torn.deleted + torn.gone
    return report


# --- day 2: upgrades and rollbacks of apps ---------------------------------------------------------


def _check_changeable_app(resource: Resource, actor) -> None:
    if not (user_is_admin(actor) or teams_of(actor).filter(pk=resource.team_id).exists()):
        raise NotAllowed("Only the owner's team can change this app.")
    if resource.kind != Kind.APP:
        raise InvalidState("Only apps have releases to upgrade or roll back.")
    if resource.state != ResourceState.ACTIVE:
        raise InvalidState(f"Only an active app can be changed; this one is {resource.state}.")
    if ResourceRequest.objects.filter(
        resource=resource, action__in=PROVISIONED_ACTIONS[1:], state__in=UNFINISHED_STATES
    ).exists():
        raise InvalidState("Another upgrade or rollback of this app is still under way.")


UNFINISHED_STATES = (RequestState.PENDING_APPROVAL, RequestState.APPROVED, RequestState.PROVISIONING)


def app_upgrade_file(*, resource: Resource, actor, image_tag: str, justification: str) -> ResourceRequest:
    """File an upgrade of an app to another image tag; it goes through approval like any request."""
    _check_changeable_app(resource, actor)
    if not isinstance(image_tag, str) or not IMAGE_TAG.match(image_tag):
        raise ValidationFailed({"image_tag": ["Not an image tag: letters, digits, '_', '.', '-', at most 128."]})
    if image_tag == resource.spec.get("image_tag"):
        raise ValidationFailed({"image_tag": [f"The app already runs {image_tag}."]})
    return request_file_followup(
        requester=actor,
        resource=resource,
        action=Action.UPGRADE,
        lease_days=resource.lease_days,
        justification=justification or "",
        spec={**resource.spec, "image_tag": image_tag},
    )


def app_rollback_file(*, resource: Resource, actor, release: int, justification: str) -> ResourceRequest:
    """File a rollback of an app to an earlier release: its full configuration is applied again."""
    _check_changeable_app(resource, actor)
    target = Release.objects.filter(resource=resource, number=release).first()
    if target is None:
        raise ValidationFailed({"release": [f"This app has no release {release}."]})
    return request_file_followup(
        requester=actor,
        resource=resource,
        action=Action.ROLLBACK,
        lease_days=resource.lease_days,
        justification=justification or "",
        spec=target.spec,
        frozen={**resource.created_by_request.frozen, "release": target.number},
    )


def releases_section(resource: Resource) -> list[dict] | None:
    """An app's releases, newest first: the `releases` part of a resource's representation."""
    if resource.kind != Kind.APP:
        return None
    return [
        {
            "number": r.number,
            "image_tag": r.image_tag,
            "request": str(r.request_id),
            "at": r.created_at,
            "rolled_back_from": r.rolled_back_from,
        }
        # Newest first: Release.Meta orders by (resource, -number), and the lists prefetch them by -number.
        for r in _releases_of(resource)
    ]


def _releases_of(resource: Resource) -> Iterable[Release]:
    listed = getattr(resource, "listed_releases", None)  # prefetched by the lists (ProvisioningConfig)
    return listed if listed is not None else resource.releases.all()
