from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from requests_app.errors import LeaseholdError

from .models import ApprovalStep, Verdict
from .selectors import steps_decidable_by
from .services import step_decide


@login_required
def queue(request: HttpRequest) -> HttpResponse:
    return render(request, "approvals/queue.html", {"steps": steps_decidable_by(request.user)})


@login_required
@require_POST
def decide(request: HttpRequest, pk) -> HttpResponse:
    verdict = request.POST.get("verdict", "")
    if not ApprovalStep.objects.filter(pk=pk).exists():
        raise Http404
    try:
        step_decide(step_id=pk, user=request.user, verdict=verdict, comment=request.POST.get("comment", ""))
        messages.success(request, "Approved." if verdict == Verdict.APPROVE else "Rejected.")
    except LeaseholdError as exc:
        messages.error(request, str(exc))
    return redirect(request.POST.get("next") or "approval-queue")
