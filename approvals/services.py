"""The approval engine: open a chain from the policy, record decisions, advance or reject."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from requests_app.errors import InvalidState, NotAllowed, ValidationFailed
from requests_app.models import RequestState, ResourceRequest
from requests_app.services import audit_record, request_approve, request_reject, transition_apply

from .models import ApprovalChain, ApprovalPolicy, ApprovalStep, Decision, StepState, Verdict
from .policy import Policy, parse_policy
from .selectors import policy_in_force, request_facts, user_group_names


@transaction.atomic
def chain_open(*, request: ResourceRequest) -> ApprovalChain:
    """Freeze the matching rule's steps on the request; approve at once when the rule has none."""
    policy, policy_row = policy_in_force()
    rule = policy.rule_for(request_facts(request))
    chain = ApprovalChain.objects.create(request=request, rule=rule.name, policy=policy_row)
    steps = [
        ApprovalStep(
            chain=chain,
            request=request,
            order=i,
            name=s.name,
            group=s.group_for(request.team.slug),
            required=s.required,
        )
        for i, s in enumerate(rule.steps)
    ]
    ApprovalStep.objects.bulk_create(steps)
    audit_record(
        actor=None,
        verb="approval_routed",
        target=request,
        detail=f"rule {rule.name}: " + (", ".join(f"{s.name} ({s.group})" for s in steps) or "no steps"),
    )
    if steps:
        _open_step(steps[0])
    else:
        request_approve(request=request, actor=None, detail=f"auto-approved by rule {rule.name}")
    return chain


def _open_step(step: ApprovalStep) -> None:
    step.open()
    step.pending_since = timezone.now()
    step.save()


def step_decide(*, step_id, user, verdict: str, comment: str = "") -> ApprovalStep:
    """Record `user`'s verdict on a pending step and move the chain on.

    Raises NotAllowed (separation of duties, group membership), InvalidState (decided already,
    request no longer pending) or ValidationFailed (a rejection without a comment). A refusal is
    audited even though nothing else changes.
    """
    try:
        return _step_decide(step_id=step_id, user=user, verdict=verdict, comment=comment)
    except NotAllowed as exc:
        step = ApprovalStep.objects.select_related("request").filter(pk=step_id).first()
        if step is not None:
            audit_record(actor=user, verb="decision_refused", target=step.request, detail=f"{step.name}: {exc}")
        raise


@transaction.atomic
def _step_decide(*, step_id, user, verdict: str, comment: str) -> ApprovalStep:
    if verdict not in Verdict.values:
        raise ValidationFailed({"verdict": [f"Must be one of: {', '.join(Verdict.values)}."]})
    comment = (comment or "").strip()
    if verdict == Verdict.REJECT and not comment:
        raise ValidationFailed({"comment": ["Say why the request is rejected."]})
    # Lock the request first: every decision on one request is serialised on this row, so two
    # approvers racing for the last approval produce exactly one transition.
    step = ApprovalStep.objects.select_related("request").get(pk=step_id)
    request = ResourceRequest.objects.select_for_update().select_related("team").get(pk=step.request_id)
    step = ApprovalStep.objects.select_for_update().get(pk=step_id)
    step.request = request

    if request.requester_id == user.pk:
        raise NotAllowed("Nobody may decide on a request they filed.")
    if step.group not in user_group_names(user):
        raise NotAllowed(f"Only members of {step.group} decide the {step.name} step.")
    if request.state != RequestState.PENDING_APPROVAL or step.state != StepState.PENDING:
        raise InvalidState(f"This step is {step.state} and the request is {request.state}; nothing to decide.")
    if Decision.objects.filter(step__request=request, approver=user).exclude(step=step).exists():
        raise NotAllowed("Nobody may decide two steps of the same request.")
    if Decision.objects.filter(step=step, approver=user).exists():
        raise InvalidState("You have already decided this step.")

    Decision.objects.create(step=step, approver=user, verdict=verdict, comment=comment)
    audit_record(
        actor=user,
        verb=f"step_{verdict}d" if verdict == Verdict.APPROVE else "step_rejected",
        target=request,
        detail=f"{step.name}: {comment}".rstrip(": "),
    )
    if verdict == Verdict.REJECT:
        transition_apply(step, "reject", actor=user, verb="step_closed", request=request, detail=step.name)
        for later in request.approval_steps.filter(state__in=[StepState.WAITING, StepState.PENDING]):
            transition_apply(later, "skip", actor=None, verb="step_closed", request=request, detail=later.name)
        request_reject(request=request, actor=user, detail=f"{step.name}: {comment}")
        return step

    approvals = step.decisions.filter(verdict=Verdict.APPROVE).count()
    if approvals < step.required:
        return step
    transition_apply(step, "approve", actor=user, verb="step_closed", request=request, detail=step.name)
    following = request.approval_steps.filter(state=StepState.WAITING).order_by("order").first()
    if following is not None:
        _open_step(following)
    else:
        request_approve(request=request, actor=user, detail=f"all steps of rule {request.approval_chain.rule} approved")
    return step


@transaction.atomic
def policy_load(*, source: str, origin: str, actor) -> tuple[ApprovalPolicy, Policy]:
    """Validate a YAML policy and make it the one in force (audited). Open chains keep their steps."""
    policy = parse_policy(source)
    row = ApprovalPolicy.objects.create(source=source, origin=origin, loaded_by=actor if actor else None)
    audit_record(
        actor=actor,
        verb="policy_loaded",
        target=row,
        detail=f"from {origin}: rules {', '.join(r.name for r in policy.rules)}",
    )
    return row, policy
