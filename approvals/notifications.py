"""Emails about approvals, sent through Django's email backend after the transaction commits.

A notice is never part of the decision: it is sent only once the decision is stored, and a mail
server that refuses or is down is logged and audited (`notification_failed`), never raised.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Iterable

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse

from requests_app.models import ResourceRequest
from requests_app.services import audit_record

from .models import ApprovalStep, Decision, Delegation
from .selectors import Recipient, request_size, step_recipients

logger = logging.getLogger(__name__)


def request_link(request: ResourceRequest) -> str:
    return f"{settings.LEASEHOLD_BASE_URL}{reverse('request-detail', args=[request.pk])}"


def after_commit(func, *args) -> None:
    """Run `func(*args)` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: func(*args), robust=True)


def _subject(request: ResourceRequest, text: str) -> str:
    return f"[Leasehold] {text}: {request.kind} {request.team.slug}/{request.name} ({request.environment})"


def _send(messages: list[EmailMessage], *, what: str, request: ResourceRequest | None) -> int:
    """Send `messages`; on a mail failure log it, audit it and return 0."""
    if not messages:
        return 0
    try:
        with get_connection() as connection:
            return connection.send_messages(messages) or 0
    except (smtplib.SMTPException, OSError) as exc:
        logger.warning("Could not send %s to %s: %s", what, ", ".join(m.to[0] for m in messages), exc)
        target = request if request is not None else None
        if target is not None:
            audit_record(
                actor=None,
                verb="notification_failed",
                target=target,
                detail=f"{what} to {', '.join(m.to[0] for m in messages)}: {exc.__class__.__name__}: {exc}",
            )
        return 0


def _messages(recipients: Iterable[Recipient], subject: str, template: str, context: dict) -> list[EmailMessage]:
    return [
        EmailMessage(
            subject=subject,
            body=render_to_string(template, {**context, "recipient": r}),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[r.email],
        )
        for r in recipients
    ]


def _step_context(step: ApprovalStep) -> dict:
    request = step.request
    return {
        "step": step,
        "req": request,
        "size": request_size(request),
        "link": request_link(request),
        "queue_link": f"{settings.LEASEHOLD_BASE_URL}{reverse('approval-queue')}",
    }


def _load_step(step_id) -> ApprovalStep:
    return ApprovalStep.objects.select_related("request", "request__team", "request__requester").get(pk=step_id)


def notify_step_pending(step_id) -> list[Recipient]:
    """Tell the approvers of a newly pending step that it waits for them."""
    step = _load_step(step_id)
    recipients = step_recipients(step)
    subject = _subject(step.request, f"Approval needed ({step.name})")
    _send(
        _messages(recipients, subject, "approvals/email/step_pending.txt", _step_context(step)),
        what="approval request",
        request=step.request,
    )
    return recipients


def notify_step_waiting(step_id, *, escalated: bool) -> list[Recipient]:
    """Remind a waiting step's approvers; on escalation, ask the escalation group."""
    step = _load_step(step_id)
    groups = (step.escalate_to,) if escalated else None
    recipients = step_recipients(step, groups=groups)
    text = f"Escalated to {step.escalate_to}" if escalated else f"Reminder, still waiting ({step.name})"
    context = {**_step_context(step), "escalated": escalated}
    _send(
        _messages(recipients, _subject(step.request, text), "approvals/email/step_waiting.txt", context),
        what="escalation" if escalated else "reminder",
        request=step.request,
    )
    return recipients


def notify_decision(decision_id) -> None:
    """Tell the requester about a decision on their request."""
    decision = Decision.objects.select_related(
        "approver", "on_behalf_of", "step", "step__request", "step__request__team", "step__request__requester"
    ).get(pk=decision_id)
    request = decision.step.request
    requester = request.requester
    if not requester.email:
        return
    context = {**_step_context(decision.step), "decision": decision}
    verb = "Approved" if decision.verdict == "approve" else "Rejected"
    subject = _subject(request, f"{verb} by {decision.decided_by}")
    recipient = Recipient(requester.get_username(), requester.email)
    _send(
        _messages([recipient], subject, "approvals/email/decision.txt", context),
        what="decision notice",
        request=request,
    )


def notify_delegation(delegation_id) -> None:
    """Tell a delegate that they stand in for someone."""
    delegation = Delegation.objects.select_related("delegator", "delegate").get(pk=delegation_id)
    if not delegation.delegate.email:
        return
    context = {
        "delegation": delegation,
        "queue_link": f"{settings.LEASEHOLD_BASE_URL}{reverse('approval-queue')}",
    }
    recipient = Recipient(delegation.delegate.get_username(), delegation.delegate.email)
    subject = f"[Leasehold] You decide approvals for {delegation.delegator} from {delegation.starts_on}"
    _send(
        _messages([recipient], subject, "approvals/email/delegation.txt", context),
        what="delegation notice",
        request=None,
    )
