"""Reads of teams, requests, resources and events, always scoped to the caller."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import AuditEvent, Resource, ResourceRequest, Team


def user_is_admin(user) -> bool:
    return bool(user.is_authenticated and (user.is_superuser or user.is_staff))


def teams_of(user) -> QuerySet[Team]:
    """The teams whose group the user belongs to."""
    if not user.is_authenticated:
        return Team.objects.none()
    return Team.objects.filter(group__user=user)


def requests_visible_to(user) -> QuerySet[ResourceRequest]:
    """Requests of the caller's teams (every request for admins)."""
    qs = ResourceRequest.objects.select_related("team", "requester", "resource")
    if user_is_admin(user):
        return qs
    return qs.filter(team__in=teams_of(user))


def resources_visible_to(user) -> QuerySet[Resource]:
    """Resources of the caller's teams (every resource for admins)."""
    qs = Resource.objects.select_related("team", "owner", "parent")
    if user_is_admin(user):
        return qs
    return qs.filter(team__in=teams_of(user))


def request_events(request: ResourceRequest) -> QuerySet[AuditEvent]:
    """The request's timeline, oldest first."""
    return request.events.order_by("at", "id")
