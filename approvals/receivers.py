"""Opens an approval chain whenever a request is filed."""

from django.dispatch import receiver

from requests_app.signals import request_submitted

from .services import chain_open


@receiver(request_submitted, dispatch_uid="approvals.chain_open")
def open_chain_for_request(sender, request, **kwargs) -> None:
    chain_open(request=request)
