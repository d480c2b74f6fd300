"""Metered usage: the append-only events, the per-period counters they roll up into, the
threshold crossings ingestion (or, as a safety net, the nightly monitor) has acted on, and
the monitor's run reports.

Reads never scan events: the usage meter and the monitor read counters only.
"""

from __future__ import annotations

from django.db import models


class UsageEvent(models.Model):
    """One metered event as the product backend sent it. Append-only: never updated or
    deleted by the application; (company, idempotency_key, period_start) makes a retry
    harmless, and the fingerprint tells a retry (same content) from a reused key (different
    content).

    On PostgreSQL the table is partitioned by month of ``period_start`` (usage.partitions):
    the partition key must be in every unique constraint, so a key is unique per company
    per billing period, and the database's primary key is (id, period_start) (ids still
    come from one sequence)."""

    company = models.ForeignKey("accounts.Company", on_delete=models.CASCADE, related_name="usage_events")
    feature = models.ForeignKey("billing.Feature", on_delete=models.PROTECT, related_name="usage_events")
    quantity = models.PositiveBigIntegerField()
    idempotency_key = models.CharField(max_length=255)
    fingerprint = models.CharField(
        max_length=64, help_text="Hash of feature, quantity and occurred_at as sent."
    )
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    period_start = models.DateTimeField(help_text="Start of the billing period the event counts in.")
    api_key = models.ForeignKey(
        "accounts.CompanyAPIKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["company", "idempotency_key", "period_start"], name="usageevent_unique_company_key"
            ),
        ]
        indexes = [models.Index(fields=["company", "occurred_at"], name="usageevent_company_time")]

    def __str__(self) -> str:
        return f"{self.company_id}:{self.idempotency_key}"


class UsageCounter(models.Model):
    """Units used by a company of a feature in one billing period, kept up to date in the
    transaction that stores the events (``INSERT ... ON CONFLICT DO UPDATE``)."""

    company = models.ForeignKey("accounts.Company", on_delete=models.CASCADE, related_name="usage_counters")
    feature = models.ForeignKey("billing.Feature", on_delete=models.PROTECT, related_name="usage_counters")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    used = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["company", "feature", "-period_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["company", "feature", "period_start"], name="usagecounter_unique_period"
            ),
        ]
        indexes = [models.Index(fields=["period_end", "period_start"], name="usagecounter_period")]

    def __str__(self) -> str:
        return f"{self.company_id}/{self.feature_id}@{self.period_start:%Y-%m-%d}: {self.used}"


class MonitorRunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    ABANDONED = "abandoned", "Abandoned (died midway)"


class MonitorRun(models.Model):
    """One run of the nightly usage monitor, dry or not: what it scanned, found and did."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    dry_run = models.BooleanField(default=False)
    trigger = models.CharField(max_length=20, default="manual", help_text="beat, command or admin.")
    status = models.CharField(
        max_length=20, choices=MonitorRunStatus.choices, default=MonitorRunStatus.RUNNING
    )
    companies_scanned = models.PositiveIntegerField(default=0)
    warnings = models.PositiveIntegerField(default=0, help_text="Company/feature pairs at warning level now.")
    breaches = models.PositiveIntegerField(default=0, help_text="Company/feature pairs over their limit now.")
    new_warnings = models.PositiveIntegerField(default=0)
    new_breaches = models.PositiveIntegerField(default=0)
    new_tasks = models.PositiveIntegerField(default=0)
    missed_by_ingest = models.PositiveIntegerField(
        default=0, help_text="New crossings this run found that ingestion had not recorded (should be 0)."
    )
    report = models.JSONField(default=dict, blank=True, help_text="Worst offenders and new crossings.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        kind = "dry run" if self.dry_run else "run"
        return f"Monitor {kind} #{self.pk} at {self.started_at:%Y-%m-%d %H:%M} ({self.status})"


BREACH_PERCENT = 100


class CrossingSource(models.TextChoices):
    INGEST = "ingest", "Ingestion (the request that crossed it)"
    MONITOR = "monitor", "Nightly monitor (missed by ingestion)"


class ThresholdCrossing(models.Model):
    """A company's feature reached a level (a percent of its included quantity) in a
    period. The unique constraint is what makes ingestion and the monitor act once per
    company, feature, period and level, however many requests or runs get there together."""

    company = models.ForeignKey(
        "accounts.Company", on_delete=models.CASCADE, related_name="threshold_crossings"
    )
    feature = models.ForeignKey("billing.Feature", on_delete=models.PROTECT, related_name="+")
    period_start = models.DateTimeField()
    level = models.PositiveSmallIntegerField(
        help_text="Percent of the included quantity reached; 100 and above are breaches."
    )
    used = models.BigIntegerField()
    included = models.BigIntegerField()
    notified = models.BooleanField(
        default=True, help_text="False when a higher level was crossed at the same moment and alerted instead."
    )
    source = models.CharField(max_length=10, choices=CrossingSource.choices, default=CrossingSource.INGEST)
    run = models.ForeignKey(
        MonitorRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="crossings"
    )
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["company", "feature", "period_start", "level"], name="crossing_unique_level"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.company} {self.feature} {self.level} % ({self.period_start:%Y-%m-%d})"

    @property
    def is_breach(self) -> bool:
        return self.level >= BREACH_PERCENT
