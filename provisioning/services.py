"""Apply and tear down a resource's Kubernetes objects. The only writer of ManagedObject."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import yaml
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from requests_app.models import RequestState, Resource, ResourceRequest, ResourceState
from requests_app.services import audit_record, transition_apply

from . import cluster
from .errors import ClusterError
from .models import ManagedObject
from .renderers import LABEL_RESOURCE, RenderContext, manifests_for

log = logging.getLogger(__name__)

PROTECTED_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "default"})
RESOURCE_ID_NAMESPACE = uuid.UUID("0f3c4a4e-6d0b-4c36-9b7b-6c2f1f0d9a11")


def resource_id_for(request: ResourceRequest) -> uuid.UUID:
    """The id of the resource a create request makes, known before it exists (the plan shows it)."""
    return uuid.uuid5(RESOURCE_ID_NAMESPACE, str(request.pk))


def render_request(request: ResourceRequest, *, lease_start: datetime | None = None) -> list[dict]:
    """The manifests a create request applies. Before provisioning, the lease is taken to start now."""
    start = lease_start or timezone.now()
    ctx = RenderContext(
        resource_id=str(resource_id_for(request)),
        request_id=str(request.pk),
        team=request.team.slug,
        team_group=request.team.group.name,
        environment=request.environment,
        owner=request.requester.get_username(),
        lease_expires=start + timedelta(days=request.lease_days),
    )
    return manifests_for(kind=request.kind, team=request.team.slug, name=request.name, spec=request.spec, ctx=ctx)


def request_plan(*, request: ResourceRequest) -> list[dict]:
    """What the request applies (or applied): the same render the worker uses."""
    resource = Resource.objects.filter(pk=resource_id_for(request)).first()
    return render_request(request, lease_start=resource.activated_at if resource else None)


def plan_yaml(request: ResourceRequest) -> str:
    """The plan as YAML documents, for people to read."""
    if request.action != "create":
        return ""
    return yaml.safe_dump_all(request_plan(request=request), sort_keys=False)


@transaction.atomic
def _claim(request_id) -> tuple[ResourceRequest, Resource] | None:
    """Move an approved request to provisioning (creating its resource), or pick up one in progress."""
    request = ResourceRequest.objects.select_for_update().select_related("team", "requester").get(pk=request_id)
    if request.state == RequestState.APPROVED:
        resource, _ = Resource.objects.get_or_create(
            pk=resource_id_for(request),
            defaults={
                "kind": request.kind,
                "name": request.name,
                "team": request.team,
                "owner": request.requester,
                "environment": request.environment,
                "spec": request.spec,
                "lease_days": request.lease_days,
                "created_by_request": request,
                "activated_at": timezone.now(),
            },
        )
        request.resource = resource
        transition_apply(request, "start_provisioning", actor=None, verb="provisioning_started")
        return request, resource
    if request.state == RequestState.PROVISIONING and request.resource is not None:
        return request, request.resource
    return None


def request_provision(*, request_id) -> None:
    """Apply an approved request's objects, record them, and mark request and resource active.

    Idempotent: a re-run (redelivery, retry) re-applies the same objects with server-side apply,
    which converges, and a request that is already active or no longer wanted is left alone.
    """
    claimed = _claim(request_id)
    if claimed is None:
        return
    request, resource = claimed
    for manifest in render_request(request, lease_start=resource.activated_at):
        stored = cluster.apply(manifest)
        meta = stored.get("metadata", {})
        where = manifest["metadata"].get("namespace", "")
        _, created = ManagedObject.objects.update_or_create(
            resource=resource,
            api_version=manifest["apiVersion"],
            kind=manifest["kind"],
            namespace=where,
            name=manifest["metadata"]["name"],
            defaults={"uid": meta.get("uid", ""), "applied_at": timezone.now(), "deleted_at": None},
        )
        if created:
            audit_record(
                actor=None,
                verb="object_applied",
                target=resource,
                request=request,
                detail=f"{manifest['kind']} {where + '/' if where else ''}{manifest['metadata']['name']}",
            )
    with transaction.atomic():
        request = ResourceRequest.objects.select_for_update().get(pk=request.pk)
        resource = Resource.objects.select_for_update().get(pk=resource.pk)
        if request.state != RequestState.PROVISIONING:
            return
        transition_apply(resource, "activate", actor=None, verb="activated", request=request)
        transition_apply(request, "activate", actor=None, verb="activated", resource=resource)


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
    if resource is not None:
        try:
            resource_teardown(resource=resource)
        except ClusterError:
            log.exception("could not remove the objects of failed resource %s", resource.pk)


@dataclass
class TeardownReport:
    """What a teardown did: deleted, already gone, still going away, and refused (left alone)."""

    deleted: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.pending


def _protected(obj: ManagedObject) -> bool:
    names = PROTECTED_NAMESPACES | {settings.LEASEHOLD_SERVICE_NAMESPACE}
    if obj.kind == "Namespace" and obj.api_version == "v1":
        return obj.name in names
    return obj.namespace in names


def teardown_order(objects: list[ManagedObject]) -> list[ManagedObject]:
    """Objects inside namespaces first, cluster-scoped ones (the Namespace) last."""
    return sorted(objects, key=lambda o: (o.namespace == "", o.pk))


def resource_teardown(*, resource: Resource, dry_run: bool = False) -> TeardownReport:
    """Delete the objects recorded for `resource` that still carry its `leasehold.io/resource` label.

    An object whose label is missing or names another resource is left alone and reported; protected
    namespaces are never touched. Objects that are going away (a Terminating namespace) are `pending`.
    """
    report = TeardownReport()
    for obj in teardown_order(list(resource.managed_objects.filter(deleted_at__isnull=True))):
        ref = cluster.ObjectRef(obj.api_version, obj.kind, obj.namespace, obj.name)
        label = str(obj)
        if _protected(obj):
            report.refused.append(f"{label}: protected namespace")
            continue
        live = cluster.read(ref)
        if live is None:
            report.gone.append(label)
            if not dry_run:
                obj.deleted_at = timezone.now()
                obj.save(update_fields=["deleted_at"])
            continue
        owner = ((live.get("metadata") or {}).get("labels") or {}).get(LABEL_RESOURCE)
        if owner != str(resource.pk):
            report.refused.append(f"{label}: label {LABEL_RESOURCE}={owner!r} does not name this resource")
            continue
        if dry_run:
            report.deleted.append(label)
            continue
        if (live.get("metadata") or {}).get("deletionTimestamp") is None:
            cluster.delete(ref)
            report.deleted.append(label)
        if cluster.read(ref) is None:
            obj.deleted_at = timezone.now()
            obj.save(update_fields=["deleted_at"])
        else:
            report.pending.append(f"{label}: still terminating")
    return report
