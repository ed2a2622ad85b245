from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and organizations"

    def ready(self):
        # Connects the sign-in signal that notes where a session is used.
        from . import sessions  # noqa: F401
