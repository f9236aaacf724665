from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action, api_view
from rest_framework.request import Request
from rest_framework.response import Response

from requests_app import services
from requests_app.models import Environment, Kind, RequestState, ResourceRequest
from requests_app.selectors import catalog, requests_visible_to, teams_of, user_is_admin

from .pagination import UncountedLimitOffsetPagination
from .serializers import REQUEST_BODY_EXAMPLE, RequestCreateSerializer, RequestSerializer


class RequestFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=RequestState.choices)
    kind = django_filters.ChoiceFilter(choices=Kind.choices)
    team = django_filters.CharFilter(field_name="team__slug")
    environment = django_filters.ChoiceFilter(choices=Environment.choices)
    search = django_filters.CharFilter(field_name="name", lookup_expr="icontains", max_length=63, label="Name contains")

    class Meta:
        model = ResourceRequest
        fields = ["state", "kind", "team", "environment"]


class RequestViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Requests of the caller's teams: file, list, read, cancel."""

    serializer_class = RequestSerializer
    filterset_class = RequestFilter
    pagination_class = UncountedLimitOffsetPagination

    def get_queryset(self):
        return requests_visible_to(self.request.user).prefetch_related("events")

    @extend_schema(request=RequestCreateSerializer, responses={201: RequestSerializer}, examples=[REQUEST_BODY_EXAMPLE])
    def create(self, request: Request) -> Response:
        body = RequestCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        filed = services.request_submit(requester=request.user, **body.validated_data)
        filed = self.get_queryset().get(pk=filed.pk)
        return Response(RequestSerializer(filed).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: RequestSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk=None) -> Response:
        services.request_cancel(request=self.get_object(), actor=request.user)
        return Response(RequestSerializer(self.get_queryset().get(pk=pk)).data)

    @extend_schema(request=None, responses={200: RequestSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk=None) -> Response:
        """Admins: send a failed request back to provisioning."""
        services.request_retry(request=self.get_object(), actor=request.user)
        return Response(RequestSerializer(self.get_queryset().get(pk=pk)).data)


@extend_schema(
    responses=inline_serializer(
        "Me",
        {
            "username": serializers.CharField(),
            "email": serializers.CharField(),
            "teams": serializers.ListField(child=serializers.CharField()),
            "groups": serializers.ListField(child=serializers.CharField()),
            "is_admin": serializers.BooleanField(),
        },
    )
)
@api_view(["GET"])
def me(request: Request) -> Response:
    """Who the caller is, their teams and groups."""
    user = request.user
    return Response(
        {
            "username": user.get_username(),
            "email": getattr(user, "email", ""),
            "teams": list(teams_of(user).values_list("slug", flat=True)),
            "groups": sorted(user.groups.values_list("name", flat=True)),
            "is_admin": user_is_admin(user),
        }
    )


@extend_schema(responses={200: dict})
@api_view(["GET"])
def catalog_view(request: Request) -> Response:
    """Resource kinds with their spec JSON schemas and plans, environments and app templates."""
    return Response(catalog())
