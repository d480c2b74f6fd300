"""Assignment is a pure function: stable, order-independent, and proportional to the weights."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from growth.assignment import assign

VARIANTS = [("a", 1), ("b", 1)]


def test_a_company_gets_the_same_variant_every_time():
    first = [assign(experiment_key="exp", company_id=n, variants=VARIANTS) for n in range(1, 500)]
    again = [assign(experiment_key="exp", company_id=n, variants=VARIANTS) for n in range(1, 500)]
    assert first == again


def test_the_order_variants_are_listed_in_does_not_move_anyone():
    forward = [assign(experiment_key="exp", company_id=n, variants=[("a", 3), ("b", 1)]) for n in range(1, 500)]
    backward = [assign(experiment_key="exp", company_id=n, variants=[("b", 1), ("a", 3)]) for n in range(1, 500)]
    assert forward == backward


def test_ten_thousand_companies_split_by_the_weights_within_tolerance():
    variants = [("a", 1), ("b", 2), ("c", 1)]
    counts = Counter(assign(experiment_key="banner-2026", company_id=n, variants=variants) for n in range(1, 10_001))
    # Expected 2,500 / 5,000 / 2,500; 3 standard deviations of a binomial is about 130 and 150.
    assert abs(counts["a"] - 2500) < 150
    assert abs(counts["b"] - 5000) < 160
    assert abs(counts["c"] - 2500) < 150
    assert None not in counts


def test_the_holdout_takes_its_share_and_the_rest_follow_the_weights():
    counts = Counter(
        assign(experiment_key="banner-2026", company_id=n, variants=VARIANTS, holdout_share=Decimal("0.2"))
        for n in range(1, 10_001)
    )
    assert abs(counts[None] - 2000) < 130
    assert abs(counts["a"] - 4000) < 150
    assert abs(counts["b"] - 4000) < 150


def test_another_experiment_reshuffles_companies():
    one = [assign(experiment_key="one", company_id=n, variants=VARIANTS) for n in range(1, 1001)]
    two = [assign(experiment_key="two", company_id=n, variants=VARIANTS) for n in range(1, 1001)]
    same = sum(x == y for x, y in zip(one, two, strict=True))
    assert 400 < same < 600  # independent: about half agree by chance
