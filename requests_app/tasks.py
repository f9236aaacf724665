"""Celery entry points for the bottom layer."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from .services import mail_deliver_pending


@shared_task(acks_late=True, ignore_result=True)
def deliver_pending_mail() -> dict[str, int]:
    """Periodic: send the outbox's pending mail, i.e. what the mail backend refused or could not be reached
    for, and mail whose sender stopped between the commit and the delivery."""
    result = mail_deliver_pending(limit=settings.LEASEHOLD_MAIL_MAX_PER_RUN)
    return {"sent": len(result.sent), "failed": len(result.failed)}
