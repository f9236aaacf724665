from __future__ import annotations

from django.db.models import Q
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from approvals.models import ApprovalStep, Verdict
from approvals.selectors import steps_decidable_by, user_group_names
from approvals.services import step_decide
from requests_app.selectors import teams_of, user_is_admin

from .serializers import DecisionInputSerializer, QueueItemSerializer, StepSerializer


class ApprovalViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The caller's approval queue: steps they may decide now, oldest first."""

    serializer_class = QueueItemSerializer
    queryset = ApprovalStep.objects.none()

    def get_queryset(self):
        if self.action == "list":
            return steps_decidable_by(self.request.user).prefetch_related("decisions__approver")
        # A step is visible to its group's members, the request's team, and admins; others get 404.
        user = self.request.user
        qs = ApprovalStep.objects.select_related("request")
        if user_is_admin(user):
            return qs
        return qs.filter(Q(group__in=list(user_group_names(user))) | Q(request__team__in=teams_of(user)))

    def _decide(self, verdict: str, request: Request) -> Response:
        step = self.get_object()
        body = DecisionInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        step_decide(step_id=step.pk, user=request.user, verdict=verdict, comment=body.validated_data["comment"])
        step = ApprovalStep.objects.prefetch_related("decisions__approver").get(pk=step.pk)
        return Response(StepSerializer(step).data)

    @extend_schema(request=DecisionInputSerializer, responses={200: StepSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk=None) -> Response:
        return self._decide(Verdict.APPROVE, request)

    @extend_schema(request=DecisionInputSerializer, responses={200: StepSerializer})
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk=None) -> Response:
        return self._decide(Verdict.REJECT, request)
