"""System check: every tier has a limit for every feature. A missing row means that
feature is unlimited and free on that tier, which is almost always an oversight after
adding a feature (it is a new row, see the README)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core.checks import Warning, register
from django.db import DatabaseError

from billing.plans.models import Feature, Tier, TierLimit


@register("billing")
def tier_limits_complete_check(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[Warning]:
    try:
        have = set(TierLimit.objects.values_list("tier_id", "feature_id"))
        tiers, features = list(Tier.objects.all()), list(Feature.objects.all())
    except DatabaseError:  # tables not migrated yet
        return []
    return [
        Warning(
            f"Tier '{tier.code}' has no limit for feature '{feature.code}': it is unlimited and free there, "
            "and the tier is never recommended.",
            hint="Add the limit under Billing > Tiers (leave 'included' empty for a deliberate unlimited).",
            id="billing.W010",
            obj=f"tier:{tier.code}",
        )
        for tier in tiers
        for feature in features
        if (tier.pk, feature.pk) not in have
    ]
