"""Grows the bench database to a number of requests, quickly, with rows as Leasehold itself leaves them.

`seed(total, due=...)` adds what is missing (1k, then 10k, then 100k in one run seeds 1k + 9k + 90k) with
`bulk_create`, a few thousand requests per transaction. The mix is a bank's two years of use: 50 teams, a
few hundred people, requests of the three kinds (namespaces; databases and apps inside a team's active
namespaces) in every state, with their approval chains, steps and decisions as the default policy routes
them, their audit trail, and for the provisioned ones the resource, its lease, its Kubernetes objects and
(apps) its first release. Leases are mostly active, expiring over the next year, with the notices already
sent that a running reclaimer would have sent; a share is reclaimed (in the last two years) and a few are
in grace. `due` leases are in grace with their grace over (namespaces): what a reclamation pass deletes.

The rows follow the models' rules (FSM states that go together, the one-live-name and one-host
constraints, one decision per approver, no self-approval); the audit trail is only inserted into, never
updated, as its trigger demands. Nothing here calls the cluster: the objects are recorded, not applied.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from approvals.models import ApprovalChain, ApprovalStep, Decision, StepState, Verdict
from leases.models import Lease, LeaseState, next_notice_at
from provisioning.models import ManagedObject, Release
from provisioning.renderers import rfc3339
from provisioning.services.plan import RESOURCE_ID_NAMESPACE, render_request
from requests_app.models import (
    Action,
    AppTemplate,
    AuditEvent,
    Kind,
    RequestState,
    Resource,
    ResourceRequest,
    ResourceState,
    Team,
    default_cluster_pk,
)
from tests.factories import app_template

User = get_user_model()

TEAM_SLUGS = (  # noqa: SIM905
    "atlas borealis cobalt delta ember falcon granite harbor indigo juniper kestrel lumen meridian nova onyx "
    "pioneer quartz raven sierra tundra umber vega willow xenon yarrow zephyr aurora basalt cedar dune "
    "echo fjord glacier heron iris jade krypton lotus mistral nimbus orion pulsar quasar rook saffron "
    "talon ursa vortex wren zenith"
).split()
PEOPLE_PER_TEAM = 6
PLATFORM_APPROVERS = 6
SECURITY_APPROVERS = 4
CHUNK = 5000  # requests per transaction
NAME_STEMS = "api web billing checkout search ledger payments risk reports batch etl cache auth gateway".split()  # noqa: SIM905

# Create requests' outcomes (weights), as two years of use leave them.
STATE_MIX = {
    "active": 46,
    "reclaimed": 36,
    "grace": 1,
    "rejected": 5,
    "cancelled": 5,
    "failed": 3,
    "pending": 3,
    "approved": 0.5,
    "provisioning": 0.5,
}
ENVIRONMENTS = {"dev": 45, "test": 20, "staging": 20, "prod": 15}
EXTEND_SHARE = 0.04  # extension requests among all requests


@dataclass(frozen=True)
class Cast:
    """Who the benchmarks act as."""

    admin: object  # staff and superuser: sees everything
    member: object  # a member of one team (`team`), who files requests there
    approver: object  # in platform-approvers: the approval queue of every default-rule request
    team: Team


def seed(total: int, *, due: int = 0) -> Cast:
    """Grow the database to `total` requests (at least `due` of them with a lease past its grace; with
    `due`, exactly that many). Starts again from empty when the database already holds more than that."""
    existing = ResourceRequest.objects.count()
    due_now = _due_leases()
    if existing > total or (due and due_now > due) or max(0, due - due_now) > total - existing:
        started = time.perf_counter()
        call_command("flush", interactive=False, verbosity=0)
        print(f"  · seed: emptied the database ({existing} requests) in {time.perf_counter() - started:.1f} s")
        existing, due_now = 0, 0
    cast = people()
    missing = total - existing
    if missing <= 0:
        return cast
    started = time.perf_counter()
    rng = random.Random(total)  # noqa: S311  (a reproducible mix, not a secret)
    maker = _Maker(rng, cast)
    to_due = max(0, due - due_now) if due else 0
    while missing > 0:
        n = min(CHUNK, missing)
        n_due = min(n, to_due)
        with transaction.atomic():
            maker.chunk(n, n_due)
        missing -= n
        to_due -= n_due
    # As autovacuum keeps a live database (it would get there a while later): the planner's statistics,
    # and the visibility map that lets a count be answered from an index alone (VACUUM sets it; without
    # it every index-only scan reads the table's pages too).
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)  # ours: the catalogs are the server's to vacuum
        cursor.execute("VACUUM (ANALYZE) " + ", ".join(connection.ops.quote_name(t) for t in tables))
    print(
        f"  · seed: {existing} → {total} requests in {time.perf_counter() - started:.1f} s "
        f"({_due_leases()} leases past grace)",
        flush=True,
    )
    return cast


def _due_leases() -> int:
    return Lease.objects.filter(state=LeaseState.GRACE, grace_until__lte=timezone.now()).count()


def people() -> Cast:
    """50 teams (groups `team-<slug>`), six people in each (the first one its lead), platform and
    security approvers, and the three personas. Made once; later calls read them back."""
    if not Team.objects.exists():
        password = make_password("leasehold")  # one hash for everyone: local accounts, cheap to make
        groups = {
            name: Group(name=name)
            for name in [
                *(f"team-{s}" for s in TEAM_SLUGS),
                *(f"team-{s}-leads" for s in TEAM_SLUGS),
                "platform-approvers",
                "security-approvers",
            ]
        }
        Group.objects.bulk_create(groups.values())
        Team.objects.bulk_create(
            Team(slug=s, name=s.title(), group=groups[f"team-{s}"]) for s in TEAM_SLUGS
        )  # (bulk_create sends no post_save: the receiver that mirrors groups into teams is not needed)
        users: list = []
        memberships: list[tuple[int, str]] = []

        def person(username: str, *group_names: str, **flags) -> None:
            users.append(User(username=username, email=f"{username}@example.org", password=password, **flags))
            memberships.extend((len(users) - 1, g) for g in group_names)

        for t, slug in enumerate(TEAM_SLUGS):
            for p in range(PEOPLE_PER_TEAM):
                extra = [f"team-{slug}-leads"] if p == 0 else []
                # One in ten also works for the next team.
                if p == PEOPLE_PER_TEAM - 1 and t % 10 == 0:
                    extra.append(f"team-{TEAM_SLUGS[(t + 1) % len(TEAM_SLUGS)]}")
                person(f"{slug}{p}", f"team-{slug}", *extra)
        for p in range(PLATFORM_APPROVERS):
            person(f"platform{p}", "platform-approvers")
        for p in range(SECURITY_APPROVERS):
            person(f"security{p}", "security-approvers")
        person("bench-admin", is_staff=True, is_superuser=True)
        person("bench-member", f"team-{TEAM_SLUGS[0]}")
        person("bench-approver", "platform-approvers")
        User.objects.bulk_create(users)
        through = User.groups.through
        through.objects.bulk_create(through(user_id=users[i].pk, group_id=groups[g].pk) for i, g in memberships)
        if not AppTemplate.objects.filter(slug="web").exists():
            app_template("web")
    users_by_name = {u.username: u for u in User.objects.filter(username__startswith="bench-")}
    return Cast(
        admin=users_by_name["bench-admin"],
        member=users_by_name["bench-member"],
        approver=users_by_name["bench-approver"],
        team=Team.objects.get(slug=TEAM_SLUGS[0]),
    )


class RawJson(str):
    """JSON text already serialised (the rendered manifests, the same for many rows): copied as it is."""


def _json(value) -> Jsonb:
    if isinstance(value, RawJson):
        return Jsonb(value, dumps=str)
    return Jsonb(value)


class _Row(SimpleNamespace):
    """One row to copy: its columns by attribute name (`team_id`), plus whatever the seed keeps beside."""


class _Table:
    """The rows of one model that a chunk copies into the database, with PostgreSQL's COPY.

    Rows are plain attribute bags, not model instances, and COPY, not bulk_create: at 100k requests
    (about 1.3 million rows) Django's model constructor and 5.2's bulk_create (which sends each column
    as an array that psycopg quotes in Python) took most of the time. Columns not given take the model
    field's default; ids of identity keys are reserved from the table's sequence when the seed needs
    them (rows elsewhere point at them), else left to the database."""

    def __init__(self, model, *, numbered: bool = False) -> None:
        meta = model._meta
        self.model = model
        self.table = meta.db_table
        self.numbered = numbered
        self.fields = [
            f
            for f in meta.concrete_fields
            if not (f.primary_key and f.get_internal_type().endswith("AutoField") and not numbered)
        ]
        self.attnames = {f.attname for f in self.fields}
        self.defaults = {f.attname: f.get_default() for f in self.fields}
        if "cluster_id" in self.attnames:  # requests and resources: every seeded one is on the default cluster
            self.defaults["cluster_id"] = default_cluster_pk()
        self.rows: list[_Row] = []
        self._ids: list[int] = []

    def new(self, **values) -> _Row:
        if self.numbered:
            values["id"] = self._next_id()
        row = _Row(**values)
        self.rows.append(row)
        return row

    def _next_id(self) -> int:
        if not self._ids:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT setval(pg_get_serial_sequence(%s, 'id'), nextval(pg_get_serial_sequence(%s, 'id')) + 9999)",
                    [self.table, self.table],
                )
                (last,) = cursor.fetchone()
            self._ids = list(range(last, last - 10000, -1))
        return self._ids.pop()

    def copy(self) -> None:
        """Copy the rows in, and forget them (the reserved ids are kept for the next chunk)."""
        if not self.rows:
            return
        for row in self.rows:
            unknown = row.__dict__.keys() - self.attnames - _SIDE_ATTRIBUTES
            if unknown:
                raise TypeError(f"{self.model.__name__} has no column {', '.join(sorted(unknown))}")
        names = [f.attname for f in self.fields]
        defaults = [self.defaults[n] for n in names]
        json_columns = [i for i, f in enumerate(self.fields) if f.get_internal_type() == "JSONField"]
        columns = ", ".join(connection.ops.quote_name(f.column) for f in self.fields)
        statement = f"COPY {connection.ops.quote_name(self.table)} ({columns}) FROM STDIN"
        with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
            for row in self.rows:
                values = row.__dict__
                out = [values.get(n, d) for n, d in zip(names, defaults, strict=True)]
                for i in json_columns:
                    out[i] = _json(out[i])
                copy.write_row(out)
        self.rows = []


_SAMPLE_REQUEST = uuid.UUID("00000000-0000-4000-8000-00000000abcd")
_SAMPLE_EXPIRY = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)

# What the seed keeps on rows besides their columns (for the rows that refer to them).
_SIDE_ATTRIBUTES = {"team", "requester", "model_name"}


def _weighted(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


@dataclass
class _Namespace:
    """An active namespace that databases and apps can be filed into."""

    resource_id: uuid.UUID
    name: str
    expires_at: datetime
    env: str


class _Maker:
    """Builds the rows of a chunk of requests in memory, then inserts them table by table."""

    def __init__(self, rng: random.Random, cast: Cast) -> None:
        self.rng = rng
        self.now = timezone.now()
        self.teams = list(Team.objects.select_related("group").order_by("pk"))
        self.team_by_id = {t.pk: t for t in self.teams}
        members: dict[int, list] = {t.pk: [] for t in self.teams}
        leads: dict[int, object] = {}
        by_group: dict[str, list] = {}
        for user in User.objects.prefetch_related("groups"):
            for group in user.groups.all():
                by_group.setdefault(group.name, []).append(user)
        for team in self.teams:
            lead_group = by_group.get(f"{team.group.name}-leads", [])
            leads[team.pk] = lead_group[0]
            members[team.pk] = [u for u in by_group.get(team.group.name, []) if u not in lead_group]
        self.members, self.leads = members, leads
        self.platform = [u for u in by_group["platform-approvers"] if u.username != "bench-approver"]
        self.security = by_group["security-approvers"]
        self.template = AppTemplate.objects.get(slug="web")
        # The live namespaces of each team (from earlier calls too), and active resources to extend.
        self.namespaces: dict[int, list[_Namespace]] = {t.pk: [] for t in self.teams}
        for row in Resource.objects.filter(kind=Kind.NAMESPACE, state=ResourceState.ACTIVE).values(
            "pk", "team_id", "name", "lease__expires_at", "environment"
        ):
            if row["lease__expires_at"] is not None:
                self.namespaces[row["team_id"]].append(
                    _Namespace(row["pk"], row["name"], row["lease__expires_at"], row["environment"])
                )
        self.extendable: list[tuple[uuid.UUID, int, str, str, str]] = list(
            Resource.objects.filter(state=ResourceState.ACTIVE)
            .order_by("?")
            .values_list("pk", "team_id", "kind", "name", "environment")[:5000]
        )
        self.requests = _Table(ResourceRequest)
        self.resources = _Table(Resource)
        self.leases = _Table(Lease, numbered=True)
        self.objects = _Table(ManagedObject)
        self.releases = _Table(Release)
        self.chains = _Table(ApprovalChain, numbered=True)
        self.steps = _Table(ApprovalStep)
        self.decisions = _Table(Decision)
        self.events = _Table(AuditEvent)
        self.tables = [
            self.requests,
            self.resources,
            self.leases,
            self.objects,
            self.releases,
            self.chains,
            self.steps,
            self.decisions,
            self.events,
        ]
        self.serial = ResourceRequest.objects.count()
        self.hosts = 0
        self.samples: dict[str, str] = {}

    # -- one chunk -------------------------------------------------------------------------------

    def chunk(self, n: int, n_due: int) -> None:
        for i in range(n):
            if i < n_due:
                self._create(kind=Kind.NAMESPACE, outcome="due")
            elif self.extendable and self.rng.random() < EXTEND_SHARE:
                self._extend()
            else:
                self._create(kind=None, outcome=_weighted(self.rng, STATE_MIX))
        # Foreign keys are checked at commit (PostgreSQL's are deferred): the order does not matter.
        for table in self.tables:
            table.copy()

    # -- requests --------------------------------------------------------------------------------

    def _name(self) -> str:
        self.serial += 1
        return f"{self.rng.choice(NAME_STEMS)}-{self.serial:x}"

    def _create(self, *, kind: str | None, outcome: str) -> None:
        rng, now = self.rng, self.now
        team = self.rng.choice(self.teams)
        if kind is None:
            kind = _weighted(rng, {"namespace": 40, "database": 30, "app": 30})
            if kind != Kind.NAMESPACE and not self.namespaces[team.pk]:
                kind = Kind.NAMESPACE
        requester = rng.choice(self.members[team.pk])
        parent = rng.choice(self.namespaces[team.pk]) if kind != Kind.NAMESPACE else None
        env = parent.env if parent else _weighted(rng, ENVIRONMENTS)
        name = self._name()
        lease_days = rng.choice([7, 14, 14, 14, 30, 60, 90])
        if outcome == "active":
            created = now - timedelta(days=rng.uniform(1, 180))
        elif outcome in ("reclaimed", "grace", "due"):
            created = now - timedelta(days=rng.uniform(lease_days + 4, 730))
        elif outcome == "pending":
            created = now - timedelta(days=rng.uniform(0, 14))
        elif outcome in ("approved", "provisioning"):
            created = now - timedelta(minutes=rng.uniform(0, 10))
        else:
            created = now - timedelta(days=rng.uniform(0, 730))
        if parent:
            created = max(created, now - timedelta(days=170))  # not before its namespace, near enough
        spec, frozen = self._spec(kind, parent, outcome)
        if outcome in ("pending", "rejected", "cancelled") and kind == Kind.NAMESPACE and lease_days <= 14:
            lease_days = 30  # the small-dev rule approves at once: these went through a step
        request_state = {
            "active": RequestState.ACTIVE,
            "reclaimed": RequestState.RECLAIMED,
            "grace": RequestState.ACTIVE,
            "due": RequestState.ACTIVE,
            "rejected": RequestState.REJECTED,
            "cancelled": RequestState.CANCELLED,
            "failed": RequestState.FAILED,
            "pending": RequestState.PENDING_APPROVAL,
            "approved": RequestState.APPROVED,
            "provisioning": RequestState.PROVISIONING,
        }[outcome]
        request = self._request(
            Action.CREATE,
            team,
            requester,
            kind=kind,
            name=name,
            environment=env,
            lease_days=lease_days,
            justification=rng.choice(["", "load tests", "new service for the checkout team", "migration rehearsal"]),
            spec=spec,
            frozen=frozen,
            state=request_state,
            parent_id=parent.resource_id if parent else None,
            error="pod quota exceeded; retries exhausted" if outcome == "failed" else "",
            deliveries=1 if outcome in ("active", "reclaimed", "grace", "due", "failed", "provisioning") else 0,
            created_at=created,
            updated_at=created,
        )
        decided = self._approval(request, outcome, created)
        self._event(request, requester, "submitted", created, to_state="pending_approval")
        if outcome == "rejected":
            self._event(request, decided, "rejected", created + timedelta(hours=3), "pending_approval", "rejected")
            return
        if outcome == "cancelled":
            self._event(request, requester, "cancelled", created + timedelta(hours=1), "pending_approval", "cancelled")
            return
        if outcome == "pending":
            return
        approved_at = created + timedelta(hours=2)
        self._event(request, decided, "approved", approved_at, "pending_approval", "approved")
        if outcome == "approved":
            return
        self._event(request, None, "provisioning_started", approved_at, "approved", "provisioning")
        if outcome == "failed":
            if rng.random() < 0.5:
                self._resource(request, parent, ResourceState.FAILED, approved_at, outcome)
            self._event(request, None, "failed", approved_at + timedelta(minutes=5), "provisioning", "failed")
            return
        state = {
            "active": ResourceState.ACTIVE,
            "reclaimed": ResourceState.RECLAIMED,
            "grace": ResourceState.GRACE,
            "due": ResourceState.GRACE,
            "provisioning": ResourceState.PROVISIONING,
        }[outcome]
        self._resource(request, parent, state, approved_at, outcome)

    def _request(self, action: str, team: Team, requester, **columns) -> _Row:
        return self.requests.new(
            model_name="resourcerequest",
            id=uuid.UUID(int=self.rng.getrandbits(128), version=4),
            action=action,
            team=team,
            team_id=team.pk,
            requester=requester,
            requester_id=requester.pk,
            **columns,
        )

    def _extend(self) -> None:
        rng, now = self.rng, self.now
        resource_id, team_id, kind, name, env = rng.choice(self.extendable)
        team = self.team_by_id[team_id]
        requester = rng.choice(self.members[team_id])
        outcome = _weighted(rng, {"active": 70, "pending": 15, "rejected": 15})
        created = now - timedelta(days=rng.uniform(0, 14 if outcome == "pending" else 170))
        request = self._request(
            Action.EXTEND,
            team,
            requester,
            kind=kind,
            name=name,
            environment=env,
            lease_days=rng.choice([30, 60, 90]),
            justification="the project runs longer than planned",
            spec={},
            state={"active": RequestState.ACTIVE, "pending": RequestState.PENDING_APPROVAL}.get(
                outcome, RequestState.REJECTED
            ),
            resource_id=resource_id,
            created_at=created,
            updated_at=created,
        )
        decided = self._approval(request, outcome, created)
        self._event(request, requester, "submitted", created, to_state="pending_approval")
        if outcome == "active":
            self._event(request, decided, "approved", created + timedelta(hours=2), "pending_approval", "approved")
            self._event(request, None, "extended", created + timedelta(hours=2), "approved", "active")
        elif outcome == "rejected":
            self._event(request, decided, "rejected", created + timedelta(hours=2), "pending_approval", "rejected")

    def _spec(self, kind: str, parent: _Namespace | None, outcome: str) -> tuple[dict, dict]:
        rng = self.rng
        if kind == Kind.NAMESPACE:
            if rng.random() < 0.85:
                return {"plan": _weighted(rng, {"small": 60, "medium": 30, "large": 10})}, {}
            return {
                "cpu": str(rng.choice([1, 2, 4, 6])),
                "memory": f"{rng.choice([2, 4, 8, 12])}Gi",
                "storage": "30Gi",
            }, {}
        assert parent is not None
        if kind == Kind.DATABASE:
            spec = {
                "namespace": str(parent.resource_id),
                "engine": "postgres",
                "version": rng.choice(["15", "16", "16"]),
                "storage": rng.choice(["5Gi", "10Gi", "20Gi"]),
                "plan": _weighted(rng, {"small": 70, "medium": 25, "large": 5}),
            }
            return spec, {"provider": "statefulset"}
        spec = {
            "namespace": str(parent.resource_id),
            "template": self.template.slug,
            "image_tag": rng.choice(["1.4.2", "1.5.0", "2.0.1"]),
            "replicas": rng.choice([1, 2, 2, 3]),
            "env": {"LOG_LEVEL": rng.choice(["info", "debug"])},
        }
        # Hosts are unique among live apps: only the apps that are or will be live get one, each its own.
        if outcome in ("active", "grace", "pending", "approved", "provisioning") and rng.random() < 0.5:
            self.hosts += 1
            spec["host"] = f"{parent.name}-{self.serial:x}.apps.example.org"
        frozen = {
            "template": {
                "slug": self.template.slug,
                "image_repository": self.template.image_repository,
                "container_port": self.template.container_port,
                "health_path": self.template.health_path,
                "default_env": self.template.default_env,
                "cpu_request": self.template.cpu_request,
                "cpu_limit": self.template.cpu_limit,
                "memory_request": self.template.memory_request,
                "memory_limit": self.template.memory_limit,
                "accepts_database": self.template.accepts_database,
            },
            "ingress_class": settings.LEASEHOLD_INGRESS_CLASS or None,
        }
        return spec, frozen

    def _approval(self, request: _Row, outcome: str, at: datetime) -> object:
        """The chain the default policy chooses, its steps in the state the outcome implies, and the
        decisions; returns who decided last (None when nobody had to)."""
        rng = self.rng
        team = request.team
        if request.environment == "prod":
            rule = "prod"
            plan = [
                ("team-lead", f"team-{team.slug}-leads", 1, [self.leads[team.pk]]),
                ("platform", "platform-approvers", 1, [rng.choice(self.platform)]),
                ("security", "security-approvers", 2, rng.sample(self.security, 2)),
            ]
        elif (
            request.action == Action.CREATE
            and request.kind == Kind.NAMESPACE
            and request.environment in ("dev", "test")
            and request.spec.get("plan") == "small"
            and request.lease_days <= 14
        ):
            rule = "small-dev"
            plan = []
        else:
            rule = "default"
            plan = [("platform", "platform-approvers", 1, [rng.choice(self.platform)])]
        chain = self.chains.new(request_id=request.id, rule=rule, created_at=at)
        if not plan:
            return None
        # How many steps were approved; the step after them is pending (or rejected), the rest wait.
        if outcome == "pending":
            done, open_state = rng.randrange(len(plan)), StepState.PENDING
        elif outcome == "rejected":
            done, open_state = rng.randrange(len(plan)), StepState.REJECTED
        elif outcome == "cancelled":
            done, open_state = rng.randrange(len(plan)), StepState.SKIPPED
        else:
            done, open_state = len(plan), StepState.PENDING
        last = None
        for order, (name, group, required, approvers) in enumerate(plan):
            opened = at + timedelta(minutes=30 * order)
            if order < done:
                state = StepState.APPROVED
            elif order == done:
                state = open_state
            else:
                state = StepState.SKIPPED if outcome in ("rejected", "cancelled") else StepState.WAITING
            step = self.steps.new(
                id=uuid.UUID(int=rng.getrandbits(128), version=4),
                chain_id=chain.id,
                request_id=request.id,
                order=order,
                name=name,
                group=group,
                required=required,
                state=state,
                pending_since=opened if state != StepState.WAITING else None,
            )
            if state == StepState.APPROVED:
                voters = approvers
            elif state == StepState.REJECTED:
                voters = approvers[:1]
            else:  # a pending step of two may have one approval already
                voters = approvers[:1] if state == StepState.PENDING and required > 1 and rng.random() < 0.5 else []
            for voter in voters:
                verdict = Verdict.REJECT if state == StepState.REJECTED else Verdict.APPROVE
                self.decisions.new(
                    step_id=step.id,
                    approver_id=voter.pk,
                    verdict=verdict,
                    comment="not within budget" if verdict == Verdict.REJECT else "",
                    at=opened + timedelta(minutes=20),
                )
                last = voter
        return last

    # -- resources -------------------------------------------------------------------------------

    def _resource(self, request: _Row, parent: _Namespace | None, state: str, at: datetime, outcome: str) -> None:
        rng, now = self.rng, self.now
        resource = self.resources.new(
            model_name="resource",
            id=uuid.uuid5(RESOURCE_ID_NAMESPACE, str(request.id)),
            kind=request.kind,
            name=request.name,
            team_id=request.team_id,
            owner_id=request.requester_id,
            environment=request.environment,
            spec=request.spec,
            lease_days=request.lease_days,
            state=state,
            parent_id=parent.resource_id if parent else None,
            created_by_request_id=request.id,
            activated_at=at + timedelta(minutes=3) if state != ResourceState.FAILED else None,
            created_at=at,
            updated_at=at,
        )
        request.resource_id = resource.id
        if state in (ResourceState.FAILED, ResourceState.PROVISIONING):
            return
        starts = resource.activated_at
        assert starts is not None
        fields: dict = {"state": LeaseState.ACTIVE}
        if outcome == "active":
            expires = now + timedelta(days=rng.uniform(0.05, 365))
            if parent:
                expires = min(expires, parent.expires_at)
            left = expires - now
            fields.update(
                expires_at=expires,
                extensions=max(0, int((expires - starts).days // request.lease_days) - 1),
                # The notices a reclaimer running every few minutes has sent by now.
                notices_sent=[d for d in settings.LEASE_NOTICE_DAYS if left <= timedelta(days=d)],
            )
        elif outcome == "reclaimed":
            expires = starts + timedelta(days=request.lease_days)
            grace_until = expires + timedelta(days=settings.LEASE_GRACE_DAYS)
            fields.update(
                state=LeaseState.RECLAIMED,
                expires_at=expires,
                grace_until=grace_until,
                reclaimed_at=grace_until + timedelta(minutes=rng.uniform(1, 30)),
                notices_sent=list(settings.LEASE_NOTICE_DAYS),
                last_report="backed up and deleted",
            )
        else:  # grace: still in it, or (due) past it
            grace_left = timedelta(hours=rng.uniform(1, 70))
            if outcome == "due":
                grace_left = -timedelta(minutes=rng.uniform(5, 600))
            fields.update(
                state=LeaseState.GRACE,
                grace_until=now + grace_left,
                expires_at=now + grace_left - timedelta(days=settings.LEASE_GRACE_DAYS),
                notices_sent=list(settings.LEASE_NOTICE_DAYS),
                quarantined_replicas={f"Deployment/{request.name}": 2} if request.kind == Kind.APP else {},
            )
        fields.setdefault("grace_until", None)
        fields.setdefault("reclaimed_at", None)
        lease = self.leases.new(model_name="lease", resource_id=resource.id, starts_at=starts, **fields)
        lease.next_notice_at = next_notice_at(lease.expires_at, lease.notices_sent)  # what Lease.save() keeps
        resource.lease_expires_at = lease.expires_at
        if outcome == "active" and len(self.extendable) < 5000:
            self.extendable.append((resource.id, request.team_id, request.kind, request.name, request.environment))
        if outcome == "active" and request.kind == Kind.NAMESPACE:
            self.namespaces[request.team_id].append(
                _Namespace(resource.id, request.name, lease.expires_at, request.environment)
            )
        manifests, kept, objects = self._manifests(request, parent, lease.expires_at)
        gone = lease.reclaimed_at
        for api_version, kind, namespace, name in objects:
            self.objects.new(
                resource_id=resource.id,
                api_version=api_version,
                kind=kind,
                namespace=namespace,
                name=name,
                uid=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                applied_at=starts,
                ready_at=starts + timedelta(seconds=40),
                deleted_at=gone,
            )
        if gone:
            lease.last_manifests = kept
        if request.kind == Kind.APP:
            self.releases.new(
                resource_id=resource.id,
                number=1,
                request_id=request.id,
                image_tag=request.spec["image_tag"],
                spec=request.spec,
                manifests=manifests,
                created_at=starts,
            )
        self._event(request, None, "activated", starts, "provisioning", "active", resource=resource)
        self._event(lease, None, "lease_opened", starts, to_state="active", request=request, resource=resource)
        if lease.state != LeaseState.ACTIVE:
            self._event(lease, None, "lease_expired", lease.expires_at, "active", "grace", request, resource)
        if gone:
            self._event(resource, None, "reclaimed", gone, "reclaiming", "reclaimed", request, resource)

    def _manifests(
        self, request: _Row, parent: _Namespace | None, expires: datetime
    ) -> tuple[RawJson, RawJson, list[tuple[str, str, str, str]]]:
        """The objects Leasehold renders for the request: as JSON, as JSON without Secrets (what a
        reclaimed lease keeps), and as (apiVersion, kind, namespace, name). Rendered by the real renderers
        once per kind, environment and spec, with stand-in names that are then replaced."""
        spec = {k: v for k, v in request.spec.items() if k not in ("namespace", "host")}
        host = request.spec.get("host")
        key = (request.kind, request.environment, json.dumps(spec, sort_keys=True), bool(host))
        if key not in self.samples:
            team = Team(slug="zzteam", group=Group(name="team-zzteam"))
            sample = ResourceRequest(
                id=_SAMPLE_REQUEST,
                kind=request.kind,
                team=team,
                requester=User(username="zzowner"),
                name="zzname",
                environment=request.environment,
                lease_days=request.lease_days,
                spec={**spec, **({"host": "zzhost.apps.example.org"} if host else {})},
                frozen=request.frozen,
            )
            if parent is not None:
                sample.parent = Resource(kind=Kind.NAMESPACE, name="zzparent", team=team)
            rendered = render_request(sample, password="x", lease_start=self.now, lease_expires=_SAMPLE_EXPIRY)
            self.samples[key] = (
                json.dumps(rendered),
                json.dumps([m for m in rendered if m["kind"] != "Secret"]),
                [
                    (m["apiVersion"], m["kind"], m["metadata"].get("namespace", ""), m["metadata"]["name"])
                    for m in rendered
                ],
            )
        text, kept, objects = self.samples[key]
        swaps = [
            ("zzteam", request.team.slug),
            ("zzparent", parent.name if parent else ""),
            ("zzname", request.name),
            ("zzowner", request.requester.username),
            ("zzhost.apps.example.org", host or ""),
            (str(_SAMPLE_REQUEST), str(request.id)),
            (
                str(uuid.uuid5(RESOURCE_ID_NAMESPACE, str(_SAMPLE_REQUEST))),
                str(uuid.uuid5(RESOURCE_ID_NAMESPACE, str(request.id))),
            ),
            (rfc3339(_SAMPLE_EXPIRY), rfc3339(expires)),
        ]

        def named(text: str) -> str:
            for old, new in swaps:
                text = text.replace(old, new)
            return text

        return (
            RawJson(named(text)),
            RawJson(named(kept)),
            [(api, kind, named(ns), named(name)) for api, kind, ns, name in objects],
        )

    def _event(
        self,
        target: _Row,
        actor,
        verb: str,
        at: datetime,
        from_state: str = "",
        to_state: str = "",
        request: _Row | None = None,
        resource: _Row | None = None,
    ) -> None:
        if target.model_name == "resourcerequest":
            request = target
        self.events.new(
            at=at,
            actor_id=actor.pk if actor else None,
            actor_name=actor.username if actor else "",
            verb=verb,
            target_type=target.model_name,
            target_id=str(target.id),
            request_id=request.id if request else None,
            resource_id=resource.id if resource else None,
            from_state=from_state,
            to_state=to_state,
        )
