"""Opens a lease when a resource becomes active."""

from django.dispatch import receiver
from django_fsm.signals import post_transition

from requests_app.models import Resource

from .services import lease_open


@receiver(post_transition, sender=Resource, dispatch_uid="leases.open_on_activation")
def open_lease_on_activation(sender, instance: Resource, name: str, **kwargs) -> None:
    if name == "activate":
        lease_open(resource=instance)
