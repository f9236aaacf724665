"""Teams, resource requests, resources and the audit trail: the bottom layer of Leasehold."""

from __future__ import annotations

import uuid
from decimal import Decimal
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.fields.json import KeyTextTransform
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from .names import action_verb, kind_noun


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

    def clean(self) -> None:
        """A budget is blank (no limit) or a positive Kubernetes quantity: every request of the team is
        checked against it, so a typo here must be a form error, not a failure of the team's requests."""
        from django.core.exceptions import ValidationError

        from .specs import quantity

        errors = {
            field: "Not a positive Kubernetes quantity (e.g. 8, 500m, 64Gi); blank: no limit."
            for field in ("budget_cpu", "budget_memory", "budget_storage")
            if getattr(self, field) and quantity(getattr(self, field)) is None
        }
        if errors:
            raise ValidationError(errors)

    def has_member(self, user) -> bool:
        return user.is_authenticated and self.group.user_set.filter(pk=user.pk).exists()


class AllowedRegistry(models.Model):
    """An image registry (or repository prefix) that app templates may pull from."""

    prefix = models.CharField(
        max_length=200, unique=True, help_text="e.g. registry.example.org/ or docker.io/library/ (a prefix match)"
    )
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["prefix"]
        verbose_name_plural = "allowed registries"

    def __str__(self) -> str:
        return self.prefix


def image_allowed(image_repository: str) -> bool:
    """True when the repository starts with one of the admin-managed registry prefixes."""
    return any(image_repository.startswith(p) for p in AllowedRegistry.objects.values_list("prefix", flat=True))


class AppTemplate(models.Model):
    """A kind of app the platform team offers: image, port, health check, defaults and sizes."""

    slug = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    image_repository = models.CharField(max_length=255, help_text="Without a tag; must match an allowed registry.")
    default_tag = models.CharField(max_length=128)
    container_port = models.PositiveIntegerField(default=8080)
    health_path = models.CharField(max_length=200, default="/healthz")
    default_env = models.JSONField(default=dict, blank=True)
    cpu_request = models.CharField(max_length=20, default="100m")
    cpu_limit = models.CharField(max_length=20, default="500m")
    memory_request = models.CharField(max_length=20, default="128Mi")
    memory_limit = models.CharField(max_length=20, default="512Mi")
    accepts_database = models.BooleanField(default=False)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from .specs import quantity

        errors: dict[str, str] = {}
        if self.image_repository and not image_allowed(self.image_repository):
            errors["image_repository"] = "Not from an allowed registry (see Allowed registries)."
        if ":" in self.image_repository.rsplit("/", 1)[-1] or "@" in self.image_repository:
            errors["image_repository"] = "Give the repository without a tag or digest."
        for field in ("cpu_request", "cpu_limit", "memory_request", "memory_limit"):
            if quantity(getattr(self, field)) is None:
                errors[field] = "Not a positive Kubernetes quantity."
        if not errors:
            for low, high in (("cpu_request", "cpu_limit"), ("memory_request", "memory_limit")):
                low_q, high_q = quantity(getattr(self, low)), quantity(getattr(self, high))
                if low_q is not None and high_q is not None and low_q > high_q:
                    errors[low] = f"Must not exceed {high.replace('_', ' ')}."
        if not 1 <= self.container_port <= 65535:
            errors["container_port"] = "Must be a port number from 1 to 65535."
        if not self.health_path.startswith("/"):
            errors["health_path"] = "Must start with '/'."
        if not isinstance(self.default_env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.default_env.items()
        ):
            errors["default_env"] = 'Must be an object of strings, e.g. {"LOG_LEVEL": "info"}.'
        if errors:
            raise ValidationError(errors)


class ClusterAuth(models.TextChoices):
    IN_CLUSTER = "in-cluster", "In-cluster (the pod's ServiceAccount)"
    KUBECONFIG = "kubeconfig", "A kubeconfig file"
    TOKEN = "token", "A token file"


DEFAULT_CLUSTER = "default"


class Cluster(models.Model):
    """A Kubernetes cluster that requests are placed on. Only a path to the credentials is stored (a
    mounted file or Secret), never the credentials: the admin, the API and the audit trail show the path.

    `default` connects as the settings say (LEASEHOLD_CLUSTER); every other cluster as its row says
    (provisioning/cluster.py builds a client per cluster)."""

    name = models.SlugField(max_length=40, unique=True)
    api_server = models.URLField(blank=True, help_text="e.g. https://api.prod-a.example.org:6443; blank: in-cluster")
    auth = models.CharField(
        max_length=12, choices=ClusterAuth.choices, default=ClusterAuth.IN_CLUSTER, help_text="How Leasehold logs in."
    )
    credentials_path = models.CharField(
        max_length=500,
        blank=True,
        help_text="Absolute path of the mounted kubeconfig or token file (a Secret volume), never the credential "
        "itself; blank for in-cluster.",
    )
    environments = models.JSONField(default=list, blank=True, help_text='The environments it serves, e.g. ["prod"].')
    region = models.CharField(max_length=60, blank=True, help_text="Region or zone label, e.g. eu-west-1a.")
    allocatable_cpu = models.CharField(max_length=20, blank=True, help_text="Kubernetes quantity; blank: no limit")
    allocatable_memory = models.CharField(max_length=20, blank=True, help_text="Kubernetes quantity; blank: no limit")
    allocatable_storage = models.CharField(max_length=20, blank=True, help_text="Kubernetes quantity; blank: no limit")
    overcommit = models.DecimalField(
        max_digits=5, decimal_places=2, default=Decimal("1.00"), help_text="Quota admitted per allocatable unit."
    )
    accepting = models.BooleanField(default=True, help_text="Takes new namespace requests.")
    timeout_seconds = models.FloatField(
        default=15.0,
        validators=[MinValueValidator(1.0), MaxValueValidator(120.0)],
        help_text="How long one call to its API server may take (connecting: at most 5 s of it).",
    )
    # Written by the health check (provisioning.services.health), never by hand.
    healthy = models.BooleanField(null=True, blank=True, editable=False, help_text="Null: not checked yet.")
    health_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    unhealthy_since = models.DateTimeField(null=True, blank=True, editable=False)
    health_detail = models.CharField(max_length=500, blank=True, editable=False)
    # The nodes' allocatable, summed, as the health check last read it (blank: not readable); the
    # allocatable_* fields above override it.
    nodes_cpu = models.CharField(max_length=20, blank=True, editable=False)
    nodes_memory = models.CharField(max_length=20, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from .specs import quantity

        errors: dict[str, str] = {
            field: "Not a positive Kubernetes quantity (e.g. 64, 256Gi, 10Ti); blank: no limit."
            for field in ("allocatable_cpu", "allocatable_memory", "allocatable_storage")
            if getattr(self, field) and quantity(getattr(self, field)) is None
        }
        envs = self.environments
        if not isinstance(envs, list) or not all(e in Environment.values for e in envs) or len(set(envs)) != len(envs):
            errors["environments"] = f"A list of distinct environments from: {', '.join(Environment.values)}."
        path = self.credentials_path.strip()
        if self.auth == ClusterAuth.IN_CLUSTER:
            if path:
                errors["credentials_path"] = "In-cluster needs no file: leave it blank."
        elif not path:
            errors["credentials_path"] = "Give the path of the mounted file."
        elif not path.startswith("/") or any(c.isspace() or c == "\x00" for c in path) or "/../" in f"{path}/":
            errors["credentials_path"] = "An absolute path to a mounted file, e.g. /var/run/leasehold/prod-a/token."
        if self.auth != ClusterAuth.IN_CLUSTER and not self.api_server and self.auth == ClusterAuth.TOKEN:
            errors["api_server"] = "A token needs the API server's URL."
        if "@" in urlsplit(self.api_server).netloc:
            # It would be stored, listed in the admin and put in error messages and logs.
            errors["api_server"] = "No user or password in the URL: credentials go in the mounted file."
        if self.overcommit is not None and not Decimal("0.1") <= self.overcommit <= Decimal("100"):
            errors["overcommit"] = "From 0.1 to 100."
        if errors:
            raise ValidationError(errors)

    def capacity(self) -> dict[str, Decimal | None]:
        """What may be committed on it: allocatable × overcommit per resource (None: no limit)."""
        from .specs import parse_quantity

        out: dict[str, Decimal | None] = {}
        for key in ("cpu", "memory", "storage"):
            value = self.allocatable(key)
            out[key] = parse_quantity(value) * self.overcommit if value else None
        return out

    def allocatable(self, key: str) -> str:
        """The allocatable `key` admission counts on: the admin's value, else what the nodes said
        (storage is never read from the nodes: volumes are not node storage); blank: no limit."""
        return getattr(self, f"allocatable_{key}") or getattr(self, f"nodes_{key}", "")


def default_cluster_pk() -> int:
    """The `default` cluster's id, created from today's settings when it is missing (migration 0013 made
    it; a test database flushed since has not)."""
    found = Cluster.objects.filter(name=DEFAULT_CLUSTER).values_list("pk", flat=True).first()
    if found is not None:
        return found
    from .clusters import default_cluster_fields

    return Cluster.objects.get_or_create(name=DEFAULT_CLUSTER, defaults=default_cluster_fields())[0].pk


class Kind(models.TextChoices):
    """Names of the kinds the other layers build on (a namespace holds the rest; apps bind to databases).
    The kinds that exist are those of the registry (`requests_app.kinds`): the `kind` fields take their
    choices from it, so a kind added there needs no edit here and no migration."""

    NAMESPACE = "namespace"
    DATABASE = "database"
    APP = "app"


def kind_choices() -> list[tuple[str, str]]:
    """The registry's kinds, read when the choices are (a callable: migrations keep the reference)."""
    from .kinds import choices

    return choices()


class Environment(models.TextChoices):
    DEV = "dev"
    TEST = "test"
    STAGING = "staging"
    PROD = "prod"


class Action(models.TextChoices):
    CREATE = "create"
    EXTEND = "extend"
    RELEASE = "release"
    UPGRADE = "upgrade"
    ROLLBACK = "rollback"


class RequestState(models.TextChoices):
    PENDING_APPROVAL = "pending_approval", "Pending approval"
    APPROVED = "approved"
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    FAILED = "failed"
    RECLAIMED = "reclaimed"


class PlacedOnCluster(models.Model):
    """A row that names its cluster: one saved without a cluster (a request filed before clusters were
    placed, or made directly through the ORM) goes to the `default` cluster, as everything did before."""

    class Meta:
        abstract = True

    cluster_id: int | None

    def save(self, *args, **kwargs) -> None:
        if self.cluster_id is None:
            self.cluster_id = default_cluster_pk()
        super().save(*args, **kwargs)


class ResourceRequest(ConcurrentTransitionMixin, PlacedOnCluster):
    """What someone asked for: an action on a kind of resource, for a team, through approval."""

    TERMINAL = (RequestState.REJECTED, RequestState.CANCELLED, RequestState.FAILED, RequestState.RECLAIMED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    action = models.CharField(max_length=10, choices=Action.choices, default=Action.CREATE)
    kind = models.CharField(max_length=20, choices=kind_choices)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="requests")
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="requests")
    name = models.CharField(max_length=63)
    environment = models.CharField(max_length=10, choices=Environment.choices)
    lease_days = models.PositiveIntegerField()
    justification = models.TextField(blank=True)
    spec = models.JSONField(default=dict)
    # Inputs beyond the spec, frozen when the request is filed so that the plan an approver sees is
    # what the worker applies: the app template as it was, the database provider in force.
    frozen = models.JSONField(default=dict, blank=True)
    state = FSMField(max_length=20, choices=RequestState.choices, default=RequestState.PENDING_APPROVAL, protected=True)
    resource = models.ForeignKey("Resource", null=True, blank=True, on_delete=models.SET_NULL, related_name="requests")
    parent = models.ForeignKey(
        "Resource",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="child_requests",
        help_text="The namespace a database or app request goes into.",
    )
    cluster = models.ForeignKey(
        Cluster,
        on_delete=models.PROTECT,
        related_name="requests",
        help_text="The cluster it is placed on (a database, app or cache: its namespace's).",
    )
    error = models.TextField(blank=True, default="")
    # How often a provisioning task started on this request: a task that keeps killing its worker
    # is stopped after a bound (see provisioning), instead of being redelivered for ever.
    deliveries = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["state", "updated_at"]),
            # Lists are ordered by (-created_at, -id): all of them, and a team's.
            models.Index(fields=["-created_at", "-id"], name="requests_list_order"),
            models.Index(fields=["team", "-created_at", "-id"], name="requests_team_list_order"),
            # The environment filter: `prod` is a small share of the rows, and a walk of the list order
            # filtering for it would read every other row first.
            models.Index(fields=["environment", "-created_at", "-id"], name="requests_env_list_order"),
            # The metrics' count of live requests by kind, state and team: an index-only scan of the live
            # ones, however many finished requests the table holds.
            models.Index(
                fields=["state", "kind", "team"],
                name="requests_live_by_state",
                condition=models.Q(state__in=["pending_approval", "approved", "provisioning", "active"]),
            ),
        ]
        constraints = [
            # One live create request per cluster, team, kind and name, also when two are filed at once.
            models.UniqueConstraint(
                fields=["cluster", "team", "kind", "name"],
                condition=models.Q(
                    action="create", state__in=["pending_approval", "approved", "provisioning", "active"]
                ),
                name="requests_one_live_create_per_name_per_cluster",
            ),
            # One app per Ingress host across all teams, from filing until the app is reclaimed, also
            # when two requests for the same host are filed at once (the service checks first, for the
            # message; this index decides races).
            models.UniqueConstraint(
                KeyTextTransform("host", "spec"),
                condition=models.Q(
                    kind="app", action="create", state__in=["pending_approval", "approved", "provisioning", "active"]
                ),
                name="requests_one_live_app_per_host",
                violation_error_message="Another app has this host, or a pending request asks for it.",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def display_name(self) -> str:
        """What the resource is called where people see it (CONTRACT.md §6): `<namespace>` for a
        namespace, `<namespace> / <name>` for what lives in one. Needs `team` and `parent__team` loaded."""
        if self.kind == Kind.NAMESPACE:
            return f"{self.team.slug}-{self.name}"
        namespace = self.parent.namespace_name if self.parent is not None else ""
        return f"{namespace} / {self.name}" if namespace else self.name

    @property
    def title(self) -> str:
        """What the request does, to what: "create database atlas-web / orders". Needs what
        `display_name` needs."""
        return f"{action_verb(self.action)} {kind_noun(self.kind)} {self.display_name}"

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

    @transition(field=state, source=RequestState.APPROVED, target=RequestState.ACTIVE)
    def fulfil(self) -> None:
        """An approved extension (or another request that makes no objects) took effect."""

    @transition(field=state, source=RequestState.FAILED, target=RequestState.APPROVED)
    def retry(self) -> None:
        self.error = ""
        self.deliveries = 0


class ResourceState(models.TextChoices):
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    GRACE = "grace"
    RECLAIMING = "reclaiming"
    RECLAIMED = "reclaimed"
    FAILED = "failed"


class Resource(ConcurrentTransitionMixin, PlacedOnCluster):
    """Something that exists in the cluster because a create request was approved."""

    TERMINAL = (ResourceState.RECLAIMED, ResourceState.FAILED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=20, choices=kind_choices)
    name = models.CharField(max_length=63)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="resources")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="resources",
        help_text="Empty: the owner left and the whole team owns it.",
    )
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
    cluster = models.ForeignKey(
        Cluster,
        on_delete=models.PROTECT,
        related_name="resources",
        help_text="The cluster it lives on.",
    )
    created_by_request = models.OneToOneField(
        ResourceRequest, on_delete=models.PROTECT, related_name="created_resource"
    )
    # The instant the lease starts: set when provisioning first renders the objects, so that the
    # `leasehold.io/lease-expires` annotation and the lease agree, and re-runs render the same objects.
    activated_at = models.DateTimeField(null=True, blank=True)
    # The lease's current expiry, kept here by the leases app so that every render (a retry, a
    # drift repair) stamps the objects' `leasehold.io/lease-expires` with the extended date.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Lists are ordered by (-created_at, -id): all of them, and a team's.
            models.Index(fields=["-created_at", "-id"], name="resources_list_order"),
            models.Index(fields=["team", "-created_at", "-id"], name="resources_team_list_order"),
            models.Index(fields=["environment", "-created_at", "-id"], name="resources_env_list_order"),
            # A namespace's page lists its databases and apps in list order, a bounded read of this index.
            models.Index(fields=["parent", "-created_at", "-id"], name="resources_children_order"),
            # A database's page lists the apps bound to it (`spec.database`), the same way.
            models.Index(
                KeyTextTransform("database", "spec"),
                models.F("created_at").desc(),
                models.F("id").desc(),
                name="resources_apps_by_database",
                condition=models.Q(kind="app"),
            ),
        ]

    def __str__(self) -> str:
        return f"{kind_noun(self.kind)} {self.display_name}"

    @property
    def display_name(self) -> str:
        """`<namespace>` for a namespace, `<namespace> / <name>` for a database, app or cache (CONTRACT.md §6)."""
        if self.kind == Kind.NAMESPACE:
            return self.namespace_name
        namespace = self.namespace_name
        return f"{namespace} / {self.name}" if namespace else self.name

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

    @transition(field=state, source=ResourceState.FAILED, target=ResourceState.PROVISIONING)
    def retry(self) -> None:
        pass

    @transition(field=state, source=ResourceState.ACTIVE, target=ResourceState.GRACE)
    def enter_grace(self) -> None:
        pass

    @transition(field=state, source=ResourceState.GRACE, target=ResourceState.ACTIVE)
    def restore(self) -> None:
        pass

    @transition(field=state, source=[ResourceState.ACTIVE, ResourceState.GRACE], target=ResourceState.RECLAIMING)
    def start_reclaim(self) -> None:
        pass

    @transition(field=state, source=ResourceState.RECLAIMING, target=ResourceState.RECLAIMED)
    def mark_reclaimed(self) -> None:
        pass


class AuditEvent(models.Model):
    """One append-only line of the audit trail: who did what to which object, and why.

    Append-only three times over: `save()` of a stored row and `delete()` raise here, the admin is
    read-only, and on PostgreSQL a trigger refuses every UPDATE and DELETE of the table (migration 0005),
    so a queryset `update()`/`delete()` or raw SQL fails too. Every foreign key is PROTECT: deleting a
    user, request or resource that the trail names is refused before any SQL runs. (SET_NULL would be
    an UPDATE of audit rows and CASCADE a DELETE: both would rewrite history, and the trigger would turn
    them into database errors instead of a clean refusal.) People who leave are deactivated, not deleted.
    """

    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
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


class MailState(models.TextChoices):
    PENDING = "pending"
    SENT = "sent"


class OutgoingMail(ConcurrentTransitionMixin, models.Model):
    """A mail in the outbox: written in the transaction that decides to send it, delivered after that
    commits, and retried until the mail backend accepts it. Only then is it `sent`."""

    TERMINAL = (MailState.SENT,)

    topic = models.CharField(max_length=60, help_text="What kind of mail, e.g. “expiry notice”.")
    # The same notice is never queued twice: a second queueing with the same key returns the first row.
    key = models.CharField(max_length=200, blank=True, default="", help_text="Blank: no de-duplication.")
    subject = models.TextField()
    body = models.TextField()
    from_email = models.CharField(max_length=254)
    recipients = models.JSONField(default=list)
    state = FSMField(max_length=10, choices=MailState.choices, default=MailState.PENDING, protected=True)
    attempts = models.PositiveIntegerField(default=0, help_text="How often delivery was tried.")
    last_error = models.TextField(blank=True, help_text="Why the last failed attempt failed.")
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # What the mail is about, for the audit trail. Plain ids, not foreign keys: mail must never stand in
    # the way of deleting anything, and a higher layer's object can be named without this layer knowing it.
    request_id = models.UUIDField(null=True, blank=True, db_index=True)
    resource_id = models.UUIDField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "outgoing mail"
        verbose_name_plural = "outgoing mail"
        indexes = [models.Index(fields=["state", "created_at"], name="outgoing_mail_state_created")]
        constraints = [
            models.UniqueConstraint(fields=["key"], condition=~models.Q(key=""), name="outgoing_mail_one_per_key")
        ]

    def __str__(self) -> str:
        return f"{self.topic} to {', '.join(self.recipients)} ({self.state})"

    @transition(field=state, source=MailState.PENDING, target=MailState.SENT)
    def mark_sent(self, at) -> None:
        self.sent_at = at


class Heartbeat(models.Model):
    """When a periodic job (CELERY_BEAT_SCHEDULE) last finished: one row per task, upserted by each run
    (config/celery.py). Metrics read it (`leasehold_periodic_last_success_timestamp_seconds`), and an
    alert fires when the stuck-request sweep, due every 30 s, has not run for minutes: beat or every
    worker is down."""

    task = models.CharField(max_length=200, primary_key=True)
    last_success_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.task} at {self.last_success_at:%Y-%m-%d %H:%M:%S}"
