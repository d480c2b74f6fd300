"""Which variant a company gets: a pure function of the experiment key and the company id,
so it is the same on every request, in every process, with nothing stored."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from decimal import Decimal

_SPAN = 2**64


def bucket(experiment_key: str, company_id: int) -> float:
    """A uniform number in [0, 1) from the first 8 bytes of SHA-256("key:company")."""
    digest = hashlib.sha256(f"{experiment_key}:{company_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SPAN


def assign(
    *,
    experiment_key: str,
    company_id: int,
    variants: Sequence[tuple[str, int]],
    holdout_share: Decimal | float = 0,
) -> str | None:
    """The key of the company's variant, or None when it is in the holdout.

    ``variants`` are (key, weight) pairs; they are sorted by key, so the order they come in
    does not move anyone. The holdout takes the bottom of the range; the rest is cut in
    proportion to the weights."""
    if not variants:
        return None
    u = bucket(experiment_key, company_id)
    holdout = float(holdout_share)
    if u < holdout:
        return None
    u = (u - holdout) / (1 - holdout)
    ordered = sorted(variants)
    total = sum(weight for _, weight in ordered)
    point = u * total
    running = 0
    for key, weight in ordered:
        running += weight
        if point < running:
            return key
    return ordered[-1][0]
