"""Credit grants: ops give a company money or units of a feature, and overage is paid from
them before anything is billed. Granting, changing, expiring and spending are the writes
here, each audited in its own transaction; the balances and what a period already took
are the reads.

Spending is settled by the database: a grant's ``consumed`` grows only by
``UPDATE … SET consumed = consumed + n WHERE consumed + n <= amount`` and the row count,
and each step of a period's overage report records what it took under a unique
constraint, so a step taken twice fails instead of paying twice. The caller (Stripe
overage reporting) holds the company's row lock while it reads and spends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Max, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from audit.services import Actor, audit_record
from billing.plans.models import CreditConsumption, CreditGrant, CreditKind, Feature
from billing.plans.pricing import CreditBalance, CreditDraw, credits_spend

# What may still change once a grant has paid for something: nothing but an earlier expiry.
FIELDS = ("kind", "feature", "amount", "starts_at", "expires_at", "reason")


class CreditsChanged(Exception):
    """A grant's balance moved between reading and spending (another company's report, an
    early expiry): read again."""


def credit_grants_open(*, company_id: int, at: datetime) -> list[CreditGrant]:
    """The company's grants that pay for overage at ``at``: started, not expired, not used
    up; earliest expiry first (one query)."""
    return list(
        CreditGrant.objects.filter(company_id=company_id, starts_at__lte=at, expires_at__gt=at)
        .filter(consumed__lt=F("amount"))
        .select_related("feature")
        .order_by("expires_at", "id")
    )


def balances_of(grants: list[CreditGrant], *, currency: str | None = None) -> list[CreditBalance]:
    """Grants as the pricing rule spends them; money grants only in ``currency`` when given."""
    return [
        CreditBalance(
            grant_id=grant.pk,
            feature=grant.feature.code if grant.feature is not None else None,
            left=grant.amount - grant.consumed,
            expires_at=grant.expires_at,
            currency=grant.currency,
        )
        for grant in grants
        if currency is None or grant.kind == CreditKind.UNITS or grant.currency == currency.upper()
    ]


def credit_balances(*, company_id: int, at: datetime, currency: str | None = None) -> list[CreditBalance]:
    """The balances of the company's grants usable at ``at`` (one query)."""
    return balances_of(credit_grants_open(company_id=company_id, at=at), currency=currency)


@dataclass(frozen=True)
class CreditStep:
    """What earlier steps of one company, feature and period took from credits."""

    units: int
    last_sequence: int


def credit_step_done(*, company_id: int, feature_id: int, period_start: datetime) -> CreditStep:
    done = CreditConsumption.objects.filter(
        company_id=company_id, feature_id=feature_id, period_start=period_start
    ).aggregate(units=Coalesce(Sum("units"), 0), seq=Coalesce(Max("sequence"), 0))
    return CreditStep(units=done["units"], last_sequence=done["seq"])


def credits_pay(
    *,
    company: Any,
    feature: Feature,
    period_start: datetime,
    period_end: datetime,
    sequence: int,
    units: int,
    unit_price: int,
    currency: str,
    at: datetime,
    actor: Actor,
) -> list[CreditDraw]:
    """Pay what credits usable at ``at`` can of ``units`` overage units (step ``sequence``
    of the period), record each grant's share and audit it. Call inside the transaction
    that records the rest of the step, holding the company's row lock. Raises
    ``CreditsChanged`` when a balance moved since it was read (roll back, read again) and
    ``IntegrityError`` when the step was already taken."""
    balances = credit_balances(company_id=company.pk, at=at, currency=currency)
    draws, _ = credits_spend(
        feature=feature.code, units=units, unit_price=unit_price, currency=currency, balances=balances
    )
    read = {b.grant_id: b for b in balances}
    now = timezone.now()
    for draw in draws:
        balance = read[draw.grant_id]
        same_terms = (
            Q(kind=CreditKind.UNITS, feature=feature)
            if balance.feature is not None
            else Q(kind=CreditKind.MONEY, currency=balance.currency)
        )
        spent = CreditGrant.objects.filter(
            same_terms,
            pk=draw.grant_id,
            company_id=company.pk,
            starts_at__lte=at,
            expires_at__gt=at,
            consumed__lte=F("amount") - draw.amount,
        ).update(consumed=F("consumed") + draw.amount)
        if not spent:
            raise CreditsChanged(f"credit #{draw.grant_id} changed while overage was being paid")
        consumption = CreditConsumption.objects.create(
            grant_id=draw.grant_id,
            company_id=company.pk,
            feature=feature,
            period_start=period_start,
            period_end=period_end,
            sequence=sequence,
            units=draw.units,
            amount=draw.amount,
            created_at=now,
        )
        grant = CreditGrant.objects.get(pk=draw.grant_id)
        audit_record(
            action="billing.credit.consume",
            actor=actor,
            target=grant,
            company=company,
            details={
                "consumption": consumption.pk,
                "feature": feature.code,
                "period_start": period_start,
                "sequence": sequence,
                "units": draw.units,
                "amount": draw.amount,
                "left": grant.left,
            },
        )
    return draws


def credit_grant_create(
    *,
    company: Any,
    kind: str,
    amount: int,
    expires_at: datetime,
    reason: str,
    actor: Actor,
    feature: Feature | None = None,
    starts_at: datetime | None = None,
) -> CreditGrant:
    """Give ``company`` credits (audited). Money is in the company's currency, minor units."""
    grant = CreditGrant(
        company=company,
        kind=kind,
        feature=feature,
        amount=amount,
        currency=company.tier.currency.upper() if kind == CreditKind.MONEY else "",
        starts_at=starts_at or timezone.now(),
        expires_at=expires_at,
        reason=reason,
        granted_by=actor.label,
    )
    if not reason.strip():
        raise ValidationError({"reason": "Say why the credits are given (ticket, gesture, contract)."})
    grant.full_clean()
    with transaction.atomic():
        grant.save(force_insert=True)
        audit_record(
            action="billing.credit.grant",
            actor=actor,
            target=grant,
            company=company,
            details=_terms(grant),
        )
    return grant


def credit_grant_change(*, grant: CreditGrant, actor: Actor, **changes: Any) -> bool:
    """Change an unused grant's terms (audited). A grant that paid for anything only
    expires earlier (``credit_grant_expire``); this refuses every other change to it."""
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise ValueError(f"not a grant term: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        stored = CreditGrant.objects.select_for_update().get(pk=grant.pk)
        before = _terms(stored)
        for name, value in changes.items():
            setattr(stored, name, value)
        after = _terms(stored)
        changed = {k: {"before": before[k], "after": after[k]} for k in after if before[k] != after[k]}
        if not changed:
            return False
        if stored.consumed:
            if set(changed) == {"expires_at"} and stored.expires_at < before["expires_at"]:
                expired = credit_grant_expire(grant=grant, actor=actor, at=stored.expires_at)
                grant.refresh_from_db()
                return expired
            raise ValidationError(
                {
                    name: "This grant has paid for overage: it can only expire earlier."
                    for name in changed
                }
            )
        if stored.kind == CreditKind.MONEY:
            stored.feature = None
            stored.currency = stored.currency or stored.company.tier.currency.upper()
        else:
            stored.currency = ""
        stored.full_clean()
        stored.save()
        audit_record(
            action="billing.credit.change",
            actor=actor,
            target=stored,
            company=stored.company,
            details={"changes": changed},
        )
    grant.refresh_from_db()
    return True


def credit_grant_expire(*, grant: CreditGrant, actor: Actor, at: datetime | None = None) -> bool:
    """End a grant early, at ``at`` (default now; never later than it already ends nor
    before it starts). Audited; False when it already ends by then."""
    at = at or timezone.now()
    with transaction.atomic():
        stored = CreditGrant.objects.select_for_update().get(pk=grant.pk)
        if stored.expires_at <= at:
            return False
        if stored.starts_at >= at:
            raise ValidationError(
                {"expires_at": "This grant has not started by then: change its dates instead (it is unused)."}
            )
        before = stored.expires_at
        changed = CreditGrant.objects.filter(pk=grant.pk, expires_at__gt=at).update(expires_at=at)
        if not changed:
            return False
        grant.refresh_from_db()
        audit_record(
            action="billing.credit.expire",
            actor=actor,
            target=grant,
            company=grant.company,
            details={"expires_at": {"before": before, "after": grant.expires_at}, "left": grant.left},
        )
    return True


def _terms(grant: CreditGrant) -> dict[str, Any]:
    return {
        "kind": grant.kind,
        "feature": grant.feature.code if grant.feature_id and grant.feature else None,
        "amount": grant.amount,
        "currency": grant.currency,
        "starts_at": grant.starts_at,
        "expires_at": grant.expires_at,
        "reason": grant.reason,
    }
