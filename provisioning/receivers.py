"""Enqueues provisioning once an approval (or an admin's retry) is committed, and the requests that waited
for a cluster once it answers again."""

from django.dispatch import receiver
from django_fsm.signals import post_transition

from requests_app.models import ResourceRequest

from .services.plan import PROVISIONED_ACTIONS
from .services.sweep import provisioning_enqueue, provisioning_resume
from .signals import cluster_recovered


@receiver(post_transition, sender=ResourceRequest, dispatch_uid="provisioning.enqueue_on_approval")
def enqueue_on_approval(sender, instance: ResourceRequest, name: str, **kwargs) -> None:
    # Creates, upgrades and rollbacks apply objects; extensions and releases are the leases app's.
    if name in ("approve", "retry") and instance.action in PROVISIONED_ACTIONS:
        provisioning_enqueue(request=instance, reset=name == "retry")


@receiver(cluster_recovered, dispatch_uid="provisioning.resume_on_recovery")
def resume_when_a_cluster_recovers(sender, cluster, **kwargs) -> None:
    """The health check saw a cluster answer again: its waiting requests are enqueued at once."""
    provisioning_resume(cluster_name=cluster.name)
