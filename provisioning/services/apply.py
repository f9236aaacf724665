"""Record-then-apply: the rows of intent written before each object is applied, the ownership checks,
and the server-side apply of a claimed request's objects."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from requests_app.batch import batch_create
from requests_app.errors import InvalidState
from requests_app.models import AuditEvent, Resource, ResourceRequest

from .. import cluster
from ..errors import ClusterError, PermanentClusterError, TransientClusterError
from ..models import ManagedObject
from ..renderers import (
    LABEL_RESOURCE,
)
from .plan import _password_in, _secret_ref, render_request

if TYPE_CHECKING:
    from .claims import Claim


def _render_new(claim: Claim) -> None:
    """A new resource's manifests, rendered in the claim; the read of its Namespace (the first thing its
    apply needs) starts at once, in a thread, and runs while the claim's transaction is written. The
    ownership check still judges that answer before anything is applied (see _apply_all)."""
    try:
        claim.manifests = _rendered(claim.request, claim.resource)
    except InvalidState:
        return  # the run renders again, and the request fails with this reason after the claim
    for ref in map(cluster.ref_of, claim.manifests):
        if _is_namespace(ref):
            claim.ahead[ref] = cluster.Ahead(cluster.read, ref)


def _record_intent_of_new(claim: Claim) -> None:
    """A new resource has no object rows yet: record those of the manifests `_render_new` rendered in
    the claim's transaction (an insert sent with the claim's other writes, which reads their ids back;
    no transaction, read or check of its own)."""
    if claim.manifests is not None:
        claim.rows = _record_intent(claim.resource, claim.manifests, fresh=True)


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
        batch_create(planned)  # in the claim's write_batch(): their ids are read back with its writes
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
    *,
    ready: Collection[int] = (),
) -> None:
    """Note the uid of every object in `stored` (the apply answers); the first confirmed apply of an
    object writes one audit event (two runs that race still write one). The rows `ready` names are
    marked ready with them. On PostgreSQL one statement for the lot (_mark_applied_and_audit); elsewhere
    one transaction."""
    now = timezone.now()
    applied = [rows[ref] for ref in stored]
    uids = {rows[ref].pk: (answer.get("metadata") or {}).get("uid", "") for ref, answer in stored.items()}
    elsewhere = [pk for pk in ready if pk not in uids]  # ready, but not applied by this run
    if elsewhere:
        ManagedObject.objects.filter(pk__in=elsewhere).update(ready_at=now)
    if not stored:
        return
    if connection.vendor == "postgresql":
        details = {row.pk: str(row) for row in applied}
        first = _mark_applied_and_audit(uids, details, set(ready), now, request, resource)
    else:
        with transaction.atomic():
            first = _mark_applied(uids, now)
            ManagedObject.objects.filter(pk__in=[pk for pk in ready if pk in uids]).update(ready_at=now)
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


def _mark_applied_and_audit(
    uids: dict[int, str],
    details: dict[int, str],
    ready: set[int],
    now: datetime,
    request: ResourceRequest,
    resource: Resource,
) -> set[int]:
    """PostgreSQL: set `applied_at` (where it is empty) and the uid of the rows `uids` names, `ready_at`
    (where it is empty) of those among them that `ready` names, and write the `object_applied` audit
    event of each row whose `applied_at` this set (its first confirmed apply; `details` names the
    object) — one statement, atomic by itself, so no transaction round trips.

    The UPDATE locks each row as it updates it: a run racing this one waits, then sees `applied_at` set
    and neither sets it nor writes the event again (a compare-and-set per row, without reading the rows
    first). Returns the ids whose `applied_at` this statement set."""
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH v AS (SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::boolean[]) "
            "AS v(id, uid, detail, ready)), "
            "marked AS (UPDATE provisioning_managedobject AS m "
            "SET applied_at = COALESCE(m.applied_at, %s), uid = v.uid, "
            "ready_at = CASE WHEN v.ready THEN COALESCE(m.ready_at, %s) ELSE m.ready_at END FROM v "
            "WHERE m.id = v.id AND (m.applied_at IS NULL OR m.uid <> v.uid OR (v.ready AND m.ready_at IS NULL)) "
            "RETURNING m.id, m.applied_at = %s AS first), "
            "audited AS (INSERT INTO requests_app_auditevent (at, actor_id, actor_name, verb, target_type, target_id, "
            "request_id, resource_id, from_state, to_state, detail) "
            "SELECT %s, NULL, '', 'object_applied', %s, %s, %s, %s, '', '', v.detail "
            "FROM marked JOIN v ON v.id = marked.id WHERE marked.first ORDER BY v.id) "
            "SELECT id FROM marked WHERE first",
            [
                list(uids),
                list(uids.values()),
                [details[pk] for pk in uids],
                [pk in ready for pk in uids],
                now,
                now,
                now,
                now,
                resource._meta.model_name or "",
                str(resource.pk),
                request.pk,
                resource.pk,
            ],
        )
        return {pk for (pk,) in cursor.fetchall()}


def _mark_applied(uids: dict[int, str], now: datetime) -> set[int]:
    """Set `applied_at` (where it is empty) and the uid of the rows `uids` names; returns the ids whose
    `applied_at` this set: their first confirmed apply (other databases than PostgreSQL: a statement per
    row, in the caller's transaction)."""
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


def _apply_all(
    claim: Claim, *, ready_now: Callable[[dict[cluster.ObjectRef, dict]], list[int]] | None = None
) -> dict[cluster.ObjectRef, dict]:
    """Apply the request's objects once their ownership is proven; returns the apply answers. When every
    apply succeeded, `ready_now` (given the answers) says which rows are ready already: they are marked
    in the same write that records the applies.

    API calls: a Namespace is read (for a new resource, while its claim was written: `claim.ahead`),
    then applied. When it did not exist (and the apply created it),
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
    ready: list[int] = []
    try:
        namespace = next((m for m in manifests if _is_namespace(cluster.ref_of(m))), None)
        rest = [m for m in manifests if m is not namespace]
        fresh = ""  # a namespace this run created: nothing of anyone else's can be inside it
        if namespace is not None:
            ref = cluster.ref_of(namespace)
            live = claim.ahead[ref].result() if ref in claim.ahead else cluster.read(ref)
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
        secret = _secret_ref(request)
        if secret is not None:  # a kind with a generated password (a database, a cache): keep the one there
            password = _password_in(lives.get(secret))
            rest = _rendered(request, resource, password=password)  # such a kind has no Namespace of its own
        applied, errors = _apply_each(rest)
        stored.update(applied)
        if not errors and ready_now is not None:
            ready = ready_now(stored)
    finally:
        _record_applied(rows, stored, request, resource, ready=ready)
    if errors:
        raise errors[0]
    return stored
