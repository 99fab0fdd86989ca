"""Template filters for people: money and dates in the store's locale and time zone."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from urllib.parse import quote
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.numbers import format_currency
from flask import current_app

from bikshop import addresses
from bikshop.invoice import bp
from bikshop.money import format_plain
from bikshop.services.payments import METHOD_WORDS


@bp.app_template_filter("money")
def money(amount: Decimal, currency: str) -> str:
    """``amount`` in ``currency`` for the store's locale: ₹1,23,456.50 for INR in en_IN.

    Never rounded: an amount finer than its currency's usual digits (¥1,500.5, which Bik may
    send) shows every digit it has, so the figures on an invoice always add up."""
    return _money(Decimal(amount), currency, current_app.config["STORE_LOCALE"])


# Babel's formatting is most of a page render; the same prices recur on every view.
@lru_cache(maxsize=8192)
def _money(amount: Decimal, currency: str, locale: str) -> str:
    # Babel pads to the currency's digits (₹947.00) and, by default, also rounds to them.
    text = format_currency(amount, currency, locale=locale, decimal_quantization=False)
    # CLDR's currency spacing, which Babel leaves out: a currency written in letters is kept
    # apart from the figure by a no-break space ("KWD 12.350", not "KWD12.350"); ₹ and $ are not.
    return _LETTER_AGAINST_DIGIT.sub("\u00a0", text)


_LETTER_AGAINST_DIGIT = re.compile(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])")


@bp.app_template_filter("payment_method")
def payment_method(method: str) -> str:
    """Razorpay's name for a payment method as a customer reads it: upi -> UPI."""
    return METHOD_WORDS.get(method, method)


@bp.app_template_filter("local_datetime")
def local_datetime(moment: datetime) -> str:
    """A timestamp in the store's time zone and locale: 9 May 2024, 3:34 PM (en_IN)."""
    config = current_app.config
    zone = ZoneInfo(config["STORE_TIMEZONE"])
    return format_datetime(moment, "d MMM y, h:mm a", tzinfo=zone, locale=config["STORE_LOCALE"])


@bp.app_template_filter("calendar_date")
def calendar_date(day: date) -> str:
    """A calendar date in the store's locale, as it is (no time zone to read it in): 9 May 2024."""
    return format_date(day, "d MMM y", locale=current_app.config["STORE_LOCALE"])


@bp.app_template_filter("percent")
def percent(rate: Decimal) -> str:
    """A tax rate as people write it: 18%, 2.5%."""
    return f"{format_plain(rate)}%"


@bp.app_template_filter("web_link")
def web_link(url: str | None) -> str | None:
    """``url`` when it is an http(s) link, else None: no javascript: or data: hrefs."""
    if url and url.lower().startswith(("https://", "http://")):
        return url
    return None


@bp.app_template_filter("mailto_href")
def mailto_href(email: str) -> str:
    """An email address as a link that writes to it and nothing more: a customer's
    ``a@b.co?bcc=spy@evil.example&body=...`` must not add recipients or text to the owner's
    mail, so everything but the address's own ``@`` is percent-encoded."""
    return "mailto:" + quote(email, safe="@")


@bp.app_template_filter("tel_href")
def tel_href(phone: str) -> str:
    """A phone number as people write it, as a link a phone dials: tel:+919876543210."""
    return "tel:" + re.sub(r"[^\d+]", "", phone)


# An item's name and variant as an invoice shows them. WeasyPrint lays out a word too long for
# its cell (overflow-wrap: anywhere) by trying break points one character at a time, so a PDF's
# time grows faster than its names' length: 100 items named by 1,000 letters without a space
# took 12 s to print, 500 timed the worker out. Cut at MAX_ITEM_TEXT characters (no catalog
# names a product at such length), 500 of them print in about 6 s (tests/test_invoice_pdf.py).
MAX_ITEM_TEXT = 150


@bp.app_template_filter("item_text")
def item_text(text: str) -> str:
    """``text`` cut to MAX_ITEM_TEXT characters, ending in … when cut."""
    if len(text) <= MAX_ITEM_TEXT:
        return text
    return text[: MAX_ITEM_TEXT - 1].rstrip() + "…"


bp.add_app_template_filter(addresses.place_line, "place_line")
bp.add_app_template_filter(addresses.country, "country")
