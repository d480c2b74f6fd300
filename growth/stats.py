"""The statistics behind an experiment's results, from scipy: a Wilson interval per
variant and a two-sided test of each variant against control (Pearson's chi-squared on the
2x2 table without continuity correction, which is the two-proportion z-test squared)."""

from __future__ import annotations

from dataclasses import dataclass

from scipy.stats import binomtest, chi2_contingency

CONFIDENCE = 0.95
ALPHA = 0.05
# Below this many companies exposed, or this many conversions, per arm, the test is not trusted.
MIN_EXPOSED = 100
MIN_CONVERSIONS = 10


def rate_interval(converted: int, exposed: int, *, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval for converted/exposed; (0, 0) when nobody was exposed."""
    if exposed == 0:
        return (0.0, 0.0)
    ci = binomtest(converted, exposed).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


@dataclass(frozen=True)
class Comparison:
    difference: float  # variant rate minus control rate
    p_value: float | None  # None when the table has an empty row or column


def compare(*, converted: int, exposed: int, control_converted: int, control_exposed: int) -> Comparison:
    rate = converted / exposed if exposed else 0.0
    control_rate = control_converted / control_exposed if control_exposed else 0.0
    table = [
        [converted, exposed - converted],
        [control_converted, control_exposed - control_converted],
    ]
    if exposed == 0 or control_exposed == 0 or converted + control_converted == 0 or (
        converted == exposed and control_converted == control_exposed
    ):
        return Comparison(rate - control_rate, None)
    result = chi2_contingency(table, correction=False)
    return Comparison(rate - control_rate, float(result.pvalue))


def enough_data(*, exposed: int, converted: int) -> bool:
    return exposed >= MIN_EXPOSED and converted >= MIN_CONVERSIONS
