"""Money is integer minor units plus a currency code, never floats; this shows it."""

from decimal import Decimal


def format_money(minor: int | None, currency: str) -> str:
    """12345, "usd" -> "123.45 USD" (two-decimal currencies; all our prices are)."""
    amount = Decimal(minor or 0) / 100
    return f"{amount:,.2f} {currency.upper()}"
