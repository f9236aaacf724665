from __future__ import annotations

from datetime import timedelta

import django_filters
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from leases.services import resource_release
from requests_app.api.serializers import ResourceSerializer
from requests_app.errors import NotAllowed
from requests_app.models import Kind, Resource, ResourceState
from requests_app.selectors import resources_visible_to, teams_of, user_is_admin


class ResourceFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=ResourceState.choices)
    kind = django_filters.ChoiceFilter(choices=Kind.choices)
    team = django_filters.CharFilter(field_name="team__slug")
    expiring_within = django_filters.NumberFilter(
        method="filter_expiring_within", min_value=0, label="Leases that expire within this many days"
    )

    class Meta:
        model = Resource
        fields = ["state", "kind", "team"]

    def filter_expiring_within(self, queryset, name, value):
        return queryset.filter(
            lease__state="active", lease__expires_at__lte=timezone.now() + timedelta(days=float(value))
        )


class ResourceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Resources of the caller's teams, with their lease and Kubernetes objects."""

    serializer_class = ResourceSerializer
    filterset_class = ResourceFilter

    def get_queryset(self):
        return resources_visible_to(self.request.user)

    @extend_schema(request=None, responses={200: ResourceSerializer})
    @action(detail=True, methods=["post"])
    def release(self, request: Request, pk=None) -> Response:
        resource = self.get_object()
        user = request.user
        if not (user_is_admin(user) or teams_of(user).filter(pk=resource.team_id).exists()):
            raise NotAllowed("Only the owner's team can release this resource.")
        resource_release(resource=resource, actor=user)
        return Response(ResourceSerializer(self.get_queryset().get(pk=resource.pk)).data)
