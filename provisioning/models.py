"""The Kubernetes objects applied for each resource, so that teardown deletes exactly those."""

from __future__ import annotations

from django.db import models

from requests_app.models import Resource


class ManagedObject(models.Model):
    """One object that Leasehold applied to the cluster for a resource."""

    resource = models.ForeignKey(Resource, on_delete=models.PROTECT, related_name="managed_objects")
    api_version = models.CharField(max_length=100)
    kind = models.CharField(max_length=100)
    namespace = models.CharField(max_length=63, blank=True)
    name = models.CharField(max_length=253)
    uid = models.CharField(max_length=64, blank=True)
    applied_at = models.DateTimeField()
    deleted_at = models.DateTimeField(null=True, blank=True)

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
