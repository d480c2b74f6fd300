"""The plan catalogue in admin: tiers with their limits inline, features. Every change is
audited, inline rows included."""

from __future__ import annotations

from django.contrib import admin

from audit.admin_mixins import AuditedAdminMixin, AuditedInlinesMixin
from billing.plans.models import Feature, Tier, TierLimit
from core.money import format_money


class TierLimitInline(admin.TabularInline):
    model = TierLimit
    extra = 0
    fields = ["feature", "included", "overage_unit_price"]
    autocomplete_fields = ["feature"]


@admin.register(Tier)
class TierAdmin(AuditedInlinesMixin, admin.ModelAdmin):
    list_display = ["name", "code", "price", "order", "is_public", "companies_count"]
    list_editable = ["order"]
    search_fields = ["name", "code"]
    inlines = [TierLimitInline]
    fieldsets = [(None, {"fields": ["name", "code", ("monthly_price", "currency"), "order", "is_public"]})]

    @admin.display(description="monthly price", ordering="monthly_price")
    def price(self, tier):
        return format_money(tier.monthly_price, tier.currency)

    @admin.display(description="companies")
    def companies_count(self, tier):
        return tier.companies.count()


@admin.register(Feature)
class FeatureAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "code", "unit", "order"]
    search_fields = ["name", "code"]
