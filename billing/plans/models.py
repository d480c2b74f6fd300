"""The plan catalogue: tiers, features and what each tier includes of each feature.

Money is always an integer amount in minor units (cents) with an ISO currency code; no
floats anywhere near a price. Features are rows, not code: adding one is a new row plus a
limit per tier.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from core.money import format_money

MAX_ALERT_LEVEL = 1000
MAX_ALERT_LEVELS = 10


def default_alert_levels() -> list[int]:
    return [80, 100]


def alert_levels_parse(text: str) -> list[int]:
    """Alert levels as people type them ("50, 80 %, 100"): whole percents from 1 to 1000,
    at most ten, sorted without repeats. Raises ValidationError saying what is wrong."""
    out: set[int] = set()
    for part in text.replace(";", ",").split(","):
        value = part.strip().rstrip("%").strip()
        if not value:
            continue
        try:
            level = int(value)
        except ValueError:
            raise ValidationError(f"“{part.strip()}” is not a whole percent (e.g. 50, 80, 100, 150).") from None
        if not 1 <= level <= MAX_ALERT_LEVEL:
            raise ValidationError(f"{level} is out of range: a level is a percent from 1 to {MAX_ALERT_LEVEL}.")
        out.add(level)
    if len(out) > MAX_ALERT_LEVELS:
        raise ValidationError(f"At most {MAX_ALERT_LEVELS} levels.")
    return sorted(out)


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
    alert_levels = models.JSONField(
        default=default_alert_levels,
        help_text="Usage alert levels in percent of each included quantity, e.g. [50, 80, 100, 150].",
    )
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


def limit_terms_check(terms: TierLimit | EntitlementOverride) -> None:
    """A capped limit needs a cap and a unit price; a hard or capped one needs a number."""
    errors = {}
    if terms.mode != LimitMode.SOFT and terms.included is None:
        errors["included"] = "A hard or capped limit needs an included quantity."
    if terms.mode == LimitMode.CAPPED:
        if terms.overage_cap is None:
            errors["overage_cap"] = "Capped overage needs a cap (minor units per period)."
        if not terms.overage_unit_price:
            errors["overage_unit_price"] = "Capped overage needs a price per unit beyond the limit."
    if errors:
        raise ValidationError(errors)


class LimitMode(models.TextChoices):
    """What happens beyond the included quantity."""

    SOFT = "soft", "Soft: overage billed"
    HARD = "hard", "Hard: nothing beyond the limit accepted"
    CAPPED = "capped", "Capped overage: billed up to a money cap per period, then refused"


class TierLimit(models.Model):
    """How much of a feature a tier includes per period, what each unit beyond costs, and
    whether units beyond are billed (soft), refused (hard) or billed up to a cap (capped)."""

    tier = models.ForeignKey(Tier, on_delete=models.CASCADE, related_name="limits")
    feature = models.ForeignKey(Feature, on_delete=models.PROTECT, related_name="limits")
    included = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Units included per period; empty means unlimited."
    )
    overage_unit_price = models.PositiveBigIntegerField(
        default=0, help_text="Price per unit beyond the included quantity, in minor units."
    )
    mode = models.CharField(max_length=10, choices=LimitMode.choices, default=LimitMode.SOFT)
    overage_cap = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Capped mode: the most overage billed per period, in minor units."
    )

    class Meta:
        ordering = ["tier__order", "feature__order"]
        constraints = [
            models.UniqueConstraint(fields=["tier", "feature"], name="tierlimit_unique_tier_feature"),
        ]

    def __str__(self) -> str:
        included = "unlimited" if self.included is None else str(self.included)
        return f"{self.tier} · {self.feature}: {included}"

    def clean(self) -> None:
        limit_terms_check(self)


class EntitlementOverride(models.Model):
    """A contract's terms for one company and feature, replacing its tier's from
    ``starts_at`` until ``ends_at`` (empty: open-ended). All four terms are stated, so an
    override reads on its own; where overrides overlap, the latest start wins."""

    company = models.ForeignKey(
        "accounts.Company", on_delete=models.CASCADE, related_name="entitlement_overrides"
    )
    feature = models.ForeignKey(Feature, on_delete=models.PROTECT, related_name="overrides")
    included = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Units included per period; empty means unlimited."
    )
    mode = models.CharField(max_length=10, choices=LimitMode.choices, default=LimitMode.SOFT)
    overage_unit_price = models.PositiveBigIntegerField(
        default=0, help_text="Price per unit beyond the included quantity, in minor units."
    )
    overage_cap = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Capped mode: the most overage billed per period, in minor units."
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True, help_text="Empty: until further notice.")
    reason = models.CharField(max_length=200, blank=True, help_text="The contract or ticket, for the record.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["company", "feature", "-starts_at"]
        indexes = [models.Index(fields=["company", "feature", "starts_at"], name="override_company_feature")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__isnull=True) | models.Q(ends_at__gt=models.F("starts_at")),
                name="override_ends_after_start",
            ),
        ]

    def __str__(self) -> str:
        included = "unlimited" if self.included is None else str(self.included)
        return f"{self.company} · {self.feature}: {included} ({self.mode})"

    def clean(self) -> None:
        limit_terms_check(self)


class CreditKind(models.TextChoices):
    MONEY = "money", "Money (minor units, the company's currency)"
    UNITS = "units", "Units of one feature"


class CreditGrant(models.Model):
    """Credits ops gave a company, spent on overage before anything is billed: money in the
    company's currency (minor units) or units of one feature, usable from ``starts_at``
    until ``expires_at``. ``consumed`` only grows, by a conditional update the database
    keeps within ``amount``. Once used, a grant only ever changes by expiring earlier."""

    company = models.ForeignKey("accounts.Company", on_delete=models.CASCADE, related_name="credit_grants")
    kind = models.CharField(max_length=10, choices=CreditKind.choices)
    feature = models.ForeignKey(
        Feature,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="credit_grants",
        help_text="Unit credits: the feature they pay for. Empty for money.",
    )
    amount = models.PositiveBigIntegerField(help_text="Units of the feature, or money in minor units (cents).")
    currency = models.CharField(
        max_length=3, blank=True, help_text="Money credits: the company's currency when granted (ISO 4217)."
    )
    consumed = models.PositiveBigIntegerField(default=0, help_text="Spent on overage so far (same unit as amount).")
    starts_at = models.DateTimeField(default=timezone.now, help_text="Pays for overage from this moment on.")
    expires_at = models.DateTimeField(help_text="Pays for no overage from this moment on.")
    reason = models.CharField(max_length=200, help_text="Why: the ticket, goodwill gesture or contract clause.")
    granted_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["company", "expires_at", "id"]
        indexes = [models.Index(fields=["company", "expires_at"], name="creditgrant_company_expiry")]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="creditgrant_amount_positive"),
            models.CheckConstraint(
                condition=models.Q(consumed__lte=models.F("amount")), name="creditgrant_consumed_within_amount"
            ),
            models.CheckConstraint(
                condition=models.Q(kind=CreditKind.UNITS, feature__isnull=False)
                | models.Q(kind=CreditKind.MONEY, feature__isnull=True, currency__regex=r"^[A-Z]{3}$"),
                name="creditgrant_units_have_feature_money_currency",
            ),
            models.CheckConstraint(
                condition=models.Q(expires_at__gt=models.F("starts_at")), name="creditgrant_expires_after_start"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.company} · {self.what(self.amount)} (#{self.pk})"

    @property
    def left(self) -> int:
        return self.amount - self.consumed

    def what(self, quantity: int) -> str:
        """``quantity`` of this grant in words: "12.50 USD" or "300 Quotes"."""
        if self.kind == CreditKind.MONEY:
            return format_money(quantity, self.currency)
        return f"{quantity:,} {self.feature}"

    def clean(self) -> None:
        errors = {}
        if self.kind == CreditKind.UNITS and self.feature_id is None:
            errors["feature"] = "Unit credits name the feature they pay for."
        if self.kind == CreditKind.MONEY and self.feature_id is not None:
            errors["feature"] = "Money credits pay for any feature: leave the feature empty."
        if not self.amount:
            errors["amount"] = "A grant gives at least 1 (unit or minor unit)."
        if self.expires_at and self.starts_at and self.expires_at <= self.starts_at:
            errors["expires_at"] = "A grant expires after it starts."
        if errors:
            raise ValidationError(errors)


class CreditConsumption(models.Model):
    """Overage units of one company, feature and period paid from one grant, at one step of
    that period's overage report (``sequence``, shared with the Stripe reports of the
    period: a step pays from credits what it can and reports the rest). A step is taken
    once: (company, feature, period, sequence, grant) is unique."""

    grant = models.ForeignKey(CreditGrant, on_delete=models.RESTRICT, related_name="consumptions")
    company = models.ForeignKey("accounts.Company", on_delete=models.CASCADE, related_name="credit_consumptions")
    feature = models.ForeignKey(Feature, on_delete=models.PROTECT, related_name="credit_consumptions")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    sequence = models.PositiveIntegerField()
    units = models.PositiveBigIntegerField(help_text="Overage units paid for.")
    amount = models.PositiveBigIntegerField(help_text="Taken from the grant: units, or money in minor units.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["company", "period_start"], name="creditconsumption_period"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["company", "feature", "period_start", "sequence", "grant"],
                name="creditconsumption_unique_step_grant",
            ),
            models.CheckConstraint(
                condition=models.Q(units__gt=0, amount__gt=0), name="creditconsumption_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.units:,} {self.feature} from credit #{self.grant_id} ({self.period_start:%Y-%m-%d})"
