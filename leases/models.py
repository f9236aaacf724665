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
    quarantined_replicas = models.JSONField(
        default=dict, blank=True, help_text="Replica counts of the workloads scaled to zero in grace, to restore."
    )
    last_manifests = models.JSONField(
        default=list, blank=True, help_text="The objects as last rendered (no secrets), kept to restore from."
    )
    # A pass (or a release) holds the lease while it calls the cluster, without a row lock: others skip
    # it until the claim is released, or runs out when the process holding it died.
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["expires_at"]

    def __str__(self) -> str:
        return f"lease of {self.resource} until {self.expires_at:%Y-%m-%d %H:%M}"

    @transition(field=state, source=LeaseState.ACTIVE, target=LeaseState.GRACE)
    def enter_grace(self, grace_until) -> None:
        self.grace_until = grace_until

    @transition(field=state, source=LeaseState.GRACE, target=LeaseState.ACTIVE)
    def restore(self) -> None:
        self.grace_until = None

    @transition(field=state, source=[LeaseState.ACTIVE, LeaseState.GRACE], target=LeaseState.RECLAIMING)
    def start_reclaim(self) -> None:
        pass

    @transition(field=state, source=LeaseState.RECLAIMING, target=LeaseState.RECLAIMED)
    def mark_reclaimed(self, at) -> None:
        self.reclaimed_at = at


class BackupState(models.TextChoices):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class BackupKind(models.TextChoices):
    DUMP = "dump"
    RESTORE = "restore"


class Backup(models.Model):
    """A pg_dump of a database taken by a Kubernetes Job before the database is deleted, or the
    pg_restore of such a dump into a database recreated from it."""

    resource = models.ForeignKey(Resource, on_delete=models.PROTECT, related_name="backups")
    kind = models.CharField(max_length=10, choices=BackupKind.choices, default=BackupKind.DUMP)
    job_namespace = models.CharField(max_length=63)
    job_name = models.CharField(max_length=63)
    location = models.CharField(max_length=500, help_text="Where the dump is, e.g. pvc://leasehold-backups/atlas/...")
    state = models.CharField(max_length=10, choices=BackupState.choices, default=BackupState.RUNNING)
    detail = models.TextField(blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"backup of {self.resource} ({self.state})"
