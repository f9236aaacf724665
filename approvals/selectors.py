"""Reads for the approval engine: the policy in force and what a user may decide now."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Exists, OuterRef, QuerySet
from kubernetes.utils import parse_quantity

from requests_app.models import Kind, RequestState, ResourceRequest
from requests_app.specs import namespace_quota, plan_of

from .models import ApprovalPolicy, ApprovalStep, Decision, StepState
from .policy import DEFAULT_POLICY, Policy, PolicyError, RequestFacts, parse_policy


def policy_in_force() -> tuple[Policy, ApprovalPolicy | None]:
    """The newest loaded policy; else APPROVAL_POLICY_FILE; else the built-in default."""
    row = ApprovalPolicy.objects.order_by("-loaded_at", "-id").first()
    if row is not None:
        return parse_policy(row.source), row
    if settings.APPROVAL_POLICY_FILE:
        path = Path(settings.APPROVAL_POLICY_FILE)
        try:
            return parse_policy(path.read_text()), None
        except (OSError, PolicyError) as exc:
            raise ImproperlyConfigured(f"APPROVAL_POLICY_FILE={path}: {exc}") from exc
    return DEFAULT_POLICY, None


def request_facts(request: ResourceRequest) -> RequestFacts:
    """What the policy may match on for this request."""
    quantities = {}
    if request.kind == Kind.NAMESPACE:
        quota = namespace_quota(request.spec)
        quantities = {k: parse_quantity(getattr(quota, k)) for k in ("cpu", "memory", "storage")}
    return RequestFacts(
        kind=request.kind,
        environment=request.environment,
        team=request.team.slug,
        plan=plan_of(request.kind, request.spec),
        lease_days=request.lease_days,
        quantities=quantities,
    )


def user_group_names(user) -> set[str]:
    return set(user.groups.values_list("name", flat=True))


def steps_decidable_by(user) -> QuerySet[ApprovalStep]:
    """Pending steps the user may decide now, oldest first.

    Excludes the user's own requests and requests where the user already decided a step.
    """
    if not user.is_authenticated:
        return ApprovalStep.objects.none()
    already = Decision.objects.filter(step__request=OuterRef("request"), approver=user)
    return (
        ApprovalStep.objects.filter(
            state=StepState.PENDING,
            request__state=RequestState.PENDING_APPROVAL,
            group__in=list(user_group_names(user)),
        )
        .exclude(request__requester=user)
        .exclude(Exists(already))
        .select_related("request", "request__team", "request__requester", "chain")
        .order_by("pending_since", "request__created_at")
    )
