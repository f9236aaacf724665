"""The approval queue page: decide one step, approve several at once, manage your delegations."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from requests_app.errors import LeaseholdError, ValidationFailed, public_message
from requests_app.pages import WEB_PAGE_SIZE
from requests_app.presenters import request_summaries
from requests_app.selectors import user_is_admin

from .forms import DelegationForm
from .models import ApprovalStep, Delegation, Verdict
from .selectors import delegations_of, queue_page, step_label, step_labels
from .services import delegation_create, delegation_revoke, step_decide, steps_approve_many

# As every web list (requests_app.pages): a page's time is mostly its rows' (summary and rendering).
QUEUE_PAGE_SIZE = WEB_PAGE_SIZE


def _back(request: HttpRequest) -> HttpResponse:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect("approval-queue")


@login_required
@require_http_methods(["GET", "POST"])
def queue(request: HttpRequest) -> HttpResponse:
    """GET: what the caller may decide now, oldest first. POST: approve the selected steps, or give or
    revoke a delegation (`op`)."""
    form = DelegationForm()
    if request.method == "POST":
        op = request.POST.get("op", "")
        if op == "approve-selected":
            _approve_selected(request)
            return redirect("approval-queue")
        if op == "revoke":
            _revoke(request)
            return redirect("approval-queue")
        if op == "delegate":
            form = DelegationForm(request.POST)
            if form.is_valid() and _delegate(request, form):
                return redirect("approval-queue")
        else:
            messages.error(request, "Unknown action.")
            return redirect("approval-queue")
    page = queue_page(request.user, after=request.GET.get("after", ""), size=QUEUE_PAGE_SIZE)
    rows = list(zip(page.steps, request_summaries([step.request for step in page.steps]), strict=True))
    return render(
        request,
        "approvals/queue.html",
        {
            "page": page,
            "walked": bool(request.GET.get("after")),
            "rows": rows,
            "delegations": delegations_of(request.user),
            "form": form,
        },
    )


def _approve_selected(request: HttpRequest) -> None:
    ids = request.POST.getlist("steps")
    if not ids:
        messages.error(request, "Select the requests to approve first.")
        return
    outcomes = steps_approve_many(step_ids=ids, user=request.user, comment=request.POST.get("comment", ""))
    labels = step_labels(request.user, [o.step_id for o in outcomes])
    approved = [labels.get(o.step_id, "a step") for o in outcomes if o.ok]
    if approved:
        messages.success(request, f"Approved {_enumerate(approved)}.")
    for o in outcomes:
        if not o.ok:
            label = labels.get(o.step_id)
            messages.error(request, f"Not approved {label}: {o.detail}" if label else f"Not approved: {o.detail}")


# A message names at most this many requests, then says how many more.
NAMED_IN_A_MESSAGE = 10


def _enumerate(names: list[str]) -> str:
    """`a`, `a and b`, `a, b and c`; past NAMED_IN_A_MESSAGE, `a, b, … and 5 more`."""
    if len(names) > NAMED_IN_A_MESSAGE:
        shown = names[:NAMED_IN_A_MESSAGE]
        return f"{', '.join(shown)} and {len(names) - len(shown)} more"
    if len(names) == 1:
        return names[0]
    return f"{', '.join(names[:-1])} and {names[-1]}"


def _delegate(request: HttpRequest, form: DelegationForm) -> bool:
    data = form.cleaned_data
    try:
        delegation = delegation_create(
            delegator=request.user,
            delegate=data["delegate"],
            starts_on=data["starts_on"],
            ends_on=data["ends_on"],
            reason=data["reason"],
            actor=request.user,
        )
    except ValidationFailed as exc:
        for name, errors in exc.errors.items():
            for error in errors:
                form.add_error(name if name in form.fields else None, error)
        return False
    messages.success(
        request, f"{delegation.delegate} decides for you from {delegation.starts_on} to {delegation.ends_on}."
    )
    return True


def _revoke(request: HttpRequest) -> None:
    admin = user_is_admin(request.user)
    candidates = (
        Delegation.objects.all()
        if admin
        else Delegation.objects.filter(Q(delegator=request.user) | Q(delegate=request.user))
    )
    pk = request.POST.get("delegation", "")
    delegation = get_object_or_404(candidates, pk=pk) if pk.isdigit() else None
    if delegation is None:
        raise Http404
    try:
        delegation_revoke(delegation=delegation, actor=request.user, is_admin=admin)
        messages.success(request, "Delegation revoked.")
    except LeaseholdError as exc:
        messages.error(request, public_message(exc))


@login_required
@require_POST
def decide(request: HttpRequest, pk) -> HttpResponse:
    """Approve or reject one step, from the queue or from the request page."""
    verdict = request.POST.get("verdict", "")
    try:
        step = step_decide(step_id=pk, user=request.user, verdict=verdict, comment=request.POST.get("comment", ""))
        done = "Approved" if verdict == Verdict.APPROVE else "Rejected"
        messages.success(request, f"{done} {step_label(step)}.")
    except ApprovalStep.DoesNotExist:
        # Unknown, or a step the caller may not see: the same 404 either way.
        raise Http404 from None
    except LeaseholdError as exc:
        messages.error(request, public_message(exc))
    return _back(request)
