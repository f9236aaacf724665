from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import select_template
from django.utils import timezone
from django.views.decorators.http import require_POST

from provisioning.services.releases import app_rollback_file, app_upgrade_file
from requests_app import kinds
from requests_app.errors import LeaseholdError, ValidationFailed, public_message
from requests_app.models import Environment, Kind, ResourceRequest, ResourceState
from requests_app.pages import filtered_page
from requests_app.sections import resource_sections
from requests_app.selectors import resources_visible_to, teams_for_filters

from .filtersets import ResourceFilter
from .forms import ExtendForm
from .kinds import LEASE_KINDS
from .models import Lease, LeaseState
from .selectors import (
    FORECAST_DAYS,
    RELATED_ROWS,
    bindings_of,
    bound_from,
    dashboard,
    extend_candidates,
    forecast,
    forecast_problems,
    namespace_children,
    quarantined_children,
)
from .services.extension import ChildExtension, lease_extend, lease_extend_together, lease_extension_limits
from .services.opening import database_now
from .services.reclaim import resource_release
from .services.restore import resource_restore

# The lease filter of the resource list: the dashboard's sections link to the first two.
EXPIRING_CHOICES = [("7", "within 7 days"), ("30", "within 30 days"), ("90", "within 90 days")]


@login_required
def resource_list(request: HttpRequest) -> HttpResponse:
    """The caller's resources, a page at a time, with the API's filters (`search`, `state`, `kind`, `team`,
    `environment`, `expiring_within`): with the lease filter it is the list of leases too."""
    filterset = ResourceFilter(request.GET, queryset=resources_visible_to(request.user))
    page = filtered_page(filterset, request.GET)
    expiring = list(EXPIRING_CHOICES)
    asked = page.params.get("expiring_within")
    if asked and asked not in dict(expiring):  # another number of days, from a link or the API's habits
        expiring.append((asked, f"within {asked} days"))
    return render(
        request,
        "leases/resource_list.html",
        {
            "page": page,
            "states": ResourceState.choices,
            "kinds": kinds.choices(),
            "environments": Environment.choices,
            "teams": teams_for_filters(request.user),
            "expiring": expiring,
        },
    )


def _kind_rows(kind: str) -> str:
    """The partial with the rows only this kind's page has: `leases/kinds/<kind>.html`, else the default."""
    return select_template([f"leases/kinds/{kind}.html", "leases/kinds/_default.html"]).template.name


def _detail_context(user, resource, extend_form: ExtendForm | None = None) -> dict:
    """What a resource's page shows: its fields, lease and objects, what it is related to (each a bounded
    query, whatever the counts), and the extend form with the limits in force."""
    context = {
        "resource": resource,
        "objects": resource.managed_objects.all(),
        "events": resource.events.order_by("at", "id"),
        "backups": resource.backups.all(),
        "connection": resource_sections["connection"](resource) if "connection" in resource_sections else None,
        "max_days": settings.LEASE_MAX_DAYS,
        "releases": [],
        "related_rows": RELATED_ROWS,
        # The rows only this kind has (its connection, an app's URL and template): its own partial, if any.
        "kind_rows": select_template(
            [f"leases/kinds/{resource.kind}.html", "leases/kinds/_default.html"]
        ).template.name,
        "bindings": bindings_of(resource),
        "bound_from": bound_from(resource),
    }
    if not kinds.get(resource.kind).in_namespace:
        context["children"] = namespace_children(resource)
    lease_kind = LEASE_KINDS.get(resource.kind)
    context["backed_up"] = lease_kind.backed_up
    context.update(lease_kind.page_context(resource))
    lease = getattr(resource, "lease", None)
    if lease is not None and lease.state in (LeaseState.ACTIVE, LeaseState.GRACE):
        candidates = extend_candidates(resource) if resource.kind == Kind.NAMESPACE else None
        if extend_form is None:
            # Preselected: what is quarantined, or would be when the namespace's lease ends.
            chosen = [
                str(c.pk)
                for c in (candidates.rows if candidates else [])
                if c.lease.state == LeaseState.GRACE or c.lease.expires_at >= lease.expires_at
            ]
            extend_form = ExtendForm(candidates=candidates.rows if candidates else [], initial={"children": chosen})
        context["extend_form"] = extend_form
        context["more_candidates"] = candidates.more if candidates else 0
        context["limits"] = lease_extension_limits(lease=lease, now=timezone.now())
    return context


@login_required
def resource_detail(request: HttpRequest, pk) -> HttpResponse:
    resource = get_object_or_404(
        resources_visible_to(request.user).select_related("lease", "created_by_request"), pk=pk
    )
    return render(request, "leases/resource_detail.html", _detail_context(request.user, resource))


@login_required
@require_POST
def resource_release_view(request: HttpRequest, pk) -> HttpResponse:
    resource = get_object_or_404(resources_visible_to(request.user), pk=pk)
    try:
        done, note = resource_release(resource=resource, actor=request.user)
        messages.success(request, "Released and deleted." if done else f"Release started: {note}")
    except LeaseholdError as exc:
        messages.error(request, public_message(exc))
    return redirect("resource-detail", pk=resource.pk)


def _say_children(request: HttpRequest, namespace, children: list[ChildExtension]) -> None:
    """Which of a namespace's apps and databases came back, were extended, wait for approval or failed."""
    restored = [c for c in children if c.outcome == "extended" and c.restored]
    extended = [c for c in children if c.outcome == "extended" and not c.restored]
    if restored:
        names = ", ".join(c.resource.display_name for c in restored)
        messages.success(request, f"Restored with it (out of quarantine, workloads scaled back up): {names}.")
        pending = [c.resource.display_name for c in restored if c.workloads_pending]
        if pending:
            messages.warning(
                request,
                f"The cluster did not take the replica counts yet for {', '.join(pending)}: the next pass does.",
            )
    if extended:
        messages.success(request, "Extended with it: " + ", ".join(c.resource.display_name for c in extended) + ".")
    for c in children:
        if c.outcome == "requested":
            messages.info(
                request,
                f"{c.resource.display_name}: beyond the lease policy, so an extension request waits for approval.",
            )
        elif c.outcome == "failed":
            messages.error(request, f"{c.resource.display_name} was not extended: {c.detail}")
    if namespace.kind == Kind.NAMESPACE:
        chosen = {c.resource.pk for c in children}
        left = [r for r in quarantined_children(namespace) if r.pk not in chosen]
        if left:
            messages.warning(
                request,
                "Still quarantined in this namespace: "
                + ", ".join(r.display_name for r in left)
                + ". Extend them with the namespace on its page.",
            )


@login_required
@require_POST
def resource_extend_view(request: HttpRequest, pk) -> HttpResponse:
    """Extend a lease (a namespace's together with the apps and databases chosen). Bad input shows the page
    again with the service's messages next to the fields (400); a refusal or a wrong state is a message."""
    resource = get_object_or_404(
        resources_visible_to(request.user).select_related("lease", "created_by_request"), pk=pk
    )
    candidates = extend_candidates(resource).rows if resource.kind == Kind.NAMESPACE else []
    form = ExtendForm(request.POST, candidates=candidates)
    if form.is_valid():
        fields = {"actor": request.user, "days": form.cleaned_data["days"]}
        fields["justification"] = form.cleaned_data["justification"]
        try:
            if resource.kind == Kind.NAMESPACE:
                _, result, children = lease_extend_together(
                    namespace=resource, child_ids=form.cleaned_data.get("children") or [], **fields
                )
            else:
                (_, result), children = lease_extend(resource=resource, **fields), []
        except ValidationFailed as exc:
            form.add_service_errors(exc.errors)
        except LeaseholdError as exc:
            messages.error(request, public_message(exc))
            return redirect("resource-detail", pk=resource.pk)
        else:
            if isinstance(result, Lease):
                messages.success(request, f"Extended: the lease now ends {result.expires_at:%Y-%m-%d %H:%M} UTC.")
            else:
                messages.info(
                    request, "That goes beyond the lease policy: an extension request now waits for approval."
                )
            _say_children(request, resource, children)
            if isinstance(result, ResourceRequest):
                return redirect("request-detail", pk=result.pk)
            next_page = request.POST.get("next", "")
            if next_page.startswith("/") and not next_page.startswith("//"):
                return redirect(next_page)
            return redirect("resource-detail", pk=resource.pk)
    context = _detail_context(request.user, resource, form)
    if "extend_form" not in context:  # no lease to extend any more: the errors cannot stand by the form
        messages.error(request, " ".join(str(m) for ms in form.errors.values() for m in ms))
        return redirect("resource-detail", pk=resource.pk)
    return render(request, "leases/resource_detail.html", context, status=400)


@login_required
def lease_dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "leases/dashboard.html", {"d": dashboard(request.user, database_now())})


@login_required
def reclaim_forecast(request: HttpRequest) -> HttpResponse:
    """What the reclamation will do to the caller's leases (admins: all), next pass and next days.

    Answered from the indexes the pass selects by, never by running a pass (`reclaim_leases --dry-run`
    is the whole dry run, for operators)."""
    now = database_now()
    sections = forecast(request.user, now)
    context = {
        "due": [s for s in sections if s.total],
        "nothing": [s.nothing for s in sections if not s.total],
        "problems": forecast_problems(request.user, sections, now),
        "now": now,
        "days": FORECAST_DAYS,
        # Beat starts a pass every 15 minutes (config/settings.py); with `cron`, an outside scheduler does.
        "next_pass": "within 15 minutes" if settings.LEASEHOLD_RECLAIM_SCHEDULE == "beat" else "at its next run",
    }
    return render(request, "leases/forecast.html", context)


@login_required
@require_POST
def resource_restore_view(request: HttpRequest, pk) -> HttpResponse:
    resource = get_object_or_404(resources_visible_to(request.user), pk=pk)
    try:
        filed = resource_restore(resource=resource, actor=request.user)
    except ValidationFailed as exc:
        messages.error(request, "Cannot restore: " + " ".join(m for ms in exc.errors.values() for m in ms))
    except LeaseholdError as exc:
        messages.error(request, public_message(exc))
    else:
        messages.success(request, "Restore requested.")
        return redirect("request-detail", pk=filed.pk)
    return redirect("resource-detail", pk=resource.pk)


@login_required
@require_POST
def app_change_view(request: HttpRequest, pk) -> HttpResponse:
    """Upgrade an app to another image tag, or roll it back to a release: files a request."""
    resource = get_object_or_404(resources_visible_to(request.user), pk=pk)
    justification = request.POST.get("justification", "")
    try:
        if request.POST.get("op") == "rollback":
            try:
                release = int(request.POST.get("release", ""))
            except ValueError:
                raise ValidationFailed({"release": ["Choose a release."]}) from None
            filed = app_rollback_file(
                resource=resource, actor=request.user, release=release, justification=justification
            )
        else:
            filed = app_upgrade_file(
                resource=resource,
                actor=request.user,
                image_tag=request.POST.get("image_tag", "").strip(),
                justification=justification,
            )
    except ValidationFailed as exc:
        messages.error(request, " ".join(m for ms in exc.errors.values() for m in ms))
    except LeaseholdError as exc:
        messages.error(request, public_message(exc))
    else:
        messages.success(request, f"{filed.get_action_display()} requested.")
        return redirect("request-detail", pk=filed.pk)
    return redirect("resource-detail", pk=resource.pk)
