from __future__ import annotations

from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from leases.models import Lease
from requests_app.models import AllowedRegistry, AppTemplate, Cluster, RequestState, Resource, ResourceRequest, Team


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


# --- requests, resources, leases and app templates -------------------------------------------------
#
# States: a factory never walks a model's transitions, whose receivers open approval chains, enqueue
# provisioning (Redis) and open leases. It stores the state that the transitions leave, named explicitly
# and checked against each other: a resource's create request is in the state the resource's is reached
# with (REQUEST_STATE_OF), and a lease's resource is in the lease's state (a lease is opened for an active
# resource). Requests that need an approval chain are filed through `request_submit`.


def default_spec(kind: str, parent=None) -> dict:
    """A spec as the service stores it after validation, for each kind (databases and apps name their
    namespace by id)."""
    if kind == "namespace":
        return {"plan": "small"}
    namespace = str(parent.pk) if parent is not None else ""
    if kind == "database":
        return {"namespace": namespace, "engine": "postgres", "version": "16", "storage": "1Gi", "plan": "small"}
    if kind == "app":
        return {"namespace": namespace, "template": "web", "image_tag": "1.4.2", "replicas": 1, "env": {}}
    raise ValueError(f"no default spec for kind {kind!r}")


# The state of the create request behind a resource in each state (the transitions move them together).
REQUEST_STATE_OF = {
    "provisioning": "provisioning",
    "active": "active",
    "grace": "active",
    "reclaiming": "active",
    "reclaimed": "reclaimed",
    "failed": "failed",
}
# The state of a resource whose lease is in each state.
RESOURCE_STATE_OF_LEASE = {"active": "active", "grace": "grace", "reclaiming": "reclaiming", "reclaimed": "reclaimed"}


def _checked(state: str, allowed, what: str) -> str:
    if state not in allowed:
        raise ValueError(f"{what}: {state!r} is not one of {sorted(allowed)}")
    return state


class ResourceRequestFactory(factory.django.DjangoModelFactory):
    """A create request as filing leaves it (`pending_approval`, no approval chain), or in the state a test
    names (`state="failed"`, `state="active"`). Team `atlas` and a member of it unless given; a database or
    app goes into `parent`, its namespace."""

    class Meta:
        model = ResourceRequest

    kind = "namespace"
    parent = None
    team = factory.LazyAttribute(lambda o: o.parent.team if o.parent is not None else team("atlas"))
    requester = factory.LazyAttribute(lambda o: UserFactory(groups=[f"team-{o.team.slug}"]))
    name = factory.Sequence(lambda n: f"res{n}")
    environment = "dev"
    lease_days = 14
    spec = factory.LazyAttribute(lambda o: default_spec(o.kind, o.parent))
    state = "pending_approval"
    # What lives in a namespace is on its cluster; None: the default cluster (see PlacedOnCluster).
    cluster = factory.LazyAttribute(lambda o: o.parent.cluster if o.parent is not None else None)

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        _checked(kwargs["state"], RequestState.values, "request state")
        return super()._create(model_class, *args, **kwargs)


class ResourceFactory(factory.django.DjangoModelFactory):
    """A resource as the worker leaves it: `active` since now (or in the state a test names), with the
    create request that made it (`created_by_request__frozen=...` and the like reach that request).
    A namespace by default; a database or app without `parent` gets a namespace of its own. No lease:
    `LeaseFactory`, or `lease_open` for the one the service opens."""

    class Meta:
        model = Resource

    kind = "namespace"
    parent = factory.Maybe(
        factory.LazyAttribute(lambda o: o.kind != "namespace"),
        yes_declaration=factory.LazyFunction(lambda: ResourceFactory(kind="namespace")),
        no_declaration=None,
    )
    team = factory.LazyAttribute(lambda o: o.parent.team if o.parent is not None else team("atlas"))
    owner = factory.LazyAttribute(lambda o: UserFactory(groups=[f"team-{o.team.slug}"]))
    name = factory.Sequence(lambda n: f"res{n}")
    environment = "dev"
    lease_days = 14
    spec = factory.LazyAttribute(lambda o: default_spec(o.kind, o.parent))
    state = "active"
    cluster = factory.LazyAttribute(lambda o: o.parent.cluster if o.parent is not None else None)
    activated_at = factory.LazyAttribute(lambda o: timezone.now() if o.state != "provisioning" else None)
    created_by_request = factory.SubFactory(
        ResourceRequestFactory,
        kind=factory.SelfAttribute("..kind"),
        team=factory.SelfAttribute("..team"),
        requester=factory.LazyAttribute(lambda o: o.factory_parent.owner or UserFactory()),
        name=factory.SelfAttribute("..name"),
        environment=factory.SelfAttribute("..environment"),
        lease_days=factory.SelfAttribute("..lease_days"),
        spec=factory.SelfAttribute("..spec"),
        parent=factory.SelfAttribute("..parent"),
        cluster=factory.SelfAttribute("..cluster"),
        state=factory.LazyAttribute(
            lambda o: REQUEST_STATE_OF[_checked(o.factory_parent.state, REQUEST_STATE_OF, "resource state")]
        ),
    )


class LeaseFactory(factory.django.DjangoModelFactory):
    """The lease of a resource (active by default), from its activation for its `lease_days` unless
    `expires_at` is given. The resource must be in the lease's state: a lease is opened when its resource
    becomes active. Like `lease_open`, it stamps the resource with the expiry (`lease_expires_at`)."""

    class Meta:
        model = Lease

    resource = factory.SubFactory(ResourceFactory)
    state = "active"
    starts_at = factory.LazyAttribute(lambda o: o.resource.activated_at or timezone.now())
    expires_at = factory.LazyAttribute(lambda o: o.starts_at + timedelta(days=o.resource.lease_days))

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        resource, state = kwargs["resource"], kwargs["state"]
        if resource.state != RESOURCE_STATE_OF_LEASE[_checked(state, RESOURCE_STATE_OF_LEASE, "lease state")]:
            raise ValueError(f"a lease in state {state!r} is for a resource in that state, not {resource.state!r}")
        lease = super()._create(model_class, *args, **kwargs)
        resource.lease_expires_at = lease.expires_at
        Resource.objects.filter(pk=resource.pk).update(lease_expires_at=lease.expires_at)
        return lease


class AppTemplateFactory(factory.django.DjangoModelFactory):
    """An app template from the allowed registry `registry.example.org/` (allowed on the way), that takes
    a database."""

    class Meta:
        model = AppTemplate

    slug = "web"
    name = factory.LazyAttribute(lambda o: o.slug.title())
    image_repository = factory.LazyAttribute(lambda o: f"registry.example.org/platform/{o.slug}")
    default_tag = "1.4.2"
    container_port = 8080
    health_path = "/healthz"
    default_env = factory.LazyFunction(lambda: {"LOG_LEVEL": "info"})
    cpu_request = "100m"
    cpu_limit = "500m"
    memory_request = "128Mi"
    memory_limit = "256Mi"
    accepts_database = True

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        AllowedRegistry.objects.get_or_create(prefix="registry.example.org/")
        return super()._create(model_class, *args, **kwargs)


def active_namespace(
    team_obj: Team, owner, name: str = "checkout", plan: str = "small", *, cluster: Cluster | None = None, **spec
):
    """A namespace that is already active (as the worker leaves it) on `cluster` (None: the default one),
    without objects in a real cluster."""
    return ResourceFactory(
        kind="namespace", team=team_obj, owner=owner, name=name, spec=spec or {"plan": plan}, cluster=cluster
    )


def active_child(namespace, kind: str, name: str, spec: dict, *, owner=None, lease_days: int = 14, frozen=None):
    """A database or app that is already active in `namespace` (as the worker leaves it), without a cluster."""
    return ResourceFactory(
        kind=kind,
        parent=namespace,
        owner=owner or namespace.owner,
        name=name,
        spec=spec,
        lease_days=lease_days,
        created_by_request__frozen=frozen or {},
    )


def app_template(slug: str = "web", **overrides):
    return AppTemplateFactory(slug=slug, **overrides)


def in_grace(*resources) -> None:
    """As the reclamation pass leaves them, without a cluster: lease and resource in grace, expired an hour ago."""
    now = timezone.now()
    for resource in resources:
        Lease.objects.filter(resource=resource).update(
            state="grace", expires_at=now - timedelta(hours=1), grace_until=now + timedelta(days=2)
        )
        Resource.objects.filter(pk=resource.pk).update(state="grace")
