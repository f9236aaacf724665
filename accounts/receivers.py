"""A user's API tokens end when the account is deactivated or gets a new password.

Knox already refuses tokens of inactive users; deleting them as well means that re-activating an
account does not bring old tokens back to life.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from .services import tokens_end

User = get_user_model()


@receiver(pre_save, sender=User, dispatch_uid="accounts.note_password_change")
def note_password_change(sender, instance, raw=False, update_fields=None, **kwargs) -> None:
    instance._leasehold_password_changed = False
    if raw or instance.pk is None or (update_fields is not None and "password" not in update_fields):
        return
    stored = sender._default_manager.filter(pk=instance.pk).values_list("password", flat=True).first()
    if stored is None or stored == instance.password:
        return
    # Django re-hashes a password on login when the hasher's parameters changed (check_password saves
    # with update_fields=["password"] and no new raw password): the same password, so no revocation.
    rehash = update_fields is not None and set(update_fields) == {"password"} and instance._password is None
    instance._leasehold_password_changed = not rehash


@receiver(post_save, sender=User, dispatch_uid="accounts.end_tokens")
def end_tokens(sender, instance, created=False, raw=False, **kwargs) -> None:
    if raw or created:
        return
    if not instance.is_active:
        tokens_end(user=instance, reason="account deactivated")
    elif getattr(instance, "_leasehold_password_changed", False):
        tokens_end(user=instance, reason="password changed")
