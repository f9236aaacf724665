from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"

    def ready(self) -> None:
        from django.db.models import Q

        from requests_app.sections import (
            lazy_section,
            request_prefetch,
            request_sections,
            request_select,
            request_visibility,
        )

        from . import metrics, receivers  # noqa: F401  (decision times counted; a chain opened on filing)
        from .models import ApprovalStep
        from .selectors import APPROVAL_SECTION_PREFETCH, user_group_names

        # By its path: the serializers (and Django REST framework) are imported when a request is rendered.
        request_sections["approval"] = lazy_section("approvals.api.serializers.approval_section")
        request_select.append("approval_chain")
        request_prefetch.extend(APPROVAL_SECTION_PREFETCH)
        # Approvers see the requests whose steps their groups decide (the queue links to them).
        # A semi-join, not a join: a request is never repeated, and the list keeps its index order.
        request_visibility.append(
            lambda user: Q(
                pk__in=ApprovalStep.objects.filter(group__in=list(user_group_names(user))).values("request_id")
            )
        )
