from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        # API keys are cached in-process (accounts.auth); every process must invalidate on writes.
        from accounts import auth  # noqa: F401
