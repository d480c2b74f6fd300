"""The credit rule in the pricing function: unit credits of the feature first, then money in
the tier's currency, each earliest expiry first; money pays whole units only."""

from __future__ import annotations

from datetime import UTC, datetime

from billing.plans.pricing import CreditBalance, LimitTerms, TierTerms, credits_spend, tier_cost

SOON = datetime(2026, 12, 1, tzinfo=UTC)
LATER = datetime(2027, 1, 1, tzinfo=UTC)
STARTER = TierTerms(
    "starter",
    "Starter",
    4_900,
    "USD",
    limits={"quotes": LimitTerms(1_000, 5), "bulk_jobs": LimitTerms(10, 200), "invites": LimitTerms(None, 0)},
)


def test_unit_credits_pay_before_money_and_the_earliest_expiry_first():
    balances = [
        CreditBalance(1, None, 10_000, SOON, "USD"),  # money expiring first still waits for units
        CreditBalance(2, "quotes", 50, LATER),
        CreditBalance(3, "quotes", 30, SOON),
        CreditBalance(4, "bulk_jobs", 99, SOON),  # another feature's units: untouched
    ]

    draws, left = credits_spend(feature="quotes", units=100, unit_price=5, currency="USD", balances=balances)

    assert [(d.grant_id, d.units, d.amount) for d in draws] == [(3, 30, 30), (2, 50, 50), (1, 20, 100)]
    assert [b.left for b in left] == [9_900, 0, 0, 99]


def test_money_pays_whole_units_in_its_own_currency_only():
    balances = [CreditBalance(1, None, 1_000, SOON, "EUR"), CreditBalance(2, None, 499, LATER, "USD")]

    draws, left = credits_spend(feature="bulk_jobs", units=5, unit_price=200, currency="USD", balances=balances)

    assert [(d.grant_id, d.units, d.amount) for d in draws] == [(2, 2, 400)]  # 99 cents stay: not a whole job
    assert [b.left for b in left] == [1_000, 99]


def test_free_overage_takes_no_credits():
    balances = [CreditBalance(1, "invites", 10, SOON), CreditBalance(2, None, 100, SOON, "USD")]
    assert credits_spend(feature="invites", units=7, unit_price=0, currency="USD", balances=balances) == (
        [],
        balances,
    )


def test_tier_cost_shows_overage_after_credits_and_what_is_left():
    volumes = {"quotes": 1_300, "bulk_jobs": 13, "invites": 500}  # 300 × 5 + 3 × 200 = 2,100 over
    balances = [CreditBalance(7, None, 1_000, SOON, "USD"), CreditBalance(8, "bulk_jobs", 1, SOON)]

    cost = tier_cost(tier=STARTER, volumes=volumes, credits=balances, credited={"quotes": 100})

    by = {f.feature: f for f in cost.features}
    # Quotes: 100 already paid this period, then money pays 200 (10.00 USD): all 300.
    assert (by["quotes"].credited_units, by["quotes"].overage_cost_after_credits) == (300, 0)
    # Bulk jobs: 1 from its unit credit; no money left: 2 × 2.00 to pay.
    assert (by["bulk_jobs"].credited_units, by["bulk_jobs"].overage_cost_after_credits) == (1, 400)
    assert (cost.overage, cost.credited, cost.overage_after_credits) == (2_100, 1_700, 400)
    assert (cost.total, cost.total_after_credits) == (4_900 + 2_100, 4_900 + 400)
    assert [(b.grant_id, b.left) for b in cost.credits_left] == [(7, 0), (8, 0)]


def test_without_credits_nothing_changes():
    cost = tier_cost(tier=STARTER, volumes={"quotes": 1_300})
    assert (cost.overage, cost.credited, cost.total_after_credits) == (1_500, 0, 6_400)
