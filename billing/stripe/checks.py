"""System check: with live billing on, every piece Stripe needs must be mapped, or
overage would silently go unbilled and upgrades would fail at the customer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import Warning, register
from django.db import DatabaseError

from billing.plans.models import Feature, Tier, TierLimit
from billing.stripe.models import TierFeaturePrice


@register("billing")
def stripe_mappings_check(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[Warning]:
    if not settings.STRIPE_LIVE_BILLING:
        return []
    warnings: list[Warning] = []
    for name in ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"):
        if not getattr(settings, name):
            warnings.append(
                Warning(f"{name} is empty but STRIPE_LIVE_BILLING is on.", id="billing.W001", obj=name)
            )
    try:
        for tier in Tier.objects.filter(is_public=True, stripe_price__isnull=True):
            warnings.append(
                Warning(
                    f"Tier '{tier.code}' has no Stripe price: it cannot be bought through Checkout.",
                    hint="Add it under Billing > Stripe prices (tiers).",
                    id="billing.W002",
                    obj=f"tier:{tier.code}",
                )
            )
        billed = TierLimit.objects.filter(overage_unit_price__gt=0, included__isnull=False).values(
            "feature_id"
        )
        for feature in Feature.objects.filter(pk__in=billed, stripe_meter__isnull=True):
            warnings.append(
                Warning(
                    f"Feature '{feature.code}' has priced overage but no Stripe meter: it is not billed.",
                    hint="Add it under Billing > Stripe meters (features).",
                    id="billing.W003",
                    obj=f"feature:{feature.code}",
                )
            )
        for feature in Feature.objects.filter(stripe_meter__meter_id=""):
            warnings.append(
                Warning(
                    f"Feature '{feature.code}' has no Stripe meter id: reconciliation cannot check it.",
                    id="billing.W004",
                    obj=f"feature:{feature.code}",
                )
            )
        # A metered feature's overage only reaches an invoice through a metered price on
        # the subscription: each tier sold through Stripe needs one per billed feature.
        mapped = set(TierFeaturePrice.objects.values_list("tier_id", "feature_id"))
        limits = TierLimit.objects.filter(
            overage_unit_price__gt=0,
            included__isnull=False,
            tier__stripe_price__isnull=False,
            feature__stripe_meter__isnull=False,
        ).select_related("tier", "feature")
        for limit in limits:
            if (limit.tier_id, limit.feature_id) not in mapped:
                warnings.append(
                    Warning(
                        f"Tier '{limit.tier.code}' has no Stripe metered price for '{limit.feature.code}': "
                        "its overage is reported but never invoiced.",
                        hint="Add it under Billing > Stripe metered prices (tier, feature).",
                        id="billing.W005",
                        obj=f"tier:{limit.tier.code}:feature:{limit.feature.code}",
                    )
                )
    except DatabaseError:  # tables not migrated yet
        return warnings
    return warnings
