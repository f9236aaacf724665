"""Mirrors `team-<slug>` groups (from LDAP, or made by hand) into teams."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db.models.signals import post_save
from django.dispatch import receiver

from .services import team_for_group


@receiver(post_save, sender=Group, dispatch_uid="requests_app.team_for_group")
def group_saved(sender, instance: Group, created: bool, **kwargs) -> None:
    if created and instance.name.startswith(settings.LDAP_TEAM_GROUP_PREFIX):
        team_for_group(group=instance)
