from __future__ import annotations

from datetime import timedelta

import django_filters
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from leases.services.extension import lease_extend
from leases.services.reclaim import resource_release
from leases.services.restore import resource_restore
from provisioning.services.releases import app_rollback_file, app_upgrade_file
from requests_app import kinds
from requests_app.api.pagination import UncountedLimitOffsetPagination
from requests_app.api.serializers import RequestSerializer, ResourceSerializer
from requests_app.models import Environment, Resource, ResourceRequest, ResourceState, kind_choices
from requests_app.sections import resource_select_fields
from requests_app.selectors import bound_to, bound_to_database, requests_visible_to, resources_visible_to


class ExtendSerializer(serializers.Serializer):
    days = serializers.IntegerField(min_value=1)
    justification = serializers.CharField(max_length=2000)


class UpgradeSerializer(serializers.Serializer):
    image_tag = serializers.CharField(max_length=128)
    justification = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class RollbackSerializer(serializers.Serializer):
    release = serializers.IntegerField(min_value=1)
    justification = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


# Ten years: longer than any lease can run (LEASE_MAX_TOTAL_DAYS), far from the end of the calendar.
EXPIRING_WITHIN_MAX_DAYS = 3650


class ResourceFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=ResourceState.choices)
    kind = django_filters.ChoiceFilter(choices=kind_choices)
    team = django_filters.CharFilter(field_name="team__slug")
    environment = django_filters.ChoiceFilter(choices=Environment.choices)
    search = django_filters.CharFilter(field_name="name", lookup_expr="icontains", max_length=63, label="Name contains")
    namespace = django_filters.UUIDFilter(field_name="parent_id", label="Databases and apps of this namespace (id)")
    database = django_filters.UUIDFilter(method="filter_database", label="Apps bound to this database (id)")
    bound_to = django_filters.UUIDFilter(
        method="filter_bound_to", label="Resources bound to this one (a database's or a cache's id)"
    )
    # Bounded: a number of days beyond any lease would overflow the date arithmetic (a 500).
    expiring_within = django_filters.NumberFilter(
        method="filter_expiring_within",
        min_value=0,
        max_value=EXPIRING_WITHIN_MAX_DAYS,
        label="Leases that expire within this many days",
    )

    class Meta:
        model = Resource
        fields = ["state", "kind", "team", "environment"]

    def filter_database(self, queryset, name, value):
        return bound_to_database(queryset, value)

    def filter_bound_to(self, queryset, name, value):
        target = Resource.objects.filter(pk=value).values_list("kind", flat=True).first()
        bindings = kinds.bindings_to(target) if target else []
        if not bindings:
            return queryset.none()
        matches = [bound_to(queryset, binding, value).values("pk") for binding in bindings]
        return queryset.filter(pk__in=matches[0].union(*matches[1:]) if len(matches) > 1 else matches[0])

    def filter_expiring_within(self, queryset, name, value):
        return queryset.filter(
            lease__state="active", lease__expires_at__lte=timezone.now() + timedelta(days=float(value))
        )


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
