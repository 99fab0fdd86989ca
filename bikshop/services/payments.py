"""Payments: the one pending → paid transition, used by the webhook, the redirect, the
reconciler and the dashboard alike."""

from __future__ import annotations

from decimal import Decimal

from flask import current_app

from bikshop.errors import ApiError
from bikshop.extensions import db
from bikshop.models import Order, Payment
from bikshop.models.types import utcnow
from bikshop.money import format_plain
from bikshop.services.states import PAYMENT_STATUS, transition


def can_pay_online(order: Order) -> bool:
    """The invoice offers a Pay button: Razorpay is configured and money is still owed."""
    configured = bool(current_app.config["RAZORPAY_KEY_ID"])
    return configured and order.payment_status == "pending" and order.status != "CANCELLED"


def mark_paid(
    order: Order,
    *,
    actor: str,
    amount: Decimal,
    currency: str,
    method: str | None,
    razorpay_payment_id: str | None = None,
    payment_link_id: int | None = None,
    raw: dict | None = None,
) -> bool:
    """Move ``order`` from pending to paid and record the payment, in the caller's transaction.

    Returns False (and records nothing) when the order is already paid: a repeat is a no-op.
    The caller has already checked amount and currency against the order.
    """
    changed = transition(
        order,
        PAYMENT_STATUS,
        "paid",
        actor=actor,
        message=f"Paid {format_plain(amount)} {currency}" + (f" by {method}" if method else ""),
        data={
            "amount": str(amount),
            "currency": currency,
            "method": method,
            "razorpayPaymentId": razorpay_payment_id,
        },
        values={"paid_at": utcnow()},
    )
    if changed:
        db.session.add(
            Payment(
                order_id=order.id,
                payment_link_id=payment_link_id,
                razorpay_payment_id=razorpay_payment_id,
                amount=amount,
                currency=currency,
                method=method,
                status="captured",
                raw=raw,
            )
        )
    return changed


def mark_paid_offline(order: Order, *, actor: str, method: str = "cash") -> bool:
    """The owner received the money outside Razorpay (cash on delivery); commits."""
    if order.status == "CANCELLED":
        raise ApiError(
            409,
            "A cancelled order cannot be marked paid",
            code="illegal_transition",
            fields=[{"field": "status", "message": "currently CANCELLED"}],
        )
    changed = mark_paid(
        order, actor=actor, amount=order.total, currency=order.currency, method=method
    )
    db.session.commit()
    return changed
