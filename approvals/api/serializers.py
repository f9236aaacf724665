from __future__ import annotations

from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import prefetch_related_objects
from django.urls import reverse
from django.utils import timezone
from rest_framework import serializers

from approvals.models import ApprovalChain, ApprovalStep, Decision, Delegation, decided_by
from approvals.selectors import request_size, steps_prefetch
from requests_app.api.serializers import RequestSummarySerializer, api_datetime
from requests_app.models import ResourceRequest


class DecisionSerializer(serializers.ModelSerializer):
    approver = serializers.CharField(source="approver.username", read_only=True)
    on_behalf_of = serializers.SerializerMethodField()
    decided_by = serializers.CharField(read_only=True, help_text='"frank", or "frank on behalf of paula".')

    class Meta:
        model = Decision
        fields = ["approver", "on_behalf_of", "decided_by", "verdict", "comment", "at"]

    def get_on_behalf_of(self, decision: Decision) -> str | None:
        return decision.on_behalf_of.get_username() if decision.on_behalf_of else None


class StepSerializer(serializers.ModelSerializer):
    decisions = DecisionSerializer(many=True, read_only=True)

    class Meta:
        model = ApprovalStep
        fields = [
            "id",
            "name",
            "group",
            "required",
            "state",
            "decisions",
            "escalate_to",
            "pending_since",
            "escalated_at",
        ]


class QueueItemSerializer(StepSerializer):
    """A step in the caller's queue, with what an approver needs to decide it from the list."""

    request = RequestSummarySerializer(read_only=True)
    rule = serializers.CharField(source="chain.rule", read_only=True)
    size = serializers.SerializerMethodField()
    acting_for = serializers.CharField(
        read_only=True, help_text="Empty: the caller decides in their own name; else whom they stand in for."
    )
    plan_url = serializers.SerializerMethodField()
    page_url = serializers.SerializerMethodField()

    class Meta(StepSerializer.Meta):
        fields = [*StepSerializer.Meta.fields, "rule", "request", "size", "acting_for", "plan_url", "page_url"]

    def get_size(self, step: ApprovalStep) -> str:
        return request_size(step.request)

    def get_plan_url(self, step: ApprovalStep) -> str:
        return reverse("request-plan", args=[step.request_id])

    def get_page_url(self, step: ApprovalStep) -> str:
        return reverse("request-detail", args=[step.request_id])


class DecisionInputSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class ApproveManyInputSerializer(serializers.Serializer):
    steps = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=200)
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class OutcomeSerializer(serializers.Serializer):
    step_id = serializers.CharField()
    ok = serializers.BooleanField()
    detail = serializers.CharField()


class ApproveManyOutputSerializer(serializers.Serializer):
    results = OutcomeSerializer(many=True)


class DelegationSerializer(serializers.ModelSerializer):
    delegator = serializers.CharField(source="delegator.username", read_only=True)
    # A plain name, not a lookup: whether it exists is the service's to say, in the same words as for
    # anyone who may not be the delegate.
    delegate = serializers.CharField(
        source="delegate.username",
        max_length=150,
        help_text="Username of a colleague who shares an approver group with the delegator.",
    )
    active = serializers.SerializerMethodField()

    class Meta:
        model = Delegation
        fields = ["id", "delegator", "delegate", "starts_on", "ends_on", "reason", "active", "created_at", "revoked_at"]
        read_only_fields = ["id", "delegator", "active", "created_at", "revoked_at"]

    def get_active(self, delegation: Delegation) -> bool:
        return delegation.covers(timezone.localdate())


def _decision_row(decision: Decision, tz) -> dict:
    """DecisionSerializer's representation, built directly (tests/api/test_list_rows.py compares them)."""
    return {
        "approver": str(decision.approver.username),
        "on_behalf_of": decision.on_behalf_of.get_username() if decision.on_behalf_of else None,
        "decided_by": str(decision.decided_by),
        "verdict": str(decision.verdict),
        "comment": str(decision.comment),
        "at": api_datetime(decision.at, tz),
    }


def step_row(step: ApprovalStep, tz) -> dict:
    """StepSerializer's representation, built directly: the same keys in the same order."""
    decisions = getattr(step, "listed_decisions", None)
    if decisions is None:
        decisions = step.decisions.all()
    return {
        "id": str(step.id),
        "name": str(step.name),
        "group": str(step.group),
        "required": int(step.required),
        "state": str(step.state),
        "decisions": [_decision_row(d, tz) for d in decisions],
        "escalate_to": str(step.escalate_to),
        "pending_since": api_datetime(step.pending_since, tz),
        "escalated_at": api_datetime(step.escalated_at, tz),
    }


def attach_approval_rows(requests: list[ResourceRequest]) -> None:
    """Set `listed_approval` on each request of a page: its `approval` section, read for the whole page
    in two queries (the steps; the decisions with who decided) as plain rows, without a model per step
    and decision and two user rows per decision. The same dicts as step_row's (tests/api/test_list_rows.py)."""
    chains: dict[Any, tuple[ResourceRequest, ApprovalChain]] = {}
    for request in requests:
        try:
            chain = request.approval_chain
        except ObjectDoesNotExist:
            chain = None
        if chain is None:
            request.listed_approval = None  # type: ignore[attr-defined]
        else:
            chains[chain.pk] = (request, chain)
    if not chains:
        return
    tz = timezone.get_current_timezone()
    by_chain: dict[Any, list[dict]] = {pk: [] for pk in chains}
    by_step: dict[Any, dict] = {}
    steps = (
        ApprovalStep.objects.filter(chain_id__in=list(chains))
        .order_by("order")
        .values_list(
            "id", "chain_id", "name", "group", "required", "state", "escalate_to", "pending_since", "escalated_at"
        )
    )
    for step_id, chain_id, name, group, required, state, escalate_to, pending_since, escalated_at in steps:
        row = {
            "id": str(step_id),
            "name": name,
            "group": group,
            "required": required,
            "state": state,
            "decisions": [],
            "escalate_to": escalate_to,
            "pending_since": api_datetime(pending_since, tz),
            "escalated_at": api_datetime(escalated_at, tz),
        }
        by_chain[chain_id].append(row)
        by_step[step_id] = row
    decisions = (
        Decision.objects.filter(step_id__in=list(by_step))
        .order_by("at", "id")
        .values_list("step_id", "approver__username", "on_behalf_of__username", "verdict", "comment", "at")
    )
    for step_id, approver, on_behalf_of, verdict, comment, at in decisions if by_step else ():
        by_step[step_id]["decisions"].append(
            {
                "approver": approver,
                "on_behalf_of": on_behalf_of,
                "decided_by": decided_by(approver, on_behalf_of),
                "verdict": verdict,
                "comment": comment,
                "at": api_datetime(at, tz),
            }
        )
    for chain_id, (request, chain) in chains.items():
        request.listed_approval = {"rule": chain.rule, "steps": by_chain[chain_id]}  # type: ignore[attr-defined]


def approval_section(request: ResourceRequest) -> dict | None:
    """The `approval` part of a request's representation: what a page read for it (attach_approval_rows),
    else from what the caller prefetched (APPROVAL_SECTION_PREFETCH), else read here in a fixed few queries."""
    if hasattr(request, "listed_approval"):
        return request.listed_approval
    try:
        chain = request.approval_chain
    except ObjectDoesNotExist:
        return None
    if chain is None:
        return None
    if not hasattr(chain, "listed_steps"):
        prefetch_related_objects([chain], *steps_prefetch(""))
    steps = sorted(getattr(chain, "listed_steps", ()), key=lambda s: s.order)
    tz = timezone.get_current_timezone()
    return {"rule": chain.rule, "steps": [step_row(step, tz) for step in steps]}
