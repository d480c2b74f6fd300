"""The plan catalogue in admin: tiers with their limits inline, features. Every change is
audited, inline rows included."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils import timezone

from audit.admin_mixins import AuditedAdminMixin, AuditedInlinesMixin
from audit.services import Actor
from billing.plans.credits import FIELDS as CREDIT_FIELDS
from billing.plans.credits import credit_grant_change, credit_grant_create, credit_grant_expire
from billing.plans.models import (
    CreditConsumption,
    CreditGrant,
    EntitlementOverride,
    Feature,
    LimitMode,
    Tier,
    TierLimit,
    alert_levels_parse,
    default_alert_levels,
)
from core.admin_helpers import short_text, short_time, status_pill
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


class TierForm(forms.ModelForm):
    """Alert levels typed as a list of percents ("50, 80, 100, 150")."""

    alert_levels = forms.CharField(
        label="Alert levels",
        required=False,
        help_text=(
            "Percents of each included quantity at which the company's owners are e-mailed, e.g. "
            "“50, 80, 100, 150”; 100 and above are breaches (an ops task and alert too). Empty: no alerts."
        ),
    )

    class Meta:
        model = Tier
        fields = ["name", "code", "monthly_price", "currency", "order", "is_public", "alert_levels"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        levels = self.instance.alert_levels if self.instance.pk else default_alert_levels()
        self.initial["alert_levels"] = ", ".join(str(level) for level in levels or [])

    def clean_alert_levels(self):
        return alert_levels_parse(self.cleaned_data.get("alert_levels") or "")


@admin.register(Tier)
class TierAdmin(AuditedInlinesMixin, admin.ModelAdmin):
    form = TierForm
    list_display = ["name", "code", "price", "order", "is_public", "levels", "companies_count"]
    list_editable = ["order"]
    search_fields = ["name", "code"]
    inlines = [TierLimitInline]
    fieldsets = [
        (None, {"fields": ["name", "code", ("monthly_price", "currency"), "order", "is_public"]}),
        ("Usage alerts", {"fields": ["alert_levels"]}),
    ]

    @admin.display(description="alert levels")
    def levels(self, tier):
        return " · ".join(f"{level} %" for level in tier.alert_levels or []) or "none"

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


class CreditGrantForm(forms.ModelForm):
    """A grant that paid for overage keeps its terms; only its expiry may move, earlier."""

    class Meta:
        model = CreditGrant
        fields = ["company", "reason", "kind", "feature", "amount", "starts_at", "expires_at"]

    def clean_expires_at(self):
        expires_at = self.cleaned_data.get("expires_at")
        grant = self.instance
        if grant.pk and grant.consumed and expires_at is not None:
            stored = CreditGrant.objects.values_list("expires_at", flat=True).get(pk=grant.pk)
            if expires_at > stored:
                raise forms.ValidationError(
                    "This grant has paid for overage: it can only expire earlier, not later. "
                    "Grant new credits instead."
                )
            if expires_at <= grant.starts_at:
                raise forms.ValidationError("A grant expires after it starts.")
        return expires_at


class CreditConsumptionInline(admin.TabularInline):
    """What the grant paid for: one row per overage report step, never edited."""

    model = CreditConsumption
    fields = readonly_fields = ("created_at", "feature", "period_start", "sequence", "units", "amount")
    extra = 0
    can_delete = False
    ordering = ["created_at", "id"]
    verbose_name = "payment of overage"
    verbose_name_plural = "what it paid for"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


CREDIT_COLOURS = {"active": "#2f855a", "used up": "#718096", "expired": "#718096", "not started": "#2b6cb0"}


@admin.register(CreditGrant)
class CreditGrantAdmin(admin.ModelAdmin):
    """Credits for a company: money (its currency, minor units) or units of one feature.
    Every grant, change and early expiry goes through billing.plans.credits and is
    audited; a grant that paid for overage only ever expires earlier. Never deleted."""

    form = CreditGrantForm
    list_display = ["company", "granted", "left_now", "state", "expires", "short_reason", "granted_by"]
    list_filter = ["kind", "feature", "expires_at"]
    search_fields = ["company__name", "company__slug", "reason"]
    list_select_related = ["company", "feature"]
    autocomplete_fields = ["company", "feature"]
    date_hierarchy = "expires_at"
    inlines = [CreditConsumptionInline]
    actions = ["expire_now"]
    fieldsets = [
        (None, {"fields": ["company", "reason"]}),
        ("Credit", {"fields": ["kind", "feature", "amount", "currency", "consumed"]}),
        ("Valid", {"fields": ["starts_at", "expires_at"]}),
        ("Record", {"fields": ["granted_by", "created_at"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        always = ["currency", "consumed", "granted_by", "created_at"]
        if obj is None:
            return always
        if obj.consumed:
            return [*always, "company", "reason", "kind", "feature", "amount", "starts_at"]
        return [*always, "company"]

    def has_delete_permission(self, request, obj=None):
        return False  # expire instead: the trail and the payments keep pointing at it

    def save_model(self, request, obj, form, change):
        actor = Actor.of_user(request.user)
        if not change:
            grant = credit_grant_create(
                company=obj.company,
                kind=obj.kind,
                feature=obj.feature,
                amount=obj.amount,
                starts_at=obj.starts_at,
                expires_at=obj.expires_at,
                reason=obj.reason,
                actor=actor,
            )
            obj.pk, obj.currency, obj.granted_by = grant.pk, grant.currency, grant.granted_by
            obj._state.adding = False
            return
        changes = {name: getattr(obj, name) for name in form.changed_data if name in CREDIT_FIELDS}
        if changes:
            credit_grant_change(grant=CreditGrant.objects.get(pk=obj.pk), actor=actor, **changes)

    @admin.display(description="granted", ordering="amount")
    def granted(self, grant):
        return grant.what(grant.amount)

    @admin.display(description="left")
    def left_now(self, grant):
        return grant.what(grant.left)

    @admin.display(description="state")
    def state(self, grant):
        now = timezone.now()
        if grant.expires_at <= now:
            label = "expired"
        elif not grant.left:
            label = "used up"
        elif grant.starts_at > now:
            label = "not started"
        else:
            label = "active"
        return status_pill(label, CREDIT_COLOURS[label])

    @admin.display(description="expires", ordering="expires_at")
    def expires(self, grant):
        return short_time(grant.expires_at)

    @admin.display(description="reason")
    def short_reason(self, grant):
        return short_text(grant.reason, 40)

    @admin.action(description="Expire now (what is left pays for nothing more; audited)")
    def expire_now(self, request, queryset):
        actor = Actor.of_user(request.user)
        done, refused = 0, []
        for grant in queryset.select_related("company"):
            try:
                done += credit_grant_expire(grant=grant, actor=actor)
            except ValidationError:
                refused.append(f"#{grant.pk}")
        self.message_user(request, f"{done} grant(s) expired now.", messages.SUCCESS)
        if refused:
            self.message_user(
                request,
                f"Not started yet, so not expired: {', '.join(refused)}. Change their dates instead.",
                messages.WARNING,
            )
