from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Logins and API tokens"

    def ready(self) -> None:
        from . import (
            receivers,  # noqa: F401  (ends a user's API tokens on deactivation and password change)
            schema,  # noqa: F401  (registers the token scheme with drf-spectacular)
        )
