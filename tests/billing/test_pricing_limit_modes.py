"""The pricing rule under each limit mode: soft bills every unit beyond, hard bills none
(units beyond are refused), capped bills up to its cap."""

from __future__ import annotations

import pytest

from billing.plans.pricing import LimitTerms, TierTerms, tier_cost

STARTER = dict(code="starter", name="Starter", monthly_price=4_900, currency="USD")


def _cost(terms: LimitTerms, volume: int) -> int:
    return tier_cost(tier=TierTerms(**STARTER, limits={"bulk_jobs": terms}), volumes={"bulk_jobs": volume}).overage


@pytest.mark.parametrize("volume, overage", [(9, 0), (10, 0), (11, 200), (20, 2_000)])
def test_soft_bills_every_unit_beyond(volume, overage):
    assert _cost(LimitTerms(10, 200, "soft"), volume) == overage


@pytest.mark.parametrize("volume", [9, 10, 11, 50])
def test_hard_bills_nothing_beyond(volume):
    terms = LimitTerms(10, 200, "hard")
    assert _cost(terms, volume) == 0
    assert terms.ceiling == 10


@pytest.mark.parametrize("volume, overage", [(10, 0), (11, 200), (15, 1_000), (16, 1_000), (40, 1_000)])
def test_capped_bills_up_to_the_cap(volume, overage):
    # 10 included, $2 each beyond, at most $10 of overage: 5 units beyond, ceiling 15.
    terms = LimitTerms(10, 200, "capped", overage_cap=1_000)
    assert terms.ceiling == 15
    assert _cost(terms, volume) == overage


def test_a_cap_that_does_not_buy_a_whole_unit_stops_at_the_last_whole_one():
    terms = LimitTerms(10, 300, "capped", overage_cap=1_000)  # $10 buys 3 units at $3
    assert terms.ceiling == 13
    assert _cost(terms, 20) == 900


def test_unlimited_has_no_ceiling_in_any_mode():
    assert LimitTerms(None, 0, "hard").ceiling is None
    assert LimitTerms(10, 0, "soft").ceiling is None
