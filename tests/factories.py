from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from requests_app.models import Team


class GroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Group
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"group-{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    password = factory.django.Password("leasehold")

    @factory.post_generation
    def groups(self, create, extracted, **kwargs):
        for name in extracted or []:
            self.groups.add(GroupFactory(name=name))


def team(slug: str) -> Team:
    """The team of group `team-<slug>` (created by the group receiver, as LDAP mirroring does)."""
    GroupFactory(name=f"team-{slug}")
    return Team.objects.get(slug=slug)


def active_namespace(team_obj: Team, owner, name: str = "checkout", plan: str = "small", **spec):
    """A namespace that is already active (as the worker leaves it), without a cluster."""
    from django.utils import timezone

    from requests_app.models import Resource, ResourceRequest

    spec = spec or {"plan": plan}
    request = ResourceRequest.objects.create(
        kind="namespace",
        team=team_obj,
        requester=owner,
        name=name,
        environment="dev",
        lease_days=14,
        spec=spec,
        state="active",
    )
    return Resource.objects.create(
        kind="namespace",
        name=name,
        team=team_obj,
        owner=owner,
        environment="dev",
        spec=spec,
        lease_days=14,
        created_by_request=request,
        state="active",
        activated_at=timezone.now(),
    )


def active_child(namespace, kind: str, name: str, spec: dict, *, owner=None, lease_days: int = 14, frozen=None):
    """A database or app that is already active in `namespace` (as the worker leaves it), without a cluster."""
    from django.utils import timezone

    from requests_app.models import Resource, ResourceRequest

    owner = owner or namespace.owner
    request = ResourceRequest.objects.create(
        kind=kind,
        team=namespace.team,
        requester=owner,
        name=name,
        environment="dev",
        lease_days=lease_days,
        spec=spec,
        frozen=frozen or {},
        parent=namespace,
        state="active",
    )
    return Resource.objects.create(
        kind=kind,
        name=name,
        team=namespace.team,
        owner=owner,
        environment="dev",
        spec=spec,
        lease_days=lease_days,
        parent=namespace,
        created_by_request=request,
        state="active",
        activated_at=timezone.now(),
    )


def app_template(slug: str = "web", **overrides):
    from requests_app.models import AllowedRegistry, AppTemplate

    AllowedRegistry.objects.get_or_create(prefix="registry.example.org/")
    fields = {
        "slug": slug,
        "name": slug.title(),
        "image_repository": f"registry.example.org/platform/{slug}",
        "default_tag": "1.4.2",
        "container_port": 8080,
        "health_path": "/healthz",
        "default_env": {"LOG_LEVEL": "info"},
        "cpu_request": "100m",
        "cpu_limit": "500m",
        "memory_request": "128Mi",
        "memory_limit": "256Mi",
        "accepts_database": True,
    }
    fields.update(overrides)
    return AppTemplate.objects.create(**fields)


def in_grace(*resources) -> None:
    """As the reclamation pass leaves them, without a cluster: lease and resource in grace, expired an hour ago."""
    from datetime import timedelta

    from django.utils import timezone

    from leases.models import Lease
    from requests_app.models import Resource

    now = timezone.now()
    for resource in resources:
        Lease.objects.filter(resource=resource).update(
            state="grace", expires_at=now - timedelta(hours=1), grace_until=now + timedelta(days=2)
        )
        Resource.objects.filter(pk=resource.pk).update(state="grace")
