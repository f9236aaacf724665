"""Sending the expiry notices of a pass: one mail per crossed LEASE_NOTICE_DAYS threshold, never twice.
(The mails' wording is `leases.notices`.)"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from requests_app.names import count_of
from requests_app.services import (
    audit_record,
)

from .. import notices
from ..models import Lease, LeaseState, next_notice_at
from .report import _LABEL_RELATED, ReclaimReport, _label


def _thresholds_due(lease: Lease, now: datetime) -> list[int]:
    left = lease.expires_at - now
    return [
        d
        for d in settings.LEASE_NOTICE_DAYS
        if d not in lease.notices_sent and timedelta(0) < left <= timedelta(days=d)
    ]


def send_notices(*, now: datetime, dry_run: bool, report: ReclaimReport) -> None:
    """One email per crossed threshold of LEASE_NOTICE_DAYS, never twice (even with concurrent passes)."""
    # Only the leases that crossed a threshold not notified yet (`next_notice_at`, kept by Lease.save),
    # by a partial index: a lease far from expiry is never read.
    candidates = Lease.objects.filter(state=LeaseState.ACTIVE, next_notice_at__lte=now, expires_at__gt=now)
    for lease in candidates.select_related(*_LABEL_RELATED).order_by("next_notice_at", "pk"):
        due = _thresholds_due(lease, now)
        if not due:
            if not dry_run:  # LEASE_NOTICE_DAYS changed since: count down to what it says now
                Lease.objects.filter(pk=lease.pk, next_notice_at=lease.next_notice_at).update(
                    next_notice_at=next_notice_at(lease.expires_at, lease.notices_sent)
                )
            continue
        if dry_run:
            report.notices.append(f"{_label(lease)}: {count_of(min(due), 'day')} left")
            continue
        with transaction.atomic():
            locked = Lease.objects.select_for_update(skip_locked=True).filter(pk=lease.pk).first()
            if locked is None:
                continue
            due = _thresholds_due(locked, now)
            if not due:
                continue
            locked.notices_sent = sorted({*locked.notices_sent, *due})
            locked.save(update_fields=["notices_sent"])  # and the next notice's time
            resource = lease.resource
            audit_record(
                actor=None,
                verb="lease_notice",
                target=locked,
                resource=resource,
                request=resource.created_by_request,
                detail=f"{count_of(min(due), 'day')} before expiry, to {', '.join(notices.owner_and_team(resource))}",
            )
            mail = notices.expiry_notice(resource, locked.expires_at, min(due))
        # Reported as sent only once the mail backend accepted it (at the end of the pass).
        line = f"{_label(lease)}: {count_of(min(due), 'day')} left"
        if mail is None:
            report.errors.append(f"{line}: nobody to send the notice to (no owner or team member has an email address)")
        else:
            report.notice_mail[mail.pk] = line
