"""The default plan catalogue, installed by a data migration and then edited in admin.

Takes the model classes as arguments so the migration can pass its historical models.
"""

from __future__ import annotations

from typing import Any

# code, name, monthly price (cents), order
DEFAULT_TIERS = [
    ("starter", "Starter", 4_900, 10),
    ("pro", "Pro", 19_900, 20),
    ("enterprise", "Enterprise", 99_900, 30),
]
# code, name, unit, order
DEFAULT_FEATURES = [
    ("quotes", "Quotes", "quote", 10),
    ("bulk_jobs", "Bulk jobs", "job", 20),
    ("directory_invites", "Directory invites", "invite", 30),
]
# (tier, feature) -> (included or None = unlimited, overage unit price in cents)
DEFAULT_LIMITS = {
    ("starter", "quotes"): (1_000, 5),
    ("starter", "bulk_jobs"): (10, 200),
    ("starter", "directory_invites"): (25, 50),
    ("pro", "quotes"): (10_000, 3),
    ("pro", "bulk_jobs"): (100, 100),
    ("pro", "directory_invites"): (250, 25),
    ("enterprise", "quotes"): (100_000, 1),
    ("enterprise", "bulk_jobs"): (1_000, 50),
    ("enterprise", "directory_invites"): (None, 0),
}
CURRENCY = "USD"


# Any: the migration passes historical model classes, which no static type describes.
def install_default_catalogue(*, Tier: Any, Feature: Any, TierLimit: Any) -> None:  # noqa: N803
    """Create whatever of the default catalogue is missing; never overwrite edits."""
    tiers = {}
    for code, name, price, order in DEFAULT_TIERS:
        tiers[code], _ = Tier.objects.get_or_create(
            code=code, defaults={"name": name, "monthly_price": price, "currency": CURRENCY, "order": order}
        )
    features = {}
    for code, name, unit, order in DEFAULT_FEATURES:
        features[code], _ = Feature.objects.get_or_create(
            code=code, defaults={"name": name, "unit": unit, "order": order}
        )
    for (tier, feature), (included, price) in DEFAULT_LIMITS.items():
        TierLimit.objects.get_or_create(
            tier=tiers[tier],
            feature=features[feature],
            defaults={"included": included, "overage_unit_price": price},
        )
