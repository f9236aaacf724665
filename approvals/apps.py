from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"

    def ready(self) -> None:
        from requests_app.sections import (
            lazy_section,
            request_pages,
            request_prefetch,
            request_previews,
            request_sections,
            request_select,
            request_select_fields,
            request_visibility,
        )

        from . import metrics, receivers  # noqa: F401  (decision times counted; a chain opened on filing)
        from .selectors import APPROVAL_SECTION_PREFETCH, approval_route_preview

        # By their paths: the serializers (and Django REST framework) are imported when a request is rendered.
        request_sections["approval"] = lazy_section("approvals.api.serializers.approval_section")
        request_previews["approval"] = approval_route_preview
        request_select.append("approval_chain")
        request_select_fields.extend(["approval_chain__id", "approval_chain__rule", "approval_chain__request"])
        request_prefetch.extend(APPROVAL_SECTION_PREFETCH)
        request_pages.append(lazy_section("approvals.api.serializers.attach_approval_rows"))
        # Approvers see the requests whose steps their groups decide (the queue links to them).
        # A semi-join, not a join: a request is never repeated, and the list keeps its index order.
        request_visibility.append(approver_visibility)


def approver_visibility(user):
    """The requests whose steps the user's groups decide; None when they decide none. Checked first (an
    index-only look-up): an `OR id IN (...)` keeps PostgreSQL from walking a team's list index, and a
    page of a team's requests then filtered some 5,000 rows of other teams at 100k requests."""
    from django.db.models import Q

    from .directory import user_group_names
    from .models import ApprovalStep

    steps = ApprovalStep.objects.filter(group__in=list(user_group_names(user)))
    if not steps.exists():
        return None
    return Q(pk__in=steps.values("request_id"))
