"""What a request renders to: the resource id it creates, its manifests (by its kind's renderer, see
provisioning/kinds/), the plan people read, and a generated password (a database's, a cache's) read back
from its Secret (a re-run must not rotate it)."""

from __future__ import annotations

import base64
import copy
import secrets
import uuid
from datetime import datetime, timedelta

import yaml
from django.utils import timezone

from requests_app.errors import InvalidState
from requests_app.models import Action, Kind, RequestState, Resource, ResourceRequest
from requests_app.specs import RESERVED_NAMES

from .. import cluster
from ..kinds import PROVISIONING_KINDS, render_for
from ..models import Release
from ..renderers import (
    ANNOTATION_LEASE_EXPIRES,
    ANNOTATION_OWNER,
    ANNOTATION_REQUEST,
    RenderContext,
    database_secret_name,
    pod_templates_hardened,
    rfc3339,
)

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


def render_request(
    request: ResourceRequest,
    *,
    lease_start: datetime | None = None,
    password: str | None = None,
    lease_expires: datetime | None = None,
) -> list[dict]:
    """The manifests a create request applies. Before provisioning, the lease is taken to start now.

    Uses only the request and what was frozen on it when it was filed, so the plan an approver saw is
    what the worker applies. `password` is given only by the worker, for a kind's Secret (a database's).
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
    if request.action == Action.ROLLBACK:
        return rollback_manifests(request, ctx)
    return render_for(request, ctx, password)


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
    reads a generated password (a database's, a cache's) from its Secret in the cluster; without it the
    plan's placeholder stands in (for what is kept in the database).
    """
    release = resource.releases.order_by("-number").first() if resource.kind == Kind.APP else None
    if release is None:
        request = resource.created_by_request
        password = _kept_password(request) if with_secrets else None
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


def connection_section(resource: Resource) -> dict | None:
    """How to reach a resource (never its password): the `connection` part of a resource, by its kind."""
    return PROVISIONING_KINDS.get(resource.kind).connection(resource)


def _kept_password(request: ResourceRequest) -> str | None:
    """The kind's generated password already in the cluster (a re-run must not rotate it), else a new
    one; None for a kind that generates none."""
    ref = _secret_ref(request)
    return _password_in(cluster.read(ref)) if ref is not None else None


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


def database_secret_ref(namespace: str, name: str) -> cluster.ObjectRef:
    """The Secret that holds database `name`'s password: the only place the password is kept."""
    return cluster.ObjectRef("v1", "Secret", namespace, database_secret_name(name))


def stored_password(secret: dict | None) -> str | None:
    """The password a database's Secret, as read from the cluster, holds; None when it holds none."""
    data = (secret or {}).get("data") or {}
    return base64.b64decode(data["password"]).decode() if data.get("password") else None


def _secret_ref(request: ResourceRequest) -> cluster.ObjectRef | None:
    """The Secret that keeps the password the request's kind generates (None: it generates none)."""
    where = PROVISIONING_KINDS.get(request.kind).password_secret
    if where is None:
        return None
    namespace, name = where(request)
    return cluster.ObjectRef("v1", "Secret", namespace, name)


def _password_in(secret: dict | None) -> str:
    """The password a Secret in the cluster holds (a re-run must not rotate it), else a new one."""
    return stored_password(secret) or secrets.token_urlsafe(24)
