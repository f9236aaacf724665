from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import prefetch_related_objects
from django.urls import reverse
from django.utils import timezone
from rest_framework import serializers

from approvals.models import ApprovalStep, Decision, Delegation
from approvals.selectors import request_size, steps_prefetch
from requests_app.api.serializers import RequestSummarySerializer
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


# One serializer, built once: building a StepSerializer (and its DecisionSerializer) for every request of
# a list cost more than the rows (a page of 100 requests built 100 of each).
_STEPS = StepSerializer(many=True)


def approval_section(request: ResourceRequest) -> dict | None:
    """The `approval` part of a request's representation. Uses what the caller prefetched
    (APPROVAL_SECTION_PREFETCH); else fetches the chain's steps and decisions in a fixed few queries."""
    try:
        chain = request.approval_chain
    except ObjectDoesNotExist:
        return None
    if "steps" not in getattr(chain, "_prefetched_objects_cache", {}):
        prefetch_related_objects([chain], *steps_prefetch(""))
    steps = sorted(chain.steps.all(), key=lambda s: s.order)
    return {"rule": chain.rule, "steps": _STEPS.to_representation(steps)}
