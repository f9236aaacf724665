"""Writes of the bottom layer: filing and deciding requests, resource state, the audit trail."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import IntegrityError, models, transaction
from django_fsm import ConcurrentTransition, TransitionNotAllowed, can_proceed

from . import specs
from .errors import InvalidState, NotAllowed, ValidationFailed
from .models import Action, AuditEvent, Environment, Kind, Resource, ResourceRequest, Team
from .selectors import teams_of
from .signals import request_submitted

# `team-atlas-leads` is the lead group of team atlas (see the approval policy), not a team.
TEAM_SUFFIXES_NOT_TEAMS = ("-leads",)
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
    """Append one event to the audit trail. `actor` None means the system."""
    if request is None and isinstance(target, ResourceRequest):
        request = target
    if resource is None and isinstance(target, Resource):
        resource = target
    real_actor = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    return AuditEvent.objects.create(
        actor=real_actor,
        actor_name=real_actor.get_username() if real_actor else "",
        verb=verb,
        target_type=target._meta.model_name or "",
        target_id=str(target.pk),
        request=request,
        resource=resource,
        from_state=from_state,
        to_state=to_state,
        detail=detail,
    )


def transition_apply(
    obj: Any,
    name: str,
    *,
    actor,
    verb: str,
    detail: str = "",
    request: ResourceRequest | None = None,
    resource: Resource | None = None,
    **kwargs,
) -> AuditEvent:
    """Run the FSM transition `name` on `obj`, save it and write its audit row, or raise InvalidState.

    Must run inside a transaction: ConcurrentTransitionMixin turns a lost race into InvalidState.
    """
    method = getattr(obj, name)
    old = obj.state
    if not can_proceed(method):
        raise InvalidState(f"Cannot {name.replace('_', ' ')} a {obj._meta.verbose_name} that is {old}.")
    try:
        method(**kwargs)
        obj.save()
    except (TransitionNotAllowed, ConcurrentTransition) as exc:
        raise InvalidState(
            f"The {obj._meta.verbose_name} changed while this was being done; reload and try again."
        ) from exc
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


def team_for_group(*, group: Group) -> Team | None:
    """Create the team that a `team-<slug>` group stands for, if it is one."""
    slug = group.name[len(settings.LDAP_TEAM_GROUP_PREFIX) :]
    if not TEAM_SLUG.match(slug) or slug.endswith(TEAM_SUFFIXES_NOT_TEAMS):
        return None
    team, _ = Team.objects.get_or_create(slug=slug, defaults={"group": group, "name": slug.title()})
    return team


def _active_name_taken(team: Team, kind: str, name: str) -> bool:
    open_requests = ResourceRequest.objects.filter(
        team=team,
        kind=kind,
        name=name,
        action=Action.CREATE,
        state__in=["pending_approval", "approved", "provisioning", "active"],
    )
    return open_requests.exists()


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
) -> ResourceRequest:
    """Validate a create request and return it unsaved (the plan preview renders it as is).

    Raises ValidationFailed with every field's messages at once.
    """
    spec = spec if spec is not None else {}
    errors: dict[str, list[str]] = {}
    team_obj = Team.objects.filter(slug=team).first() if isinstance(team, str) else None
    if team_obj is None:
        errors["team"] = [f"No team {team!r}."]
    elif not teams_of(requester).filter(pk=team_obj.pk).exists():
        errors["team"] = [f"You are not a member of team {team!r}."]
    if kind not in Kind.values:
        errors["kind"] = [f"Must be one of: {', '.join(Kind.values)}."]
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
    if kind == Kind.NAMESPACE and team_obj is not None:
        name_errors = specs.validate_namespace_name(team_obj.slug, name, settings.LEASEHOLD_SERVICE_NAMESPACE)
    else:
        name_errors = specs.validate_dns_label(name)
    if name_errors:
        errors["name"] = name_errors
    if kind in Kind.values:
        try:
            spec = specs.validate_spec(kind, spec)
        except ValidationFailed as exc:
            errors.update(exc.errors)
    if not errors and team_obj is not None and _active_name_taken(team_obj, kind, name):
        errors["name"] = [f"Team {team} already has a {kind} named {name!r}."]
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
        raise ValidationFailed(
            {"name": [f"Team {request.team.slug} already has a {request.kind} named {request.name!r}."]}
        ) from exc
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


def request_approve(*, request: ResourceRequest, actor, detail: str) -> None:
    """Mark a request approved (called by the approval engine when its chain completes)."""
    transition_apply(request, "approve", actor=actor, verb="approved", detail=detail)


def request_reject(*, request: ResourceRequest, actor, detail: str) -> None:
    """Mark a request rejected (called by the approval engine on a rejection)."""
    transition_apply(request, "reject", actor=actor, verb="rejected", detail=detail)
