"""How a stored BikAddress reads to people: one rule for the invoice, the dashboard and the
CSV export.

Bik's address (BikAddress) may give its country by name, by code, or both.
"""

from __future__ import annotations


def country(address: dict) -> str | None:
    """The country's name, or its code where only that was sent."""
    return address.get("country") or address.get("countryCode")


def place_line(address: dict) -> str:
    """The town line as people write it: ``New Delhi, Delhi 110024`` (any part may be
    missing)."""
    place = ", ".join(str(part) for part in (address.get("city"), address.get("state")) if part)
    return " ".join(str(part) for part in (place, address.get("zip")) if part)


def one_line(address: dict | None) -> str:
    """The whole address on one line: ``12 MG Road, Flat 4, Pune, Maharashtra, 411001, India``."""
    if not isinstance(address, dict):
        return ""
    parts = (
        address.get("address1"), address.get("address2"), address.get("city"), address.get("state"),
        address.get("zip"), country(address),
    )  # fmt: skip
    return ", ".join(str(part) for part in parts if part)
