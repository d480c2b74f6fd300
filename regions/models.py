"""Regions, their live health, the failover policy and the history of failovers.

Invariants live in the database, because several workers decide at the same moment:
at most one region is active (a partial unique constraint; services keep it at exactly
one), the policy is a single row whose ``epoch`` every failover bumps with a
conditional UPDATE, and a region's ``status_epoch`` counts its health transitions so an
alert about a transition can be deduplicated by it.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

_STATUS_PART = re.compile(r"[1-5](\d\d|xx)", re.IGNORECASE)


def validate_expected_status(value: str) -> None:
    """A typo here ("200;204", "ok") would match no answer, so every probe would fail and
    the region would be failed over for real: refuse it where it is typed."""
    parts = [part.strip() for part in value.split(",")]
    bad = [part for part in parts if not _STATUS_PART.fullmatch(part)]
    if bad:
        raise ValidationError(
            "Use status codes such as 200 or classes such as 2xx, comma-separated (e.g. '200,204' or '2xx'); "
            "not understood: %(bad)s.",
            code="invalid_status_spec",
            params={"bad": ", ".join(repr(part) for part in bad)},
        )


class RegionStatus(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    HEALTHY = "healthy", "Healthy"
    UNHEALTHY = "unhealthy", "Unhealthy"


class Region(models.Model):
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=50, unique=True, help_text="Matches REGION_NAME of its deployment.")
    base_url = models.URLField(help_text="Public base URL, e.g. https://eu.transbot.ai (no trailing slash).")
    health_path = models.CharField(max_length=200, default="/healthz")
    order = models.PositiveIntegerField(default=0, help_text="Lower comes first: the primary has the lowest.")
    enabled = models.BooleanField(default=True, help_text="Disabled regions are neither probed nor chosen.")
    probe_timeout = models.FloatField(
        default=5.0, validators=[MinValueValidator(0.05), MaxValueValidator(60)], help_text="Seconds."
    )
    expected_status = models.CharField(
        max_length=100,
        default="2xx",
        validators=[validate_expected_status],
        help_text="Comma-separated codes or classes, e.g. '2xx' or '200,204'.",
    )
    body_contains = models.CharField(
        max_length=200, blank=True, help_text="If set, the response body must contain this text."
    )
    drill_fail = models.BooleanField(
        default=False, help_text="Game-day switch: while on, every probe of this region fails."
    )

    # Live state, written by the prober and the gate only.
    is_active = models.BooleanField(default=False, editable=False)
    status = models.CharField(max_length=10, choices=RegionStatus.choices, default=RegionStatus.UNKNOWN, editable=False)
    status_epoch = models.PositiveIntegerField(default=0, editable=False)
    status_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    consecutive_successes = models.PositiveIntegerField(default=0, editable=False)
    failing_since = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="First failing probe of the current streak."
    )
    last_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_latency_ms = models.FloatField(null=True, blank=True, editable=False)
    last_status_code = models.PositiveIntegerField(null=True, blank=True, editable=False)
    last_error = models.CharField(max_length=300, blank=True, editable=False)

    class Meta:
        ordering = ["order", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=Q(is_active=True), name="regions_one_active_region"
            ),
        ]
        permissions = [("fail_over", "Can fail over between regions")]

    def __str__(self) -> str:
        return self.name

    @property
    def health_url(self) -> str:
        return self.base_url.rstrip("/") + "/" + self.health_path.lstrip("/")


class ReadPolicy(models.TextChoices):
    SERVE = "serve", "Serve reads locally"
    REDIRECT = "redirect", "Redirect reads to the active region"


class FailoverPolicy(models.Model):
    """The one policy row (pk=1). Read it with ``selectors.policy_get()``."""

    multi_region_enabled = models.BooleanField(
        default=False,
        help_text="Off: single-region mode, routing only adds headers and the gate never fails over.",
    )
    probe_interval_seconds = models.PositiveIntegerField(
        default=30, validators=[MinValueValidator(1), MaxValueValidator(3600)]
    )
    failure_threshold = models.PositiveIntegerField(
        default=3, validators=[MinValueValidator(1)], help_text="Consecutive failed probes before unhealthy."
    )
    recovery_threshold = models.PositiveIntegerField(
        default=3,
        validators=[MinValueValidator(1)],
        help_text="Consecutive good probes before an unhealthy region counts as healthy again.",
    )
    auto_failback = models.BooleanField(
        default=False, help_text="Move traffic back to a recovered higher-priority region by itself."
    )
    cooldown_seconds = models.PositiveIntegerField(
        default=600, help_text="Minimum time between a failover and the next automatic one."
    )
    read_policy = models.CharField(max_length=10, choices=ReadPolicy.choices, default=ReadPolicy.SERVE)
    slo_target = models.DecimalField(
        max_digits=6,
        decimal_places=3,
        default=99.95,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="Availability target in percent over a rolling 30-day window.",
    )
    probe_retention_days = models.PositiveIntegerField(default=30, validators=[MinValueValidator(1)])

    pinned_region = models.ForeignKey(
        Region, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    pinned_at = models.DateTimeField(null=True, blank=True, editable=False)
    pinned_by = models.CharField(max_length=150, blank=True, editable=False)
    pin_reason = models.CharField(max_length=500, blank=True, editable=False)

    # Bumped by every failover: the gate's conditional UPDATE on it is what makes a
    # decision happen once however many workers reach it.
    epoch = models.PositiveIntegerField(default=0, editable=False)
    last_failover_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Set while the active region is down and nothing can take over (all down, pinned, no
    # healthy standby); the alert for that goes out when it is first set.
    stranded_since = models.DateTimeField(null=True, blank=True, editable=False)
    stranded_reason = models.CharField(max_length=300, blank=True, editable=False)

    class Meta:
        verbose_name = "failover policy"
        verbose_name_plural = "failover policy"
        constraints = [models.CheckConstraint(condition=Q(pk=1), name="regions_policy_singleton")]

    def __str__(self) -> str:
        return "Failover policy"


class Probe(models.Model):
    region = models.ForeignKey(Region, on_delete=models.CASCADE, related_name="probes")
    checked_at = models.DateTimeField(db_index=True)
    ok = models.BooleanField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    # Whether the region was serving traffic at the time: availability is computed from these.
    was_active = models.BooleanField(default=False)

    class Meta:
        ordering = ["-checked_at"]
        indexes = [models.Index(fields=["region", "checked_at"])]

    def __str__(self) -> str:
        return f"{self.region} {'ok' if self.ok else 'FAIL'} at {self.checked_at:%Y-%m-%d %H:%M:%S}"


class FailoverKind(models.TextChoices):
    AUTOMATIC = "automatic", "Automatic"
    MANUAL = "manual", "Manual"
    FAILBACK = "failback", "Failback"


class FailoverEvent(models.Model):
    from_region = models.ForeignKey(Region, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    to_region = models.ForeignKey(Region, null=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=10, choices=FailoverKind.choices)
    reason = models.TextField()
    actor = models.CharField(max_length=150)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    forced = models.BooleanField(default=False)
    pinned = models.BooleanField(default=False)
    epoch = models.PositiveIntegerField(unique=True, help_text="Policy epoch this failover created.")
    failing_since = models.DateTimeField(null=True, blank=True, help_text="First failing probe of the region we left.")
    decided_at = models.DateTimeField()

    class Meta:
        ordering = ["-decided_at"]

    def __str__(self) -> str:
        when = f"{self.decided_at:%Y-%m-%d %H:%M}"
        return f"{self.get_kind_display()} {self.from_region} → {self.to_region} at {when}"


class GameDay(models.Model):
    """One drill run by ``manage.py gameday``."""

    started_at = models.DateTimeField()
    region = models.ForeignKey(Region, null=True, on_delete=models.SET_NULL, related_name="+")
    method = models.CharField(max_length=20, help_text="fake-region control endpoint or drill switch")
    detected_after_s = models.FloatField(null=True, blank=True)
    switched_after_s = models.FloatField(null=True, blank=True, help_text="RTO: down until traffic moved")
    switched_to = models.ForeignKey(Region, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    succeeded = models.BooleanField(default=False)
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"Game day {self.started_at:%Y-%m-%d %H:%M}"
