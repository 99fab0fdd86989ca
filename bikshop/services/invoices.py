"""Invoices: what the customer's invoice page and PDF show, and the GST tax invoice number."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select, true, update
from sqlalchemy.orm import defer

from bikshop.extensions import db
from bikshop.models import Order, OrderEvent
from bikshop.models.types import utcnow
from bikshop.services import gst
from bikshop.services.orders import next_number
from bikshop.services.states import record

# The settings an invoice shows; a change to any of them changes every rendered invoice.
STORE_SETTINGS = (
    "STORE_NAME",
    "STORE_LEGAL_NAME",
    "STORE_ADDRESS",
    "STORE_STATE",
    "STORE_LOGO_URL",
    "STORE_SUPPORT_PHONE",
    "STORE_SUPPORT_EMAIL",
    "STORE_GSTIN",
    "STORE_HSN_CODE",
    "STORE_GST_RATE",
    "STORE_LOCALE",
    "STORE_TIMEZONE",
)
NUMBERED = "invoice_numbered"  # the timeline entry that issues the tax invoice
# A tax invoice is dated in India's time (CGST Rule 46), whatever the dashboard's zone.
INDIA = ZoneInfo("Asia/Kolkata")


@dataclass(frozen=True)
class Store:
    """The seller as the invoice shows it, from ``BIKSHOP_STORE_*``."""

    name: str
    legal_name: str
    address: str
    logo_url: str | None
    phone: str | None
    email: str | None
    gstin: str | None
    state: gst.State | None
    hsn_code: str | None
    gst_rate: Decimal


@dataclass(frozen=True)
class TaxInvoice:
    """The GST part of a tax invoice."""

    number: str
    date: date  # India's calendar date of issue, fixed when the number was given
    place_of_supply: gst.State
    breakdown: gst.TaxBreakdown


@dataclass(frozen=True)
class Invoice:
    """Everything the invoice template needs beyond the order itself."""

    order: Order
    store: Store
    status: str  # pending, nothing_due, paid, partially_refunded, refunded, cancelled: the badge
    tax: TaxInvoice | None


STATUS_LABELS = {
    "pending": "Payment pending",
    "nothing_due": "Nothing to pay",
    "paid": "Paid",
    "partially_refunded": "Partly refunded",
    "refunded": "Refunded",
    "cancelled": "Cancelled",
}


def store() -> Store:
    """The store settings of the running app."""
    config = current_app.config
    gstin = config["STORE_GSTIN"]
    state = gst.find_state(config["STORE_STATE"]) or (gst.STATES[gstin[:2]] if gstin else None)
    return Store(
        name=config["STORE_NAME"],
        legal_name=config["STORE_LEGAL_NAME"] or config["STORE_NAME"],
        address=config["STORE_ADDRESS"],
        logo_url=config["STORE_LOGO_URL"],
        phone=config["STORE_SUPPORT_PHONE"],
        email=config["STORE_SUPPORT_EMAIL"],
        gstin=gstin,
        state=state,
        hsn_code=config["STORE_HSN_CODE"],
        gst_rate=Decimal(config["STORE_GST_RATE"]),
    )


def badge(order: Order) -> str:
    """The one status a customer needs first: cancelled, nothing to pay, else the payment status."""
    if order.status == "CANCELLED":
        return "cancelled"
    return "nothing_due" if nothing_to_pay(order) else order.payment_status


def nothing_due(order: Order) -> bool:
    """Its payment is pending, yet nothing is owed: the order is cancelled, or costs nothing."""
    return order.payment_status == "pending" and (
        order.status == "CANCELLED" or nothing_to_pay(order)
    )


def nothing_to_pay(order: Order) -> bool:
    """A ₹0 order (a free sample, a discount as large as the basket): the customer owes
    nothing, so the invoice asks for no payment. Placed paid since 2026-12-07; one placed
    earlier is pending until the owner marks it paid."""
    return order.payment_status in ("pending", "paid") and order.total == 0


def invoice_for(order: Order) -> Invoice:
    """The invoice of ``order``: with a GSTIN, a tax invoice once it has its number
    (:func:`issue_tax_invoice`); before that (a link preview fetched it first), a plain one."""
    seller = store()
    tax = None
    if seller.gstin and order.invoice_number is not None:
        issued_at, supply, state_tax = _as_issued(order, seller)
        tax = TaxInvoice(
            number=invoice_label(order.invoice_number),
            date=issued_at,
            place_of_supply=supply,
            breakdown=breakdown(order, seller, supply, state_tax),
        )
    return Invoice(order=order, store=seller, status=badge(order), tax=tax)


INVOICE_PREFIX = "INV-"
_INVOICE_LABEL = re.compile(r"^INV[-\s]?([0-9]{1,10})$", re.IGNORECASE)


def invoice_label(number: int) -> str:
    """The printed tax invoice number: a series of its own, at most 16 characters."""
    return f"{INVOICE_PREFIX}{number:05d}"


def invoice_number_of(label: str) -> int | None:
    """The number a printed tax invoice number stands for (INV-00042, inv 42: 42), or None."""
    found = _INVOICE_LABEL.match(label.strip())
    return int(found.group(1)) if found else None


def issue_invoice_number(order: Order, seller: Store) -> bool:
    """Give ``order`` the next tax invoice number once; True when it has one. The place of
    supply is recorded with it: an issued invoice keeps it, whatever later rules would say.

    A cancelled order that was never issued an invoice gets none. The counter step and the
    conditional UPDATE share one transaction: a racing request that finds the number already
    set rolls back its counter step too, so numbers stay gapless as well as unique.
    """
    if order.invoice_number is not None:
        return True
    if order.status == "CANCELLED":
        return False
    number = next_number("invoice", 1)
    result = db.session.execute(
        update(Order)
        # Also in SQL: a cancel committed since this copy was read leaves the order unnumbered.
        .where(Order.id == order.id, Order.invoice_number.is_(None), Order.status != "CANCELLED")
        .values(invoice_number=number)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:
        supply, assumed = _supply_of(order, seller)
        message = f"Tax invoice {invoice_label(number)} issued"
        if assumed:
            message += (
                f"; its place of supply is taken to be {supply}, the shop's own state, as the "
                "delivery address names no state or PIN code bikshop knows: check the address"
            )
        record(
            order,
            NUMBERED,
            "system",
            message,
            {
                "invoiceNumber": number,
                "issuedOn": utcnow().astimezone(INDIA).date().isoformat(),
                "placeOfSupply": supply.code,
                "stateTax": gst.state_tax_name(seller.state),
            },
        )
        db.session.commit()
    else:
        db.session.rollback()
    db.session.refresh(order)
    return order.invoice_number is not None


def issue_tax_invoice(order: Order) -> None:
    """With a GSTIN: number the tax invoice of ``order`` now if it has no number yet, when its
    customer first opens it or as it leaves the shop (shipped, or delivered), whichever comes
    first. A tax invoice is issued "before or at the time of removal of goods" (CGST Act
    s. 31(1)(a)): numbered only when first shown, an order shipped before its customer opened
    the link had none, and one never opened never joined the series. Commits."""
    seller = store()
    if seller.gstin:
        issue_invoice_number(order, seller)


# Orders read at a time by left_without_invoice: what a session holds between two batches.
ISSUE_BATCH = 500


def left_without_invoice() -> Iterator[Order]:
    """Orders shipped (partly or fully) or delivered, not cancelled, whose tax invoice has no
    number yet (they left before shipping issued it, and nobody opened them), oldest first.

    Read ``ISSUE_BATCH`` at a time after the last number seen, each batch let go of before the
    next: all at once, a long history held every order (1M: 7.7 GB after a minute), and each
    invoice's commit expired all of them again, so the run slowed as the square of their
    number (soak probe: 0.3 invoices a second)."""
    after = None
    while True:
        batch = db.session.scalars(
            select(Order)
            .where(
                Order.invoice_number.is_(None),
                Order.status != "CANCELLED",
                (Order.status == "DELIVERED")
                | Order.fulfillment_status.in_(("partial", "fulfilled")),
                true() if after is None else Order.number > after,
            )
            .order_by(Order.number)
            .limit(ISSUE_BATCH)
            .options(defer(Order.raw_request))
        ).all()
        if not batch:
            return
        after = batch[-1].number
        yield from batch
        db.session.expunge_all()


def _as_issued(order: Order, seller: Store) -> tuple[date, gst.State, str]:
    """The date ``order``'s tax invoice was issued, and its place of supply and the name of the
    state's half of its GST (SGST or UTGST) as recorded then. An invoice issued before either
    was recorded keeps the rule it was issued under: the address's state as named, else the
    seller's (before 2026-12-07); SGST everywhere (before UTGST was recorded, also 2026-12-07).

    The date is India's calendar date at issue (recorded with it since 2026-12-08; before,
    the moment of issue read in India's time): it was the moment, drawn in
    BIKSHOP_STORE_TIMEZONE, so a shop on UTC dated its invoices of 00:00-05:30 IST a day
    early, and changing the setting moved the date of invoices already issued (time probe)."""
    issued = db.session.execute(
        select(OrderEvent.created_at, OrderEvent.data)
        .where(OrderEvent.order_id == order.id, OrderEvent.kind == NUMBERED)
        .order_by(OrderEvent.id)
        .limit(1)
    ).first()
    issued_at, data = issued if issued is not None else (order.created_at, None)
    data = data if isinstance(data, dict) else {}
    try:
        issued_on = date.fromisoformat(data["issuedOn"])
    except (KeyError, TypeError, ValueError):
        issued_on = issued_at.astimezone(INDIA).date()
    code = data.get("placeOfSupply")
    state_tax = data.get("stateTax") or "SGST"
    if code == gst.OUTSIDE_INDIA.code:
        return issued_on, gst.OUTSIDE_INDIA, state_tax
    if code in gst.STATES:
        return issued_on, gst.STATES[code], state_tax
    return issued_on, place_of_supply(order, seller, named_only=True), state_tax


def place_of_supply(order: Order, seller: Store, *, named_only: bool = False) -> gst.State:
    """Where the goods are delivered: outside India (``gst.in_india``: by the address's
    country code, else its country's name), else the address's state (named, or found by its
    PIN code or a near spelling: ``gst.delivery_state``), or the seller's. ``named_only``: the
    rule of invoices issued before 2026-12-07 (abroad only by a country code other than IN,
    the state only as named).

    An address whose state none of those tell falls back to the seller's state: bikshop
    cannot tell where it is, and the timeline entry that issues the invoice says so
    (:func:`_supply_of`).
    """
    return _supply_of(order, seller, named_only=named_only)[0]


def _supply_of(order: Order, seller: Store, *, named_only: bool = False) -> tuple[gst.State, bool]:
    """:func:`place_of_supply`, and whether it is the seller's state for want of any other.
    The owner is told so on the timeline: tax charged under the wrong head (CGST + SGST for
    an inter-state supply) is not moved across but paid again and claimed back (IGST Act
    s. 19)."""
    address = order.address or {}
    if named_only:  # the country code alone told then
        code = (address.get("countryCode") or "").strip().upper()
        if code and code != "IN":
            return gst.OUTSIDE_INDIA, False
        named = gst.find_state(address.get("state"))
        return named or seller.state, named is None
    if not gst.in_india(address.get("countryCode"), address.get("country")):
        return gst.OUTSIDE_INDIA, False
    found = gst.delivery_state(address.get("state"), address.get("zip"))
    return found or seller.state, found is None


def breakdown(
    order: Order, seller: Store, supply: gst.State, state_tax: str = "SGST"
) -> gst.TaxBreakdown:
    """The order's GST, line by line, out of Bik's tax-inclusive prices, for goods supplied
    in ``supply``; ``state_tax`` names the state's half of an intra-state supply's tax."""
    intra_state = supply == seller.state
    goods = [(item.name, item.hsn_code or seller.hsn_code, item.line_total) for item in order.items]
    return gst.tax_breakdown(
        goods,
        shipping=order.shipping_charge,
        shipping_hsn=seller.hsn_code,
        discount=order.discount,
        rate=seller.gst_rate,
        intra_state=intra_state,
        state_tax=state_tax,
    )
