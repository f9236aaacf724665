from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"

    def ready(self) -> None:
        from requests_app.sections import request_sections

        from . import receivers  # noqa: F401  (opens a chain when a request is filed)
        from .api.serializers import approval_section

        request_sections["approval"] = approval_section
