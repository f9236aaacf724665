"""Hand-over: the leases of owners who left their team's LDAP group go to the team."""

from __future__ import annotations

import operator
from datetime import datetime
from functools import reduce

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q

from requests_app.directory import directory_reread, is_directory_account, user_group_names
from requests_app.models import (
    Resource,
)
from requests_app.services import (
    audit_record,
)

from .. import notices
from ..models import OwnerCheck
from .opening import database_now
from .report import Outcome, ReclaimReport


def _owner_still_in_team(owner, group: str, cache: dict[int, set[str] | None]) -> bool:
    if owner.pk not in cache:
        cache[owner.pk] = _current_groups(owner)
    groups = cache[owner.pk]
    return groups is not None and owner.is_active and group in groups


def _current_groups(user) -> set[str] | None:
    """The user's groups, read from the directory when LDAP is configured; None when the account is gone."""
    # Directory accounts have no usable local password; local accounts are judged by their groups here.
    if is_directory_account(user):
        refreshed = directory_reread(user)
        if refreshed is None:
            return None
        user = refreshed
    return user_group_names(user)


def _local_groups(users: list) -> dict[int, set[str] | None]:
    """The groups of local (not directory) accounts, as `user_group_names` reads them, in one query for
    them all; a directory account is re-read on its own (`_current_groups`)."""
    groups: dict[int, set[str] | None] = {user.pk: set() for user in users}
    through = get_user_model().groups.through
    for user_id, name in through.objects.filter(user_id__in=list(groups)).values_list("user_id", "group__name"):
        groups[user_id].add(name)  # type: ignore[union-attr]
    return groups


def _owners_to_check(*, dry_run: bool, now: datetime) -> list[int]:
    """The owners this pass checks: every deactivated one, and the LEASEHOLD_HANDOVER_BATCH owners checked
    longest ago (never checked first). Each is recorded as checked (not in a dry run), so that every owner
    is checked at least once every ⌈owners ÷ batch⌉ passes, with one directory read each."""
    live = Resource.objects.filter(owner=OuterRef("pk")).exclude(state__in=Resource.TERMINAL)
    owners = get_user_model().objects.filter(Exists(live))
    deactivated = list(owners.filter(is_active=False).values_list("pk", flat=True))
    oldest = list(
        owners.filter(is_active=True)
        .order_by(F("owner_check__checked_at").asc(nulls_first=True), "pk")
        .values_list("pk", flat=True)[: settings.LEASEHOLD_HANDOVER_BATCH]
    )
    if not dry_run and oldest:
        OwnerCheck.objects.bulk_create(
            # In key order, so that two passes upserting overlapping batches lock rows in the same order.
            [OwnerCheck(user_id=pk, checked_at=now) for pk in sorted(oldest)],
            update_conflicts=True,
            unique_fields=["user"],
            update_fields=["checked_at"],
        )
    return deactivated + oldest


def hand_over_departed(*, dry_run: bool, report: ReclaimReport, now: datetime | None = None) -> None:
    """Resources whose owner left the team (or the directory) pass to the team, audited and notified.

    A pass checks a bounded batch of owners (`_owners_to_check`), each one's groups read once."""
    owners = _owners_to_check(dry_run=dry_run, now=now or database_now())
    if not owners:
        return
    live = Resource.objects.filter(owner_id__in=owners).exclude(state__in=Resource.TERMINAL)
    # One row per owner and team, not one per resource: an owner with many resources is checked once per team.
    pairs = list(live.order_by().values_list("owner_id", "team_id", "team__group__name").distinct())
    users = get_user_model().objects.in_bulk({owner for owner, _, _ in pairs})
    cache: dict[int, set[str] | None] = _local_groups(
        [user for user in users.values() if not is_directory_account(user)]
    )
    left = [Q(owner_id=o, team_id=t) for o, t, group in pairs if not _owner_still_in_team(users[o], group, cache)]
    if not left:
        return
    for resource in (
        live.filter(reduce(operator.or_, left)).select_related("owner", "team", "parent__team").order_by("pk")
    ):
        former = resource.owner.get_username()
        report.add(
            Outcome.HANDED_OVER, str(resource), resource_id=resource.pk, detail=f"{former} → team {resource.team.slug}"
        )
        if dry_run:
            continue
        with transaction.atomic():
            if Resource.objects.filter(pk=resource.pk, owner_id=resource.owner_id).update(owner=None) != 1:
                continue
            resource.owner = None
            audit_record(
                actor=None,
                verb="owner_left",
                target=resource,
                request=resource.created_by_request,
                detail=f"{former} is no longer in team {resource.team.slug}; the team owns it now",
            )
            notices.handover_notice(resource, former)
