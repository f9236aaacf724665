from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action, api_view
from rest_framework.request import Request
from rest_framework.response import Response

from requests_app import services
from requests_app.clusters import clusters_committed
from requests_app.filtersets import RequestFilter
from requests_app.models import ResourceRequest
from requests_app.sections import request_select, request_select_fields
from requests_app.selectors import catalog, clusters_placeable_by, requests_visible_to, teams_of, user_is_admin

from .pagination import UncountedLimitOffsetPagination
from .serializers import REQUEST_BODY_EXAMPLE, ClusterSerializer, RequestCreateSerializer, RequestSerializer

# The columns a row of `GET /api/v1/requests/` shows, with what `display_name` reads (the parent namespace
# and its team): the request's `frozen` inputs, whole user rows (password hashes) and the resource's row
# are not read. The resource is given by its id. Events come in one query for the page (RequestRowsSerializer).
REQUEST_ROW_FIELDS = (
    *(f.name for f in ResourceRequest._meta.concrete_fields if f.name not in ("frozen", "deliveries")),
    "team__slug",
    "requester__username",
    "parent__kind",
    "parent__name",
    "parent__state",
    "parent__team__slug",
    "cluster__name",
)


def request_list_rows(visible: QuerySet[ResourceRequest]) -> QuerySet[ResourceRequest]:
    return (
        visible.select_related(None)
        .select_related("team", "requester", "parent", "parent__team", "cluster", *request_select)
        .only(*REQUEST_ROW_FIELDS, *request_select_fields)
        .prefetch_related(None)  # the sections are read for the page (RequestRowsSerializer, request_pages)
    )


class RequestViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Requests of the caller's teams: file, list, read, cancel."""

    serializer_class = RequestSerializer
    filterset_class = RequestFilter
    pagination_class = UncountedLimitOffsetPagination

    def get_queryset(self):
        visible = requests_visible_to(self.request.user)
        if self.action == "list":
            return request_list_rows(visible)
        return visible.select_related("parent", "parent__team", "cluster").prefetch_related("events")

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


@extend_schema(responses={200: ClusterSerializer(many=True)})
@api_view(["GET"])
def clusters_view(request: Request) -> Response:
    """The clusters the caller may place a namespace on, with their capacity and what is committed on
    them: every cluster for admins; for team members, those that take new requests. Not paginated (a
    fleet has tens of clusters, not thousands)."""
    clusters = clusters_placeable_by(request.user)
    committed = clusters_committed(clusters)
    return Response(ClusterSerializer(clusters, many=True, context={"committed": committed}).data)
