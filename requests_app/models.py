"""Teams, resource requests, resources and the audit trail: the bottom layer of Leasehold."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django_fsm import ConcurrentTransitionMixin, FSMField, transition


class Team(models.Model):
    """A team is an LDAP group `team-<slug>`: its members may file requests for the team."""

    slug = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=100, blank=True)
    group = models.OneToOneField(Group, on_delete=models.PROTECT, related_name="team")
    budget_cpu = models.CharField(max_length=20, blank=True, help_text="Kubernetes quantity; blank: no limit")
    budget_memory = models.CharField(max_length=20, blank=True, help_text="Kubernetes quantity; blank: no limit")
    budget_storage = models.CharField(max_length=20, blank=True, help_text="Kubernetes quantity; blank: no limit")
    budget_namespaces = models.PositiveIntegerField(null=True, blank=True, help_text="blank: no limit")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def has_member(self, user) -> bool:
        return user.is_authenticated and self.group.user_set.filter(pk=user.pk).exists()


class Kind(models.TextChoices):
    NAMESPACE = "namespace"
    DATABASE = "database"
    APP = "app"


class Environment(models.TextChoices):
    DEV = "dev"
    TEST = "test"
    STAGING = "staging"
    PROD = "prod"


class Action(models.TextChoices):
    CREATE = "create"
    EXTEND = "extend"
    RELEASE = "release"


class RequestState(models.TextChoices):
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    FAILED = "failed"
    RECLAIMED = "reclaimed"


class ResourceRequest(ConcurrentTransitionMixin, models.Model):
    """What someone asked for: an action on a kind of resource, for a team, through approval."""

    TERMINAL = (RequestState.REJECTED, RequestState.CANCELLED, RequestState.FAILED, RequestState.RECLAIMED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    action = models.CharField(max_length=10, choices=Action.choices, default=Action.CREATE)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="requests")
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="requests")
    name = models.CharField(max_length=63)
    environment = models.CharField(max_length=10, choices=Environment.choices)
    lease_days = models.PositiveIntegerField()
    justification = models.TextField(blank=True)
    spec = models.JSONField(default=dict)
    state = FSMField(max_length=20, choices=RequestState.choices, default=RequestState.PENDING_APPROVAL, protected=True)
    resource = models.ForeignKey("Resource", null=True, blank=True, on_delete=models.SET_NULL, related_name="requests")
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "updated_at"])]
        constraints = [
            # One live create request per team, kind and name, also when two are filed at once.
            models.UniqueConstraint(
                fields=["team", "kind", "name"],
                condition=models.Q(
                    action="create", state__in=["pending_approval", "approved", "provisioning", "active"]
                ),
                name="requests_one_live_create_per_name",
            )
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.kind} {self.team.slug}/{self.name}"

    @transition(field=state, source=RequestState.PENDING_APPROVAL, target=RequestState.APPROVED)
    def approve(self) -> None:
        pass

    @transition(field=state, source=RequestState.PENDING_APPROVAL, target=RequestState.REJECTED)
    def reject(self) -> None:
        pass

    @transition(field=state, source=RequestState.PENDING_APPROVAL, target=RequestState.CANCELLED)
    def cancel(self) -> None:
        pass

    @transition(field=state, source=RequestState.APPROVED, target=RequestState.PROVISIONING)
    def start_provisioning(self) -> None:
        pass

    @transition(field=state, source=RequestState.PROVISIONING, target=RequestState.ACTIVE)
    def activate(self) -> None:
        self.error = ""

    @transition(field=state, source=[RequestState.APPROVED, RequestState.PROVISIONING], target=RequestState.FAILED)
    def fail(self, reason: str) -> None:
        self.error = reason

    @transition(field=state, source=RequestState.ACTIVE, target=RequestState.RECLAIMED)
    def mark_reclaimed(self) -> None:
        pass


class ResourceState(models.TextChoices):
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    GRACE = "grace"
    RECLAIMING = "reclaiming"
    RECLAIMED = "reclaimed"
    FAILED = "failed"


class Resource(ConcurrentTransitionMixin, models.Model):
    """Something that exists in the cluster because a create request was approved."""

    TERMINAL = (ResourceState.RECLAIMED, ResourceState.FAILED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    name = models.CharField(max_length=63)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="resources")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="resources")
    environment = models.CharField(max_length=10, choices=Environment.choices)
    spec = models.JSONField(default=dict)
    lease_days = models.PositiveIntegerField()
    state = FSMField(max_length=20, choices=ResourceState.choices, default=ResourceState.PROVISIONING, protected=True)
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="children",
        help_text="The namespace resource a database or app lives in.",
    )
    created_by_request = models.OneToOneField(
        ResourceRequest, on_delete=models.PROTECT, related_name="created_resource"
    )
    # The instant the lease starts: set when provisioning first renders the objects, so that the
    # `leasehold.io/lease-expires` annotation and the lease agree, and re-runs render the same objects.
    activated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.team.slug}/{self.name}"

    @property
    def namespace_name(self) -> str:
        """The Kubernetes namespace this resource is, or lives in."""
        if self.kind == Kind.NAMESPACE:
            return f"{self.team.slug}-{self.name}"
        return self.parent.namespace_name if self.parent else ""

    @transition(field=state, source=ResourceState.PROVISIONING, target=ResourceState.ACTIVE)
    def activate(self) -> None:
        pass

    @transition(field=state, source=ResourceState.PROVISIONING, target=ResourceState.FAILED)
    def fail(self) -> None:
        pass

    @transition(field=state, source=ResourceState.ACTIVE, target=ResourceState.GRACE)
    def enter_grace(self) -> None:
        pass

    @transition(field=state, source=[ResourceState.ACTIVE, ResourceState.GRACE], target=ResourceState.RECLAIMING)
    def start_reclaim(self) -> None:
        pass

    @transition(field=state, source=ResourceState.RECLAIMING, target=ResourceState.RECLAIMED)
    def mark_reclaimed(self) -> None:
        pass


class AuditEvent(models.Model):
    """One append-only line of the audit trail: who did what to which object, and why."""

    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text too, so the trail still reads correctly after a user is removed. Empty: the system.
    actor_name = models.CharField(max_length=150, blank=True)
    verb = models.CharField(max_length=40)
    target_type = models.CharField(max_length=40)
    target_id = models.CharField(max_length=64)
    request = models.ForeignKey(ResourceRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="events")
    resource = models.ForeignKey(Resource, null=True, blank=True, on_delete=models.PROTECT, related_name="events")
    from_state = models.CharField(max_length=20, blank=True)
    to_state = models.CharField(max_length=20, blank=True)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name or 'system'} {self.verb} {self.target_type}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValueError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Audit events are append-only.")
