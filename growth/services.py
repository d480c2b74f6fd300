"""Everything that writes for experiments: start, stop, ship, exposures and conversions.

State changes are conditional UPDATEs (``WHERE status = old``) checked by row count;
exposures and conversions are INSERT ... ON CONFLICT DO NOTHING against unique constraints."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.db import IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import Company
from audit.services import Actor, audit_record
from billing.plans.models import Tier
from core import hotcache
from core.errors import ApplicationError, Conflict
from core.links import absolute_url
from growth.models import Booking, Experiment, ExperimentStatus, Exposure, ExposureSource, Placement, Variant
from growth.selectors import company_variant, experiment_variants, placement_prompt


class ExperimentLocked(Conflict):
    code = "experiment_locked"
    message = "Only a draft experiment's variants and assignment settings can change."


def experiment_assert_editable(*, experiment: Experiment) -> None:
    """A running (or finished) experiment's variants cannot change: a new weight or key
    would move companies between variants mid-measurement."""
    if experiment.pk is None:
        return
    stored = Experiment.objects.filter(pk=experiment.pk).values_list("status", flat=True).first()
    if stored is not None and stored != ExperimentStatus.DRAFT:
        raise ExperimentLocked(
            f"Experiment '{experiment.key}' is {stored}: its variants, key and holdout cannot change."
        )


def experiment_validate_variants(variants: list[Variant]) -> None:
    if len(variants) < 2:
        raise ApplicationError("An experiment needs at least two variants.", field="variants")
    if sum(1 for v in variants if v.is_control) != 1:
        raise ApplicationError("Exactly one variant must be the control.", field="variants")
    if any(v.weight < 1 for v in variants):
        raise ApplicationError("Every variant needs a weight of at least 1.", field="weight")


def _transition(
    *,
    experiment: Experiment,
    old: set[str],
    new: str,
    actor: Actor,
    action: str,
    details: dict[str, object],
    **fields: object,
) -> None:
    changed = Experiment.objects.filter(pk=experiment.pk, status__in=old).update(status=new, **fields)
    if changed != 1:
        current = Experiment.objects.filter(pk=experiment.pk).values_list("status", flat=True).first()
        raise Conflict(
            f"Experiment '{experiment.key}' is {current}, not {' or '.join(sorted(old))}.", code="experiment_state"
        )
    experiment.refresh_from_db()
    # QuerySet.update sends no signal core.hotcache would see: every process forgets the
    # prompt candidates (growth.selectors) once this commits.
    hotcache.invalidate(Experiment)
    audit_record(action=action, actor=actor, target=experiment, details=details)


def experiment_start(*, experiment: Experiment, actor: Actor, now: datetime | None = None) -> Experiment:
    now = now or timezone.now()
    experiment_validate_variants(experiment_variants(experiment))
    try:
        with transaction.atomic():
            _transition(
                experiment=experiment,
                old={ExperimentStatus.DRAFT},
                new=ExperimentStatus.RUNNING,
                actor=actor,
                action="growth.experiment.start",
                details={"placement": experiment.placement},
                starts_at=now,
            )
    except IntegrityError:
        raise Conflict(
            f"Another experiment is already running on the {experiment.get_placement_display()}.",
            code="placement_busy",
        ) from None
    return experiment


def experiment_stop(*, experiment: Experiment, actor: Actor, now: datetime | None = None) -> Experiment:
    with transaction.atomic():
        _transition(
            experiment=experiment,
            old={ExperimentStatus.RUNNING},
            new=ExperimentStatus.STOPPED,
            actor=actor,
            action="growth.experiment.stop",
            details={},
            stops_at=now or timezone.now(),
        )
    return experiment


def experiment_ship(
    *, experiment: Experiment, variant: Variant, actor: Actor, now: datetime | None = None
) -> Experiment:
    """The winner becomes the placement's default prompt and the experiment stops."""
    if variant.experiment_id != experiment.pk:
        raise ApplicationError(f"Variant '{variant.key}' is not part of '{experiment.key}'.", field="variant")
    now = now or timezone.now()
    with transaction.atomic():
        _transition(
            experiment=experiment,
            old={ExperimentStatus.RUNNING, ExperimentStatus.STOPPED},
            new=ExperimentStatus.SHIPPED,
            actor=actor,
            action="growth.experiment.ship",
            details={"winner": variant.key, "placement": experiment.placement},
            winner=variant,
            stops_at=experiment.stops_at or now,
        )
    return experiment


def exposure_record(*, company: Company, experiment: Experiment, source: str, now: datetime | None = None) -> bool:
    """The company was shown its variant of ``experiment``'s prompt, or, in the holdout,
    would have been and was shown nothing (a row without variant: the holdout is measured
    like a variant). Counted once per company, experiment and day; False when already
    counted today."""
    now = now or timezone.now()
    if experiment.status != ExperimentStatus.RUNNING:
        raise Conflict(f"Experiment '{experiment.key}' is not running.", code="experiment_not_running")
    variant = company_variant(experiment=experiment, company=company)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO growth_exposure (experiment_id, variant_id, company_id, day, shown_at, source) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (experiment_id, company_id, day) DO NOTHING RETURNING id",
            [experiment.pk, variant.pk if variant else None, company.pk, timezone.localdate(now), now, source],
        )
        return cursor.fetchone() is not None


def conversion_record(*, company: Company, from_tier: Tier, to_tier: Tier, at: datetime | None = None) -> int:
    """A completed upgrade (Stripe applied a dearer tier). It converts every experiment the
    company was exposed to whose window, counted from the first exposure, contains ``at``;
    the first such upgrade counts, later ones do nothing. Returns how many were recorded."""
    at = at or timezone.now()
    if to_tier.monthly_price <= from_tier.monthly_price:
        return 0
    firsts = (
        Exposure.objects.filter(company=company, shown_at__lte=at)
        .exclude(experiment__status=ExperimentStatus.DRAFT)
        .order_by("experiment_id", "shown_at", "id")
        .distinct("experiment_id")
        .select_related("experiment")
    )
    recorded = 0
    with connection.cursor() as cursor:
        for first in firsts:
            if at > first.shown_at + timedelta(days=first.experiment.conversion_window_days):
                continue
            cursor.execute(
                "INSERT INTO growth_conversion (experiment_id, variant_id, company_id, first_exposed_at, converted_at, "
                "from_tier_id, to_tier_id, revenue_uplift, currency) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (experiment_id, company_id) DO NOTHING RETURNING id",
                [
                    first.experiment_id,
                    first.variant_id,
                    company.pk,
                    first.shown_at,
                    at,
                    from_tier.pk,
                    to_tier.pk,
                    to_tier.monthly_price - from_tier.monthly_price,
                    to_tier.currency,
                ],
            )
            recorded += cursor.fetchone() is not None
    return recorded


def prompt_show(
    *, company: Company, placement: str, summary: dict[str, Any] | None, source: str, now: datetime | None = None
) -> dict[str, Any] | None:
    """The prompt a page is about to render at ``placement``, its exposure recorded (a
    running experiment's only: a shipped default measures nothing). None: show nothing
    (a holdout company at the threshold is recorded as the holdout's exposure)."""
    prompt = placement_prompt(company=company, placement=placement, summary=summary)
    if prompt is None:
        return None
    if prompt.experiment is not None:
        exposure_record(company=company, experiment=prompt.experiment, source=source, now=now)
    return prompt.content


def warning_email_prompt(company: Company, percent: float) -> str | None:
    """The warning e-mail's prompt (a paragraph), its exposure recorded as the e-mail is
    queued, in the monitor's transaction: no e-mail, no exposure."""
    summary = {"features": [{"percent": percent}]}
    content = prompt_show(
        company=company, placement=Placement.WARNING_EMAIL, summary=summary, source=ExposureSource.EMAIL
    )
    if content is None:
        return None
    plans = absolute_url(reverse("customers:plans") + "?" + urlencode({"company": company.slug}))
    return f"{content['headline']} {content['call_to_action']}: {plans}"


@dataclass(frozen=True)
class BookingIn:
    idempotency_key: str
    quantity: int
    occurred_at: datetime


def bookings_record(*, company: Company, bookings: list[BookingIn], now: datetime | None = None) -> tuple[int, int]:
    """Store the product's bookings (the quote→book feed): one statement, a key already
    stored for the company is a duplicate and changes nothing. Returns (accepted, duplicates)."""
    now = now or timezone.now()
    if not bookings:
        return 0, 0
    rows = ", ".join(["(%s, %s, %s, %s, %s)"] * len(bookings))
    params: list[Any] = []
    adapt = connection.ops.adapt_datetimefield_value
    for b in bookings:
        params += [company.pk, b.idempotency_key, b.quantity, adapt(b.occurred_at), adapt(now)]
    with connection.cursor() as cursor:
        # Portable (PostgreSQL and the demo's SQLite): one multi-row INSERT of placeholders only.
        cursor.execute(
            f"INSERT INTO {Booking._meta.db_table} (company_id, idempotency_key, quantity, occurred_at, received_at) "  # noqa: S608
            f"VALUES {rows} ON CONFLICT (company_id, idempotency_key) DO NOTHING RETURNING 1",
            params,
        )
        accepted = len(cursor.fetchall())
    return accepted, len(bookings) - accepted
