from django.apps import AppConfig


class RequestsAppConfig(AppConfig):
    name = "requests_app"
    verbose_name = "Requests"

    def ready(self) -> None:
        from .kinds import all as all_kinds

        all_kinds()  # imports each module of requests_app/kinds/, which registers its kind
        from . import (
            metrics,  # noqa: F401  (counts requests filed and their transitions)
            receivers,  # noqa: F401  (connects the team mirroring receiver)
            sessions,  # noqa: F401  (connects the login stamp of the idle timeout)
        )
