from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        from billing import checks_plans  # noqa: F401  (registers the tier-limits check)
