"""The significance figure against an independent calculation on a known table."""

from __future__ import annotations

import math

import pytest

from growth.stats import compare, rate_interval


def two_proportion_z_p(x1: int, n1: int, x2: int, n2: int) -> float:
    """The textbook pooled two-proportion z-test, two-sided, written out by hand."""
    p1, p2 = x1 / n1, x2 / n2
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = (p1 - p2) / se
    return math.erfc(abs(z) / math.sqrt(2))


def test_the_p_value_matches_the_two_proportion_z_test_on_a_known_table():
    # B: 61 of 1,000 converted; control: 39 of 1,000.
    result = compare(converted=61, exposed=1000, control_converted=39, control_exposed=1000)
    assert result.difference == pytest.approx(0.022)
    assert result.p_value == pytest.approx(two_proportion_z_p(61, 1000, 39, 1000), rel=1e-9)
    assert result.p_value == pytest.approx(0.0240, abs=1e-4)  # z = 2.257


def test_the_wilson_interval_matches_the_closed_form():
    low, high = rate_interval(39, 1000)
    z = 1.959963984540054
    n, p = 1000, 0.039
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (low, high) == (pytest.approx(centre - half), pytest.approx(centre + half))


def test_nothing_to_test_without_conversions():
    assert compare(converted=0, exposed=50, control_converted=0, control_exposed=50).p_value is None
