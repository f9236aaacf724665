from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from leases.api.serializers import ResourceSerializer
from leases.filtersets import ResourceFilter
from leases.services.extension import lease_extend
from leases.services.reclaim import resource_release
from leases.services.restore import resource_restore
from provisioning.services.releases import app_rollback_file, app_upgrade_file
from requests_app.api.pagination import UncountedLimitOffsetPagination
from requests_app.api.serializers import RequestSerializer
from requests_app.models import Resource, ResourceRequest
from requests_app.sections import resource_select_fields
from requests_app.selectors import requests_visible_to, resources_visible_to


class ExtendSerializer(serializers.Serializer):
    days = serializers.IntegerField(min_value=1)
    justification = serializers.CharField(max_length=2000)


class UpgradeSerializer(serializers.Serializer):
    image_tag = serializers.CharField(max_length=128)
    justification = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class RollbackSerializer(serializers.Serializer):
    release = serializers.IntegerField(min_value=1)
    justification = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


# The columns a row of `GET /api/v1/resources/` shows, with what `display_name` and `namespace` read (the
# parent namespace and its team); the sections add theirs (`resource_select_fields`). Whole user rows
# (password hashes) are not read.
RESOURCE_ROW_FIELDS = (
    *(f.name for f in Resource._meta.concrete_fields if f.name not in ("activated_at", "lease_expires_at")),
    "team__slug",
    "owner__username",
    "parent__kind",
    "parent__name",
    "parent__state",
    "parent__team__slug",
    "cluster__name",
)


class ResourceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Resources of the caller's teams, with their lease and Kubernetes objects."""

    serializer_class = ResourceSerializer
    filterset_class = ResourceFilter
    pagination_class = UncountedLimitOffsetPagination

    def get_queryset(self):
        visible = resources_visible_to(self.request.user)
        if self.action == "list":
            return visible.only(*RESOURCE_ROW_FIELDS, *resource_select_fields)
        return visible

    @extend_schema(
        request=ExtendSerializer,
        responses={200: ResourceSerializer, 202: RequestSerializer},
        examples=[
            OpenApiExample("A week more", value={"days": 7, "justification": "demo on Friday"}, request_only=True)
        ],
    )
    @action(detail=True, methods=["post"])
    def extend(self, request: Request, pk=None) -> Response:
        """Extend the lease: 200 with the resource when within policy, 202 with an extend request otherwise."""
        resource = self.get_object()
        body = ExtendSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        _, result = lease_extend(resource=resource, actor=request.user, **body.validated_data)
        if isinstance(result, ResourceRequest):
            filed = requests_visible_to(request.user).get(pk=result.pk)
            return Response(RequestSerializer(filed).data, status=status.HTTP_202_ACCEPTED)
        return Response(ResourceSerializer(self.get_queryset().get(pk=resource.pk)).data)

    def _accepted(self, filed) -> Response:
        return Response(
            RequestSerializer(requests_visible_to(self.request.user).get(pk=filed.pk)).data,
            status=status.HTTP_202_ACCEPTED,
        )

    @extend_schema(
        request=UpgradeSerializer,
        responses={202: RequestSerializer},
        examples=[
            OpenApiExample("A new tag", value={"image_tag": "1.5.0", "justification": "bug fixes"}, request_only=True)
        ],
    )
    @action(detail=True, methods=["post"])
    def upgrade(self, request: Request, pk=None) -> Response:
        """Apps: file an upgrade to another image tag (through approval)."""
        body = UpgradeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self._accepted(app_upgrade_file(resource=self.get_object(), actor=request.user, **body.validated_data))

    @extend_schema(
        request=RollbackSerializer,
        responses={202: RequestSerializer},
        examples=[
            OpenApiExample("Back to release 1", value={"release": 1, "justification": "1.5.0 leaks"}, request_only=True)
        ],
    )
    @action(detail=True, methods=["post"])
    def rollback(self, request: Request, pk=None) -> Response:
        """Apps: file a rollback to an earlier release, whose full configuration is applied again."""
        body = RollbackSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self._accepted(app_rollback_file(resource=self.get_object(), actor=request.user, **body.validated_data))

    @extend_schema(request=None, responses={202: RequestSerializer})
    @action(detail=True, methods=["post"])
    def restore(self, request: Request, pk=None) -> Response:
        """Re-create a reclaimed resource as it last ran (databases from their last backup), via a request."""
        return self._accepted(resource_restore(resource=self.get_object(), actor=request.user))

    @extend_schema(request=None, responses={200: ResourceSerializer})
    @action(detail=True, methods=["post"])
    def release(self, request: Request, pk=None) -> Response:
        """Give the resource back now: reclaimed (databases backed up first), no grace."""
        resource_release(resource=self.get_object(), actor=request.user)
        return Response(ResourceSerializer(self.get_queryset().get(pk=pk)).data)
