"""The FilterSets of the leases app: the filters of `GET /api/v1/resources/` and of the resources page."""

from __future__ import annotations

from datetime import timedelta

import django_filters
from django.utils import timezone

from requests_app import kinds
from requests_app.models import Environment, Resource, ResourceState, kind_choices
from requests_app.selectors import bound_to, bound_to_database

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
