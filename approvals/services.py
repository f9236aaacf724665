"""The approval engine: open a chain from the policy, record decisions, advance or reject; delegations,
reminders and escalation; loading the policy. Every change is audited."""

from __future__ import annotations

import datetime
import difflib
import logging
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from requests_app.batch import write_batch
from requests_app.errors import InvalidState, LeaseholdError, NotAllowed, ValidationFailed, public_message
from requests_app.models import Cluster, RequestState, ResourceRequest
from requests_app.services import audit_record, request_approve, request_reject, transition_apply

from . import notifications
from .directory import groups_at_decision_time
from .models import ApprovalChain, ApprovalPolicy, ApprovalStep, Decision, Delegation, StepState, Verdict
from .policy import Policy, PolicyError, parse_policy
from .selectors import (
    active_delegations_to,
    approval_route,
    approver_groups,
    policy_source_in_force,
    steps_visible_to,
    user_group_names,
)

logger = logging.getLogger(__name__)


@transaction.atomic
def chain_open(*, request: ResourceRequest) -> ApprovalChain:
    """Freeze the matching rule's steps on the request; approve at once when the rule has none."""
    route = approval_route(request)
    chain = ApprovalChain.objects.create(request=request, rule=route.rule, policy=route.policy_row)
    steps = [
        ApprovalStep(
            chain=chain,
            request=request,
            order=i,
            name=s.name,
            group=s.group,
            required=s.required,
            escalate_to=s.escalate_to,
        )
        for i, s in enumerate(route.steps)
    ]
    ApprovalStep.objects.bulk_create(steps)
    audit_record(
        actor=None,
        verb="approval_routed",
        target=request,
        detail=f"rule {route.rule} of {route.policy_label}: "
        + (", ".join(f"{s.name} ({s.group}, {s.required} needed)" for s in steps) or "no steps"),
    )
    if steps:
        _step_open(steps[0], request=request)
    else:
        request_approve(request=request, actor=None, detail=f"auto-approved by rule {route.rule}")
    return chain


def chain_close(*, request: ResourceRequest, reason: str) -> int:
    """Skip the steps still waiting or pending on a request that left approval without a decision (it was
    cancelled), so they leave every queue and reminder. Runs inside the caller's transaction."""
    open_steps = request.approval_steps.filter(state__in=[StepState.WAITING, StepState.PENDING])
    closed = 0
    for step in open_steps:
        transition_apply(step, "skip", actor=None, verb="step_closed", request=request, detail=f"{step.name}: {reason}")
        closed += 1
    return closed


def _step_open(step: ApprovalStep, *, request: ResourceRequest) -> None:
    step.pending_since = timezone.now()
    transition_apply(
        step,
        "open",
        actor=None,
        verb="step_opened",
        request=request,
        detail=f"{step.name} ({step.group})",
        changed=["pending_since"],
    )
    notifications.after_commit(notifications.notify_step_pending, step.pk)


# --- decisions -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Standing:
    """Who may decide what, read from the directory once, before any row is locked."""

    user_id: int
    groups: frozenset[str] | None  # None: the directory did not confirm the account
    # Each delegation in force to the user, with the approver groups both people are in now.
    delegations: tuple[tuple[Delegation, frozenset[str]], ...] = field(default=())


def standing_of(user, *, day: datetime.date | None = None) -> Standing:
    """The user's groups and the delegations they may use today, as the directory says now.

    A delegation lends the delegator's seat only in the approver groups both people are in now. One that
    no longer holds (either side inactive, or no approver group in common) is ended here, audited; one
    whose delegator the directory does not confirm right now lends nothing but stays.
    """
    groups = groups_at_decision_time(user)
    lent = []
    for delegation in active_delegations_to(user, day or timezone.localdate()):
        delegator = delegation.delegator
        if not (delegator.is_active and user.is_active):
            delegation_end(delegation=delegation, reason=_inactive_reason(delegator, user))
            continue
        # Re-reading the delegator mirrors the directory, which may end the delegation on its own
        # (receivers.py); the engine checks again under lock before using it.
        delegator_groups = groups_at_decision_time(delegator)
        if groups is None or delegator_groups is None:
            continue
        shared = approver_groups(groups & delegator_groups)
        if not shared:
            delegation_end(delegation=delegation, reason=_apart_reason(delegator, user))
            continue
        lent.append((delegation, frozenset(shared)))
    return Standing(user.pk, None if groups is None else frozenset(groups), tuple(lent))


def step_decide(
    *,
    step_id,
    user,
    verdict: str,
    comment: str = "",
    standing: Standing | None = None,
    seen: bool | None = None,
) -> ApprovalStep:
    """Record `user`'s verdict on a pending step and move the chain on.

    The decider's groups are read from the directory now (see directory.py). A delegate decides only
    steps of groups they are in themselves; while a delegation applies, the decision takes the
    delegator's seat: it is recorded as "user on behalf of delegator" and counts as the delegator's.

    A step the user may not see (selectors.steps_visible_to), neither by the groups they came with nor
    by the directory now, raises ApprovalStep.DoesNotExist exactly as an unknown id does, and leaves no
    trace in that request's trail. `seen` says whether they could see it before a caller that passes
    `standing` re-read the directory. Otherwise raises NotAllowed (separation of duties, group
    membership), InvalidState (decided already, request no longer pending, a concurrent decision won) or
    ValidationFailed (a rejection without a comment). A refusal is audited even though nothing else
    changes. Emails go out after the commit.
    """
    if seen is None:
        seen = steps_visible_to(user).filter(pk=step_id).exists()
    if standing is None:
        # Outside the transaction: a slow directory must not hold row locks.
        standing = standing_of(user)
    if not (seen or steps_visible_to(user).filter(pk=step_id).exists()):
        logger.warning("%s tried to decide step %s, which they may not see.", user.get_username(), step_id)
        raise ApprovalStep.DoesNotExist("No such step.")
    try:
        return _step_decide(step_id=step_id, user=user, verdict=verdict, comment=comment, standing=standing)
    except NotAllowed as exc:
        step = ApprovalStep.objects.select_related("request").filter(pk=step_id).first()
        if step is not None:
            audit_record(actor=user, verb="decision_refused", target=step.request, detail=f"{step.name}: {exc}")
        raise


def _principal(step: ApprovalStep, request: ResourceRequest, user, standing: Standing):
    """Whom `user` decides `step` for: the first delegator whose seat they may take on it, else
    themselves. Returns (principal, delegation); raises NotAllowed when nobody.

    A seat is taken only where the delegator could decide the step now: never on the delegator's own
    request, and not on a request where the delegator (or someone for them) decided already. The
    delegation row is locked, so a revocation racing this decision either comes first or waits.
    """
    deciding = set(step.deciding_groups)
    if standing.groups is None:
        raise NotAllowed(
            "The directory does not confirm your account or groups right now, so you cannot decide; "
            "try again later or ask an administrator."
        )
    for delegation, groups in standing.delegations:
        if not groups & deciding or delegation.delegator_id == request.requester_id:
            continue
        if (
            Decision.objects.filter(step__request=request)
            .filter(Q(approver_id=delegation.delegator_id) | Q(on_behalf_of_id=delegation.delegator_id))
            .exists()
        ):
            continue
        if not Delegation.objects.select_for_update().filter(pk=delegation.pk, revoked_at__isnull=True).exists():
            continue
        return delegation.delegator, delegation
    if standing.groups & deciding:
        return user, None
    raise NotAllowed(f"Only members of {' or '.join(sorted(deciding))} decide the {step.name} step.")


# What a decision check needs to know of the decisions already made on a request: the step, who decided,
# on whose behalf, the verdict (read once per request, kept current while a batch decides on it).
Decided = tuple[uuid.UUID, int, int | None, str]


def _decided_on(request_ids) -> dict[uuid.UUID, list[Decided]]:
    """Every decision made so far on the given requests, by request, in one query."""
    decided: dict[uuid.UUID, list[Decided]] = {pk: [] for pk in request_ids}
    rows = Decision.objects.filter(step__request__in=request_ids).values_list(
        "step__request_id", "step_id", "approver_id", "on_behalf_of_id", "verdict"
    )
    for request_id, *decision in rows:
        decided[request_id].append(tuple(decision))  # type: ignore[arg-type]
    return decided


@transaction.atomic
def _step_decide(*, step_id, user, verdict: str, comment: str, standing: Standing) -> ApprovalStep:
    _verdict_check(verdict, comment)
    # Lock the request first: every decision on one request (and a cancel) is serialised on this row, so
    # two approvers racing for the last approval produce exactly one transition; the loser then reads
    # the step as decided and gets a 409.
    # Only the request's and the step's rows are locked (`of`): the team, requester and chain rows read
    # with them are shared, and locking them would serialise decisions on unrelated requests (approve-many).
    request_id = ApprovalStep.objects.values_list("request_id", flat=True).get(pk=step_id)
    request = (
        ResourceRequest.objects.select_for_update(of=("self",)).select_related("team", "requester").get(pk=request_id)
    )
    # Every step of the request in one read, in order (the one decided and the one that follows it).
    steps = list(
        ApprovalStep.objects.select_for_update(of=("self",))
        .select_related("chain")
        .filter(request=request)
        .order_by("order")
    )
    wanted = ApprovalStep._meta.pk.to_python(step_id)  # any spelling of the uuid the lookup above took
    step = next(s for s in steps if s.pk == wanted)
    for each in steps:
        each.request = request
    decided = _decided_on([request.pk])[request.pk]
    principal, delegation = _decision_check(step, user=user, standing=standing, decided=decided)
    with write_batch():  # the decision's state changes and audit rows (step closed, request approved) in one write
        return _decision_write(
            step,
            steps,
            user=user,
            verdict=verdict,
            comment=comment,
            principal=principal,
            delegation=delegation,
            decided=decided,
        )


def _verdict_check(verdict: str, comment: str) -> None:
    if verdict not in Verdict.values:
        raise ValidationFailed({"verdict": [f"Must be one of: {', '.join(Verdict.values)}."]})
    if verdict == Verdict.REJECT and not (comment or "").strip():
        raise ValidationFailed({"comment": ["Say why the request is rejected."]})


def _decision_check(step: ApprovalStep, *, user, standing: Standing, decided: list[Decided]):
    """Whether `user` may decide `step` now (its request locked): (principal, delegation), or raises
    NotAllowed or InvalidState. Writes nothing, so a refusal leaves the caller's transaction as it was."""
    request = step.request
    if request.requester_id == user.pk:
        raise NotAllowed("Nobody may decide on a request they filed.")
    principal, delegation = _principal(step, request, user, standing)
    if request.state != RequestState.PENDING_APPROVAL or step.state != StepState.PENDING:
        raise InvalidState(
            f"The {step.name} step is {step.state} and the request is {request.get_state_display().lower()}: "
            "there is nothing to decide any more (someone else may have decided it just now)."
        )
    people = {user.pk, principal.pk}
    involved = {d[0] for d in decided if d[1] in people or d[2] in people}
    if involved - {step.pk}:
        raise NotAllowed("Nobody may decide two steps of the same request.")
    if step.pk in involved:
        raise InvalidState("This step has already been decided by you or by the person you stand in for.")
    return principal, delegation


def _decision_write(
    step: ApprovalStep,
    steps: list[ApprovalStep],
    *,
    user,
    verdict: str,
    comment: str,
    principal,
    delegation: Delegation | None,
    decided: list[Decided],
) -> ApprovalStep:
    """Record the decision `_decision_check` allowed, audit it and move the chain on."""
    request = step.request
    comment = (comment or "").strip()
    decision = Decision.objects.create(
        step=step,
        approver=user,
        on_behalf_of=principal if delegation else None,
        delegation=delegation,
        verdict=verdict,
        comment=comment,
    )
    decided.append((step.pk, user.pk, decision.on_behalf_of_id, verdict))
    audit_record(
        actor=user,
        verb="step_approved" if verdict == Verdict.APPROVE else "step_rejected",
        target=request,
        detail=f"{step.name}: {decision.decided_by}" + (f": {comment}" if comment else ""),
    )
    if delegation is not None:
        audit_record(
            actor=user,
            verb="delegation_used",
            target=delegation,
            detail=f"{user} decided the {step.name} step of request {request.pk} on behalf of {principal}: {verdict}",
        )
    notifications.after_commit(notifications.notify_decision, decision.pk)
    if verdict == Verdict.REJECT:
        transition_apply(step, "reject", actor=user, verb="step_closed", request=request, detail=step.name)
        for later in [s for s in steps if s.state in (StepState.WAITING, StepState.PENDING)]:
            transition_apply(later, "skip", actor=None, verb="step_closed", request=request, detail=later.name)
        request_reject(request=request, actor=user, detail=f"{step.name}: {comment}", changed=[])
        return step

    # The approval just recorded counts (it is in `decided`): a step that needs one needs no count.
    approvals = sum(1 for d in decided if d[0] == step.pk and d[3] == Verdict.APPROVE)
    if step.required > 1 and approvals < step.required:
        return step
    transition_apply(step, "approve", actor=user, verb="step_closed", request=request, detail=step.name, changed=[])
    following = next((s for s in steps if s.state == StepState.WAITING), None)
    if following is not None:
        _step_open(following, request=request)
    else:
        # The request as the decision read it under its lock: nothing else of it changed.
        request_approve(request=request, actor=user, detail=f"all steps of rule {step.chain.rule} approved", changed=[])
    return step


@dataclass(frozen=True)
class Outcome:
    step_id: str
    ok: bool
    detail: str


# Steps that approve-many decides in one transaction. The chunks commit one after another, so the
# provisioning of the first chunk's requests starts while the next chunk is decided.
APPROVE_MANY_CHUNK = 10


def steps_approve_many(*, step_ids, user, comment: str = "") -> list[Outcome]:
    """Approve several steps at once (the queue's "approve selected"). Each step is its own decision, with
    the same checks, audit rows and notice as one decided alone; one refusal or lost race does not undo
    the others. A step the caller may not see is reported as "No such step.", as an unknown one is.

    The steps are decided APPROVE_MANY_CHUNK at a time, each chunk in one transaction: its requests and
    then their steps locked in one query each, in primary-key order (as every chunk and every single
    decision lock them: request before step, so none of them deadlock), the decisions made so far read in
    one query, and the audit rows of the whole chunk written in one insert. Every check runs on the locked
    rows before the decision writes anything, so a refused step leaves the others of its chunk standing.
    The notices are composed and sent together once all chunks are committed (outside a caller's
    transaction; inside one, the chunks are savepoints of it and each notice follows its commit)."""
    ids = list(dict.fromkeys(str(s) for s in step_ids))
    asked = {step_id: _as_uuid(step_id) for step_id in ids}
    visible = steps_visible_to(user)
    seen = set(visible.filter(pk__in=[u for u in asked.values() if u]).values_list("pk", flat=True))
    # Outside any transaction: a slow directory must not hold row locks.
    standing = standing_of(user)
    unseen = [u for u in asked.values() if u and u not in seen]
    if unseen:  # the directory may have put the user in a group since (step_decide's second look)
        seen |= set(steps_visible_to(user).filter(pk__in=unseen).values_list("pk", flat=True))
    outcomes: dict[str, Outcome] = {}
    decidable = []
    for step_id in ids:
        if asked[step_id] in seen:
            decidable.append(step_id)
            continue
        if asked[step_id] is not None:
            logger.warning("%s tried to decide step %s, which they may not see.", user.get_username(), step_id)
        outcomes[step_id] = Outcome(step_id, False, "No such step.")

    def decide_all() -> None:
        for i in range(0, len(decidable), APPROVE_MANY_CHUNK):
            chunk = {asked[step_id]: step_id for step_id in decidable[i : i + APPROVE_MANY_CHUNK]}
            outcomes.update(_steps_approve_chunk(chunk, user=user, comment=comment, standing=standing))

    if len(decidable) < 2 or transaction.get_connection().in_atomic_block:
        decide_all()
    else:
        with notifications.collecting():
            decide_all()
    return [outcomes[step_id] for step_id in ids]


@transaction.atomic
def _steps_approve_chunk(chunk: dict, *, user, comment: str, standing: Standing) -> dict[str, Outcome]:
    """Approve the steps `chunk` names (uuid: the id as asked) in this transaction; an outcome for each."""
    request_ids = set(ApprovalStep.objects.filter(pk__in=list(chunk)).values_list("request_id", flat=True))
    requests = {
        r.pk: r
        for r in ResourceRequest.objects.select_for_update(of=("self",))
        .select_related("team", "requester")
        .filter(pk__in=request_ids)
        .order_by("pk")
    }
    steps_of: dict = {pk: [] for pk in requests}
    for step in (
        ApprovalStep.objects.select_for_update(of=("self",))
        .select_related("chain")
        .filter(request__in=list(requests))
        .order_by("request_id", "order")
    ):
        step.request = requests[step.request_id]
        steps_of[step.request_id].append(step)
    found = {step.pk: step for steps in steps_of.values() for step in steps}
    decided = _decided_on(list(requests))
    outcomes = {}
    with write_batch():
        for pk, step_id in chunk.items():
            step = found.get(pk)
            if step is None:  # deleted since it was seen
                outcomes[step_id] = Outcome(step_id, False, "No such step.")
                continue
            try:
                principal, delegation = _decision_check(
                    step, user=user, standing=standing, decided=decided[step.request_id]
                )
            except NotAllowed as exc:
                audit_record(actor=user, verb="decision_refused", target=step.request, detail=f"{step.name}: {exc}")
                outcomes[step_id] = Outcome(step_id, False, public_message(exc))
                continue
            except LeaseholdError as exc:
                outcomes[step_id] = Outcome(step_id, False, public_message(exc))
                continue
            # Nothing here is refused any more: an error now is unexpected and rolls the chunk back.
            _decision_write(
                step,
                steps_of[step.request_id],
                user=user,
                verdict=Verdict.APPROVE,
                comment=comment,
                principal=principal,
                delegation=delegation,
                decided=decided[step.request_id],
            )
            outcomes[step_id] = Outcome(step_id, True, f"{step.name} approved")
    return outcomes


def _as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


# --- delegation ------------------------------------------------------------------------------------


# Said for an unknown name, an inactive account and anyone who may not be the delegate alike, so the
# answer does not tell who exists.
NOT_ELIGIBLE = "No such user, or they cannot be your delegate."
# "Today" differs across time zones: a delegation may start on the day before today in TIME_ZONE.
DELEGATION_START_TOLERANCE = datetime.timedelta(days=1)


def delegation_errors(
    *, delegator, delegate, starts_on: datetime.date, ends_on: datetime.date, today: datetime.date | None = None
) -> dict[str, list[str]]:
    """What is wrong with a delegation, by field (empty: nothing).

    The delegate must be an active account that shares at least one approver group with the delegator,
    as the directory says now; the range must start no earlier than yesterday and no later than
    LEASEHOLD_DELEGATION_MAX_DAYS ahead, end on or after its first day and last at most
    LEASEHOLD_DELEGATION_MAX_DAYS days (both ends included).
    """
    return _delegation_check(delegator, delegate, starts_on, ends_on, today)[0]


def _delegation_check(
    delegator, delegate, starts_on: datetime.date, ends_on: datetime.date, today: datetime.date | None
) -> tuple[dict[str, list[str]], set[str]]:
    """delegation_errors, and the approver groups the two share (read from the directory once)."""
    today = today or timezone.localdate()
    max_days = settings.LEASEHOLD_DELEGATION_MAX_DAYS
    errors: dict[str, list[str]] = {}
    shared: set[str] = set()
    if delegate is not None and delegator is not None and delegate.pk == delegator.pk:
        errors["delegate"] = ["Delegate to someone else."]
    else:
        shared = _shared_approver_groups(delegator, delegate) if delegate and delegator else set()
        if not shared:
            errors["delegate"] = [NOT_ELIGIBLE]
    if starts_on < today - DELEGATION_START_TOLERANCE:
        errors["starts_on"] = ["The first day is in the past."]
    elif starts_on > today + datetime.timedelta(days=max_days):
        errors["starts_on"] = [f"A delegation starts at most {max_days} days from today."]
    if ends_on < starts_on:
        errors["ends_on"] = ["The last day comes before the first."]
    elif ends_on < today:
        errors["ends_on"] = ["The range is over already."]
    elif (ends_on - starts_on).days + 1 > max_days:
        errors["ends_on"] = [f"A delegation lasts at most {max_days} days, both ends included."]
    return errors, shared


def _shared_approver_groups(delegator, delegate) -> set[str]:
    """The approver groups both are in now (as the directory says), when both are active."""
    if not (delegator.is_active and delegate.is_active):
        return set()
    delegator_groups = groups_at_decision_time(delegator)
    delegate_groups = groups_at_decision_time(delegate)
    if delegator_groups is None or delegate_groups is None:
        return set()
    return approver_groups(delegator_groups & delegate_groups)


@transaction.atomic
def delegation_create(
    *,
    delegator,
    delegate,
    starts_on: datetime.date,
    ends_on: datetime.date,
    reason: str = "",
    actor,
    today: datetime.date | None = None,
) -> Delegation:
    """Let `delegate` decide in `delegator`'s place from `starts_on` to `ends_on` (both included), in
    the approver groups both are in. `delegate` may be None (an unknown name): refused like any
    ineligible delegate. Only the delegator themselves or an admin may create one (the caller checks
    who `actor` is)."""
    errors, shared = _delegation_check(delegator, delegate, starts_on, ends_on, today)
    if errors:
        raise ValidationFailed(errors)
    delegation = Delegation.objects.create(
        delegator=delegator,
        delegate=delegate,
        starts_on=starts_on,
        ends_on=ends_on,
        reason=(reason or "").strip(),
        created_by=actor,
    )
    audit_record(
        actor=actor,
        verb="delegation_created",
        target=delegation,
        detail=f"{delegate} decides on behalf of {delegator} from {starts_on} to {ends_on} "
        f"in {', '.join(sorted(shared))}" + (f": {delegation.reason}" if delegation.reason else ""),
    )
    notifications.after_commit(notifications.notify_delegation, delegation.pk)
    return delegation


@transaction.atomic
def delegation_revoke(*, delegation: Delegation, actor, is_admin: bool = False) -> Delegation:
    """End a delegation now (the delegator, the delegate or an admin). Delegations are revoked, not deleted."""
    if not (is_admin or actor.pk in (delegation.delegator_id, delegation.delegate_id)):
        raise NotAllowed("Only the delegator, the delegate or an administrator can revoke a delegation.")
    now = timezone.now()
    if not Delegation.objects.filter(pk=delegation.pk, revoked_at__isnull=True).update(
        revoked_at=now, revoked_by=actor
    ):
        raise InvalidState("This delegation is revoked already.")
    delegation.refresh_from_db()
    audit_record(actor=actor, verb="delegation_revoked", target=delegation, detail=str(delegation))
    return delegation


@transaction.atomic
def delegation_end(*, delegation: Delegation, reason: str) -> bool:
    """End a delegation that no longer holds (nobody revoked it: the service found it void), audited
    with the reason. False when it had ended already."""
    if not Delegation.objects.filter(pk=delegation.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()):
        return False
    delegation.refresh_from_db()
    audit_record(actor=None, verb="delegation_ended", target=delegation, detail=f"{delegation}: {reason}")
    return True


def delegations_recheck(*, user=None) -> int:
    """End, audited, the open delegations that `user` gives or receives (every open one when None) and
    that no longer hold by what Django knows now: either side inactive, or no approver group in common.
    The receivers call this when an account is deactivated or leaves a group; a decision checks again
    against the directory (standing_of). Returns how many ended."""
    today = timezone.localdate()
    open_delegations = Delegation.objects.filter(revoked_at__isnull=True, ends_on__gte=today)
    if user is not None:
        open_delegations = open_delegations.filter(Q(delegator=user) | Q(delegate=user))
    ended = 0
    for delegation in open_delegations.select_related("delegator", "delegate"):
        delegator, delegate = delegation.delegator, delegation.delegate
        if not (delegator.is_active and delegate.is_active):
            reason = _inactive_reason(delegator, delegate)
        elif not approver_groups(user_group_names(delegator) & user_group_names(delegate)):
            reason = _apart_reason(delegator, delegate)
        else:
            continue
        ended += delegation_end(delegation=delegation, reason=reason)
    return ended


def _inactive_reason(delegator, delegate) -> str:
    gone = [str(u) for u in (delegator, delegate) if not u.is_active]
    return f"{' and '.join(gone)} {'is' if len(gone) == 1 else 'are'} no longer active"


def _apart_reason(delegator, delegate) -> str:
    return f"{delegator} and {delegate} no longer share an approver group"


# --- reminders and escalation ------------------------------------------------------------------------


@dataclass
class NudgeResult:
    reminded: list[str] = field(default_factory=list)
    escalated: list[str] = field(default_factory=list)


def approvals_nudge(*, now: datetime.datetime | None = None) -> NudgeResult:
    """One pass of reminders and escalation (the periodic task calls this; `now` is injectable).

    A pending step that has waited longer than APPROVAL_ESCALATION_HOURS and names an escalation group
    is escalated once: that group is asked and may decide it from then on. A pending step whose last
    nudge (or opening) is older than APPROVAL_REMINDER_HOURS reminds its approvers (again every
    APPROVAL_REMINDER_HOURS). Each step is claimed with a compare-and-set, so concurrent passes send one
    notice, and each notice is audited.
    """
    now = now or timezone.now()
    result = NudgeResult()
    pending = ApprovalStep.objects.filter(
        state=StepState.PENDING, request__state=RequestState.PENDING_APPROVAL, pending_since__isnull=False
    )
    escalate_before = now - datetime.timedelta(hours=settings.APPROVAL_ESCALATION_HOURS)
    for step_id in (
        pending.filter(escalated_at__isnull=True, pending_since__lt=escalate_before)
        .exclude(escalate_to="")
        .values_list("pk", flat=True)
    ):
        if _step_escalate(step_id=step_id, now=now):
            result.escalated.append(str(step_id))
    remind_before = now - datetime.timedelta(hours=settings.APPROVAL_REMINDER_HOURS)
    due = pending.filter(
        Q(reminded_at__isnull=True, pending_since__lt=remind_before) | Q(reminded_at__lt=remind_before)
    ).exclude(pk__in=result.escalated)
    for step_id, last in due.values_list("pk", "reminded_at"):
        if _step_remind(step_id=step_id, last=last, now=now):
            result.reminded.append(str(step_id))
    return result


@transaction.atomic
def _step_escalate(*, step_id, now: datetime.datetime) -> bool:
    claimed = ApprovalStep.objects.filter(pk=step_id, state=StepState.PENDING, escalated_at__isnull=True).update(
        escalated_at=now, reminded_at=now
    )
    if not claimed:
        return False
    step = ApprovalStep.objects.select_related("request").get(pk=step_id)
    waited = now - step.pending_since if step.pending_since else datetime.timedelta(0)
    audit_record(
        actor=None,
        verb="step_escalated",
        target=step.request,
        detail=f"{step.name}: waited {_hours(waited)} for {step.group}; {step.escalate_to} may decide it now",
    )
    notifications.after_commit(_notify_waiting, step_id, True)
    return True


@transaction.atomic
def _step_remind(*, step_id, last: datetime.datetime | None, now: datetime.datetime) -> bool:
    claimed = (
        ApprovalStep.objects.filter(pk=step_id, state=StepState.PENDING, reminded_at=last)
        if last
        else (ApprovalStep.objects.filter(pk=step_id, state=StepState.PENDING, reminded_at__isnull=True))
    )
    if not claimed.update(reminded_at=now, reminders_sent=F("reminders_sent") + 1):
        return False
    step = ApprovalStep.objects.select_related("request").get(pk=step_id)
    waited = now - step.pending_since if step.pending_since else datetime.timedelta(0)
    audit_record(
        actor=None,
        verb="step_reminded",
        target=step.request,
        detail=f"{step.name}: reminder #{step.reminders_sent} to {' and '.join(step.deciding_groups)} "
        f"after {_hours(waited)}",
    )
    notifications.after_commit(_notify_waiting, step_id, False)
    return True


def _notify_waiting(step_id, escalated: bool) -> None:
    recipients = notifications.notify_step_waiting(step_id, escalated=escalated)
    logger.info(
        "%s for step %s sent to %s",
        "Escalation" if escalated else "Reminder",
        step_id,
        ", ".join(r.username for r in recipients) or "nobody",
    )


def _hours(delta: datetime.timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.0f} h"


# --- policy ------------------------------------------------------------------------------------------


def policy_unknown_clusters(policy: Policy) -> str:
    """Why the policy names clusters that are not registered ("": it does not): a rule for a cluster that
    does not exist never matches, so a typo would route that cluster's requests to a laxer rule."""
    unknown = sorted(policy.cluster_names() - set(Cluster.objects.values_list("name", flat=True)))
    if not unknown:
        return ""
    return f"match.cluster names cluster(s) that are not registered: {', '.join(unknown)}"


@transaction.atomic
def policy_load(*, source: str, origin: str, actor, note: str = "") -> tuple[ApprovalPolicy, Policy]:
    """Validate a YAML policy and make it the one in force, as a new version (audited with who, where
    from and a diff against the previous version). Raises PolicyError and changes nothing on a bad
    document. Open chains keep the steps they were given."""
    policy = parse_policy(source)
    unknown = policy_unknown_clusters(policy)
    if unknown:
        raise PolicyError(unknown)
    previous = policy_source_in_force()
    row = ApprovalPolicy.objects.create(
        source=source, origin=origin, loaded_by=actor if actor else None, note=(note or "").strip()
    )
    diff = "".join(
        difflib.unified_diff(
            previous.splitlines(keepends=True), source.splitlines(keepends=True), "in force", f"policy #{row.pk}"
        )
    )
    audit_record(
        actor=actor,
        verb="policy_loaded",
        target=row,
        detail=f"policy #{row.pk} from {origin}: rules {', '.join(r.name for r in policy.rules)}"
        + (f"\nnote: {row.note}" if row.note else "")
        + ("\n" + diff if diff else "\n(no change to the text)"),
    )
    return row, policy
