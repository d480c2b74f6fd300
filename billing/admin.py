"""The billing app's admin, from its two halves: the plan catalogue and our side of Stripe."""

from billing.plans import admin as plans_admin  # noqa: F401
from billing.stripe import admin as stripe_admin  # noqa: F401
