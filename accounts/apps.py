from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Logins and API tokens"

    def ready(self) -> None:
        # The token scheme (accounts.schema) is registered by accounts.api.views, with the URLconf that
        # serves the schema: drf-spectacular is not imported by every process that starts Django.
        from . import receivers  # noqa: F401  (ends a user's API tokens on deactivation and password change)
