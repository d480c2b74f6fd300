from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        # System checks register on import; both halves register theirs here, and only here.
        # The ingest path caches the catalogue in-process (billing.plans.cache): imported here,
        # every process invalidates on writes to it.
        from billing.plans import cache  # noqa: F401
        from billing.plans import checks as plans_checks  # noqa: F401
        from billing.stripe import checks as stripe_checks  # noqa: F401
