"""The Kubernetes objects applied for each resource, and the state of each request's provisioning."""

from __future__ import annotations

from django.db import models

from requests_app.models import Resource, ResourceRequest


class ManagedObject(models.Model):
    """One object that Leasehold applies (or is about to apply) to the cluster for a resource.

    The row is written before the object is applied (`applied_at` empty), so that an object whose
    apply answer was lost, or whose worker died right after the write, is still known and torn down.
    """

    resource = models.ForeignKey(Resource, on_delete=models.PROTECT, related_name="managed_objects")
    api_version = models.CharField(max_length=100)
    kind = models.CharField(max_length=100)
    namespace = models.CharField(max_length=63, blank=True)
    name = models.CharField(max_length=253)
    uid = models.CharField(max_length=64, blank=True)
    # Empty: planned, the apply is not confirmed yet.
    applied_at = models.DateTimeField(null=True, blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # The last difference the reconciler found between this object and the cluster, and when.
    drift = models.TextField(blank=True)
    drift_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["resource", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["resource", "api_version", "kind", "namespace", "name"], name="provisioning_object_unique"
            )
        ]

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


class Phase(models.TextChoices):
    QUEUED = "queued"
    APPLYING = "applying"
    RETRYING = "retrying"
    READINESS = "readiness", "Waiting for readiness"
    WAITING_CLUSTER = "waiting_cluster", "Waiting for its cluster to answer"
    DONE = "done"
    FAILED = "failed"


class ProvisioningJob(models.Model):
    """Where the provisioning of one create request stands: the claim a worker holds on it, when it
    was last enqueued or will be retried (what the stuck-request sweep looks at), and its phase."""

    request = models.OneToOneField(
        ResourceRequest, primary_key=True, on_delete=models.CASCADE, related_name="provisioning_job"
    )
    phase = models.CharField(max_length=20, choices=Phase.choices, default=Phase.QUEUED)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    # A worker holds the request while claimed_until is in the future and renews it after every step;
    # a worker that dies leaves a claim that simply runs out.
    claim_token = models.UUIDField(null=True, blank=True)
    # Which worker session holds the claim (database backend, host, process, thread): a claim whose
    # database session is gone is dead at once, without waiting for claimed_until.
    claimed_by = models.CharField(max_length=200, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    retry_at = models.DateTimeField(null=True, blank=True)
    ready_deadline = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["enqueued_at"])]

    def __str__(self) -> str:
        return f"provisioning of {self.request_id}: {self.phase}"


class Release(models.Model):
    """One configuration an app ran: every create, upgrade and rollback keeps its full rendered objects,
    so a rollback re-applies exactly what ran then."""

    resource = models.ForeignKey(Resource, on_delete=models.PROTECT, related_name="releases")
    number = models.PositiveIntegerField()
    request = models.OneToOneField(ResourceRequest, on_delete=models.PROTECT, related_name="release")
    image_tag = models.CharField(max_length=128)
    spec = models.JSONField()
    manifests = models.JSONField(help_text="The objects as applied (apps hold no secrets).")
    rolled_back_from = models.PositiveIntegerField(null=True, blank=True, help_text="The release this one repeats.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["resource", "-number"]
        constraints = [models.UniqueConstraint(fields=["resource", "number"], name="provisioning_release_number")]

    def __str__(self) -> str:
        return f"{self.resource} release {self.number} ({self.image_tag})"
