"""Plans, companies, memberships and API keys in admin. Every change is audited, inline
rows (a tier's limits, a company's members) included."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils import timezone

from audit.admin_mixins import AuditedAdminMixin, diff, snapshot
from audit.services import Actor, audit_record
from billing.models import Company, CompanyAPIKey, Feature, Membership, Tier, TierLimit
from billing.services import company_api_key_revoke, key_target
from trans_bot.money import format_money
from usage.admin_widgets import bars, status_pill
from usage.models import UsageCounter
from usage.selectors import companies_at_usage_level, usage_level


class AuditedInlinesMixin(AuditedAdminMixin):
    """Also audit rows added, changed or deleted through inlines."""

    def save_formset(self, request, form, formset, change):
        model = formset.model
        pks = [f.instance.pk for f in formset.forms if f.instance.pk is not None]
        before = {obj.pk: snapshot(obj) for obj in model._default_manager.filter(pk__in=pks)}
        super().save_formset(request, form, formset, change)
        actor = Actor.of_user(request.user)
        company = form.instance if isinstance(form.instance, Company) else None
        name = model._meta.label_lower
        for obj in formset.new_objects:
            audit_record(
                action=f"admin.{name}.add",
                actor=actor,
                target=obj,
                company=company,
                details={"changes": diff({}, snapshot(obj))},
            )
        for obj, _fields in formset.changed_objects:
            changes = diff(before.get(obj.pk, {}), snapshot(obj))
            if changes:
                audit_record(
                    action=f"admin.{name}.change",
                    actor=actor,
                    target=obj,
                    company=company,
                    details={"changes": changes},
                )
        for obj in formset.deleted_objects:
            audit_record(
                action=f"admin.{name}.delete",
                actor=actor,
                target=obj,
                company=company,
                details={"before": before.get(obj.pk, {})},
            )


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


class UsageLevelFilter(admin.SimpleListFilter):
    """Companies with a feature at warning level, or over its limit, this period."""

    title = "usage"
    parameter_name = "usage"

    def lookups(self, request, model_admin):
        return [("warning", "At warning level"), ("exceeded", "Over a limit")]

    def queryset(self, request, queryset):
        if self.value() not in ("warning", "exceeded"):
            return queryset
        return companies_at_usage_level(queryset, level=self.value())


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]
    raw_id_fields = ["user"]


class CompanyAPIKeyInline(admin.TabularInline):
    model = CompanyAPIKey
    extra = 0
    fields = ["name", "prefix", "created", "last_used_at", "revoked", "expiry_date"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


STATUS_COLOURS = {"trialing": "#1565c0", "active": "#2e7d32", "past_due": "#c62828", "canceled": "#757575"}


@admin.register(Company)
class CompanyAdmin(AuditedInlinesMixin, admin.ModelAdmin):
    list_display = ["name", "tier", "coloured_status", "usage", "billing_anchor_day", "created_at"]
    list_filter = ["tier", "status", UsageLevelFilter]
    list_select_related = ["tier"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline, CompanyAPIKeyInline]
    fieldsets = [
        (None, {"fields": ["name", "slug"]}),
        ("Plan", {"fields": ["tier", "status", "billing_anchor_day", "usage"]}),
    ]
    readonly_fields = ["usage"]

    def get_readonly_fields(self, request, obj=None):
        # Usage is counted per period, and the anchor day defines the periods: moving it
        # under a company with usage would start a fresh, empty period mid-month.
        if obj is not None and UsageCounter.objects.filter(company=obj).exists():
            return [*self.readonly_fields, "billing_anchor_day"]
        return self.readonly_fields

    def get_changelist_instance(self, request):
        """Load this page's usage in two queries, not two per company."""
        changelist = super().get_changelist_instance(request)
        _attach_usage(list(changelist.result_list))
        return changelist

    @admin.display(description="status", ordering="status")
    def coloured_status(self, company):
        return status_pill(company.get_status_display(), STATUS_COLOURS.get(company.status, "#555"))

    @admin.display(description="usage this period")
    def usage(self, company):
        if company.pk is None:
            return "—"
        if not hasattr(company, "_usage"):
            _attach_usage([company])
        return bars(company._usage)


def _attach_usage(companies: list[Company]) -> None:
    if not companies:
        return
    now = timezone.now()
    used = {
        (c.company_id, c.feature_id): c.used
        for c in UsageCounter.objects.filter(
            company__in=companies, period_start__lte=now, period_end__gt=now
        ).only("company_id", "feature_id", "used")
    }
    limits = {
        (lim.tier_id, lim.feature_id): lim.included
        for lim in TierLimit.objects.filter(tier__in={c.tier_id for c in companies})
    }
    features = list(Feature.objects.all())
    for company in companies:
        items = []
        for feature in features:
            count = used.get((company.pk, feature.pk), 0)
            included = limits.get((company.tier_id, feature.pk))
            items.append(
                {
                    "name": feature.name,
                    "used": count,
                    "included": included,
                    "level": usage_level(count, included),
                }
            )
        company._usage = items


@admin.register(CompanyAPIKey)
class CompanyAPIKeyAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Create a key here: its secret is shown once, in the message after saving, and is
    never stored (only its hash). Revoking is for good."""

    audit_exclude = {"id", "hashed_key", "last_login"}
    list_display = ["name", "company", "prefix", "created", "last_used_at", "revoked", "expiry_date"]
    list_filter = ["revoked"]
    search_fields = ["name", "prefix", "company__name"]
    list_select_related = ["company"]
    actions = ["revoke_keys"]
    autocomplete_fields = ["company"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["company", "name", "expiry_date"]
        return ["company", "name", "prefix", "created", "last_used_at", "revoked", "expiry_date"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["company", "prefix", "created", "last_used_at", "revoked"]

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if not change:
            secret = CompanyAPIKey.objects.assign_key(obj)
            super().save_model(request, obj, form, change)
            self.message_user(
                request,
                f"The API key for {obj.company} is: {secret} — copy it now, it will not be shown again.",
                messages.WARNING,
            )
            return
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        admin.ModelAdmin.save_related(self, request, form, formsets, change)
        obj = form.instance
        changes = diff(getattr(request, "_audit_before", {}), snapshot(obj, exclude=self.audit_exclude))
        if change and not changes:
            return
        audit_record(
            action=self._action_name("change" if change else "add"),
            actor=Actor.of_user(request.user),
            target=key_target(obj),
            company=obj.company,
            details={"changes": changes},
        )

    @admin.action(description="Revoke selected keys (cannot be undone)")
    def revoke_keys(self, request, queryset):
        actor = Actor.of_user(request.user)
        revoked = sum(
            company_api_key_revoke(key=key, actor=actor) for key in queryset.select_related("company")
        )
        self.message_user(request, f"Revoked {revoked} key(s).", messages.SUCCESS)


from billing import admin_stripe  # noqa: E402,F401  (Stripe billing admin)
