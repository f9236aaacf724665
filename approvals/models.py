"""Approval policy versions, the chain chosen for each request, its steps and their decisions."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from requests_app.models import ResourceRequest


class ApprovalPolicy(models.Model):
    """One loaded version of the approval policy (YAML). The newest row is in force."""

    source = models.TextField(help_text="The policy as YAML (CONTRACT.md §4).")
    loaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    origin = models.CharField(max_length=255, blank=True, help_text="Where it came from: a file path or 'admin'.")
    note = models.CharField(max_length=500, blank=True, help_text="What changed and why (kept in the audit trail).")
    loaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-loaded_at", "-id"]
        verbose_name_plural = "approval policies"

    def __str__(self) -> str:
        return f"policy #{self.pk} ({self.loaded_at:%Y-%m-%d %H:%M})"


class ApprovalChain(models.Model):
    """The rule and steps chosen for one request when it was filed; frozen from then on."""

    request = models.OneToOneField(ResourceRequest, on_delete=models.CASCADE, related_name="approval_chain")
    rule = models.CharField(max_length=100)
    policy = models.ForeignKey(ApprovalPolicy, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.rule} for {self.request_id}"


class StepState(models.TextChoices):
    WAITING = "waiting"
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    SKIPPED = "skipped"


class ApprovalStep(ConcurrentTransitionMixin, models.Model):
    """One step of a chain: `required` approvals from distinct members of `group`."""

    TERMINAL = (StepState.APPROVED, StepState.REJECTED, StepState.SKIPPED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    chain = models.ForeignKey(ApprovalChain, on_delete=models.CASCADE, related_name="steps")
    request = models.ForeignKey(ResourceRequest, on_delete=models.CASCADE, related_name="approval_steps")
    order = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=100)
    group = models.CharField(max_length=150, help_text="The group whose members decide, with {team} resolved.")
    required = models.PositiveSmallIntegerField(default=1)
    escalate_to = models.CharField(
        max_length=150,
        blank=True,
        help_text="Asked too (and may decide) once the step waited past the escalation delay.",
    )
    state = FSMField(max_length=10, choices=StepState.choices, default=StepState.WAITING, protected=True)
    pending_since = models.DateTimeField(null=True, blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True, help_text="When its approvers were last reminded.")
    reminders_sent = models.PositiveSmallIntegerField(default=0)
    escalated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["request", "order"]
        constraints = [models.UniqueConstraint(fields=["chain", "order"], name="approvals_step_order_unique")]
        indexes = [
            models.Index(fields=["state", "group"]),
            models.Index(fields=["state", "pending_since"]),
            # Who may see a request: the requests whose steps a group decides, in any state.
            models.Index(fields=["group", "request"], name="approvals_step_group_request"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.group})"

    @property
    def deciding_groups(self) -> tuple[str, ...]:
        """The groups whose members may decide this step now: its group, plus the escalation group
        once the step has been escalated."""
        if self.escalate_to and self.escalated_at is not None:
            return (self.group, self.escalate_to)
        return (self.group,)

    @transition(field=state, source=StepState.WAITING, target=StepState.PENDING)
    def open(self) -> None:
        pass

    @transition(field=state, source=StepState.PENDING, target=StepState.APPROVED)
    def approve(self) -> None:
        pass

    @transition(field=state, source=StepState.PENDING, target=StepState.REJECTED)
    def reject(self) -> None:
        pass

    @transition(field=state, source=[StepState.WAITING, StepState.PENDING], target=StepState.SKIPPED)
    def skip(self) -> None:
        pass


class Verdict(models.TextChoices):
    APPROVE = "approve"
    REJECT = "reject"


class Decision(models.Model):
    """One approver's verdict on a step. Append-only.

    `approver` is the person who clicked; `on_behalf_of` is set when they decided as someone's delegate,
    and then it is that person's approval that counts ("frank on behalf of paula").
    """

    step = models.ForeignKey(ApprovalStep, on_delete=models.CASCADE, related_name="decisions")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="decisions")
    on_behalf_of = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="delegated_decisions"
    )
    delegation = models.ForeignKey("Delegation", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    verdict = models.CharField(max_length=10, choices=Verdict.choices)
    comment = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["step", "approver"], name="approvals_one_decision_per_approver"),
            models.UniqueConstraint(
                fields=["step", "on_behalf_of"],
                condition=models.Q(on_behalf_of__isnull=False),
                name="approvals_one_decision_per_principal",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.decided_by} {self.verdict}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValueError("Decisions are append-only.")
        super().save(*args, **kwargs)

    @property
    def decided_by(self) -> str:
        """Who decided, as the audit trail and the request page say it."""
        return decided_by(str(self.approver), str(self.on_behalf_of) if self.on_behalf_of_id is not None else None)


def decided_by(approver: str, on_behalf_of: str | None) -> str:
    """ "frank", or "frank on behalf of paula": Decision.decided_by from the usernames alone."""
    return f"{approver} on behalf of {on_behalf_of}" if on_behalf_of is not None else approver


class Delegation(models.Model):
    """`delegator` lets `delegate` decide in their place from `starts_on` to `ends_on`, both days included
    (dates in TIME_ZONE), e.g. during a holiday. The delegate decides the steps the delegator could decide;
    the decision is recorded as "delegate on behalf of delegator". Revoked rather than deleted.
    """

    delegator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="delegations_given")
    delegate = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="delegations_received"
    )
    starts_on = models.DateField()
    ends_on = models.DateField(help_text="The last day included.")
    reason = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-starts_on", "-id"]
        indexes = [models.Index(fields=["delegate", "starts_on", "ends_on"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_on__gte=models.F("starts_on")), name="approvals_delegation_range"
            ),
            models.CheckConstraint(
                condition=~models.Q(delegator=models.F("delegate")), name="approvals_delegation_not_to_self"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.delegator} → {self.delegate} ({self.starts_on} to {self.ends_on})"

    def covers(self, day) -> bool:
        return self.revoked_at is None and self.starts_on <= day <= self.ends_on
