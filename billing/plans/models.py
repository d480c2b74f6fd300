"""The plan catalogue: tiers, features and what each tier includes of each feature.

Money is always an integer amount in minor units (cents) with an ISO currency code; no
floats anywhere near a price. Features are rows, not code: adding one is a new row plus a
limit per tier.
"""

from __future__ import annotations

from django.db import models


class Tier(models.Model):
    """A plan a company subscribes to (Starter, Pro, Enterprise)."""

    code = models.SlugField(max_length=50, unique=True, help_text="Stable identifier used by the API.")
    name = models.CharField(max_length=100)
    monthly_price = models.PositiveBigIntegerField(
        help_text="Price per monthly period in minor units (cents)."
    )
    currency = models.CharField(max_length=3, default="USD", help_text="ISO 4217 code, e.g. USD.")
    order = models.PositiveSmallIntegerField(default=0, help_text="Position in plan comparisons.")
    is_public = models.BooleanField(default=True, help_text="Offered in the plan comparison.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["order", "monthly_price", "id"]

    def __str__(self) -> str:
        return self.name


class Feature(models.Model):
    """Something metered (quotes, bulk jobs, directory invites)."""

    code = models.SlugField(max_length=50, unique=True, help_text="Name used in usage events.")
    name = models.CharField(max_length=100)
    unit = models.CharField(max_length=50, default="unit", help_text="Singular unit, e.g. 'quote'.")
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["order", "code"]

    def __str__(self) -> str:
        return self.name


class TierLimit(models.Model):
    """How much of a feature a tier includes per period, and what each unit beyond costs."""

    tier = models.ForeignKey(Tier, on_delete=models.CASCADE, related_name="limits")
    feature = models.ForeignKey(Feature, on_delete=models.PROTECT, related_name="limits")
    included = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Units included per period; empty means unlimited."
    )
    overage_unit_price = models.PositiveBigIntegerField(
        default=0, help_text="Price per unit beyond the included quantity, in minor units."
    )

    class Meta:
        ordering = ["tier__order", "feature__order"]
        constraints = [
            models.UniqueConstraint(fields=["tier", "feature"], name="tierlimit_unique_tier_feature"),
        ]

    def __str__(self) -> str:
        included = "unlimited" if self.included is None else str(self.included)
        return f"{self.tier} · {self.feature}: {included}"
