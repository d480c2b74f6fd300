"""Numbers as customers read them: money in the tier's currency, counts grouped."""

from __future__ import annotations

from django import template

from core.money import format_money

register = template.Library()


@register.filter
def money(minor: int | None, currency: str) -> str:
    return format_money(minor, currency)


@register.filter
def grouped(value: int | float | None) -> str:
    """12345 → "12,345"; 87.5 → "87.5"; None → "—"."""
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"
