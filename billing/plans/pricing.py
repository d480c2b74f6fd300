"""What a period costs on a tier: the one pricing rule.

The pricing calculator (``GET /api/v1/plans/quote/``), the usage summary's plan
comparison and the account pages' plan table all price volumes here, so they cannot
disagree. Pure functions over plain values: the callers load the catalogue (one query
each) and pass its terms in.

A tier's cost for a period = its monthly price + for every feature, the units beyond what
it includes × its overage unit price. An unlimited feature costs nothing beyond the base; a hard-limited one
costs nothing beyond it either (units beyond are refused, not billed); a capped one costs
at most its cap.
A tier with no limit row for a feature that is used does not *offer* that feature: the
feature is priced at nothing (as the meter treats it, so nobody is billed for a feature
before limits are set) but the tier is marked not offered and is never recommended.

Credits (grants ops gave a company) pay for overage before it is billed: the feature's
unit credits first, then money credits in the tier's currency, each earliest expiry
first; money pays whole units only. ``credits_spend`` is that rule, used by Stripe
overage reporting when it spends credits for real and by ``tier_cost`` when it shows
overage after credits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from core.money import format_money


@dataclass(frozen=True)
class LimitTerms:
    """What a tier (or a contract) includes of one feature (``None`` = unlimited), the price
    per unit beyond, and the limit mode: "soft" (billed), "hard" (refused) or "capped"
    (billed up to ``overage_cap`` in money per period, then refused)."""

    included: int | None
    overage_unit_price: int
    mode: str = "soft"
    overage_cap: int | None = None

    @property
    def ceiling(self) -> int | None:
        """The most units a period accepts (``None``: no ceiling). Hard: the included
        quantity; capped: as many units beyond as the cap pays for in full."""
        if self.included is None or self.mode == "soft":
            return None
        if self.mode == "hard":
            return self.included
        if not self.overage_unit_price or self.overage_cap is None:
            return None  # free overage, or no cap set: nothing to stop at
        return self.included + self.overage_cap // self.overage_unit_price

    def billable_overage(self, volume: int) -> int:
        """Units beyond the included quantity that are billed, never beyond the ceiling."""
        units = overage_units(volume, self.included)
        ceiling = self.ceiling
        if ceiling is not None and self.included is not None:
            units = min(units, ceiling - self.included)
        return units


@dataclass(frozen=True)
class TierTerms:
    code: str
    name: str
    monthly_price: int
    currency: str
    order: int = 0
    limits: Mapping[str, LimitTerms] = field(default_factory=dict)  # feature code → terms


@dataclass(frozen=True)
class FeatureCost:
    feature: str
    volume: int
    included: int | None
    overage_units: int
    overage_unit_price: int
    overage_cost: int
    offered: bool
    credited_units: int = 0  # of overage_units, paid by credits

    @property
    def overage_cost_after_credits(self) -> int:
        return (self.overage_units - self.credited_units) * self.overage_unit_price


@dataclass(frozen=True)
class TierCost:
    """A tier's cost for a period's volumes, in the tier's currency (minor units)."""

    code: str
    name: str
    currency: str
    base: int
    features: tuple[FeatureCost, ...]
    overage: int
    total: int
    not_offered: tuple[str, ...]  # used features the tier has no limit for
    credited: int = 0  # of overage, paid by credits (money, minor units)
    credits_left: tuple[CreditBalance, ...] = ()  # the balances once that is paid

    @property
    def offered(self) -> bool:
        return not self.not_offered

    @property
    def overage_after_credits(self) -> int:
        return self.overage - self.credited

    @property
    def total_after_credits(self) -> int:
        return self.total - self.credited


@dataclass(frozen=True)
class CreditBalance:
    """What is left of one credit grant: units of ``feature``, or money (``feature`` None)
    in ``currency``, minor units."""

    grant_id: int
    feature: str | None
    left: int
    expires_at: datetime
    currency: str = ""


@dataclass(frozen=True)
class CreditDraw:
    """Overage units paid from one grant, and what that takes from it (units, or money)."""

    grant_id: int
    units: int
    amount: int


def credits_spend(
    *, feature: str, units: int, unit_price: int, currency: str, balances: Iterable[CreditBalance]
) -> tuple[list[CreditDraw], list[CreditBalance]]:
    """Pay ``units`` overage units of ``feature`` at ``unit_price`` each from ``balances``:
    the feature's unit credits first, then money credits in ``currency``, each earliest
    expiry first (then oldest grant). Money pays whole units only: less than a unit's price
    stays in the grant. Free overage (price 0) takes nothing. Returns the draws and every
    balance afterwards (in the order given, used-up ones included)."""
    balances = list(balances)
    if units <= 0 or unit_price <= 0:
        return [], balances
    order = sorted(
        (
            i
            for i, b in enumerate(balances)
            if b.left > 0 and (b.feature == feature or (b.feature is None and b.currency == currency))
        ),
        key=lambda i: (balances[i].feature is None, balances[i].expires_at, balances[i].grant_id),
    )
    draws: list[CreditDraw] = []
    for i in order:
        if units <= 0:
            break
        balance = balances[i]
        if balance.feature is None:
            paid = min(units, balance.left // unit_price)
            taken = paid * unit_price
        else:
            paid = taken = min(units, balance.left)
        if paid <= 0:
            continue
        draws.append(CreditDraw(balance.grant_id, paid, taken))
        balances[i] = replace(balance, left=balance.left - taken)
        units -= paid
    return draws, balances


def overage_units(volume: int, included: int | None) -> int:
    return 0 if included is None else max(0, volume - included)


def tier_cost(
    *,
    tier: TierTerms,
    volumes: Mapping[str, int],
    credits: Iterable[CreditBalance] = (),
    credited: Mapping[str, int] | None = None,
) -> TierCost:
    """Base + overage per feature for ``volumes`` (feature code → units in the period).
    Features the tier has limits for but that are absent from ``volumes`` count as 0.

    With a company's credits: ``credited`` (feature code → overage units of the period
    already paid by credits) and ``credits`` (the balances left) pay for overage feature by
    feature, in catalogue order, by ``credits_spend``; the cost says how much
    (``credited``, ``overage_after_credits``) and what would be left (``credits_left``)."""
    balances = list(credits)
    credited = credited or {}
    paid_money = 0
    features: list[FeatureCost] = []
    not_offered: list[str] = []
    for code in dict.fromkeys([*tier.limits, *volumes]):
        volume = int(volumes.get(code, 0))
        if volume < 0:
            raise ValueError(f"{code}: a volume cannot be negative ({volume})")
        terms = tier.limits.get(code)
        if terms is None:
            if volume > 0:
                not_offered.append(code)
            features.append(FeatureCost(code, volume, None, 0, 0, 0, offered=volume == 0))
            continue
        units = terms.billable_overage(volume)
        paid = min(units, credited.get(code, 0)) if terms.overage_unit_price else 0
        draws, balances = credits_spend(
            feature=code,
            units=units - paid,
            unit_price=terms.overage_unit_price,
            currency=tier.currency,
            balances=balances,
        )
        paid += sum(d.units for d in draws)
        paid_money += paid * terms.overage_unit_price
        features.append(
            FeatureCost(
                code,
                volume,
                terms.included,
                units,
                terms.overage_unit_price,
                units * terms.overage_unit_price,
                offered=True,
                credited_units=paid,
            )
        )
    overage = sum(f.overage_cost for f in features)
    return TierCost(
        code=tier.code,
        name=tier.name,
        currency=tier.currency,
        base=tier.monthly_price,
        features=tuple(features),
        overage=overage,
        total=tier.monthly_price + overage,
        not_offered=tuple(not_offered),
        credited=paid_money,
        credits_left=tuple(balances),
    )


@dataclass(frozen=True)
class Recommendation:
    code: str | None  # None: no tier offers every used feature
    reason: str


def recommend(
    costs: Iterable[TierCost], *, current: str | None = None, usage: str = "this usage"
) -> Recommendation:
    """The cheapest tier that offers every used feature; ties go to the tier listed first
    (pass ``costs`` in comparison order, smaller plans first). Only tiers in the currency
    of the current tier (or of the first tier) compete: prices in two currencies do not
    compare. ``reason`` says why in a sentence a customer can read; ``usage`` names the
    volumes priced ("your projected usage this period")."""
    costs = list(costs)
    if not costs:
        return Recommendation(None, "No plan is offered.")
    by_code = {c.code: c for c in costs}
    currency = by_code[current].currency if current in by_code else costs[0].currency
    candidates = [c for c in costs if c.offered and c.currency == currency]
    if not candidates:
        missing = sorted({code for c in costs for code in c.not_offered})
        return Recommendation(
            None,
            f"No plan includes every feature you use ({', '.join(missing)}); contact us for a quote.",
        )
    best = min(candidates, key=lambda c: c.total)  # min() keeps the first of equals
    mine = by_code.get(current) if current is not None else None
    money = format_money(best.total, best.currency)

    def cheaper_than(other: TierCost, label: str) -> str:
        if other.total == best.total:
            return f"{best.name} costs the same as {label} ({money}) for {usage} and is listed first."
        saving = format_money(other.total - best.total, best.currency)
        return (
            f"{best.name} is the cheapest plan for {usage}: {money}, "
            f"{saving} less than {label} ({format_money(other.total, other.currency)})."
        )

    others = [c for c in candidates if c is not best]
    if mine is not None and mine is not best and mine in candidates:
        reason = cheaper_than(mine, f"your plan, {mine.name}")
    elif others:
        runner_up = min(others, key=lambda c: c.total)
        reason = cheaper_than(runner_up, runner_up.name)
    else:
        reason = f"{best.name} is the only plan that includes every feature you use ({money})."
    if mine is not None and not mine.offered:
        reason += f" Your plan, {mine.name}, has no limit set for {', '.join(mine.not_offered)}."
    return Recommendation(best.code, reason)


def savings(costs: Iterable[TierCost], *, cheapest: str | None) -> dict[str, int]:
    """For every tier: how much more it costs than the cheapest (0 for the cheapest itself);
    tiers in another currency, or with no cheapest, are left out."""
    costs = list(costs)
    best = next((c for c in costs if c.code == cheapest), None)
    if best is None:
        return {}
    return {c.code: c.total - best.total for c in costs if c.currency == best.currency}
