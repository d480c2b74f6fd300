"""Tenants: the companies that buy Trans Bot, who belongs to each, and the keys a
company's product backend reports usage with. Its users and keys see only its data.

The tables keep their original names (``billing_company`` ...): these models moved here
from billing without touching the data.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from rest_framework_api_key.models import AbstractAPIKey

from billing.plans.models import Tier


def default_tier_id() -> int | None:
    """Companies created without a tier start on the cheapest one. Without any tier there
    is no default; the catalogue is installed by billing's data migration (or a fixture),
    never as a side effect of creating a company."""
    return Tier.objects.order_by("order", "monthly_price", "id").values_list("pk", flat=True).first()


class CompanyStatus(models.TextChoices):
    TRIALING = "trialing", "Trialing"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    CANCELED = "canceled", "Canceled"


class Company(models.Model):
    """A tenant: a customer company of Trans Bot. Its users and keys see only its data."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    tier = models.ForeignKey(
        Tier, on_delete=models.PROTECT, related_name="companies", default=default_tier_id
    )
    status = models.CharField(max_length=20, choices=CompanyStatus.choices, default=CompanyStatus.ACTIVE)
    billing_anchor_day = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(31)],
        help_text=(
            "Day of the month each monthly period starts (00:00 UTC). In shorter months a "
            "period starts on the month's last day instead."
        ),
    )
    alert_levels = models.JSONField(
        default=list, blank=True, help_text="The owners' own usage alert levels (percent), on top of the tier's."
    )
    spend_cap = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="Most overage money per period in minor units; at the cap overage is refused. Empty: no cap.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    users = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="companies", blank=True
    )

    class Meta:
        db_table = "billing_company"
        ordering = ["name"]
        verbose_name_plural = "companies"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(billing_anchor_day__gte=1, billing_anchor_day__lte=31),
                name="company_anchor_day_1_31",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class MembershipRole(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"


class Membership(models.Model):
    """A user's place in a company. Owners get usage alerts; owners and admins may upgrade."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=MembershipRole.choices, default=MembershipRole.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "billing_membership"
        ordering = ["company", "user"]
        constraints = [
            models.UniqueConstraint(fields=["user", "company"], name="membership_unique_user_company"),
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.company} ({self.role})"


class CompanyAPIKey(AbstractAPIKey):
    """A key the company's product backend sends usage with. Stored hashed (sha512 of a
    high-entropy key), shown once at creation, revocable (for good)."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="api_keys")
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta(AbstractAPIKey.Meta):
        db_table = "billing_companyapikey"
        verbose_name = "company API key"
        verbose_name_plural = "company API keys"
