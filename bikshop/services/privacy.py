"""Customers' personal data: find one customer's orders, and erase it from an order (on the
customer's request, or once the shop's retention period is over).

One function, :func:`erase_customer_data`, does the erasing; ``forget-customer`` and
``prune --personal-data-after`` both call it. What an erased order keeps, and why, is in the
README ("Personal data and retention").
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from flask import current_app
from sqlalchemy import exists, or_, select, update

from bikshop import pdf, phones
from bikshop.extensions import db
from bikshop.models import Order, OrderEvent, Payment, PaymentLink, Refund, WebhookEvent
from bikshop.models.types import utcnow
from bikshop.services.invoices import invoice_for, invoice_label, issue_tax_invoice, store
from bikshop.services.search import phone_condition
from bikshop.services.states import lock_order, record, state_words, update_order

ERASED = "customer_data_erased"  # the timeline entry's kind; an order holding one is erased
# Final: nothing more is delivered or paid back, so the customer's contact and address have
# served their purpose. The same rule for a request and for the retention period.
FINAL_STATUSES, FINAL_PAYMENT = ("DELIVERED", "CANCELLED"), "refunded"
FINAL = or_(Order.status.in_(FINAL_STATUSES), Order.payment_status == FINAL_PAYMENT)  # in SQL
# What the place of supply of an issued tax invoice is read from (invoices.place_of_supply):
# a state, a PIN code and a country, none of which tells who the customer is.
PLACE_OF_SUPPLY_KEYS = ("state", "zip", "country", "countryCode")
# CGST Rule 46(e): a tax invoice to an unregistered buyer whose taxable value is ₹50,000 or
# more (before GST) carries the buyer's name and address and the address of delivery, so the
# kept copy keeps them too.
RECIPIENT_NAMED_FROM = Decimal("50000")
# What a Razorpay entity or webhook body keeps: the ids, amounts, statuses and times that
# dedupe and reconciliation read. Every other key goes, at any depth: the customer's contact,
# email, name, UPI id, card, bank, wallet, bank references (acquirer_data), the callback URL
# (it holds the invoice token), descriptions and anything Razorpay adds later.
RAZORPAY_KEPT = frozenset(
    {
        "id", "entity", "event", "contains", "account_id", "payload", "payment_link", "payment",
        "refund", "order", "payments", "amount", "amount_paid", "amount_due", "amount_refunded",
        "currency", "status", "captured", "refund_status", "method", "international", "fee",
        "tax", "order_id", "payment_id", "plink_id", "reference_id", "receipt", "notes",
        "paymentLink", "speed_processed", "speed_requested", "batch_id", "error_code",
        "error_reason", "error_source", "error_step", "accept_partial", "created_at",
        "updated_at", "expire_by", "expired_at", "cancelled_at", "processed_at",
    }
)  # fmt: skip


def find_customer_orders(*, phone: str | None = None, email: str | None = None) -> list[Order]:
    """The orders of the customer with this phone number or email, oldest first, exactly.

    A phone is found by its last digits as the dashboard's search finds it (the indexed
    ``phone_tail``), then kept only where it is the same number read as international
    (``phones.international_digits``): "+91 98765 43210", "98765 43210" and "0091 98765
    43210" are one customer, "+44 98765 43210" another. An email is matched in any letter
    case (orders keep it lowercased, as the search compares it)."""
    if phone is not None:
        condition = phone_condition(phone)
        if condition is None:
            return []
        wanted = _number(phone)
        found = db.session.scalars(select(Order).where(condition).order_by(Order.id))
        return [order for order in found if _number(order.phone_number) == wanted]
    address = (email or "").strip().lower()
    if not address:
        return []
    return list(db.session.scalars(select(Order).where(Order.email == address).order_by(Order.id)))


def _number(phone: str) -> str:
    """A phone number with its country code, or, not readable as one, its digits."""
    digits = "".join(c for c in phone if c.isdigit()).lstrip("0")
    return phones.international_digits(phone) or digits


@dataclass
class Erasure:
    """What erasing one order's customer data did (or, in a dry run, would do)."""

    order: str  # the order's public id: no personal data
    refused: str | None = None
    erased: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def line(self, *, dry_run: bool = False) -> str:
        """One line for the operator, naming what goes and what stays, never its values."""
        if self.refused:
            return f"{self.order} refused: {self.refused}"
        done = "would erase" if dry_run else "erased"
        kept = f"; kept: {', '.join(self.kept)}" if self.kept else ""
        return f"{self.order} {done}: {', '.join(self.erased)}{kept}"


def refusal(order: Order) -> str | None:
    """Why ``order``'s customer data cannot be erased yet, or None. Not while the order is
    open (its delivery needs the address), a payment link is open (a payment on it would
    bring the customer's details back, and the link leads to the invoice) or a refund is
    pending (Razorpay's answer has to find its order and payment)."""
    if not (order.status in FINAL_STATUSES or order.payment_status == FINAL_PAYMENT):
        return (
            f"the order is still {state_words(order.status)}: its delivery needs the address; "
            "deliver or cancel it first"
        )
    links = db.session.scalars(
        select(PaymentLink.razorpay_id).where(
            PaymentLink.order_id == order.id, PaymentLink.status == "created"
        )
    ).all()
    if links:
        return (
            f"payment link {', '.join(str(link) for link in links)} is open: run "
            "reconcile-payments (it closes expired links) or cancel the link in Razorpay first"
        )
    pending = db.session.scalar(
        select(Refund.id).where(Refund.order_id == order.id, Refund.status == "pending").limit(1)
    )
    if pending is not None:
        return "a refund is pending at Razorpay: wait until it settles (reconcile-payments)"
    return None


def erase_customer_data(
    order: Order, *, actor: str, reason: str = "on request", dry_run: bool = False
) -> Erasure:
    """Erase the customer's personal data from ``order`` and everything stored with it, keep
    what the tax invoice and the books need, and record it on the timeline; commits (a dry
    run changes nothing).

    Goes: the phone, email, name, tags and address lines; Bik's request as sent; the
    personal fields of the order's Razorpay records (links, payments, refunds, the webhook
    deliveries about it), keeping ``RAZORPAY_KEPT``; the invoice token (a new one: the link
    the customer was sent stops working) and the cached PDFs of the old one. Stays: the
    order, its number, items, amounts and states (Bik's getOrder still answers, with empty
    strings for what went); for an order with a tax invoice number, the place of supply
    (``PLACE_OF_SUPPLY_KEYS``), and at ``RECIPIENT_NAMED_FROM`` or more the name and address
    the invoice shows."""
    outcome = Erasure(order.public_id)
    if not dry_run and order.status == "DELIVERED" and refusal(order) is None:
        # Delivered goods have a tax invoice, opened or not (invoices.issue_tax_invoice: an
        # order delivered before that rule, never opened, had none): issued now, while its
        # address still tells the place of supply, not later from an erased one.
        issue_tax_invoice(order)
    if not dry_run:
        lock_order(order)  # a webhook or the dashboard changing it waits, then sees the erasure
    refused = refusal(order)
    if refused:
        db.session.rollback()
        outcome.refused = refused
        return outcome
    tax = invoice_for(order).tax if order.invoice_number is not None else None
    named = tax is not None and tax.breakdown.taxable >= RECIPIENT_NAMED_FROM
    values = {
        "phone_number": "", "phone_digits": "", "email": None, "tags": None, "raw_request": "",
        "invoice_token": secrets.token_urlsafe(24),
    }  # fmt: skip
    outcome.erased = ["phone", "email", "tags", "Bik's request"]
    if named:
        if order.address and "phoneNumber" in order.address:
            values["address"] = {k: v for k, v in order.address.items() if k != "phoneNumber"}
        outcome.kept.append(
            f"name and address (tax invoice of taxable value {format(tax.breakdown.taxable, 'f')} "
            f"{order.currency}, CGST Rule 46(e))"
        )
    else:
        values["customer_name"] = ""
        may_be_invoiced = order.status != "CANCELLED" and store().gstin
        if order.address and (order.invoice_number is not None or may_be_invoiced):
            # A supply that was or may yet be invoiced keeps where it went (not who lives there).
            values["address"] = {
                key: order.address[key] for key in PLACE_OF_SUPPLY_KEYS if key in order.address
            }
            outcome.erased += ["name", "address lines"]
            outcome.kept.append("state, PIN code and country (place of supply)")
        else:
            values["address"] = None
            outcome.erased += ["name", "address"]
    if order.invoice_number is not None:
        outcome.kept.insert(0, f"tax invoice {invoice_label(order.invoice_number)}")
        outcome.kept.append("items and amounts")
    records = _strip_razorpay_records(order, dry_run=dry_run)
    if records:
        outcome.erased.append(f"{records} Razorpay record(s)")
    outcome.erased.append("invoice link (a new one)")
    old_token = order.invoice_token
    cache = current_app.config["PDF_CACHE_DIR"]
    if dry_run:
        pdfs = pdf.forget(cache, old_token, dry_run=True)
        if pdfs:
            outcome.erased.append(f"{pdfs} cached PDF(s)")
        db.session.rollback()
        return outcome
    update_order(order, values)
    record(
        order,
        ERASED,
        actor,
        f"Customer data erased {reason} (by {actor})",
        {"kept": outcome.kept},
    )
    db.session.commit()
    pdfs = pdf.forget(cache, old_token)  # after the commit: a rollback leaves the cache valid
    if pdfs:
        outcome.erased.append(f"{pdfs} cached PDF(s)")
    return outcome


def _strip_razorpay_records(order: Order, *, dry_run: bool) -> int:
    """Strip the personal fields from ``order``'s payment links, payments, refunds and the
    webhook deliveries about it (the one that claimed each event, and its duplicates);
    returns how many records held some."""
    changed = 0
    for model in (PaymentLink, Payment, Refund):
        for row in db.session.scalars(select(model).where(model.order_id == order.id)):
            stripped = strip_razorpay(row.raw)
            if stripped != row.raw:
                changed += 1
                if not dry_run:
                    row.raw = stripped
    claimed = select(WebhookEvent.received_event_id).where(
        WebhookEvent.order_id == order.id, WebhookEvent.received_event_id.is_not(None)
    )
    deliveries = db.session.execute(
        select(WebhookEvent.id, WebhookEvent.raw_body).where(
            or_(
                WebhookEvent.order_id == order.id,
                WebhookEvent.signature_valid.is_(True)
                & WebhookEvent.received_event_id.in_(claimed.scalar_subquery()),
            )
        )
    ).all()
    for delivery_id, body in deliveries:
        stripped = stripped_body(body)
        if stripped != body:
            changed += 1
            if not dry_run:
                db.session.execute(
                    update(WebhookEvent)
                    .where(WebhookEvent.id == delivery_id)
                    .values(raw_body=stripped)
                    .execution_options(synchronize_session=False)
                )
    return changed


def stripped_body(body: str) -> str:
    """A stored webhook body with only the ``RAZORPAY_KEPT`` keys; "" if it is not JSON (kept
    as received: nothing in it can be told apart)."""
    try:
        return json.dumps(strip_razorpay(json.loads(body)), separators=(",", ":"))
    except ValueError:
        return ""


def keep_erased(order: Order) -> None:
    """After Razorpay told bikshop more about ``order`` (a refund made in its dashboard, say):
    if the customer's data was erased, strip what just came as the erasure did. Otherwise it
    stayed, and no command could reach it again (the order no longer names its customer, and
    prune skips erased orders). Commits."""
    if db.session.scalar(select(Order.id).where(Order.id == order.id, erased())):
        _strip_razorpay_records(order, dry_run=False)
        db.session.commit()


def strip_razorpay(value):
    """``value`` (a Razorpay entity or webhook body) with only the ``RAZORPAY_KEPT`` keys, at
    every depth; lists and plain values as they are."""
    if isinstance(value, dict):
        return {key: strip_razorpay(item) for key, item in value.items() if key in RAZORPAY_KEPT}
    if isinstance(value, list):
        return [strip_razorpay(item) for item in value]
    return value


def erased():
    """The WHERE clause for orders whose customer data was erased."""
    return exists().where(OrderEvent.order_id == Order.id, OrderEvent.kind == ERASED)


def past_retention(days: int, *, after_id: int = 0, limit: int = 1000) -> list[Order]:
    """Up to ``limit`` orders (ids above ``after_id``, in id order) final and unchanged for
    more than ``days`` days whose customer data is not erased yet."""
    cutoff = utcnow() - timedelta(days=days)
    return list(
        db.session.scalars(
            select(Order)
            .where(FINAL, Order.updated_at < cutoff, ~erased(), Order.id > after_id)
            .order_by(Order.id)
            .limit(limit)
        )
    )


def customer_export(orders: list[Order]) -> dict:
    """What bikshop holds about the customer of ``orders``, for their right of access: each
    order with its items, address, tags, Bik's request, payments (with what Razorpay said of
    the payer), refunds and timeline, as plain JSON values. Nothing secret (no invoice token,
    no whole Razorpay payload, no staff account names)."""
    return {"orders": [_exported(order) for order in orders]}


def _exported(order: Order) -> dict:
    payments = db.session.scalars(
        select(Payment).where(Payment.order_id == order.id).order_by(Payment.id)
    )
    refunds = db.session.scalars(
        select(Refund).where(Refund.order_id == order.id).order_by(Refund.id)
    )
    events = db.session.scalars(
        select(OrderEvent).where(OrderEvent.order_id == order.id).order_by(OrderEvent.id)
    )
    return {
        "id": order.public_id,
        "name": order.name,
        "placedAt": _time(order.created_at),
        "status": order.status,
        "paymentStatus": order.payment_status,
        "fulfillmentStatus": order.fulfillment_status,
        "phoneNumber": order.phone_number,
        "email": order.email,
        "customerName": order.customer_name,
        "address": order.address,
        "tags": order.tags,
        # The order as Bik sent it (JSON), which may say more than the columns above.
        "requestFromBik": _as_json(order.raw_request),
        "trackingURL": order.tracking_url,
        "taxInvoice": invoice_label(order.invoice_number) if order.invoice_number else None,
        "currency": order.currency,
        "subTotal": _money(order.sub_total),
        "shippingCharge": _money(order.shipping_charge),
        "discount": _money(order.discount),
        "total": _money(order.total),
        "amountRefunded": _money(order.amount_refunded),
        "items": [
            {
                "name": item.name,
                "variantName": item.variant_name,
                "productId": item.product_id,
                "variantId": item.variant_id,
                "quantity": item.quantity,
                "price": _money(item.price),
            }
            for item in order.items
        ],
        "payments": [
            {
                "razorpayPaymentId": payment.razorpay_payment_id,
                "amount": _money(payment.amount),
                "currency": payment.currency,
                "method": payment.method,
                "status": payment.status,
                "amountRefunded": _money(payment.amount_refunded),
                "at": _time(payment.created_at),
                # What Razorpay told bikshop of the payer (UPI id, card, bank), as kept.
                "payer": {
                    key: payment.raw[key]
                    for key in _PAYER_KEYS
                    if isinstance(payment.raw, dict) and payment.raw.get(key)
                },
            }
            for payment in payments
        ],
        "refunds": [
            {
                "razorpayRefundId": row.razorpay_refund_id,
                "amount": _money(row.amount),
                "status": row.status,
                "askedAt": _time(row.created_at),
                "processedAt": _time(row.processed_at),
            }
            for row in refunds
        ],
        # What happened and when; who did it only as a role (an admin's sign-in is the shop's).
        "timeline": [
            {
                "at": _time(event.created_at),
                "by": event.actor.split(":", 1)[0],
                "what": event.message,
            }
            for event in events
        ],
    }


# The keys of Razorpay's payment entity that describe who paid and with what.
_PAYER_KEYS = ("email", "contact", "vpa", "bank", "wallet", "card_id", "card")


def _as_json(text: str | None):
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _time(value) -> str | None:
    return None if value is None else value.isoformat()
