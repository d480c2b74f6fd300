"""Upgrade-prompt experiments: variants, who saw a prompt (exposure) and who upgraded
afterwards (conversion)."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Placement(models.TextChoices):
    USAGE_BANNER = "usage_banner", "Usage page banner"
    PLAN_TABLE = "plan_table", "Plan table"
    WARNING_EMAIL = "warning_email", "Warning e-mail"
    API_PROMPT = "api_prompt", "API upgrade.prompt"


class ExperimentStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    RUNNING = "running", "Running"
    STOPPED = "stopped", "Stopped"
    SHIPPED = "shipped", "Shipped"


class Experiment(models.Model):
    key = models.SlugField(max_length=60, unique=True, help_text="Hashed with the company id to assign a variant.")
    name = models.CharField(max_length=200)
    placement = models.CharField(max_length=20, choices=Placement.choices)
    status = models.CharField(max_length=10, choices=ExperimentStatus.choices, default=ExperimentStatus.DRAFT)
    starts_at = models.DateTimeField(null=True, blank=True, help_text="Set when the experiment starts.")
    stops_at = models.DateTimeField(null=True, blank=True, help_text="Set when it stops or ships.")
    conversion_window_days = models.PositiveSmallIntegerField(
        default=14, validators=[MinValueValidator(1), MaxValueValidator(365)],
        help_text="An upgrade counts if it completes within this many days of the first exposure.",
    )
    holdout_share = models.DecimalField(
        max_digits=4, decimal_places=3, default=0,
        validators=[MinValueValidator(0), MaxValueValidator(0.9)],
        help_text="Share of companies (0 to 0.9) who see no prompt at all.",
    )
    winner = models.ForeignKey(
        "growth.Variant", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="The shipped variant: the placement's default prompt.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One running experiment per placement: a company sees one prompt in one place.
            models.UniqueConstraint(
                fields=["placement"], condition=models.Q(status="running"), name="growth_one_running_per_placement"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Variant(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    key = models.SlugField(max_length=30, help_text="A, B, control, short-headline ...")
    weight = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    is_control = models.BooleanField(default=False)
    headline = models.CharField(max_length=200)
    call_to_action = models.CharField(max_length=100)
    highlighted_tier = models.ForeignKey(
        "billing.Tier", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    threshold_percent = models.PositiveSmallIntegerField(
        default=80, validators=[MaxValueValidator(1000)],
        help_text="The prompt appears once a feature's usage reaches this share of its limit.",
    )

    class Meta:
        ordering = ["experiment", "key"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "key"], name="growth_variant_key_unique"),
            models.UniqueConstraint(
                fields=["experiment"], condition=models.Q(is_control=True), name="growth_one_control"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.experiment.key}/{self.key}"


class ExposureSource(models.TextChoices):
    PAGE = "page", "Account page"
    API = "api", "Frontend (API)"
    EMAIL = "email", "E-mail"


HOLDOUT = "holdout"  # what results and the API call the holdout's "variant"


class Exposure(models.Model):
    """A prompt was shown, or for the holdout (no variant) would have been: the company was
    at the threshold and was shown nothing. One row per company, experiment and day
    (INSERT ... ON CONFLICT DO NOTHING)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="exposures")
    variant = models.ForeignKey(
        Variant, null=True, blank=True, on_delete=models.CASCADE, related_name="exposures",
        help_text="Empty for the holdout.",
    )
    company = models.ForeignKey("accounts.Company", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    shown_at = models.DateTimeField()
    source = models.CharField(max_length=10, choices=ExposureSource.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "company", "day"], name="growth_exposure_once_a_day"),
        ]
        indexes = [models.Index(fields=["company", "shown_at"])]

    def __str__(self) -> str:
        return f"{self.company_id} saw {self.variant_id or HOLDOUT} on {self.day}"


class Conversion(models.Model):
    """A completed upgrade within the window after the company's first exposure (one per experiment)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="conversions")
    variant = models.ForeignKey(
        Variant, null=True, blank=True, on_delete=models.CASCADE, related_name="conversions",
        help_text="Empty for the holdout.",
    )
    company = models.ForeignKey("accounts.Company", on_delete=models.CASCADE, related_name="+")
    first_exposed_at = models.DateTimeField()
    converted_at = models.DateTimeField()
    from_tier = models.ForeignKey("billing.Tier", on_delete=models.PROTECT, related_name="+")
    to_tier = models.ForeignKey("billing.Tier", on_delete=models.PROTECT, related_name="+")
    revenue_uplift = models.BigIntegerField(help_text="Monthly price difference in minor units.")
    currency = models.CharField(max_length=3, default="USD")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "company"], name="growth_conversion_once"),
        ]

    def __str__(self) -> str:
        return f"{self.company_id} converted on {self.converted_at:%Y-%m-%d}"


class Booking(models.Model):
    """A booking the product made (the quote→book feed): the back office sees quotes as
    metered usage but not what became of them. One row per company and idempotency key."""

    company = models.ForeignKey("accounts.Company", on_delete=models.CASCADE, related_name="+")
    idempotency_key = models.CharField(max_length=255)
    quantity = models.PositiveIntegerField(default=1)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["company", "idempotency_key"], name="growth_booking_unique_key"),
        ]
        indexes = [models.Index(fields=["occurred_at"], name="growth_booking_occurred")]

    def __str__(self) -> str:
        return f"{self.company_id}:{self.idempotency_key}"
