"""Admin for Stripe billing: the mappings ops edit (audited), and the read-only history
of what billing did (billing events) and what Stripe told us (webhook events), with the
two actions ops need: "send again" and "process again". Imported from billing/admin.py."""

from __future__ import annotations

from django.contrib import admin, messages

from audit.admin_mixins import AuditedModelAdmin
from audit.services import Actor
from billing.stripe.models import (
    BillingEvent,
    BillingEventStatus,
    CompanyStripe,
    FeatureMeter,
    StripeWebhookEvent,
    TierFeaturePrice,
    TierPrice,
    WebhookEventStatus,
    WebhookRejection,
)
from billing.stripe.overage import billing_event_send_again
from billing.stripe.webhook_processing import webhook_event_reprocess
from core.admin_helpers import ReadOnlyAdmin, status_pill
from core.money import format_money

STATUS_COLOURS = {
    "pending": "#b7791f",
    "sending": "#b7791f",
    "received": "#b7791f",
    "sent": "#2f855a",
    "processed": "#2f855a",
    "recorded": "#2b6cb0",
    "ignored": "#718096",
    "failed": "#c53030",
}


def _pill(value: str, label: str):
    return status_pill(label, STATUS_COLOURS.get(value, "#718096"))


@admin.register(CompanyStripe)
class CompanyStripeAdmin(AuditedModelAdmin):
    list_display = ("company", "customer_id", "subscription_id", "subscription_status", "updated_at")
    list_select_related = ("company",)
    search_fields = ("company__name", "company__slug", "customer_id", "subscription_id")
    list_filter = ("subscription_status",)
    autocomplete_fields = ()
    raw_id_fields = ("company",)
    readonly_fields = ("subscription_state_key", "invoice_outcome", "invoice_key", "updated_at")
    fieldsets = (
        (None, {"fields": ("company",)}),
        (
            "Stripe",
            {"fields": ("customer_id", "subscription_id", "subscription_item_id", "subscription_price_id")},
        ),
        (
            "State (follows Stripe's webhooks)",
            {
                "fields": (
                    "subscription_status", "subscription_state_key", "invoice_outcome", "invoice_key", "updated_at",
                )
            },
        ),
    )


@admin.register(TierPrice)
class TierPriceAdmin(AuditedModelAdmin):
    list_display = ("tier", "price_id")
    list_select_related = ("tier",)


@admin.register(TierFeaturePrice)
class TierFeaturePriceAdmin(AuditedModelAdmin):
    list_display = ("tier", "feature", "price_id")
    list_filter = ("tier", "feature")
    list_select_related = ("tier", "feature")


@admin.register(FeatureMeter)
class FeatureMeterAdmin(AuditedModelAdmin):
    list_display = ("feature", "event_name", "meter_id")
    list_select_related = ("feature",)


@admin.register(BillingEvent)
class BillingEventAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "kind",
        "status_pill",
        "company",
        "feature",
        "period_start",
        "sequence",
        "units",
        "amount_display",
        "attempts",
    )
    list_filter = ("kind", "status", "feature")
    list_select_related = ("company", "feature")
    search_fields = ("company__name", "company__slug", "identifier", "stripe_event_id", "stripe_object_id")
    date_hierarchy = "created_at"
    actions = ["send_again"]
    fieldsets = (
        (None, {"fields": ("kind", "status", "company", "created_at")}),
        (
            "Overage",
            {
                "fields": (
                    "feature",
                    "period_start",
                    "period_end",
                    "sequence",
                    "units",
                    "identifier",
                    "meter_timestamp",
                )
            },
        ),
        ("Money and plan", {"fields": ("amount", "currency", "from_tier", "to_tier")}),
        ("Stripe", {"fields": ("stripe_event_id", "stripe_object_id", "stripe_response", "details")}),
        ("Delivery", {"fields": ("attempts", "next_attempt_at", "claimed_at", "sent_at", "error")}),
    )

    @admin.display(description="status", ordering="status")
    def status_pill(self, obj: BillingEvent):
        return _pill(obj.status, obj.get_status_display())

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: BillingEvent) -> str:
        return format_money(obj.amount, obj.currency)

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Send again (failed overage reports; same identifier, never billed twice)")
    def send_again(self, request, queryset):
        actor = Actor.of_user(request.user)
        done = sum(
            billing_event_send_again(event=e, actor=actor)
            for e in queryset.filter(status=BillingEventStatus.FAILED).select_related("company")
        )
        self.message_user(
            request, f"{done} report(s) queued; the next overage run sends them.", messages.SUCCESS
        )


@admin.register(StripeWebhookEvent)
class StripeWebhookEventAdmin(ReadOnlyAdmin):
    list_display = (
        "received_at", "type", "status_pill", "stripe_id", "deliveries", "attempts", "next_attempt_at", "outcome"
    )
    list_filter = ("status", "type", "livemode")
    search_fields = ("stripe_id", "type", "error", "outcome")
    date_hierarchy = "received_at"
    actions = ["process_again"]
    readonly_fields = [f.name for f in StripeWebhookEvent._meta.fields]

    @admin.display(description="status", ordering="status")
    def status_pill(self, obj: StripeWebhookEvent):
        return _pill(obj.status, obj.get_status_display())

    @admin.action(description="Process again (failed or unprocessed events only)")
    def process_again(self, request, queryset):
        actor = Actor.of_user(request.user)
        outcomes: dict[str, int] = {}
        pending = queryset.filter(status__in=[WebhookEventStatus.RECEIVED, WebhookEventStatus.FAILED])
        for event in pending:
            outcome = webhook_event_reprocess(event=event, actor=actor)
            key = outcome.split(":")[0]
            outcomes[key] = outcomes.get(key, 0) + 1
        summary = ", ".join(f"{v} {k}" for k, v in outcomes.items()) or "nothing to do (already processed)"
        level = messages.WARNING if "failed" in outcomes else messages.SUCCESS
        self.message_user(request, f"Processed again: {summary}.", level)


@admin.register(WebhookRejection)
class WebhookRejectionAdmin(ReadOnlyAdmin):
    list_display = ("reason", "count", "last_at", "last_event_id")
