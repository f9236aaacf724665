"""The FilterSets of the requests app: the filters of `GET /api/v1/requests/` and of the requests page."""

from __future__ import annotations

import django_filters

from .models import Environment, RequestState, ResourceRequest, kind_choices


class RequestFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=RequestState.choices)
    kind = django_filters.ChoiceFilter(choices=kind_choices)
    team = django_filters.CharFilter(field_name="team__slug")
    environment = django_filters.ChoiceFilter(choices=Environment.choices)
    cluster = django_filters.CharFilter(field_name="cluster__name", max_length=40, label="Cluster")
    search = django_filters.CharFilter(field_name="name", lookup_expr="icontains", max_length=63, label="Name contains")

    class Meta:
        model = ResourceRequest
        fields = ["state", "kind", "team", "environment", "cluster"]
