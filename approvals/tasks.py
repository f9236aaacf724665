"""Celery entry points for approvals."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(acks_late=True, ignore_result=True)
def nudge_waiting_approvals() -> dict[str, int]:
    """Periodic: remind approvers of steps that waited too long and escalate those past the second delay."""
    result = services.approvals_nudge()
    return {"reminded": len(result.reminded), "escalated": len(result.escalated)}
