"""Leases: how long a resource may live, and where it is on its way to reclamation."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from requests_app.models import Resource


class LeaseState(models.TextChoices):
    ACTIVE = "active"
    GRACE = "grace"
    RECLAIMING = "reclaiming"
    RECLAIMED = "reclaimed"


# What a resource's `lease` section shows (the API's LeaseSerializer, and what lists read of a lease).
LEASE_SECTION_FIELDS = ("state", "starts_at", "expires_at", "grace_until", "extensions", "reclaimed_at", "last_report")


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
    # When the next notice falls due (the largest threshold not yet notified); kept by `save()` from
    # `expires_at` and `notices_sent`, so that a pass selects only the leases that cross a threshold.
    next_notice_at = models.DateTimeField(null=True, blank=True, editable=False)
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
        # What a reclamation pass selects, each by an index that leaves out the reclaimed leases (the
        # bulk of the table after a while): the pass costs what is due, not what exists.
        indexes = [
            # With the id: the reclamation pass reads these in keyset pages of (time, id) (in_key_order).
            models.Index(fields=["expires_at", "id"], name="lease_active_expiry", condition=Q(state="active")),
            models.Index(
                fields=["next_notice_at"],
                name="lease_notice_due",
                condition=Q(state="active", next_notice_at__isnull=False),
            ),
            models.Index(fields=["grace_until", "id"], name="lease_grace_until", condition=Q(state="grace")),
            models.Index(fields=["id"], name="lease_reclaiming", condition=Q(state="reclaiming")),
            # The dashboard's "reclaimed in the last 30 days", newest first.
            models.Index(fields=["-reclaimed_at"], name="lease_reclaimed_recent", condition=Q(state="reclaimed")),
            models.Index(
                fields=["id"],
                name="lease_unrestored",
                condition=Q(state="active") & ~Q(quarantined_replicas={}),
            ),
        ]

    def __str__(self) -> str:
        return f"lease of {self.resource} until {self.expires_at:%Y-%m-%d %H:%M}"

    def save(self, *args, **kwargs) -> None:
        self.derive()
        fields = kwargs.get("update_fields")
        if fields is not None and {"expires_at", "notices_sent"} & set(fields):
            kwargs["update_fields"] = [*fields, "next_notice_at"]
        super().save(*args, **kwargs)

    def derive(self) -> None:
        """Set what the lease's other fields decide (the next notice's time), as `save()` does: for a
        lease written without it (batch_create)."""
        self.next_notice_at = next_notice_at(self.expires_at, self.notices_sent)

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


def next_notice_at(expires_at: datetime | None, notices_sent: list[int]) -> datetime | None:
    """When the largest threshold of LEASE_NOTICE_DAYS not notified yet is crossed (None: all were)."""
    pending = [d for d in settings.LEASE_NOTICE_DAYS if d not in (notices_sent or [])]
    if expires_at is None or not pending:
        return None
    return expires_at - timedelta(days=max(pending))


class OwnerCheck(models.Model):
    """When the reclamation pass last checked that a user still belongs to the teams of what they own:
    each pass checks the owners checked longest ago (a bounded batch), so that the directory is read
    for a few owners per pass, not for every resource."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="owner_check"
    )
    checked_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"owner {self.user_id} checked {self.checked_at:%Y-%m-%d %H:%M}"


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
        # The metrics' backups by kind and outcome: an index-only count.
        indexes = [models.Index(fields=["kind", "state"], name="backup_kind_state")]

    def __str__(self) -> str:
        return f"backup of {self.resource} ({self.state})"


class ReclaimPass(models.Model):
    """One reclamation pass that ran (dry runs are not recorded): when, for how long, and how many
    leases it moved on at each stage. Written by the process that ran it (the CronJob, a worker, the
    command), read by /metrics: the CronJob is gone before anyone could scrape it, so its figures live
    here (`leasehold_reclaim_last_success_timestamp_seconds` and the alert on it)."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    duration_seconds = models.FloatField()
    completed = models.BooleanField(help_text="False: the pass stopped with an error (see `error`).")
    origin = models.CharField(max_length=20, help_text="command (the CronJob) or task (beat)")
    outcomes = models.JSONField(default=dict, blank=True, help_text="Leases (or mails) per stage of the pass.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-finished_at"]
        indexes = [
            models.Index(fields=["-finished_at"], name="reclaim_pass_last"),
            models.Index(fields=["-finished_at"], name="reclaim_pass_last_success", condition=Q(completed=True)),
        ]
        verbose_name_plural = "reclamation passes"

    def __str__(self) -> str:
        return f"reclamation pass at {self.finished_at:%Y-%m-%d %H:%M:%S} ({'ok' if self.completed else 'failed'})"
