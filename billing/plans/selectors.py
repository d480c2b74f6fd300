"""Reads of the plan catalogue."""

from __future__ import annotations

from billing.plans.models import Tier


def public_tiers() -> list[Tier]:
    return list(Tier.objects.filter(is_public=True).prefetch_related("limits__feature"))
