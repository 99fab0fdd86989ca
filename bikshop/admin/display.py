"""How the dashboard shows things: local times, money, status pills, contact links."""

from __future__ import annotations

import json
import re
from datetime import datetime
from decimal import Decimal

from bikshop.admin import bp
from bikshop.invoice.formatting import money as invoice_money
from bikshop.money import is_currency_code
from bikshop.phones import international_digits
from bikshop.services.invoices import invoice_label, nothing_due
from bikshop.services.search import store_zone
from bikshop.services.states import state_words
from bikshop.static_files import static_url

# Pill colour per state: the text always names the state, colour only helps scanning.
_PILLS = {
    "ORDERED": "new",
    "IN PROGRESS": "busy",
    "DELIVERED": "done",
    "CANCELLED": "stop",
    "pending": "wait",
    "paid": "done",
    "partially_refunded": "busy",
    "refunded": "stop",
    "unfulfilled": "wait",
    "partial": "busy",
    "fulfilled": "done",
}


def local_time(moment: datetime | None, with_year: bool = True) -> str:
    """A UTC timestamp in the shop's time zone, as a person reads it: 8 May 2024, 3:04 pm."""
    if moment is None:
        return ""
    local = moment.astimezone(store_zone())
    stamp = local.strftime("%-d %b %Y, %-I:%M %p" if with_year else "%-d %b, %-I:%M %p")
    return stamp.replace("AM", "am").replace("PM", "pm")


def money(amount: Decimal | None, currency: str = "INR") -> str:
    """An amount as the customer's invoice shows it, in the store's locale (₹1,23,456.50 in
    en_IN): the owner and the customer read the same figure the same way."""
    if amount is None:
        return ""
    return invoice_money(amount, currency)


def amounts(per_currency: dict[str, Decimal], currency: str) -> str:
    """Money in several currencies, each on its own: ₹1,234.50 + $12.00 (nothing: ₹0.00)."""
    if not per_currency:
        return money(Decimal(0), currency)
    return " + ".join(money(amount, code) for code, amount in per_currency.items())


# "947.5 INR" in a sentence: an amount, a space, a currency code (the timeline and refusals
# keep amounts plain, as typed and as Bik's JSON has them).
_AMOUNT_IN_TEXT = re.compile(r"(?<![\w.,])([0-9]+(?:\.[0-9]+)?) ([A-Z]{3})\b")


def with_money(text: str) -> str:
    """``text`` with each "<amount> <currency code>" in it shown as the invoice shows money:
    "Paid 123456.5 INR by upi" reads "Paid ₹1,23,456.50 by upi". Anything else is left as is."""

    def shown(found: re.Match) -> str:
        number, code = found.groups()
        return money(Decimal(number), code) if is_currency_code(code) else found[0]

    return _AMOUNT_IN_TEXT.sub(shown, text)


def pill(state: str) -> str:
    """The CSS modifier for a state's pill."""
    return _PILLS.get(state, "wait")


def payment_state(order) -> tuple[str, str]:
    """The order's payment as its pill shows it: (CSS modifier, words). A pending payment of
    a cancelled order (or a ₹0 one) is owed by nobody: "Nothing due", not "Pending"."""
    if nothing_due(order):
        return "none", "Nothing due"
    return pill(order.payment_status), label(order.payment_status)


def label(state: str) -> str:
    """A state as the dashboard names it, in sentence case whatever the stored value's case:
    IN PROGRESS -> In progress, pending -> Pending, partially_refunded -> Partially refunded.

    Only the words shown change: the stored value, filters in the URL and Bik's JSON keep
    theirs (ORDERED, pending)."""
    words = state_words(state)
    return words[:1].upper() + words[1:]


def tel_link(phone: str) -> str:
    """A tel: link that dials the customer from any phone: the number's international digits
    after a + (``91 98111 22255``, without its +, dialled as written would not connect). A
    number that cannot be read as international is dialled as written."""
    international = international_digits(phone)
    if international is None:
        return "tel:" + "".join(c for c in phone if c.isdigit())
    return "tel:+" + international


def whatsapp_link(phone: str) -> str | None:
    """A wa.me chat link: the number's international digits, without + or 00; None when the
    number cannot be read as international (wa.me would reach someone else, or no one)."""
    international = international_digits(phone)
    return None if international is None else "https://wa.me/" + international


def pretty_json(raw: str) -> str:
    """The raw request indented for reading; shown as received if it is not JSON."""
    try:
        return json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except ValueError:
        return raw


@bp.context_processor
def _helpers() -> dict:
    return {
        "static_url": static_url,
        "local_time": local_time,
        "money": money,
        "amounts": amounts,
        "with_money": with_money,
        "invoice_label": invoice_label,
        "pill": pill,
        "label": label,
        "payment_state": payment_state,
        "tel_link": tel_link,
        "whatsapp_link": whatsapp_link,
        "pretty_json": pretty_json,
    }
