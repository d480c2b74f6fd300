from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        # System checks register on import; both halves register theirs here, and only here.
        from billing.plans import checks as plans_checks  # noqa: F401
        from billing.stripe import checks as stripe_checks  # noqa: F401

        # The ingest path caches the catalogue in-process; every process must invalidate on writes.
        from billing.plans import cache  # noqa: F401
