"""The plan catalogue in admin: tiers with their limits inline, features. Every change is
audited, inline rows included."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from audit.admin_mixins import AuditedAdminMixin, AuditedInlinesMixin
from billing.plans.models import EntitlementOverride, Feature, LimitMode, Tier, TierLimit
from core.money import format_money


class TierLimitForm(forms.ModelForm):
    """A form posted without a mode (older scripts) keeps the row's mode."""

    class Meta:
        model = TierLimit
        fields = ["feature", "included", "overage_unit_price", "mode", "overage_cap"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["mode"].required = False

    def clean_mode(self):
        return self.cleaned_data.get("mode") or self.instance.mode or LimitMode.SOFT


class TierLimitInline(admin.TabularInline):
    model = TierLimit
    form = TierLimitForm
    extra = 0
    fields = ["feature", "included", "overage_unit_price", "mode", "overage_cap"]
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


@admin.register(EntitlementOverride)
class EntitlementOverrideAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Contract terms for one company and feature, in force between two dates."""

    list_display = ["company", "feature", "included", "mode", "overage_unit_price", "starts_at", "ends_at", "reason"]
    list_filter = ["mode", "feature"]
    search_fields = ["company__name", "company__slug", "reason"]
    list_select_related = ["company", "feature"]
    autocomplete_fields = ["company", "feature"]
    date_hierarchy = "starts_at"
    fieldsets = [
        (None, {"fields": ["company", "feature", "reason"]}),
        ("Terms", {"fields": ["included", "mode", "overage_unit_price", "overage_cap"]}),
        ("In force", {"fields": ["starts_at", "ends_at"]}),
    ]
