"""Opens a lease when a resource becomes active."""

from django.db import transaction
from django.dispatch import receiver
from django_fsm.signals import post_transition

from requests_app.models import Action, Resource, ResourceRequest

from .kinds import LEASE_KINDS
from .services.extension import publish
from .services.opening import lease_open


@receiver(post_transition, sender=Resource, dispatch_uid="leases.open_on_activation")
def open_lease_on_activation(sender, instance: Resource, name: str, **kwargs) -> None:
    if name == "activate":
        # The transition's caller saves the resource next (see transition_apply), the expiry with it.
        lease_open(resource=instance, activating=True)
        restores = LEASE_KINDS.get(instance.kind).backed_up
        if restores and instance.created_by_request.frozen.get("restore_from"):
            from .tasks import start_restore  # Celery is imported by what sends a task, not at start-up

            resource_id, cluster_id = str(instance.pk), instance.cluster_id
            transaction.on_commit(lambda: publish(start_restore, resource_id, cluster_id=cluster_id), robust=True)


@receiver(post_transition, sender=ResourceRequest, dispatch_uid="leases.fulfil_extension")
def fulfil_extension_on_approval(sender, instance: ResourceRequest, name: str, **kwargs) -> None:
    if name == "approve" and instance.action == Action.EXTEND:
        from .tasks import fulfil_extension  # Celery is imported by what sends a task, not at start-up

        request_id, cluster_id = str(instance.pk), instance.cluster_id
        transaction.on_commit(lambda: publish(fulfil_extension, request_id, cluster_id=cluster_id), robust=True)
