"""The owners' monthly spend cap as the entitlement check reads it: overage money is every
feature's units beyond its included quantity at its unit price (before credits), and a
check that would add overage past the cap is answered "not allowed", as ingestion would
refuse it (``usage.services``, under the company row lock, is the guarantee)."""

from __future__ import annotations

from collections.abc import Mapping

from accounts.models import Company
from billing.plans.selectors import Entitlement
from core.money import format_money
from usage.selectors import FeatureStanding


def overage_money(entitlement: Entitlement | None, used: int) -> int:
    """Minor units of overage ``used`` units cost under ``entitlement`` (0: none or unlimited)."""
    if entitlement is None or entitlement.terms.included is None:
        return 0
    return max(0, used - entitlement.terms.included) * entitlement.terms.overage_unit_price


def spend_cap_refusal(
    *, company: Company, standings: Mapping[str, FeatureStanding], feature: str, quantity: int
) -> str | None:
    """Why ``quantity`` more units of ``feature`` would be refused by the spend cap now,
    or None (no cap, no overage added, or still within it)."""
    cap = company.spend_cap
    standing = standings.get(feature)
    if cap is None or standing is None:
        return None
    spent = sum(overage_money(s.entitlement, s.used) for s in standings.values())
    added = overage_money(standing.entitlement, standing.used + quantity) - overage_money(
        standing.entitlement, standing.used
    )
    if added <= 0 or spent + added <= cap:
        return None
    currency = company.tier.currency
    return (
        f"Spend cap: {quantity} more would take this period's overage to {format_money(spent + added, currency)}, "
        f"past the monthly spend cap of {format_money(cap, currency)} the owners set "
        f"({format_money(spent, currency)} spent). An owner can raise it on the account page; "
        f"it resets at {standing.resets_at.isoformat()}."
    )
