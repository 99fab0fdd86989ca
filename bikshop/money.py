"""Money as Decimal: conversions at the boundaries and formatting for people."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def to_minor_units(amount: Decimal) -> int:
    """Major units to the integer Razorpay expects (₹947.50 -> 94750 paise)."""
    return int((amount * 100).to_integral_value(rounding=ROUND_HALF_UP))


def from_minor_units(value: int) -> Decimal:
    """Razorpay's integer paise back to major units."""
    return (Decimal(value) / 100).quantize(CENT)


def format_plain(amount: Decimal) -> str:
    """An amount as a person would type it: 947, 499.5, 0.05."""
    normal = Decimal(amount).normalize()
    text = format(normal, "f")
    return text


def quantize(amount: Decimal) -> Decimal:
    """Round half up to the paisa."""
    return Decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP)
