"""Approval policy versions, the chain chosen for each request, its steps and their decisions."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django_fsm import FSMField, transition

from requests_app.models import ResourceRequest


class ApprovalPolicy(models.Model):
    """One loaded version of the approval policy (YAML). The newest row is in force."""

    source = models.TextField(help_text="The policy as YAML (CONTRACT.md §4).")
    loaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    origin = models.CharField(max_length=255, blank=True, help_text="Where it came from: a file path or 'admin'.")
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


class ApprovalStep(models.Model):
    """One step of a chain: `required` approvals from distinct members of `group`."""

    TERMINAL = (StepState.APPROVED, StepState.REJECTED, StepState.SKIPPED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    chain = models.ForeignKey(ApprovalChain, on_delete=models.CASCADE, related_name="steps")
    request = models.ForeignKey(ResourceRequest, on_delete=models.CASCADE, related_name="approval_steps")
    order = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=100)
    group = models.CharField(max_length=150, help_text="The group whose members decide, with {team} resolved.")
    required = models.PositiveSmallIntegerField(default=1)
    state = FSMField(max_length=10, choices=StepState.choices, default=StepState.WAITING, protected=True)
    pending_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["request", "order"]
        constraints = [models.UniqueConstraint(fields=["chain", "order"], name="approvals_step_order_unique")]
        indexes = [models.Index(fields=["state", "group"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.group})"

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
    """One approver's verdict on a step. Append-only."""

    step = models.ForeignKey(ApprovalStep, on_delete=models.CASCADE, related_name="decisions")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="decisions")
    verdict = models.CharField(max_length=10, choices=Verdict.choices)
    comment = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["step", "approver"], name="approvals_one_decision_per_approver"),
        ]

    def __str__(self) -> str:
        return f"{self.approver} {self.verdict}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValueError("Decisions are append-only.")
        super().save(*args, **kwargs)
