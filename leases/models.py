"""Leases: how long a resource may live, and where it is on its way to reclamation."""

from __future__ import annotations

from django.db import models
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from requests_app.models import Resource


class LeaseState(models.TextChoices):
    ACTIVE = "active"
    GRACE = "grace"
    RECLAIMING = "reclaiming"
    RECLAIMED = "reclaimed"


class Lease(ConcurrentTransitionMixin, models.Model):
    """One per resource: it expires, passes through grace (quarantine), and is then reclaimed."""

    TERMINAL = (LeaseState.RECLAIMED,)

    resource = models.OneToOneField(Resource, on_delete=models.PROTECT, related_name="lease")
    starts_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)
    grace_until = models.DateTimeField(null=True, blank=True, db_index=True)
    extensions = models.PositiveIntegerField(default=0)
    state = FSMField(max_length=12, choices=LeaseState.choices, default=LeaseState.ACTIVE, protected=True)
    notices_sent = models.JSONField(default=list, blank=True, help_text="Days-before-expiry already notified.")
    reclaimed_at = models.DateTimeField(null=True, blank=True)
    last_report = models.TextField(blank=True, help_text="What the last reclamation pass found.")

    class Meta:
        ordering = ["expires_at"]

    def __str__(self) -> str:
        return f"lease of {self.resource} until {self.expires_at:%Y-%m-%d %H:%M}"

    @transition(field=state, source=LeaseState.ACTIVE, target=LeaseState.GRACE)
    def enter_grace(self, grace_until) -> None:
        self.grace_until = grace_until

    @transition(field=state, source=[LeaseState.ACTIVE, LeaseState.GRACE], target=LeaseState.RECLAIMING)
    def start_reclaim(self) -> None:
        pass

    @transition(field=state, source=LeaseState.RECLAIMING, target=LeaseState.RECLAIMED)
    def mark_reclaimed(self, at) -> None:
        self.reclaimed_at = at
