"""Opens an approval chain whenever a request is filed; closes its open steps when it is cancelled."""

from django.dispatch import receiver
from django_fsm.signals import post_transition

from requests_app.models import ResourceRequest
from requests_app.signals import request_submitted

from .services import chain_close, chain_open


@receiver(request_submitted, dispatch_uid="approvals.chain_open")
def open_chain_for_request(sender, request, **kwargs) -> None:
    chain_open(request=request)


@receiver(post_transition, sender=ResourceRequest, dispatch_uid="approvals.close_steps_on_cancel")
def close_steps_of_cancelled_request(sender, instance: ResourceRequest, name: str, **kwargs) -> None:
    if name == "cancel":
        chain_close(request=instance, reason="request cancelled")
