"""The one table every benchmark reports into: a figure, the baseline it is measured
against in the same run, their ratio, the goal and whether it was met.

Each ``bench/bench_<name>.py`` has ``main() -> list[Row]``; ``bench/run.py`` prints the
rows as one table and writes it to ``bench/RESULTS.md`` with the load average.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One line of the table.

    ``value`` and ``baseline`` are display strings with units ("912 req/s, p99 21 ms");
    ``ratio`` is value / baseline when the goal is a ratio (None otherwise); ``goal`` says
    what passing means ("≥ 0.5 of baseline, p99 ≤ 25 ms"); ``ok`` is whether it passed
    (None for figures that are informative only)."""

    bench: str
    figure: str
    value: str
    baseline: str = "—"
    ratio: float | None = None
    goal: str = "—"
    ok: bool | None = None
    note: str = ""


class BenchFailure(RuntimeError):
    """A run that cannot produce honest figures: an unexpected HTTP status (3xx included),
    a wrong row count, state left behind. The run stops; no figure is written."""
