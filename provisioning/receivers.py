"""Enqueues provisioning once an approval (or an admin's retry) is committed."""

from django.dispatch import receiver
from django_fsm.signals import post_transition

from requests_app.models import ResourceRequest

from .services.plan import PROVISIONED_ACTIONS
from .services.sweep import provisioning_enqueue


@receiver(post_transition, sender=ResourceRequest, dispatch_uid="provisioning.enqueue_on_approval")
def enqueue_on_approval(sender, instance: ResourceRequest, name: str, **kwargs) -> None:
    # Creates, upgrades and rollbacks apply objects; extensions and releases are the leases app's.
    if name in ("approve", "retry") and instance.action in PROVISIONED_ACTIONS:
        provisioning_enqueue(request=instance, reset=name == "retry")
