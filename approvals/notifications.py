"""Emails about approvals, composed after the transaction commits and sent through the outbox
(requests_app.OutgoingMail).

A notice is never part of the decision: it is composed only once the decision is stored (its text says
what state the request ended in), then queued and delivered at once; a mail server that refuses or is
down is logged and audited (`notification_failed`), never raised, and the mail stays in the outbox to be
retried until the server accepts it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse

from requests_app.models import ResourceRequest
from requests_app.services import mail_deliver_pending, mail_queue, mails_queue

from .models import ApprovalStep, Decision, Delegation
from .selectors import Recipient, request_size, step_recipients

logger = logging.getLogger(__name__)


def request_link(request: ResourceRequest) -> str:
    return f"{settings.LEASEHOLD_BASE_URL}{reverse('request-detail', args=[request.pk])}"


# Inside collecting(): the notices of the transactions that committed, to compose together at its end.
_collected: ContextVar[list[tuple[Callable, tuple]] | None] = ContextVar("approval_notices", default=None)
# While collected notices are composed: the outbox ids to deliver together once they are committed.
_queued: ContextVar[list[int] | None] = ContextVar("approval_notice_mail", default=None)
# While several decisions' notices are composed: their mails, queued together in one insert.
_composed: ContextVar[list[dict] | None] = ContextVar("approval_notice_composed", default=None)


def after_commit(func, *args) -> None:
    """Run `func(*args)` once the current transaction commits (at once outside one); inside collecting(),
    at its end with the others."""
    collected = _collected.get()
    if collected is not None:
        transaction.on_commit(lambda: collected.append((func, args)), robust=True)
        return
    transaction.on_commit(lambda: func(*args), robust=True)


@contextmanager
def collecting() -> Iterator[None]:
    """The notices of the decisions committed inside this block (by this thread, or by threads that run
    in a copy of its context: approve-many) are composed at its end, together: the decisions read in one
    query, every notice queued in the outbox in one transaction and delivered over one connection. Each
    decision still has its own notice, and one that cannot be composed is logged, as after_commit's
    would be, without keeping the others from going out. Not inside a transaction: its decisions would
    commit only after the block ended."""
    collected: list[tuple[Callable, tuple]] = []
    token = _collected.set(collected)
    try:
        yield
    finally:
        _collected.reset(token)
        _send_collected(collected)


def _send_collected(collected: list[tuple[Callable, tuple]]) -> None:
    decisions = [args[0] for func, args in collected if func is notify_decision]
    calls: list[tuple[Callable, tuple]] = [(func, args) for func, args in collected if func is not notify_decision]
    if decisions:
        calls.insert(0, (notify_decisions, (decisions,)))
    ids: list[int] = []
    token = _queued.set(ids)
    try:
        with transaction.atomic():
            for func, args in calls:
                try:
                    with transaction.atomic():
                        func(*args)
                except Exception:
                    logger.exception("could not compose the notice %s%s", func.__name__, args)
    finally:
        _queued.reset(token)
    if ids:
        mail_deliver_pending(limit=len(ids), ids=ids)


def _subject(request: ResourceRequest, text: str) -> str:
    return f"[Leasehold] {text}: {request.title} ({request.environment})"


def _queue(
    recipients: Iterable[Recipient],
    *,
    what: str,
    subject: str,
    template: str,
    context: dict,
    request: ResourceRequest | None,
) -> None:
    """Queue one mail per recipient (each is addressed by name), about `request` in the audit trail, and
    deliver them together, over one connection, once they are committed (at once: this runs after the
    decision's commit)."""
    mails: list[dict[str, Any]] = [
        {
            "topic": what,
            "subject": subject,
            "body": render_to_string(template, {**context, "recipient": r}),
            "to": [r.email],
            "request_id": request.pk if request is not None else None,
        }
        for r in recipients
    ]
    composed = _composed.get()
    if composed is not None:
        composed.extend(mails)
        return
    queued = [mail_queue(**mail, deliver=False) for mail in mails]
    _deliver_after_commit([m.pk for m in queued if m is not None])


def _deliver_after_commit(ids: list[int]) -> None:
    together = _queued.get()
    if together is not None:
        together.extend(ids)
    elif ids:
        transaction.on_commit(lambda: mail_deliver_pending(limit=len(ids), ids=ids), robust=True)


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
    return ApprovalStep.objects.select_related(
        "request", "request__team", "request__parent__team", "request__requester", "request__cluster"
    ).get(pk=step_id)


def notify_step_pending(step_id) -> list[Recipient]:
    """Tell the approvers of a newly pending step that it waits for them."""
    step = _load_step(step_id)
    recipients = step_recipients(step)
    _queue(
        recipients,
        what="approval request",
        subject=_subject(step.request, f"Approval needed ({step.name})"),
        template="approvals/email/step_pending.txt",
        context=_step_context(step),
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
    _queue(
        recipients,
        what="escalation" if escalated else "reminder",
        subject=_subject(step.request, text),
        template="approvals/email/step_waiting.txt",
        context=context,
        request=step.request,
    )
    return recipients


def notify_decision(decision_id) -> None:
    """Tell the requester about a decision on their request."""
    notify_decisions([decision_id])


def notify_decisions(decision_ids: list[Any]) -> None:
    """notify_decision for each of several decisions, read in one query."""
    decisions = Decision.objects.select_related(
        "approver",
        "on_behalf_of",
        "step",
        "step__request",
        "step__request__team",
        "step__request__parent__team",
        "step__request__requester",
    ).in_bulk(decision_ids)
    if len(decision_ids) == 1:
        _notify_decision(decisions[decision_ids[0]])
        return
    # Composed one by one (composing reads nothing more and writes nothing), queued in one insert.
    mails: list[dict] = []
    for decision_id in decision_ids:
        composed: list[dict] = []
        token = _composed.set(composed)
        try:  # one notice that cannot be composed must not keep the others from going out
            _notify_decision(decisions[decision_id])
        except Exception:
            logger.exception("could not compose the notice of decision %s", decision_id)
            continue
        finally:
            _composed.reset(token)
        mails.extend(composed)
    _deliver_after_commit([m.pk for m in mails_queue(mails)])


def _notify_decision(decision: Decision) -> None:
    request = decision.step.request
    requester = request.requester
    if not requester.email:
        return
    context = {**_step_context(decision.step), "decision": decision}
    verb = "Approved" if decision.verdict == "approve" else "Rejected"
    _queue(
        [Recipient(requester.get_username(), requester.email)],
        what="decision notice",
        subject=_subject(request, f"{verb} by {decision.decided_by}"),
        template="approvals/email/decision.txt",
        context=context,
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
    _queue(
        [Recipient(delegation.delegate.get_username(), delegation.delegate.email)],
        what="delegation notice",
        subject=f"[Leasehold] You decide approvals for {delegation.delegator} from {delegation.starts_on}",
        template="approvals/email/delegation.txt",
        context=context,
        request=None,
    )
