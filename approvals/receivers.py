"""Opens an approval chain whenever a request is filed; closes its open steps when it is cancelled; ends
the delegations that stop holding when an account is deactivated or leaves a group."""

from django.contrib.auth import get_user_model
from django.db.models.signals import m2m_changed, post_save
from django.dispatch import receiver
from django_fsm.signals import post_transition

from requests_app.models import ResourceRequest
from requests_app.signals import request_submitted

from .services import chain_close, chain_open, delegations_recheck

User = get_user_model()


@receiver(request_submitted, dispatch_uid="approvals.chain_open")
def open_chain_for_request(sender, request, **kwargs) -> None:
    chain_open(request=request)


@receiver(post_transition, sender=ResourceRequest, dispatch_uid="approvals.close_steps_on_cancel")
def close_steps_of_cancelled_request(sender, instance: ResourceRequest, name: str, **kwargs) -> None:
    if name == "cancel":
        chain_close(request=instance, reason="request cancelled")


@receiver(post_save, sender=User, dispatch_uid="approvals.end_delegations_of_inactive_user")
def end_delegations_of_inactive_user(sender, instance, created: bool, **kwargs) -> None:
    if not created and not instance.is_active:
        delegations_recheck(user=instance)


@receiver(m2m_changed, sender=User.groups.through, dispatch_uid="approvals.end_delegations_on_group_change")
def end_delegations_on_group_change(sender, instance, action: str, reverse: bool, pk_set, **kwargs) -> None:
    """Someone left a group (in the admin, or as the directory is mirrored at login and decision time)."""
    if action not in ("post_remove", "post_clear"):
        return
    if not reverse:
        delegations_recheck(user=instance)
    elif pk_set:
        for user in User.objects.filter(pk__in=pk_set):
            delegations_recheck(user=user)
    else:
        delegations_recheck()  # a group was emptied: whose delegations it carried is no longer known
