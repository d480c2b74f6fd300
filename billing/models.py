"""The billing app's models, from its two halves: the plan catalogue (low: anything may
read it) and our side of Stripe (high: nothing below billing.stripe imports it)."""

from billing.plans.models import (
    CreditConsumption,
    CreditGrant,
    CreditKind,
    EntitlementOverride,
    Feature,
    LimitMode,
    Tier,
    TierLimit,
)
from billing.stripe.models import (
    BillingEvent,
    BillingEventKind,
    BillingEventStatus,
    CompanyStripe,
    FeatureMeter,
    StripeWebhookEvent,
    TierFeaturePrice,
    TierPrice,
    WebhookEventStatus,
    WebhookRejection,
)

__all__ = [
    "BillingEvent",
    "BillingEventKind",
    "BillingEventStatus",
    "CompanyStripe",
    "CreditConsumption",
    "CreditGrant",
    "CreditKind",
    "EntitlementOverride",
    "Feature",
    "FeatureMeter",
    "LimitMode",
    "StripeWebhookEvent",
    "Tier",
    "TierFeaturePrice",
    "TierLimit",
    "TierPrice",
    "WebhookEventStatus",
    "WebhookRejection",
]
