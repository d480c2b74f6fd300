"""Our side of Stripe: the mapping of companies, tiers and features to Stripe objects, the
webhook events Stripe sent us, and ``BillingEvent`` -- one row per thing billing did.

dj-stripe does not fit (no Billing Meter support, pins an older SDK), so these are the few
models we need and nothing more.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class CompanyStripe(models.Model):
    """A company's Stripe customer (created on demand) and its subscription.

    Two last-writer-wins registers, each ordered by Stripe's ``created`` (Unix seconds)
    × 10 + a rank for events of the same second (created < failed < paid < updated <
    deleted): the subscription's state (``subscription_status``/``subscription_state_key``)
    and the latest invoice outcome (``invoice_outcome``/``invoice_key``). The company's
    status is a pure function of the two (``billing.stripe.subscriptions.derived_status``), so the
    result is the same whatever order Stripe delivers the events in.
    """

    company = models.OneToOneField("accounts.Company", on_delete=models.CASCADE, related_name="stripe")
    customer_id = models.CharField(max_length=100, unique=True, null=True, blank=True)
    subscription_id = models.CharField(max_length=100, unique=True, null=True, blank=True)
    subscription_item_id = models.CharField(
        max_length=100, blank=True, help_text="The subscription item carrying the tier's price."
    )
    subscription_price_id = models.CharField(max_length=100, blank=True)
    subscription_status = models.CharField(max_length=30, blank=True)
    subscription_state_key = models.BigIntegerField(
        default=0,
        help_text="Order key (Stripe created × 10 + event rank) of the newest subscription state applied.",
    )
    invoice_outcome = models.CharField(
        max_length=10, blank=True, help_text="'paid' or 'failed': the newest invoice event of the subscription."
    )
    invoice_key = models.BigIntegerField(default=0, help_text="Order key of that invoice event.")
    trial_end = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the subscription's trial ends or ended (Stripe's trial_end; when the subscription "
        "ended during its trial, then). Empty: no trial.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "Stripe mapping (company)"
        verbose_name_plural = "Stripe mappings (companies)"

    def __str__(self) -> str:
        return f"{self.company} → {self.customer_id or 'no customer'}"


class TierPrice(models.Model):
    """The Stripe recurring price a tier is sold at (Checkout and price changes use it)."""

    tier = models.OneToOneField("billing.Tier", on_delete=models.CASCADE, related_name="stripe_price")
    price_id = models.CharField(max_length=100, unique=True, help_text="Stripe price id, e.g. price_123.")

    class Meta:
        verbose_name = "Stripe price (tier)"
        verbose_name_plural = "Stripe prices (tiers)"

    def __str__(self) -> str:
        return f"{self.tier} = {self.price_id}"


class TierFeaturePrice(models.Model):
    """The Stripe metered (usage-based) price a tier bills a feature's overage at.

    Meter events only turn into money through a metered price on the subscription: Checkout
    puts every metered price of the tier on the new subscription (without a quantity), and
    a plan change swaps the old tier's metered items for the new tier's."""

    tier = models.ForeignKey("billing.Tier", on_delete=models.CASCADE, related_name="stripe_metered_prices")
    feature = models.ForeignKey("billing.Feature", on_delete=models.CASCADE, related_name="+")
    price_id = models.CharField(
        max_length=100, unique=True, help_text="Stripe metered price id (recurring, usage_type=metered)."
    )

    class Meta:
        verbose_name = "Stripe metered price (tier, feature)"
        verbose_name_plural = "Stripe metered prices (tier, feature)"
        ordering = ["tier__order", "feature__order"]
        constraints = [
            models.UniqueConstraint(fields=["tier", "feature"], name="tierfeatureprice_unique_tier_feature")
        ]

    def __str__(self) -> str:
        return f"{self.tier} · {self.feature} = {self.price_id}"


class FeatureMeter(models.Model):
    """The Stripe Billing Meter a feature's overage is reported to."""

    feature = models.OneToOneField("billing.Feature", on_delete=models.CASCADE, related_name="stripe_meter")
    event_name = models.CharField(
        max_length=100, unique=True, help_text="The meter's event_name (what meter events are sent as)."
    )
    meter_id = models.CharField(
        max_length=100, blank=True, help_text="Stripe meter id (mtr_...), needed for reconciliation."
    )

    class Meta:
        verbose_name = "Stripe meter (feature)"
        verbose_name_plural = "Stripe meters (features)"

    def __str__(self) -> str:
        return f"{self.feature} → {self.event_name}"


class BillingEventKind(models.TextChoices):
    OVERAGE = "overage", "Overage reported"
    UPGRADE = "upgrade", "Upgrade"
    DOWNGRADE = "downgrade", "Downgrade"
    TIER_CHANGE = "tier_change", "Tier changed by Stripe"
    SUBSCRIPTION = "subscription", "Subscription status"
    INVOICE_PAID = "invoice_paid", "Invoice paid"
    PAYMENT_FAILED = "payment_failed", "Payment failed"
    METER_ERROR = "meter_error", "Meter error report"


class BillingEventStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # to be sent to Stripe
    SENDING = "sending", "Sending"  # claimed by one worker
    SENT = "sent", "Sent"  # Stripe accepted it (or said it already had it)
    FAILED = "failed", "Failed"  # Stripe refused; an ops task says so
    RECORDED = "recorded", "Recorded"  # an effect of a webhook: nothing to send


class BillingEvent(models.Model):
    """One thing billing did or learnt: an overage report, an upgrade, a payment failure.

    For overage, ``(company, feature, period_start, sequence)`` is unique and
    ``identifier`` is derived from it, so a retry, a second worker or a crash between
    Stripe's answer and our commit re-sends the same identifier, which Stripe dedups.
    """

    kind = models.CharField(max_length=20, choices=BillingEventKind.choices)
    status = models.CharField(
        max_length=10, choices=BillingEventStatus.choices, default=BillingEventStatus.PENDING
    )
    company = models.ForeignKey("accounts.Company", on_delete=models.PROTECT, related_name="billing_events")
    feature = models.ForeignKey(
        "billing.Feature", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    sequence = models.PositiveIntegerField(default=0, help_text="1, 2, ... per company, feature, period.")
    units = models.BigIntegerField(default=0)
    amount = models.BigIntegerField(default=0, help_text="Estimated amount in minor units.")
    currency = models.CharField(max_length=3, default="USD")
    identifier = models.CharField(
        max_length=100, unique=True, null=True, blank=True, help_text="Meter event identifier sent to Stripe."
    )
    meter_timestamp = models.DateTimeField(
        null=True, blank=True, help_text="When the usage is dated at Stripe."
    )
    from_tier = models.ForeignKey(
        "billing.Tier", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    to_tier = models.ForeignKey(
        "billing.Tier", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    stripe_event_id = models.CharField(max_length=100, blank=True, help_text="Webhook event that caused it.")
    stripe_object_id = models.CharField(
        max_length=100, blank=True, help_text="Invoice, session or subscription id."
    )
    stripe_response = models.JSONField(default=dict, blank=True)
    details = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    first_attempt_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="First send to Stripe. Automatic resends stop 24 h later (Stripe's identifier dedup window).",
    )
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["company", "feature", "period_start", "sequence"],
                condition=Q(kind="overage"),
                name="billingevent_unique_overage_seq",
            ),
            models.UniqueConstraint(
                fields=["stripe_event_id", "kind"],
                condition=~Q(stripe_event_id=""),
                name="billingevent_unique_webhook_effect",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="billingevent_due"),
            models.Index(fields=["company", "kind", "-created_at"], name="billingevent_company_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.company_id}, {self.status})"


class WebhookEventStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    PROCESSED = "processed", "Processed"
    IGNORED = "ignored", "Ignored (type not handled)"
    FAILED = "failed", "Failed"


class StripeWebhookEvent(models.Model):
    """A verified event Stripe sent us, stored once by its id before it is processed."""

    stripe_id = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=100, db_index=True)
    created = models.BigIntegerField(help_text="Stripe's created time (Unix seconds).")
    livemode = models.BooleanField(default=False)
    payload = models.JSONField()
    status = models.CharField(
        max_length=10, choices=WebhookEventStatus.choices, default=WebhookEventStatus.RECEIVED
    )
    attempts = models.PositiveIntegerField(default=0)
    deliveries = models.PositiveIntegerField(default=1, help_text="How often Stripe delivered it.")
    error = models.TextField(blank=True)
    outcome = models.CharField(max_length=200, blank=True)
    next_attempt_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Failed: when the next automatic try is due (the sweep takes it if its retry was lost). "
        "Empty: no more automatic tries; an ops task says so.",
    )
    received_at = models.DateTimeField()
    last_delivery_at = models.DateTimeField()
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = "Stripe webhook event"
        indexes = [models.Index(fields=["status", "received_at"], name="webhookevent_status")]

    def __str__(self) -> str:
        return f"{self.type} {self.stripe_id}"


class WebhookRejection(models.Model):
    """How many webhook deliveries were rejected, per reason. Nothing else of a rejected
    delivery is kept (its body is untrusted), except the event id of a correctly signed one."""

    reason = models.CharField(max_length=30, unique=True)
    count = models.BigIntegerField(default=0)
    last_at = models.DateTimeField()
    last_event_id = models.CharField(
        max_length=100,
        blank=True,
        help_text="The event id of the last correctly signed delivery rejected for this reason "
        "(a Stripe event we could not read): replay it from the Stripe dashboard once fixed.",
    )

    class Meta:
        verbose_name = "Stripe webhook rejection counter"

    def __str__(self) -> str:
        return f"{self.reason}: {self.count}"

