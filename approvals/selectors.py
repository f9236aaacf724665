"""Reads for the approval engine: the policy in force, what a user may decide now, delegations."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Case, CharField, Count, Exists, Min, OuterRef, Prefetch, Q, QuerySet, Value, When
from django.utils import timezone

from requests_app import kinds
from requests_app.models import RequestState, ResourceRequest
from requests_app.selectors import teams_of, user_is_admin
from requests_app.specs import plan_of

from .directory import user_group_names
from .models import ApprovalPolicy, ApprovalStep, Decision, Delegation, StepState
from .policy import DEFAULT_POLICY, Policy, PolicyError, RequestFacts, parse_policy

__all__ = [
    "APPROVAL_SECTION_PREFETCH",
    "Route",
    "active_delegations_to",
    "approval_route",
    "approver_groups",
    "delegations_of",
    "policy_in_force",
    "queue_overview",
    "queue_page",
    "request_facts",
    "request_size",
    "step_labels",
    "step_recipients",
    "steps_decidable_by",
    "steps_prefetch",
    "steps_visible_to",
    "user_by_username",
    "user_group_names",
]


# What a list of requests should prefetch so that their `approval` sections (approvals.api.serializers)
# cost no query each: the steps in chain order and the decisions with who decided, each in one query.
# (The models' default orderings would join the steps to their requests to sort them by the request's
# creation: a merge over every request in the table, on every page.)
def steps_prefetch(prefix: str) -> tuple[Prefetch, Prefetch]:
    """Into plain lists (`to_attr`): the default prefetch builds a related manager and a queryset per chain
    and per step, which cost more than the rows."""
    return (
        Prefetch(f"{prefix}steps", queryset=ApprovalStep.objects.order_by("order"), to_attr="listed_steps"),
        Prefetch(
            f"{prefix}listed_steps__decisions",
            queryset=Decision.objects.select_related("approver", "on_behalf_of")
            .only("id", "step", "verdict", "comment", "at", "approver__username", "on_behalf_of__username")
            .order_by("at", "id"),
            to_attr="listed_decisions",
        ),
    )


APPROVAL_SECTION_PREFETCH = steps_prefetch("approval_chain__")


def policy_in_force() -> tuple[Policy, ApprovalPolicy | None]:
    """The newest loaded policy; else APPROVAL_POLICY_FILE; else the built-in default."""
    row = ApprovalPolicy.objects.order_by("-loaded_at", "-id").first()
    if row is not None:
        return parse_policy(row.source), row
    if settings.APPROVAL_POLICY_FILE:
        path = Path(settings.APPROVAL_POLICY_FILE)
        try:
            return parse_policy(path.read_text()), None
        except (OSError, PolicyError) as exc:
            raise ImproperlyConfigured(f"APPROVAL_POLICY_FILE={path}: {exc}") from exc
    return DEFAULT_POLICY, None


def policy_source_in_force() -> str:
    """The YAML text of the policy in force (what the admin form starts from)."""
    row = ApprovalPolicy.objects.order_by("-loaded_at", "-id").first()
    if row is not None:
        return row.source
    if settings.APPROVAL_POLICY_FILE:
        try:
            return Path(settings.APPROVAL_POLICY_FILE).read_text()
        except OSError:
            pass
    from .policy import DEFAULT_POLICY_YAML

    return DEFAULT_POLICY_YAML


def request_facts(request: ResourceRequest) -> RequestFacts:
    """What the policy may match on for this request.

    Namespaces carry their quota; databases their plan's CPU and memory limits and their storage. Apps
    carry no quantities, so a rule with max_cpu/max_memory/max_storage never matches an app.
    """
    kind = kinds.find(request.kind)
    quantities = kind.policy_quantities(request.spec) if kind is not None else {}
    return RequestFacts(
        kind=request.kind,
        environment=request.environment,
        team=request.team.slug,
        plan=plan_of(request.kind, request.spec),
        lease_days=request.lease_days,
        quantities=quantities,
        action=request.action,
        cluster=request.cluster.name if request.cluster_id is not None else "",
    )


@dataclass(frozen=True)
class RoutedStep:
    """A step as the policy routes it for one request: `{team}` already replaced by the team's slug."""

    name: str
    group: str
    required: int
    escalate_to: str = ""


@dataclass(frozen=True)
class Route:
    """Who must approve a request: the rule that matches it and its steps (none: approved at once), and
    the policy they come from (None: the file or the built-in default)."""

    rule: str
    steps: tuple[RoutedStep, ...]
    policy_row: ApprovalPolicy | None

    @property
    def at_once(self) -> bool:
        return not self.steps

    @property
    def policy_label(self) -> str:
        return f"policy #{self.policy_row.pk}" if self.policy_row else "the default policy"


def approval_route(request: ResourceRequest) -> Route:
    """The route the policy in force gives `request`, filed or not. `chain_open` freezes exactly this on
    a filed request, and the plan preview shows it before filing: one computation for both."""
    policy, policy_row = policy_in_force()
    rule = policy.rule_for(request_facts(request))
    team = request.team.slug
    steps = tuple(RoutedStep(s.name, s.group_for(team), s.required, s.escalate_to_for(team)) for s in rule.steps)
    return Route(rule=rule.name, steps=steps, policy_row=policy_row)


def approval_route_preview(request: ResourceRequest) -> dict:
    """The route as the plan preview shows it (registered in requests_app.sections.request_previews)."""
    route = approval_route(request)
    return {
        "rule": route.rule,
        "at_once": route.at_once,
        "steps": [
            {"name": s.name, "group": s.group, "required": s.required, "escalate_to": s.escalate_to}
            for s in route.steps
        ],
    }


def request_size(request: ResourceRequest) -> str:
    """A short human size for the queue: the plan, or the quantities asked for."""
    spec = request.spec if isinstance(request.spec, dict) else {}
    kind = kinds.find(request.kind)
    return kind.size(spec) if kind is not None else ""


def approver_groups(names: Iterable[str]) -> set[str]:
    """Those of the group `names` that decide approval steps: named by a step (or as its escalation
    group) of the policy in force, `{team}` standing for any team, or by a step still open (a chain
    keeps the groups of the policy that routed it)."""
    names = set(names)
    if not names:
        return set()
    policy, _ = policy_in_force()
    deciding = {name for name in names if policy.names_group(name)}
    rest = sorted(names - deciding)
    if rest:
        open_steps = ApprovalStep.objects.filter(state__in=[StepState.WAITING, StepState.PENDING])
        deciding |= set(open_steps.filter(group__in=rest).values_list("group", flat=True))
        deciding |= set(open_steps.filter(escalate_to__in=rest).values_list("escalate_to", flat=True))
    return deciding


def user_by_username(username: str):
    """The account called `username`, active or not; None when there is none."""
    return get_user_model().objects.filter(username=username).first()


def active_delegations_to(user, day: datetime.date | None = None) -> list[Delegation]:
    """Delegations that let `user` decide in someone else's place on `day` (today by default), in the
    order the engine tries them."""
    if not user.is_authenticated:
        return []
    day = day or timezone.localdate()
    return list(
        Delegation.objects.filter(delegate=user, revoked_at__isnull=True, starts_on__lte=day, ends_on__gte=day)
        .exclude(delegator=user)
        .select_related("delegator")
        .order_by("id")
    )


def delegations_of(user) -> QuerySet[Delegation]:
    """Delegations the user gave or received that are not over yet."""
    today = timezone.localdate()
    return (
        Delegation.objects.filter(Q(delegator=user) | Q(delegate=user), revoked_at__isnull=True, ends_on__gte=today)
        .select_related("delegator", "delegate")
        .order_by("starts_on", "id")
    )


def _decided_on_request(person_id) -> Exists:
    return Exists(
        Decision.objects.filter(step__request=OuterRef("request")).filter(
            Q(approver_id=person_id) | Q(on_behalf_of_id=person_id)
        )
    )


def _may_decide_as(person_id, groups: set[str]) -> Q:
    """Steps `person_id` (with `groups`) may decide: their group's (or, once escalated, the escalation
    group's), not on their own request, and not on a request where they decided a step already."""
    names = sorted(groups)
    in_group = Q(group__in=names) | Q(escalate_to__in=names, escalated_at__isnull=False)
    return in_group & ~Q(request__requester_id=person_id) & Q(~_decided_on_request(person_id))


def steps_visible_to(user) -> QuerySet[ApprovalStep]:
    """Steps the user may know of: those their groups decide (or would decide once escalated), those of
    their teams' requests, and every step for admins. Any other step answers as an unknown id does.

    A delegate is a member of the delegated group (see services.delegation_errors), so delegates see
    what their delegators see.
    """
    if not user.is_authenticated:
        return ApprovalStep.objects.none()
    if user_is_admin(user):
        return ApprovalStep.objects.all()
    names = sorted(user_group_names(user))
    return ApprovalStep.objects.filter(
        Q(group__in=names) | Q(escalate_to__in=names) | Q(request__team__in=teams_of(user))
    )


def steps_decidable_by(user, *, day: datetime.date | None = None) -> QuerySet[ApprovalStep]:
    """Pending steps the user may decide now, oldest first.

    A delegate decides only steps of groups they belong to themselves; each step carries `acting_for`:
    the username of the delegator whose seat they take on it (the first delegation that applies, as the
    engine chooses), else "" for their own name. A constant number of queries, however long the queue
    (the delegators' groups are read in one query).
    """
    if not user.is_authenticated:
        return ApprovalStep.objects.none()
    own_groups = user_group_names(user)
    eligible = _may_decide_as(user.pk, own_groups)
    # A deactivated delegator lends nothing (the engine ends such a delegation when it meets it).
    delegations = [d for d in active_delegations_to(user, day) if d.delegator.is_active]
    groups_by_delegator: dict[int, set[str]] = {d.delegator_id: set() for d in delegations}
    if delegations:
        for user_id, name in (
            get_user_model()
            .groups.through.objects.filter(user_id__in=groups_by_delegator)
            .values_list("user_id", "group__name")
        ):
            groups_by_delegator[user_id].add(name)
    whens = []
    for d in delegations:
        shared = own_groups & groups_by_delegator[d.delegator_id]
        if shared:
            whens.append(When(_may_decide_as(d.delegator_id, shared), then=Value(d.delegator.get_username())))
    return (
        ApprovalStep.objects.filter(eligible, state=StepState.PENDING, request__state=RequestState.PENDING_APPROVAL)
        # Whoever clicks must not be the requester nor have decided on the request, whoever they act for.
        .exclude(request__requester=user)
        .exclude(_decided_on_request(user.pk))
        .annotate(acting_for=Case(*whens, default=Value(""), output_field=CharField()))
        .select_related(
            "request", "request__team", "request__parent__team", "request__requester", "request__cluster", "chain"
        )
        .order_by("pending_since", "id")
    )


@dataclass(frozen=True)
class QueuePage:
    """A page of the queue: `steps` (as steps_decidable_by gives them), the cursor of the page that follows
    (None: it is the last), and how many steps wait in all, counted up to QUEUE_COUNTED (more: `waiting_more`)."""

    steps: list[ApprovalStep]
    next_cursor: str | None
    waiting: int
    waiting_more: bool


# The queue's header counts this many steps at most ("more than 1000 waiting"): a count reads every step
# it counts, and a queue that long is not read to its end.
QUEUE_COUNTED = 1000


EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
MICROSECOND = datetime.timedelta(microseconds=1)


def queue_cursor(step: ApprovalStep) -> str:
    """`<pending_since in microseconds since the epoch>.<id>`: where the next page starts, in queue order.
    (A pending step always has its pending_since: services._step_open sets both.)"""
    return f"{((step.pending_since or EPOCH) - EPOCH) // MICROSECOND}.{step.pk}"


def _after_cursor(text: str) -> Q | None:
    """The steps after the cursor in queue order, or None for anything that is not a cursor."""
    micros, _, pk = text.partition(".")
    try:
        since = EPOCH + int(micros) * MICROSECOND
        step_id = uuid.UUID(pk)
    except (ValueError, OverflowError):
        return None
    return Q(pending_since__gt=since) | Q(pending_since=since, pk__gt=step_id)


def queue_page(user, *, after: str = "", size: int = 100) -> QueuePage:
    """The page of steps_decidable_by(user) after the cursor `after` (the first page for none, or for anything
    that is not a cursor), walked by keyset: the same few queries at any depth and any length of queue.

    The page's ids are read first, from the steps and their requests alone; then those rows with their
    request, team, requester and chain. (Joined for every waiting step, only to keep a page of them, those
    cost more than all the rest of the page.)"""
    steps = steps_decidable_by(user)
    walked = steps.filter(_after_cursor(after) or Q()) if after else steps
    ids = list(walked.values_list("pk", flat=True)[: size + 1])
    rows = list(steps.filter(pk__in=ids[:size]))
    counted = steps.order_by().values("pk")[: QUEUE_COUNTED + 1].count()
    return QueuePage(
        steps=rows,
        next_cursor=queue_cursor(rows[-1]) if len(ids) > size and rows else None,
        waiting=min(counted, QUEUE_COUNTED),
        waiting_more=counted > QUEUE_COUNTED,
    )


def step_label(step: ApprovalStep) -> str:
    """A step as a message names it: the request's display name and the step, `atlas-web / orders (platform)`."""
    return f"{step.request.display_name} ({step.name})"


def step_labels(user, step_ids: Iterable[str]) -> dict[str, str]:
    """{step id: step_label} for those of `step_ids` the user may see (the others stay unnamed: a message
    must not tell anyone what a step they may not see is about), in one query."""
    ids = []
    for step_id in step_ids:
        try:
            ids.append(uuid.UUID(str(step_id)))
        except ValueError:
            continue
    steps = (
        steps_visible_to(user)
        .filter(pk__in=ids)
        .select_related("request__team", "request__parent__team", "request__cluster")
    )
    return {str(step.pk): step_label(step) for step in steps}


@dataclass(frozen=True)
class QueueOverview:
    """How many steps wait for a user now, and since when the oldest has waited (None: none waits)."""

    waiting: int
    oldest_since: datetime.datetime | None


def queue_overview(user) -> QueueOverview:
    """The home page's line for approvers: the size of their queue and the age of its oldest step,
    counted over exactly what the queue lists (`steps_decidable_by`), in one query."""
    if not user.is_authenticated:
        return QueueOverview(0, None)
    totals = steps_decidable_by(user).order_by().aggregate(waiting=Count("id"), oldest_since=Min("pending_since"))
    return QueueOverview(totals["waiting"], totals["oldest_since"])


@dataclass(frozen=True)
class Recipient:
    username: str
    email: str
    on_behalf_of: str = ""


def step_recipients(step: ApprovalStep, *, groups: tuple[str, ...] | None = None) -> list[Recipient]:
    """Who to tell that `step` waits for them: active members of its deciding groups (or `groups`) with an
    email address (a member who stands in for another today is told whose seat they may take); never the
    requester, nor anyone who decided on the request already."""
    users = get_user_model()
    groups = groups or step.deciding_groups
    request = step.request
    decided = set(Decision.objects.filter(step__request_id=request.pk).values_list("approver_id", flat=True)) | set(
        Decision.objects.filter(step__request_id=request.pk, on_behalf_of__isnull=False).values_list(
            "on_behalf_of_id", flat=True
        )
    )
    excluded = decided | {request.requester_id}
    members = list(users.objects.filter(groups__name__in=groups, is_active=True).exclude(pk__in=excluded).distinct())
    out = {m.pk: Recipient(m.get_username(), m.email) for m in members if m.email}
    today = timezone.localdate()
    for d in (
        Delegation.objects.filter(
            delegator__in=members,
            delegate_id__in=list(out),
            revoked_at__isnull=True,
            starts_on__lte=today,
            ends_on__gte=today,
        )
        .select_related("delegator")
        .order_by("id")
    ):
        member = out[d.delegate_id]
        if not member.on_behalf_of:
            out[d.delegate_id] = Recipient(member.username, member.email, d.delegator.get_username())
    return sorted(out.values(), key=lambda r: r.username)
