"""Emails about leases: expiry notices, quarantine, hand-over, failed backups. Sent after commit;
a mail server that is down is logged and never undoes what the pass did."""

from __future__ import annotations

import logging
import smtplib

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse

from requests_app.models import Resource

log = logging.getLogger(__name__)


def resource_link(resource: Resource) -> str:
    return f"{settings.LEASEHOLD_BASE_URL}{reverse('resource-detail', args=[resource.pk])}"


def owner_and_team(resource: Resource) -> list[str]:
    """The owner's address and the team's, without duplicates or blanks."""
    addresses = []
    if resource.owner is not None:
        addresses.append(resource.owner.email)
    addresses += list(resource.team.group.user_set.values_list("email", flat=True))
    return sorted({a for a in addresses if a})


def _send(subject: str, body: str, to: list[str]) -> None:
    if not to:
        return
    try:
        send_mail(f"[Leasehold] {subject}", body, settings.DEFAULT_FROM_EMAIL, to)
    except (smtplib.SMTPException, OSError):
        log.exception("could not send %r to %s", subject, to)


def send_after_commit(subject: str, body: str, to: list[str]) -> None:
    transaction.on_commit(lambda: _send(subject, body, to), robust=True)


def _what(resource: Resource) -> str:
    return f"{resource.kind} {resource.namespace_name if resource.kind == 'namespace' else resource.name}"


def expiry_notice(resource: Resource, expires_at, days: int) -> None:
    send_after_commit(
        f"{_what(resource)} expires in {days} day{'s' if days != 1 else ''}",
        f"The lease of {_what(resource)} (team {resource.team.slug}) ends on {expires_at:%Y-%m-%d %H:%M} UTC.\n"
        f"After that it is quarantined for {settings.LEASE_GRACE_DAYS} days and then deleted (databases are "
        f"backed up first).\n\nExtend it here: {resource_link(resource)}\n",
        owner_and_team(resource),
    )


def quarantine_notice(resource: Resource, grace_until, scaled: int) -> None:
    send_after_commit(
        f"{_what(resource)} expired and is quarantined",
        f"The lease of {_what(resource)} (team {resource.team.slug}) has ended. {scaled} workload(s) were "
        f"scaled to zero. It will be deleted after {grace_until:%Y-%m-%d %H:%M} UTC.\n\n"
        f"To get it back, extend the lease: {resource_link(resource)} — the workloads are scaled back to "
        "what they ran before.\n",
        owner_and_team(resource),
    )


def handover_notice(resource: Resource, former_owner: str) -> None:
    send_after_commit(
        f"{_what(resource)} now belongs to team {resource.team.slug}",
        f"{former_owner} no longer owns {_what(resource)}: their account is gone or no longer in team "
        f"{resource.team.slug}. The team owns it now.\n\n{resource_link(resource)}\n",
        owner_and_team(resource),
    )


def backup_failed_alert(resource: Resource, detail: str, restore: bool = False) -> None:
    to = list(settings.LEASEHOLD_ALERT_EMAILS) or list(
        get_user_model().objects.filter(is_staff=True).exclude(email="").values_list("email", flat=True)
    )
    if restore:
        send_after_commit(
            f"restore failed: {_what(resource)}",
            f"Restoring the dump into {_what(resource)} (team {resource.team.slug}) failed: {detail}\n"
            f"The database exists but may be empty or partial.\n\n{resource_link(resource)}\n",
            to + owner_and_team(resource),
        )
        return
    send_after_commit(
        f"backup failed: {_what(resource)} was NOT deleted",
        f"The backup before deleting {_what(resource)} (team {resource.team.slug}) failed: {detail}\n"
        "Nothing was deleted. Fix the backup (or the backup volume) and the next reclamation pass retries.\n\n"
        f"{resource_link(resource)}\n",
        to + owner_and_team(resource),
    )
