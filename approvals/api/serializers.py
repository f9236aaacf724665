from __future__ import annotations

from rest_framework import serializers

from approvals.models import ApprovalStep, Decision
from requests_app.models import ResourceRequest


class DecisionSerializer(serializers.ModelSerializer):
    approver = serializers.CharField(source="approver.username", read_only=True)

    class Meta:
        model = Decision
        fields = ["approver", "verdict", "comment", "at"]


class StepSerializer(serializers.ModelSerializer):
    decisions = DecisionSerializer(many=True, read_only=True)

    class Meta:
        model = ApprovalStep
        fields = ["id", "name", "group", "required", "state", "decisions"]


class RequestSummarySerializer(serializers.ModelSerializer):
    team = serializers.CharField(source="team.slug", read_only=True)
    requester = serializers.CharField(source="requester.username", read_only=True)

    class Meta:
        model = ResourceRequest
        fields = [
            "id",
            "action",
            "kind",
            "team",
            "name",
            "environment",
            "lease_days",
            "justification",
            "spec",
            "state",
            "requester",
            "created_at",
        ]


class QueueItemSerializer(StepSerializer):
    request = RequestSummarySerializer(read_only=True)
    rule = serializers.CharField(source="chain.rule", read_only=True)

    class Meta(StepSerializer.Meta):
        fields = [*StepSerializer.Meta.fields, "rule", "pending_since", "request"]


class DecisionInputSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


def approval_section(request: ResourceRequest) -> dict | None:
    """The `approval` part of a request's representation."""
    chain = getattr(request, "approval_chain", None)
    if chain is None:
        return None
    steps = chain.steps.prefetch_related("decisions__approver").order_by("order")
    return {"rule": chain.rule, "steps": StepSerializer(steps, many=True).data}
