"""Customers' phone numbers as Bik sends them (``+91 98765 43210``, ``098765 43210``,
``9876543210``), read as international numbers for dialling, WhatsApp and Razorpay."""

from __future__ import annotations

import re

from bikshop.models.admin import PHONE_TAIL_DIGITS

INDIA_DIALING_CODE = "91"
_BRACKETED_TRUNK_ZERO = re.compile(r"\(\s*0\s*\)")


def international_digits(phone: str) -> str | None:
    """A phone number's digits with its country code, without + or 00; None for a number
    written without one that is not an Indian number either.

    A number written without its country code (ten digits, or a trunk 0 and ten) is read as
    Indian, Bik's shoppers' country, as the dashboard's phone search reads it: wa.me (or a
    phone abroad) would take its first digits for a country code and reach a stranger. Ten
    digits beginning with 0 are a trunk 0 and nine, which no Indian number is: +91 before
    them dials no one."""
    # "+44 (0)20 …": the trunk 0 written in brackets, dialled only from inside the country.
    phone = _BRACKETED_TRUNK_ZERO.sub("", phone)
    digits = "".join(c for c in phone if c.isdigit())
    if not phone.strip().startswith("+"):
        if digits.startswith("00"):
            digits = digits[2:]
        elif len(digits) == PHONE_TAIL_DIGITS and digits.startswith("0"):
            return None
        elif len(digits) == PHONE_TAIL_DIGITS or (
            len(digits) == PHONE_TAIL_DIGITS + 1 and digits.startswith("0")
        ):
            digits = INDIA_DIALING_CODE + digits[-PHONE_TAIL_DIGITS:]
    return digits.lstrip("0")


# ITU-T E.164: at most 15 digits with the country code; the shortest numbers in use have 8.
_E164_DIGITS = range(8, 16)


def e164(phone: str) -> str | None:
    """``phone`` as ``+`` and its international digits (``+919876543210``), or None when it
    cannot be read as one: what a payment provider takes as a customer's contact."""
    digits = international_digits(phone)
    return f"+{digits}" if digits and len(digits) in _E164_DIGITS else None
