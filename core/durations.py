"""Durations as people read them, the same in alerts, admin pages and commands."""

from __future__ import annotations


def duration_text(seconds: float) -> str:
    """ "0.4 s", "42 s", "1 min 8 s", "10 min", "2 h 5 min"."""
    if seconds < 10:
        return f"{seconds:.1f} s".replace(".0 s", " s")
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, rest = divmod(whole, 3600)
    return f"{hours} h {rest // 60} min" if rest // 60 else f"{hours} h"
