"""Enqueues provisioning once an approval is committed."""

from django.db import transaction
from django.dispatch import receiver
from django_fsm.signals import post_transition

from requests_app.models import ResourceRequest

from .tasks import provision_request


@receiver(post_transition, sender=ResourceRequest, dispatch_uid="provisioning.enqueue_on_approval")
def enqueue_on_approval(sender, instance: ResourceRequest, name: str, **kwargs) -> None:
    if name == "approve":
        request_id = str(instance.pk)
        transaction.on_commit(lambda: provision_request.delay(request_id))
