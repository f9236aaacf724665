from __future__ import annotations

from dataclasses import asdict

from django.db.models import Q
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from approvals.models import ApprovalStep, Delegation, Verdict
from approvals.selectors import delegations_of, steps_decidable_by, steps_visible_to, user_by_username
from approvals.services import delegation_create, delegation_revoke, step_decide, steps_approve_many
from requests_app.selectors import user_is_admin

from .serializers import (
    ApproveManyInputSerializer,
    ApproveManyOutputSerializer,
    DecisionInputSerializer,
    DelegationSerializer,
    QueueItemSerializer,
    StepSerializer,
)


class ApprovalViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The caller's approval queue: steps they may decide now (in their own name or as a delegate),
    oldest first; deciding them one by one or several at once; the caller's delegations."""

    serializer_class = QueueItemSerializer
    queryset = ApprovalStep.objects.none()

    def get_queryset(self):
        user = self.request.user
        if self.action == "list":
            return steps_decidable_by(user).prefetch_related("decisions__approver", "decisions__on_behalf_of")
        # Others get 404, as for an unknown id.
        return steps_visible_to(user).select_related("request")

    def _decide(self, verdict: str, request: Request) -> Response:
        step = self.get_object()
        body = DecisionInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            step_decide(step_id=step.pk, user=request.user, verdict=verdict, comment=body.validated_data["comment"])
        except ApprovalStep.DoesNotExist:
            raise NotFound from None  # the directory says now that the caller may not see it
        step = ApprovalStep.objects.prefetch_related("decisions__approver", "decisions__on_behalf_of").get(pk=step.pk)
        return Response(StepSerializer(step).data)

    @extend_schema(request=DecisionInputSerializer, responses={200: StepSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk=None) -> Response:
        return self._decide(Verdict.APPROVE, request)

    @extend_schema(request=DecisionInputSerializer, responses={200: StepSerializer})
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk=None) -> Response:
        return self._decide(Verdict.REJECT, request)

    @extend_schema(
        request=ApproveManyInputSerializer,
        responses={200: ApproveManyOutputSerializer},
        description="Approve several steps at once; each is decided on its own and reported in `results`.",
    )
    @action(detail=False, methods=["post"], url_path="approve-many")
    def approve_many(self, request: Request) -> Response:
        body = ApproveManyInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        outcomes = steps_approve_many(
            step_ids=body.validated_data["steps"], user=request.user, comment=body.validated_data["comment"]
        )
        return Response({"results": [asdict(o) for o in outcomes]})

    @extend_schema(methods=["GET"], request=None, responses={200: DelegationSerializer(many=True)})
    @extend_schema(methods=["POST"], request=DelegationSerializer, responses={201: DelegationSerializer})
    @action(detail=False, methods=["get", "post"], serializer_class=DelegationSerializer, pagination_class=None)
    def delegations(self, request: Request) -> Response:
        """The caller's delegations that are not over (given and received); POST gives one."""
        if request.method == "GET":
            return Response(DelegationSerializer(delegations_of(request.user), many=True).data)
        body = DelegationSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        delegation = delegation_create(
            delegator=request.user,
            delegate=user_by_username(data["delegate"]["username"].strip()),
            starts_on=data["starts_on"],
            ends_on=data["ends_on"],
            reason=data.get("reason", ""),
            actor=request.user,
        )
        return Response(DelegationSerializer(delegation).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: DelegationSerializer})
    @action(
        detail=False,
        methods=["post"],
        url_path=r"delegations/(?P<delegation_id>[0-9]+)/revoke",
        serializer_class=DelegationSerializer,
    )
    def revoke_delegation(self, request: Request, delegation_id: str) -> Response:
        """End one of the caller's delegations now."""
        mine = Delegation.objects.filter(Q(delegator=request.user) | Q(delegate=request.user))
        if user_is_admin(request.user):
            mine = Delegation.objects.all()
        delegation = get_object_or_404(mine, pk=delegation_id)
        delegation = delegation_revoke(delegation=delegation, actor=request.user, is_admin=user_is_admin(request.user))
        return Response(DelegationSerializer(delegation).data)
