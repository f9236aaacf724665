"""Emails about leases: expiry notices, quarantine, hand-over, failed backups.

Each is queued in the outbox (requests_app.OutgoingMail) inside the transaction that decides it, and
delivered after commit; what the mail server refuses stays pending and is retried (the periodic delivery,
the next reclamation pass), never undoing what the pass did. Each function returns the queued mail, or
None when there is nobody to send it to.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.urls import reverse

from requests_app.models import OutgoingMail, Resource
from requests_app.names import count_of, kind_noun
from requests_app.services import mail_queue

# The ids of the mail queued inside `collecting()`; None outside it.
_collected: ContextVar[list[int] | None] = ContextVar("leases_collected_mail", default=None)


@contextmanager
def collecting() -> Iterator[list[int]]:
    """Collect the ids of the mail queued inside the block, and leave its delivery to the block's owner:
    a reclamation pass sends its mail in one batch at its end and reports what the mail server refused.
    Outside such a block each mail is delivered right after its transaction commits."""
    ids: list[int] = []
    token = _collected.set(ids)
    try:
        yield ids
    finally:
        _collected.reset(token)


def resource_link(resource: Resource) -> str:
    return f"{settings.LEASEHOLD_BASE_URL}{reverse('resource-detail', args=[resource.pk])}"


def owner_and_team(resource: Resource) -> list[str]:
    """The owner's address and the team's, without duplicates or blanks."""
    addresses = []
    if resource.owner is not None:
        addresses.append(resource.owner.email)
    addresses += list(resource.team.group.user_set.values_list("email", flat=True))
    return sorted({a for a in addresses if a})


def _queue(
    resource: Resource, *, topic: str, subject: str, body: str, to: list[str], key: str = ""
) -> OutgoingMail | None:
    collected = _collected.get()
    mail = mail_queue(
        topic=topic,
        key=key,
        subject=f"[Leasehold] {subject}",
        body=body,
        to=to,
        resource_id=resource.pk,
        request_id=resource.created_by_request_id,
        deliver=collected is None,
    )
    if mail is not None and collected is not None:
        collected.append(mail.pk)
    return mail


def _what(resource: Resource) -> str:
    """The kind and the display name, "database atlas-web / orders" (needs `team` and `parent__team`)."""
    return f"{kind_noun(resource.kind)} {resource.display_name}"


def _workloads(count: int) -> str:
    return f"{count_of(count, 'workload')} {'was' if count == 1 else 'were'}"


def expiry_notice(resource: Resource, expires_at: datetime, days: int) -> OutgoingMail | None:
    """The notice for one threshold of LEASE_NOTICE_DAYS; queued once per lease term and threshold."""
    return _queue(
        resource,
        topic="expiry notice",
        # An extension moves the expiry, so the new term's notices are new mail.
        key=f"expiry-notice:{resource.pk}:{expires_at.isoformat()}:{days}",
        subject=f"{_what(resource)} expires in {count_of(days, 'day')}",
        body=(
            f"The lease of {_what(resource)} (team {resource.team.slug}) ends on {expires_at:%Y-%m-%d %H:%M} UTC.\n"
            f"After that it is quarantined for {settings.LEASE_GRACE_DAYS} days and then deleted (databases are "
            f"backed up first).\n\nExtend it here: {resource_link(resource)}\n"
        ),
        to=owner_and_team(resource),
    )


def quarantine_notice(resource: Resource, grace_until: datetime, scaled: int) -> OutgoingMail | None:
    """The resource's lease ended and its workloads were scaled to zero; once per grace period."""
    return _queue(
        resource,
        topic="quarantine notice",
        key=f"quarantine-notice:{resource.pk}:{grace_until.isoformat()}",
        subject=f"{_what(resource)} expired and is quarantined",
        body=(
            f"The lease of {_what(resource)} (team {resource.team.slug}) has ended. {_workloads(scaled)} "
            f"scaled to zero. It will be deleted after {grace_until:%Y-%m-%d %H:%M} UTC.\n\n"
            f"To get it back, extend the lease: {resource_link(resource)} — the workloads are scaled back to "
            "what they ran before.\n"
        ),
        to=owner_and_team(resource),
    )


def handover_notice(resource: Resource, former_owner: str) -> OutgoingMail | None:
    """The owner left the team (or the directory); the team owns the resource now."""
    return _queue(
        resource,
        topic="hand-over notice",
        subject=f"{_what(resource)} now belongs to team {resource.team.slug}",
        body=(
            f"{former_owner} no longer owns {_what(resource)}: their account is gone or no longer in team "
            f"{resource.team.slug}. The team owns it now.\n\n{resource_link(resource)}\n"
        ),
        to=owner_and_team(resource),
    )


def backup_failed_alert(resource: Resource, detail: str, restore: bool = False) -> OutgoingMail | None:
    """Tell the alert addresses (or the admins) and the owners that a backup or a restore failed."""
    to = list(settings.LEASEHOLD_ALERT_EMAILS) or list(
        get_user_model().objects.filter(is_staff=True).exclude(email="").values_list("email", flat=True)
    )
    if restore:
        return _queue(
            resource,
            topic="restore alert",
            subject=f"restore failed: {_what(resource)}",
            body=(
                f"Restoring the dump into {_what(resource)} (team {resource.team.slug}) failed: {detail}\n"
                f"The database exists but may be empty or partial.\n\n{resource_link(resource)}\n"
            ),
            to=to + owner_and_team(resource),
        )
    return _queue(
        resource,
        topic="backup alert",
        subject=f"backup failed: {_what(resource)} was NOT deleted",
        body=(
            f"The backup before deleting {_what(resource)} (team {resource.team.slug}) failed: {detail}\n"
            "Nothing was deleted. Fix the backup (or the backup volume) and the next reclamation pass retries.\n\n"
            f"{resource_link(resource)}\n"
        ),
        to=to + owner_and_team(resource),
    )
