"""Money as Decimal: conversions at the boundaries and formatting for people."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from babel.numbers import get_currency_precision, list_currencies

CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("9999999999.99")  # the most a Numeric(12, 2) money column holds
# Above MAX_AMOUNT in any currency's smallest unit (thousandths included): a larger integer in a
# Razorpay entity is malformed, and would overflow Decimal's arithmetic before any range check.
MAX_MINOR_UNITS = 10**15
# Razorpay takes no payment, and makes no refund, below one unit of the currency ("The amount
# must be at least INR 1.00": razorpay.md §5, and Razorpay's create-refund API docs).
RAZORPAY_MINIMUM = Decimal("1")

# The currencies Razorpay takes payments in, and how many decimals its integer amounts carry:
# paise and cents (2), zero-decimal currencies passed as is (0), three-decimal ones in
# thousandths that must end in 0 (razorpay.md §1.2). The one table every conversion reads.
_TWO_DECIMAL = """
    AED ALL AMD ARS AUD AWG BBD BDT BMD BND BOB BSD BWP BZD CAD CHF CNY COP CRC CUP CZK DKK
    DOP DZD EGP ETB EUR FJD GBP GHS GIP GMD GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR JMD KES
    KGS KHR KYD KZT LAK LBP LKR LRD LSL MAD MDL MKD MMK MNT MOP MUR MVR MWK MXN MYR NAD NGN
    NIO NOK NPR NZD PEN PGK PHP PKR QAR RUB SAR SCR SEK SGD SLL SOS SSP SVC SZL THB TTD TZS
    USD UYU UZS YER ZAR
"""
RAZORPAY_EXPONENTS: dict[str, int] = (
    dict.fromkeys(_TWO_DECIMAL.split(), 2) | {"JPY": 0} | dict.fromkeys(("BHD", "KWD", "OMR"), 3)
)


# ISO 4217's X codes that are not money a shop prices in: precious metals, bond-market and
# accounting units, funds, the testing code and "no currency" (the others, XAF, XCD, XCG, XOF
# and XPF, are the currencies of real countries). An invoice in one of them reads "¤947.00".
_NOT_MONEY = frozenset({
    "XAD", "XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XDR", "XEU",
    "XFO", "XFU", "XPD", "XPT", "XRE", "XSU", "XTS", "XUA", "XXX",
})  # fmt: skip
# Every ISO 4217 currency CLDR knows (about 300, current and historic) but those: what an amount
# may be written in. Razorpay takes fewer (above); an order in one it does not take is kept and
# paid otherwise.
CURRENCY_CODES = frozenset(list_currencies()) - _NOT_MONEY


def is_currency_code(code: str) -> bool:
    """Is ``code`` (upper case) an ISO 4217 code of a currency, such as INR or USD? Not gold
    (XAU), the testing code (XTS) or "no currency" (XXX)."""
    return code in CURRENCY_CODES


class NotPayable(ValueError):
    """Razorpay cannot take this amount in this currency; ``str()`` says why, for a person."""


def razorpay_exponent(currency: str) -> int:
    """The decimals of ``currency``'s minor unit at Razorpay; NotPayable if it takes none."""
    exponent = RAZORPAY_EXPONENTS.get((currency or "").upper())
    if exponent is None:
        raise NotPayable(f"Razorpay does not take payments in {currency or 'no currency'}")
    return exponent


def money_places(currency: str) -> int:
    """The decimals an amount of ``currency`` can have here: its minor unit's (0 for JPY, 2 for
    INR, 3 for KWD), at most the 2 that money columns keep."""
    return min(get_currency_precision((currency or "").upper()), 2)


def razorpay_takes(currency: str) -> bool:
    """Does Razorpay take payments in ``currency`` at all?"""
    return (currency or "").upper() in RAZORPAY_EXPONENTS


def to_minor_units(amount: Decimal, currency: str) -> int:
    """Major units to the integer Razorpay expects: ₹947.50 -> 94750, ¥947 -> 947,
    KWD 9.5 -> 9500. Never rounds: NotPayable when the amount is finer than Razorpay can take."""
    exponent = razorpay_exponent(currency)
    if not Decimal(amount).is_finite():
        raise NotPayable(f"{amount} is not an amount")
    minor = Decimal(amount).scaleb(exponent)
    step = 10 if exponent == 3 else 1  # three-decimal amounts must end in 0
    if minor != minor.to_integral_value() or int(minor) % step:
        places = min(exponent, 2)
        raise NotPayable(
            f"{format_plain(amount)} {currency} has more decimals than {currency} allows "
            f"(at most {places})"
        )
    return int(minor)


def from_minor_units(value: int, currency: str) -> Decimal:
    """Razorpay's integer amount in ``currency`` back to major units (947 JPY -> 947.00)."""
    exponent = razorpay_exponent(currency)
    amount = Decimal(value).scaleb(-exponent)
    return amount.quantize(CENT) if exponent <= 2 else amount


def minor_units_fit(value: int, currency: str) -> bool:
    """Can Razorpay's integer ``value`` in ``currency`` be stored as an amount of ours (0 up to
    MAX_AMOUNT)? Razorpay never sends more; a signed event that does is malformed, not a 500."""
    return value >= 0 and Decimal(value).scaleb(-razorpay_exponent(currency)) <= MAX_AMOUNT


def format_plain(amount: Decimal) -> str:
    """An amount as a person would type it: 947, 499.5, 0.05."""
    normal = Decimal(amount).normalize()
    text = format(normal, "f")
    return text


def quantize(amount: Decimal) -> Decimal:
    """Round half up to the paisa."""
    return Decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP)
