"""Writes of the bottom layer: filing and deciding requests, resource state, the audit trail."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.utils import DNS_NAME
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django_fsm import ConcurrentTransition, TransitionNotAllowed, can_proceed

from . import clusters, kinds, specs
from .batch import audit_pending, batch_update_fields, in_batch, pending_events
from .errors import InvalidState, NotAllowed, ValidationFailed
from .models import (
    Action,
    AllowedRegistry,
    AppTemplate,
    AuditEvent,
    Cluster,
    Environment,
    Heartbeat,
    Kind,
    MailState,
    OutgoingMail,
    RequestState,
    Resource,
    ResourceRequest,
    ResourceState,
    Team,
)
from .names import a_kind
from .selectors import teams_of, user_is_admin
from .signals import request_submitted

log = logging.getLogger(__name__)

# `team-atlas-leads` is the lead group of team atlas (see the approval policy), not a team.
TEAM_SUFFIXES_NOT_TEAMS = ("-leads",)
NO_SUCH_TEAM = "No such team, or you are not a member of it."
TEAM_SLUG = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")


def audit_record(
    *,
    actor,
    verb: str,
    target: models.Model,
    detail: str = "",
    from_state: str = "",
    to_state: str = "",
    request: ResourceRequest | None = None,
    resource: Resource | None = None,
) -> AuditEvent:
    """Append one event to the audit trail. `actor` None means the system. Inside `write_batch()` the
    event is written with the block's other writes as it ends (the one returned has no id until then)."""
    if request is None and isinstance(target, ResourceRequest):
        request = target
    if resource is None and isinstance(target, Resource):
        resource = target
    real_actor = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    fields = {
        "actor": real_actor,
        "actor_name": real_actor.get_username() if real_actor else "",
        "verb": verb,
        "target_type": target._meta.model_name or "",
        "target_id": str(target.pk),
        "request": request,
        "resource": resource,
        "from_state": from_state,
        "to_state": to_state,
        "detail": detail,
    }
    batch = pending_events()
    if batch is None:
        return AuditEvent.objects.create(**fields)
    event = AuditEvent(**fields)
    batch.append(event)
    if target.pk is None:  # a row the same batch inserts (batch_create): its key comes with the insert
        audit_pending(event, target)
    return event


def transition_apply(
    obj: Any,
    name: str,
    *,
    actor,
    verb: str,
    detail: str = "",
    request: ResourceRequest | None = None,
    resource: Resource | None = None,
    changed: Iterable[str] | None = None,
    **kwargs,
) -> AuditEvent:
    """Run the FSM transition `name` on `obj`, save it and write its audit row, or raise InvalidState.

    Must run inside a transaction: ConcurrentTransitionMixin turns a lost race into InvalidState.

    `changed`: the fields the caller set on `obj` since it was read (none: `[]`). Then only those, the
    fields the transition itself set (its method and the post_transition receivers) and the
    auto-updated timestamps are written, not the whole row (a request's spec and frozen inputs
    included, which doubled the write's cost on the provisioning path). None: the whole row, as for a
    caller that does not say what it changed. With `changed`, inside `write_batch()`, that write is a
    compare-and-set on the state sent with the block's other writes, and InvalidState is raised when
    the block ends.
    """
    method = getattr(obj, name)
    old = obj.state
    if not can_proceed(method):
        raise InvalidState(f"Cannot {name.replace('_', ' ')} a {obj._meta.verbose_name} that is {old}.")
    before = _column_values(obj) if changed is not None else None
    try:
        method(**kwargs)
        if before is None:
            obj.save()
        elif in_batch():
            batch_update_fields(
                obj,
                _changed_since(obj, before, changed or ()),
                where={"state": old},
                on_miss=lambda: InvalidState(_changed_meanwhile(obj)),
                done=getattr(obj, "_update_initial_state", None),
            )
        else:
            obj.save(update_fields=_changed_since(obj, before, changed or ()))
    except (TransitionNotAllowed, ConcurrentTransition) as exc:
        raise InvalidState(_changed_meanwhile(obj)) from exc
    return audit_record(
        actor=actor,
        verb=verb,
        target=obj,
        detail=detail,
        from_state=old,
        to_state=obj.state,
        request=request,
        resource=resource,
    )


def _changed_meanwhile(obj: models.Model) -> str:
    return f"The {obj._meta.verbose_name} changed while this was being done; reload and try again."


def _column_values(obj: models.Model) -> dict[str, Any]:
    return {f.attname: obj.__dict__.get(f.attname) for f in obj._meta.concrete_fields if not f.primary_key}


def _changed_since(obj: models.Model, before: dict[str, Any], changed: Iterable[str]) -> list[str]:
    """The fields to write: `changed`, those whose value differs from `before`, and the auto_now ones."""
    fields = {obj._meta.get_field(name).name for name in changed}
    for f in obj._meta.concrete_fields:
        if f.primary_key:
            continue
        value = obj.__dict__.get(f.attname)
        differs = value is not before[f.attname] and value != before[f.attname]
        if differs or getattr(f, "auto_now", False):
            fields.add(f.name)
    return sorted(fields)


def team_for_group(*, group: Group) -> Team | None:
    """Create the team that a `team-<slug>` group stands for, if it is one."""
    slug = group.name[len(settings.LDAP_TEAM_GROUP_PREFIX) :]
    if not TEAM_SLUG.match(slug) or slug.endswith(TEAM_SUFFIXES_NOT_TEAMS):
        return None
    team, _ = Team.objects.get_or_create(slug=slug, defaults={"group": group, "name": slug.title()})
    return team


# Namespaces count against budgets and capacity from filing until reclaimed (see clusters.namespace_totals);
# requests that will become resources but are not yet count against headroom too.
LIVE_RESOURCE_STATES = clusters.LIVE_RESOURCE_STATES
UNPROVISIONED_STATES = clusters.UNPROVISIONED_STATES


# Create requests in these states hold their name, and an app's its host (see the model's constraints):
# from filing until the resource is reclaimed.
HOLDING_STATES = (
    RequestState.PENDING_APPROVAL,
    RequestState.APPROVED,
    RequestState.PROVISIONING,
    RequestState.ACTIVE,
)
HOST_CONSTRAINT = "requests_one_live_app_per_host"


def reserved_namespaces() -> frozenset[str]:
    """Namespaces no team namespace may be, and that teardown never touches: Kubernetes' own, the one
    the service runs in and the one its backup Jobs run in."""
    return specs.RESERVED_NAMES | {settings.LEASEHOLD_SERVICE_NAMESPACE, settings.LEASEHOLD_BACKUP_NAMESPACE}


def service_hosts() -> frozenset[str]:
    """Host names the service itself answers to, which no app may take: the exact names in
    ALLOWED_HOSTS (not patterns) and the host of LEASEHOLD_BASE_URL."""
    hosts = {h.lower().rstrip(".") for h in settings.ALLOWED_HOSTS if h and not h.startswith((".", "*"))}
    base = urlsplit(settings.LEASEHOLD_BASE_URL).hostname
    if base:
        hosts.add(base.lower().rstrip("."))
    return frozenset(hosts)


def app_host_taken(host: str) -> bool:
    """An app of any team has this Ingress host, or a request that has not ended asks for it."""
    requests = ResourceRequest.objects.filter(
        kind=Kind.APP, action=Action.CREATE, state__in=HOLDING_STATES, spec__host=host
    )
    apps = Resource.objects.filter(kind=Kind.APP, state__in=LIVE_RESOURCE_STATES, spec__host=host)
    return requests.exists() or apps.exists()


def host_taken_message(host: str) -> str:
    return f"{host} is already used by another app, or asked for by a pending request; choose another host."


def resolve_namespace(*, team: Team, ref: str, cluster: str | None = None) -> Resource | None:
    """The team's active namespace resource named by `ref`: its resource id, `<team>-<name>`, or `<name>`
    (on `cluster`, when given). Names are unique per cluster: a name on two clusters without `cluster`
    is refused (ValidationFailed) rather than guessed."""
    qs = Resource.objects.filter(kind=Kind.NAMESPACE, team=team, state=ResourceState.ACTIVE).select_related(
        "team", "cluster"
    )
    try:
        return qs.filter(pk=uuid.UUID(str(ref))).first()
    except ValueError:
        pass
    short = ref.removeprefix(f"{team.slug}-")
    found = list(qs.filter(name=short, **({"cluster__name": cluster} if cluster else {}))[:2])
    if len(found) > 1:
        raise ValidationFailed(
            {
                "spec.namespace": [
                    f"Namespace {team.slug}-{short} is on more than one cluster: give `cluster` or its id."
                ]
            }
        )
    return found[0] if found else None


def team_budget_left(team: Team) -> dict[str, Any]:
    """What the team's budget still allows: cpu/memory/storage (Decimal, None = no limit) and namespaces."""
    return teams_budget_left([team])[team.pk]


def teams_budget_left(teams: Iterable[Team]) -> dict[int, dict[str, Any]]:
    """`team_budget_left` of several teams at once, in two queries (a page of the approval queue)."""
    by_id: dict[int, Team] = {team.pk: team for team in teams}
    used, count = clusters.namespace_totals("team_id", by_id)
    out: dict[int, dict[str, Any]] = {}
    for pk, team in by_id.items():
        left: dict[str, Any] = {}
        for key in ("cpu", "memory", "storage"):
            budget = getattr(team, f"budget_{key}")
            left[key] = specs.parse_quantity(budget) - getattr(used[pk], key) if budget else None
        left["namespaces"] = team.budget_namespaces - count[pk] if team.budget_namespaces is not None else None
        out[pk] = left
    return out


def namespace_headroom(namespace: Resource) -> specs.Usage:
    """What the namespace's quota still has free after the databases and apps in it (and on their way)."""
    return namespaces_headroom([namespace])[namespace.pk]


def namespaces_headroom(namespaces: Iterable[Resource]) -> dict[Any, specs.Usage]:
    """`namespace_headroom` of several namespaces at once, in three queries."""
    by_id: dict[Any, Resource] = {ns.pk: ns for ns in namespaces}
    free = {pk: specs.quota_usage(specs.namespace_quota(ns.spec)) for pk, ns in by_id.items()}
    children = list(
        Resource.objects.filter(parent__in=list(by_id), state__in=LIVE_RESOURCE_STATES).values_list(
            "parent_id", "kind", "spec"
        )
    )
    children += list(
        ResourceRequest.objects.filter(
            parent__in=list(by_id), action=Action.CREATE, state__in=UNPROVISIONED_STATES
        ).values_list("parent_id", "kind", "spec")
    )
    contexts = {
        kind.name: kind.usage_context([spec for _, name, spec in children if name == kind.name])
        for kind in kinds.all()
        if any(name == kind.name for _, name, _ in children)
    }
    for parent_id, kind, spec in children:
        free[parent_id] = free[parent_id] + _negate(kind_usage(kind, spec, context=contexts.get(kind)))
    return free


def _negate(u: specs.Usage) -> specs.Usage:
    return specs.Usage(-u.cpu, -u.memory, -u.storage)


def kind_usage(kind: str, spec: dict, *, frozen: dict | None = None, context: Any = None) -> specs.Usage:
    """What a resource of `kind` and `spec` takes (nothing when that cannot be told, e.g. its template is gone)."""
    found = kinds.find(kind)
    return (found.usage(spec, frozen=frozen, context=context) if found is not None else None) or specs.Usage()


def _shortfall(asked: specs.Usage, free: specs.Usage) -> list[str]:
    return clusters.shortfall(asked, {key: getattr(free, key) for key in clusters.QUANTITIES})


def _check_admission(
    *, team: Team, kind: str, spec: dict, environment: str, cluster: str | None
) -> tuple[Resource | None, Cluster]:
    """Budget, capacity, headroom, reference and binding checks; returns the parent namespace of a kind
    that lives in one and the cluster the request is placed on (a namespace's: the one named or chosen by
    placement; what lives in a namespace: its namespace's). The kind may normalise the spec in place (an
    app's image tag from its template)."""
    kind_obj = kinds.get(kind)
    if not kind_obj.in_namespace:
        return None, _check_namespace_admission(
            team=team, kind=kind, spec=spec, environment=environment, cluster=cluster
        )
    namespace = resolve_namespace(team=team, ref=spec["namespace"], cluster=cluster)
    if namespace is None:
        raise ValidationFailed({"spec.namespace": [f"Team {team.slug} has no active namespace {spec['namespace']!r}."]})
    if cluster and namespace.cluster.name != cluster:
        raise ValidationFailed(
            {"cluster": [f"A {kind} goes to its namespace's cluster ({namespace.cluster.name}), not {cluster}."]}
        )
    kind_obj.admit(spec=spec, team=team, namespace=namespace)
    for binding in kinds.bindings_from(kind):
        if spec.get(binding.spec_key):
            _check_binding(binding, spec[binding.spec_key], team=team, namespace=namespace)
    short = _shortfall(kind_usage(kind, spec), namespace_headroom(namespace))
    if short:
        raise ValidationFailed(
            {"spec": [f"Does not fit in namespace {namespace.namespace_name}'s quota: {'; '.join(short)}."]}
        )
    return namespace, namespace.cluster


def _check_namespace_admission(*, team: Team, kind: str, spec: dict, environment: str, cluster: str | None) -> Cluster:
    """A namespace takes from its team's budget and its cluster's capacity: returns the cluster."""
    left = team_budget_left(team)
    if left["namespaces"] is not None and left["namespaces"] < 1:
        raise ValidationFailed(
            {"team": [f"Team {team.slug} has used all {team.budget_namespaces} namespaces of its budget."]}
        )
    asked = kind_usage(kind, spec)
    budget_free = specs.Usage(
        *(left[k] if left[k] is not None else getattr(asked, k) for k in ("cpu", "memory", "storage"))
    )
    short = _shortfall(asked, budget_free)
    if short:
        raise ValidationFailed({"spec": [f"Over team {team.slug}'s budget: {'; '.join(short)}."]})
    return clusters.place(environment=environment, asked=asked, name=cluster)


def _check_binding(binding: kinds.Binding, ref: object, *, team: Team, namespace: Resource) -> None:
    """The resource a spec binds to must be an active one of the binding's kind, of the same team, in the
    same namespace (its Secret is read from there)."""
    try:
        target_id = uuid.UUID(str(ref))
    except ValueError:
        target_id = None
    bound = (
        Resource.objects.filter(
            pk=target_id, kind=binding.target_kind, team=team, parent=namespace, state=ResourceState.ACTIVE
        ).exists()
        if target_id
        else False
    )
    if not bound:
        raise ValidationFailed(
            {
                f"spec.{binding.spec_key}": [
                    f"No active {binding.target_kind} {ref!r} in namespace {namespace.namespace_name}."
                ]
            }
        )


def _active_name_holder(team: Team, kind: str, name: str, cluster: Cluster) -> ResourceRequest | None:
    """The team's live create request on `cluster` that holds this name, if any (names are unique per
    cluster); the kinds that become a Service of their name (databases, apps, caches) share one name space."""
    found = kinds.find(kind)
    shared = [k.name for k in kinds.all() if k.service_named] if found is not None and found.service_named else [kind]
    open_requests = ResourceRequest.objects.filter(
        cluster=cluster,
        team=team,
        kind__in=shared,
        name=name,
        action=Action.CREATE,
        state__in=["pending_approval", "approved", "provisioning", "active"],
    )
    return open_requests.select_related("team", "parent__team").first()


def _name_taken_message(holder: ResourceRequest) -> str:
    """Why the name is refused, naming the kind of what holds it, which may not be the kind asked for (a
    database and an app cannot share a name): "Team atlas already has a database named “orders” in atlas-web."
    """
    where = f" in {holder.parent.namespace_name}" if holder.parent is not None else ""
    return f"Team {holder.team.slug} already has {a_kind(holder.kind)} named “{holder.name}”{where}."


def request_build(
    *,
    requester,
    team: str,
    kind: str,
    name: str,
    environment: str,
    lease_days: int | None = None,
    justification: str = "",
    spec: dict | None = None,
    frozen: dict | None = None,
    cluster: str | None = None,
) -> ResourceRequest:
    """Validate a create request and return it unsaved (the plan preview renders it as is).

    `cluster` names the cluster (a namespace: placement chooses without it; what lives in a namespace goes
    to its namespace's, and a different one is refused).

    `frozen` replaces the inputs frozen from the catalog now (a restore re-creates what ran then).

    Raises ValidationFailed with every field's messages at once.
    """
    spec = spec if spec is not None else {}
    errors: dict[str, list[str]] = {}
    # Another team is answered as a team that does not exist, and nothing below is checked against it,
    # so the answer tells no one which teams exist.
    team_obj = teams_of(requester).filter(slug=team).first() if isinstance(team, str) else None
    if team_obj is None:
        errors["team"] = [NO_SUCH_TEAM]
    kind_obj = kinds.find(kind)
    if kind_obj is None:
        errors["kind"] = [f"Must be one of: {', '.join(kinds.names())}."]
    if environment not in Environment.values:
        errors["environment"] = [f"Must be one of: {', '.join(Environment.values)}."]
    if lease_days is None:
        lease_days = settings.LEASE_DEFAULT_DAYS
    if (
        not isinstance(lease_days, int)
        or isinstance(lease_days, bool)
        or not 1 <= lease_days <= settings.LEASE_MAX_DAYS
    ):
        errors["lease_days"] = [f"Must be a whole number of days from 1 to {settings.LEASE_MAX_DAYS}."]
    if kind_obj is not None and (team_obj is not None or kind_obj.in_namespace):
        name_errors = kind_obj.validate_name(team_obj.slug if team_obj else "", name, reserved_namespaces())
    else:
        name_errors = specs.validate_dns_label(name)
    if name_errors:
        errors["name"] = name_errors
    parent = placed = None
    if cluster is not None and not isinstance(cluster, str):
        errors["cluster"] = ["Must be a cluster's name."]
    if kind_obj is not None:
        try:
            spec = kind_obj.validate_spec(
                spec, ingress_domains=settings.LEASEHOLD_INGRESS_DOMAINS, service_hosts=service_hosts()
            )
        except ValidationFailed as exc:
            errors.update(exc.errors)
        else:
            errors.update(kind_obj.conflicts(spec))
            if team_obj is not None and not errors.get("team") and not errors.get("cluster"):
                try:
                    parent, placed = _check_admission(
                        team=team_obj, kind=kind, spec=spec, environment=environment, cluster=cluster
                    )
                except ValidationFailed as exc:
                    errors.update(exc.errors)
    holder = (
        _active_name_holder(team_obj, kind, name, placed)
        if not errors and team_obj is not None and placed is not None
        else None
    )
    if holder is not None:
        errors["name"] = [_name_taken_message(holder)]
    if errors:
        raise ValidationFailed(errors)
    return ResourceRequest(
        action=Action.CREATE,
        kind=kind,
        team=team_obj,
        requester=requester,
        name=name,
        environment=environment,
        lease_days=lease_days,
        justification=justification or "",
        spec=spec,
        parent=parent,
        cluster=placed,
        frozen=frozen if frozen is not None else kinds.get(kind).frozen_inputs(spec),
    )


@transaction.atomic
def request_submit(*, requester, **fields) -> ResourceRequest:
    """File a create request: validate everything, store it as `pending_approval`, audit it, and let
    the approval engine route it. Raises ValidationFailed; nothing is stored then.
    """
    request = request_build(requester=requester, **fields)
    try:
        with transaction.atomic():
            request.save(force_insert=True)
    except IntegrityError as exc:
        # Another request filed at the same moment won the race for the host or the name.
        if HOST_CONSTRAINT in str(exc):
            raise ValidationFailed({"spec.host": [host_taken_message(request.spec.get("host", ""))]}) from exc
        holder = _active_name_holder(request.team, request.kind, request.name, request.cluster) or request
        raise ValidationFailed({"name": [_name_taken_message(holder)]}) from exc
    audit_record(actor=requester, verb="submitted", target=request, to_state=request.state)
    request_submitted.send(sender=ResourceRequest, request=request)
    return request


@transaction.atomic
def request_cancel(*, request: ResourceRequest, actor) -> ResourceRequest:
    """Withdraw a request that is still waiting for approval (the requester or a teammate)."""
    request = ResourceRequest.objects.select_for_update().get(pk=request.pk)
    if not (actor == request.requester or teams_of(actor).filter(pk=request.team_id).exists()):
        raise NotAllowed("Only the requester or a member of the team can cancel this request.")
    transition_apply(request, "cancel", actor=actor, verb="cancelled")
    return request


def followups_withdraw(*, resource: Resource, reason: str) -> int:
    """Cancel the requests still waiting for approval that would change `resource` (an extension, an
    upgrade, a rollback) now that it can no longer be changed (it is being reclaimed): their steps leave
    every queue, and each is audited with the reason. Runs inside the caller's transaction."""
    waiting = (
        ResourceRequest.objects.select_for_update()
        .filter(resource=resource, state=RequestState.PENDING_APPROVAL)
        .exclude(action=Action.CREATE)
    )
    count = 0
    for request in waiting:
        transition_apply(request, "cancel", actor=None, verb="cancelled", detail=reason)
        count += 1
    return count


def request_approve(*, request: ResourceRequest, actor, detail: str, changed: Iterable[str] | None = None) -> None:
    """Mark a request approved (called by the approval engine when its chain completes). `changed`: as
    for transition_apply (a decision names none: it changes nothing on the request it read)."""
    transition_apply(request, "approve", actor=actor, verb="approved", detail=detail, changed=changed)


def request_reject(*, request: ResourceRequest, actor, detail: str, changed: Iterable[str] | None = None) -> None:
    """Mark a request rejected (called by the approval engine on a rejection); `changed` as above."""
    transition_apply(request, "reject", actor=actor, verb="rejected", detail=detail, changed=changed)


@transaction.atomic
def request_retry(*, request: ResourceRequest, actor) -> ResourceRequest:
    """Send a failed request back to provisioning (admins only); provisioning picks it up on commit."""
    if not (actor.is_staff or actor.is_superuser):
        raise NotAllowed("Only admins can retry a failed request.")
    request = ResourceRequest.objects.select_for_update().get(pk=request.pk)
    try:
        with transaction.atomic():
            transition_apply(request, "retry", actor=actor, verb="retried")
    except IntegrityError as exc:
        # While it was failed, another request took its name or (an app) its Ingress host.
        what = "Ingress host" if HOST_CONSTRAINT in str(exc) else "name"
        raise InvalidState(f"Another request now holds this request's {what}; it cannot be retried.") from exc
    resource = request.resource
    if resource is not None and resource.state == ResourceState.FAILED:
        transition_apply(resource, "retry", actor=actor, verb="retried", request=request)
    return request


@transaction.atomic
def request_file_followup(
    *,
    requester,
    resource: Resource,
    action: str,
    lease_days: int,
    justification: str,
    spec: dict | None = None,
    frozen: dict | None = None,
) -> ResourceRequest:
    """File a request about an existing resource (an extension beyond policy, an app's upgrade or
    rollback) for the approval engine. `spec` defaults to the resource's; `frozen` to its create
    request's (the same template and provider)."""
    request = ResourceRequest.objects.create(
        action=action,
        kind=resource.kind,
        team=resource.team,
        requester=requester,
        name=resource.name,
        environment=resource.environment,
        lease_days=lease_days,
        justification=justification,
        spec=spec if spec is not None else resource.spec,
        frozen=frozen if frozen is not None else resource.created_by_request.frozen,
        parent=resource.parent,
        resource=resource,
        cluster_id=resource.cluster_id,
    )
    audit_record(actor=requester, verb="submitted", target=request, resource=resource, to_state=request.state)
    request_submitted.send(sender=ResourceRequest, request=request)
    return request


# --- outgoing mail (the outbox) -------------------------------------------------------------------


def mail_queue(
    *,
    topic: str,
    subject: str,
    body: str,
    to: Iterable[str],
    key: str = "",
    request_id: uuid.UUID | None = None,
    resource_id: uuid.UUID | None = None,
    deliver: bool = True,
) -> OutgoingMail | None:
    """Put a mail in the outbox, inside the caller's transaction: it exists exactly when the change it
    tells about was committed. It is delivered right after the commit (`deliver=False`: the caller
    delivers it, e.g. a pass that sends its mail in one batch); what the mail backend refuses stays
    pending for the next delivery run. With a `key`, a mail queued before under the same key is returned
    instead of queueing it again. None when there is nobody to send it to."""
    recipients = list(dict.fromkeys(a.strip() for a in to if a and a.strip()))
    if not recipients:
        return None
    fields = {
        "topic": topic,
        "key": key,
        "subject": subject,
        "body": body,
        "from_email": settings.DEFAULT_FROM_EMAIL,
        "recipients": recipients,
        "request_id": request_id,
        "resource_id": resource_id,
    }
    if not key:  # nothing to race on: no savepoint (two statements fewer per mail)
        mail = OutgoingMail.objects.create(**fields)
    elif (existing := OutgoingMail.objects.filter(key=key).first()) is not None:
        return existing
    else:
        try:
            with transaction.atomic():  # a savepoint: a lost race on the key leaves the caller's transaction usable
                mail = OutgoingMail.objects.create(**fields)
        except IntegrityError:
            return OutgoingMail.objects.get(key=key)
    if deliver:
        mail_id = mail.pk
        transaction.on_commit(lambda: mail_deliver_pending(limit=1, ids=[mail_id]), robust=True)
    return mail


def mails_queue(mails: list[dict[str, Any]]) -> list[OutgoingMail]:
    """mail_queue (without a key, not delivered: the caller delivers them) for several mails at once, in
    one insert: each dict has mail_queue's `topic`, `subject`, `body`, `to` and optionally `request_id`
    and `resource_id`. A mail with nobody to send it to is left out."""
    rows = []
    for mail in mails:
        recipients = list(dict.fromkeys(a.strip() for a in mail["to"] if a and a.strip()))
        if recipients:
            rows.append(
                OutgoingMail(
                    topic=mail["topic"],
                    subject=mail["subject"],
                    body=mail["body"],
                    from_email=settings.DEFAULT_FROM_EMAIL,
                    recipients=recipients,
                    request_id=mail.get("request_id"),
                    resource_id=mail.get("resource_id"),
                )
            )
    return OutgoingMail.objects.bulk_create(rows)


@dataclass
class MailDelivery:
    """What one delivery run did: the mail the backend accepted, the mail it did not (still pending), and
    why the run stopped early when the mail backend could not be opened at all (the rest was not tried)."""

    sent: list[OutgoingMail] = field(default_factory=list)
    failed: list[OutgoingMail] = field(default_factory=list)
    stopped: str = ""


def mail_deliver_pending(*, limit: int, ids: Collection[int] | None = None, actor=None) -> MailDelivery:
    """Send pending mail (only `ids`, when given), oldest first, each at most once per run, at most `limit`.

    Each mail is claimed with SELECT ... FOR UPDATE SKIP LOCKED and stays locked until its outcome is
    stored, so concurrent runs (the after-commit delivery, the periodic task, reclamation passes on
    several hosts) never send the same mail twice. A mail is `sent` only when the backend returned
    without an error; any exception from the backend (a refusal, a connection error, a misconfigured
    backend) is recorded on the mail, logged, and audited on its first failure; it stays pending.
    When the backend cannot even be opened (server down, misconfigured backend) the run stops after that
    mail: every other would wait for the same timeout and fail the same way.
    `actor` is whoever asked for this run (an admin's "retry now"); None: the system.
    """
    result = MailDelivery()
    tried: list[int] = []
    connection: BaseEmailBackend | None = None
    try:
        while len(tried) < limit:
            # Durable: the mark must be committed as soon as the backend has the mail. Inside a caller's
            # transaction a later rollback would forget that the mail went out, and it would go out again.
            with transaction.atomic(durable=True):
                pending = OutgoingMail.objects.select_for_update(skip_locked=True).filter(state=MailState.PENDING)
                if ids is not None:
                    pending = pending.filter(pk__in=ids)
                mail = pending.exclude(pk__in=tried).order_by("created_at", "pk").first()
                if mail is None:
                    break
                tried.append(mail.pk)
                connection, error, unusable = _mail_send(mail, connection)
                _mail_record(mail, error, actor=actor)
                (result.sent if error is None else result.failed).append(mail)
            if unusable:
                result.stopped = error or ""
                break
    finally:
        _mail_close(connection)
    return result


def _mail_send(
    mail: OutgoingMail, connection: BaseEmailBackend | None
) -> tuple[BaseEmailBackend | None, str | None, bool]:
    """Hand one mail to the mail backend. Returns the connection to reuse, the error (None: accepted),
    and whether the error came from opening the backend (then no other mail can go either)."""
    if connection is None:
        try:
            connection = get_connection(fail_silently=False)
            connection.open()
        except Exception as exc:  # noqa: BLE001  (a backend that cannot be opened fails this mail, not the run)
            _mail_close(connection)
            return None, f"{exc.__class__.__name__}: {exc}", True
    try:
        message = EmailMessage(
            subject=mail.subject,
            body=mail.body,
            from_email=mail.from_email,
            to=mail.recipients,
            # The same Message-ID on every attempt: a copy delivered twice (accepted, then the process died
            # before recording it) is recognisable as the same mail.
            headers={"Message-ID": f"<leasehold-mail-{mail.pk}.{mail.created_at:%Y%m%d%H%M%S%f}@{DNS_NAME}>"},
            connection=connection,
        )
        if connection.send_messages([message]) == 0:
            raise RuntimeError("the mail backend sent nothing")
    except Exception as exc:  # noqa: BLE001  (whatever the backend raises, the mail stays pending)
        # A fresh connection for the next mail: after an error this one may be in any state.
        _mail_close(connection)
        return None, f"{exc.__class__.__name__}: {exc}", False
    return connection, None, False


def _mail_close(connection: BaseEmailBackend | None) -> None:
    if connection is None:
        return
    try:
        connection.close()
    except Exception:  # noqa: BLE001  (a connection that broke is closed as far as it goes)
        log.debug("closing the mail connection failed", exc_info=True)


def _mail_record(mail: OutgoingMail, error: str | None, *, actor) -> None:
    """Store the outcome of one attempt on the locked row; audit the first failure and a late success."""
    now = timezone.now()
    mail.attempts += 1
    mail.last_attempt_at = now
    to = ", ".join(mail.recipients)
    if error is None:
        mail.mark_sent(at=now)
        # The outcome's columns only (mark_sent sets the state and sent_at), not the mail's body again.
        mail.save(update_fields=["attempts", "last_attempt_at", "state", "sent_at"])
        if mail.attempts > 1:
            _mail_audit(mail, actor, "notification_sent", f"{mail.topic} to {to}: sent at attempt {mail.attempts}")
        return
    mail.last_error = error
    mail.save(update_fields=["attempts", "last_attempt_at", "last_error"])
    log.warning("could not send %s #%s to %s (attempt %d): %s", mail.topic, mail.pk, to, mail.attempts, error)
    if mail.attempts == 1:
        # Once, not per retry: the mail's own row shows the attempts and the latest error.
        _mail_audit(mail, actor, "notification_failed", f"{mail.topic} to {to}: {error}")


def _mail_audit(mail: OutgoingMail, actor, verb: str, detail: str) -> None:
    request = ResourceRequest.objects.filter(pk=mail.request_id).first() if mail.request_id else None
    resource = Resource.objects.filter(pk=mail.resource_id).first() if mail.resource_id else None
    audit_record(actor=actor, verb=verb, target=mail, request=request, resource=resource, detail=detail)


# --- admin changes --------------------------------------------------------------------------------


def resource_hand_over_errors(*, resource: Resource, new_owner) -> dict[str, list[str]]:
    """Why `new_owner` cannot take `resource` over (empty: they can). None hands it to the whole team."""
    if resource.state in Resource.TERMINAL:
        return {"owner": [f"The {resource.kind} is {resource.state}: there is nothing to hand over."]}
    if new_owner is not None and not (new_owner.is_active and resource.team.has_member(new_owner)):
        return {"owner": [f"{new_owner.get_username()} is not an active member of team {resource.team.slug}."]}
    return {}


@transaction.atomic
def resource_hand_over(*, resource: Resource, new_owner, actor, reason: str) -> Resource:
    """Hand a resource to another owner in the same team (or, with None, to the team): admins only,
    audited with the owner before and after and the reason. Nothing else of the resource changes:
    what was approved (kind, name, team, environment, spec) stays as it was."""
    if not user_is_admin(actor):
        raise NotAllowed("Only admins can hand a resource over.")
    if not (reason or "").strip():
        raise ValidationFailed({"reason": ["Say why the resource changes hands."]})
    locked = Resource.objects.select_for_update(of=("self",)).select_related("team__group", "owner").get(pk=resource.pk)
    errors = resource_hand_over_errors(resource=locked, new_owner=new_owner)
    if errors:
        raise ValidationFailed(errors)
    before = locked.owner
    if (before.pk if before else None) != (new_owner.pk if new_owner else None):
        Resource.objects.filter(pk=locked.pk).update(owner=new_owner)
        audit_record(
            actor=actor,
            verb="handed_over",
            target=locked,
            request=locked.created_by_request,
            detail=f"owner: {_owner_label(before, locked)} → {_owner_label(new_owner, locked)}: {reason.strip()}",
        )
    resource.owner = new_owner
    return resource


def _owner_label(user, resource: Resource) -> str:
    return user.get_username() if user is not None else f"team {resource.team.slug}"


# What admins keep editing in place: each save and delete is audited with every changed field.
CATALOG_MODELS = (Team, AppTemplate, AllowedRegistry, Cluster)
_NOT_AUDITED = ("id", "created_at")


def _field_values(obj: models.Model) -> dict[str, str]:
    values = {}
    for f in obj._meta.concrete_fields:
        if f.name in _NOT_AUDITED:
            continue
        value = getattr(obj, f.name)
        values[f.name] = "" if value is None else str(value)
    return values


@transaction.atomic
def catalog_save(*, obj: Team | AppTemplate | AllowedRegistry | Cluster, actor) -> None:
    """Save a team, app template or allowed registry that an admin added or changed, and audit it with
    every field that changed, before and after (a team's group decides who may file for it and who gets
    `edit` in its namespaces; its budget what it may ask for). Requests filed earlier are not touched:
    they froze their inputs when they were filed."""
    if not isinstance(obj, CATALOG_MODELS):
        raise TypeError(f"{type(obj).__name__} is not edited in place.")
    if not user_is_admin(actor):
        raise NotAllowed("Only admins can change the catalog and the teams.")
    model = type(obj)
    stored = model.objects.select_for_update().filter(pk=obj.pk).first() if obj.pk else None
    before = _field_values(stored) if stored is not None else None
    obj.save()
    after = _field_values(model.objects.get(pk=obj.pk))  # as stored: a decimal's 1.5 is read back as 1.50
    name = model._meta.model_name
    if before is None:
        detail = "; ".join(f"{k}: {v!r}" for k, v in after.items())
        audit_record(actor=actor, verb=f"{name}_created", target=obj, detail=detail)
        return
    changes = [f"{k}: {before[k]!r} → {after[k]!r}" for k in after if before.get(k) != after[k]]
    if changes:
        audit_record(actor=actor, verb=f"{name}_changed", target=obj, detail="; ".join(changes))


@transaction.atomic
def catalog_delete(*, obj: Team | AppTemplate | AllowedRegistry | Cluster, actor) -> None:
    """Delete a team, app template or allowed registry (admins), audited with what it was."""
    if not isinstance(obj, CATALOG_MODELS):
        raise TypeError(f"{type(obj).__name__} is not deleted in place.")
    if not user_is_admin(actor):
        raise NotAllowed("Only admins can change the catalog and the teams.")
    detail = "; ".join(f"{k}: {v!r}" for k, v in _field_values(obj).items())
    audit_record(actor=actor, verb=f"{obj._meta.model_name}_deleted", target=obj, detail=detail)
    obj.delete()


def heartbeat_record(*, task: str) -> None:
    """Note that the periodic job `task` just finished (one upsert): the beat schedule is running."""
    Heartbeat.objects.bulk_create(
        [Heartbeat(task=task, last_success_at=timezone.now())],
        update_conflicts=True,
        unique_fields=["task"],
        update_fields=["last_success_at"],
    )
