"""Refunds through Razorpay's refund API, confirmed by its ``refund.processed`` webhook."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from marshmallow import INCLUDE, Schema, ValidationError, fields
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from bikshop import razorpay_client
from bikshop.errors import ApiError
from bikshop.extensions import db
from bikshop.models import Order, Payment, Refund
from bikshop.models.types import utcnow
from bikshop.money import (
    RAZORPAY_MINIMUM,
    NotPayable,
    format_plain,
    razorpay_takes,
    to_minor_units,
)
from bikshop.razorpay_client import GatewayFailure
from bikshop.services.states import PAYMENT_STATUS, IllegalTransition, record, transition


def refund(order: Order, amount: Decimal | None, *, actor: str) -> Refund:
    """Refund all (``None``) or part of a paid order through Razorpay; commits.

    The refund is stored as pending and becomes final when Razorpay's ``refund.processed``
    webhook arrives (or at once, if Razorpay answers that it is already processed).
    """
    payment, refundable = _refundable(order)
    amount = refundable if amount is None else Decimal(amount)
    minor = _check_amount(amount, refundable, payment.currency)
    row = Refund(order_id=order.id, payment_id=payment.id, amount=amount, status="pending")
    db.session.add(row)
    db.session.commit()  # reserved before asking Razorpay, so a second click cannot over-refund
    try:
        entity = razorpay_client.refund_payment(payment.razorpay_payment_id, minor)
    except razorpay_client.RazorpayError as exc:
        row.status = "failed"
        record(order, "refund_failed", actor, f"Refund of {format_plain(amount)} failed: {exc}")
        db.session.commit()
        raise GatewayFailure(exc, "refund the payment")
    row.razorpay_refund_id = str(entity.get("id") or "") or None
    row.raw = entity
    record(
        order,
        "refund_requested",
        actor,
        f"Refund of {format_plain(amount)} {order.currency} asked of Razorpay "
        f"({row.razorpay_refund_id})",
        {"amount": str(amount), "razorpayRefundId": row.razorpay_refund_id},
    )
    try:
        db.session.commit()
    except IntegrityError:  # its webhook arrived first and recorded it
        db.session.rollback()
        db.session.delete(db.session.get(Refund, row.id))
        db.session.commit()
        row = db.session.scalars(
            select(Refund).where(Refund.razorpay_refund_id == entity.get("id"))
        ).one()
    if entity.get("status") == "processed":
        confirm_refund(row, actor="razorpay")
        db.session.commit()
    return row


def _check_amount(amount: Decimal, refundable: Decimal, currency: str) -> int:
    """The refund in Razorpay's minor units, or a 422 that names what is wrong with it."""
    try:
        minor = to_minor_units(amount, currency)
    except NotPayable as exc:
        raise ApiError(
            422, f"Cannot refund: {exc}", fields=[{"field": "amount", "message": str(exc)}]
        ) from None
    if refundable <= 0:
        problem = "nothing is left to refund"
    elif amount > refundable:
        problem = f"at most {format_plain(refundable)} {currency} is left to refund"
    elif amount < RAZORPAY_MINIMUM:
        problem = f"Razorpay refunds no less than {format_plain(RAZORPAY_MINIMUM)} {currency}"
    else:
        return minor
    raise ApiError(
        422,
        f"Cannot refund {format_plain(amount)} {currency}: {problem}",
        fields=[{"field": "amount", "message": problem}],
    )


def _refundable(order: Order) -> tuple[Payment, Decimal]:
    # One refund decision per order at a time. A plain locking SELECT, not refresh(): refresh
    # re-runs the order's eager loads (the dashboard loads its items), and PostgreSQL refuses
    # FOR UPDATE across that outer join.
    db.session.execute(
        select(Order)
        .where(Order.id == order.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if order.payment_status not in ("paid", "partially_refunded"):
        raise ApiError(
            409,
            f"Only a paid order can be refunded; {order.name} is {order.payment_status}",
            code="illegal_transition",
            fields=[{"field": "paymentStatus", "message": f"currently {order.payment_status}"}],
        )
    payment = db.session.scalars(
        select(Payment)
        .where(Payment.order_id == order.id, Payment.razorpay_payment_id.is_not(None))
        .order_by(Payment.id.desc())
    ).first()
    if payment is None:
        raise ApiError(
            409,
            f"{order.name} was not paid through Razorpay: refund the customer directly",
            code="not_refundable",
        )
    reserved = db.session.scalar(
        select(func.coalesce(func.sum(Refund.amount), 0)).where(
            Refund.payment_id == payment.id, Refund.status == "pending"
        )
    )
    return payment, payment.amount - payment.amount_refunded - Decimal(reserved)


def confirm_refund(row: Refund, *, actor: str) -> str:
    """Razorpay processed ``row``: add it to the payment and the order, and move the order to
    refunded or partially_refunded. Applies once however often it is called; caller commits."""
    moved = db.session.execute(
        update(Refund)
        .where(Refund.id == row.id, Refund.status != "processed")
        .values(status="processed", processed_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        return "no change: refund already processed"
    db.session.refresh(row)
    db.session.execute(
        update(Payment)
        .where(Payment.id == row.payment_id)
        .values(amount_refunded=Payment.amount_refunded + row.amount)
        .execution_options(synchronize_session=False)
    )
    order = db.session.get(Order, row.order_id, with_for_update=True, populate_existing=True)
    refunded = order.amount_refunded + row.amount
    to = "refunded" if refunded >= order.total else "partially_refunded"
    try:
        transition(
            order,
            PAYMENT_STATUS,
            to,
            actor=actor,
            message=f"Refunded {format_plain(row.amount)} {order.currency} "
            f"({format_plain(refunded)} of {format_plain(order.total)} in all)",
            data={"amount": str(row.amount), "razorpayRefundId": row.razorpay_refund_id},
            values={"amount_refunded": Order.amount_refunded + row.amount},
        )
    except IllegalTransition:
        record(
            order,
            "refund_unexpected",
            actor,
            f"Razorpay refunded {format_plain(row.amount)} while the order was "
            f"{order.payment_status}",
        )
        return f"refund recorded; order was {order.payment_status}"
    return f"order {to}"


def fail_refund(row: Refund, *, actor: str) -> str:
    """Razorpay could not make ``row``: it no longer holds back what is left to refund.
    Once only, and never after it was processed; the caller commits."""
    moved = db.session.execute(
        update(Refund)
        .where(Refund.id == row.id, Refund.status == "pending")
        .values(status="failed")
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.refresh(row)
    if moved != 1:
        return f"no change: refund already {row.status}"
    order = db.session.get(Order, row.order_id)
    record(
        order,
        "refund_failed",
        actor,
        f"Razorpay could not refund {format_plain(row.amount)} {order.currency} "
        f"({row.razorpay_refund_id})",
    )
    return "refund failed"


class _FetchedRefund(Schema):
    """The fields of a fetched refund entity that settle it."""

    class Meta:
        unknown = INCLUDE

    id = fields.String(required=True)
    amount = fields.Integer(strict=True, required=True)
    status = fields.String(required=True)


def reconcile_refunds(*, older_than: timedelta) -> tuple[list[str], list[str]]:
    """Ask Razorpay about every refund still pending after ``older_than`` and apply what it
    says, as its ``refund.processed``/``refund.failed`` webhooks would: a lost webhook never
    leaves an order unrefunded on paper, nor its amount held back for good. Commits.

    Returns (outcomes, failures), one line per refund.
    """
    rows = db.session.execute(
        select(Refund.id, Refund.razorpay_refund_id)
        .where(
            Refund.status == "pending",
            Refund.razorpay_refund_id.is_not(None),
            Refund.created_at <= utcnow() - older_than,
        )
        .order_by(Refund.id)
    ).all()
    db.session.commit()  # no transaction held while Razorpay answers
    outcomes, failures = [], []
    for row_id, refund_id in rows:
        try:
            entity = _FetchedRefund().load(razorpay_client.fetch_refund(refund_id))
        except ValidationError as exc:
            failures.append(f"{refund_id}: Razorpay gave a malformed refund ({exc.messages})")
            continue
        except razorpay_client.RazorpayError as exc:
            failures.append(f"{refund_id}: {exc}")
            continue
        row = db.session.get(Refund, row_id)
        payment = db.session.get(Payment, row.payment_id)
        if entity["id"] != refund_id or not razorpay_takes(payment.currency):
            outcomes.append(f"{refund_id}: ignored: Razorpay answered about {entity['id']}")
            continue
        if entity["amount"] != to_minor_units(row.amount, payment.currency):
            outcomes.append(
                f"{refund_id}: ignored: Razorpay's refund is {entity['amount']} in minor units, "
                f"ours {format_plain(row.amount)} {payment.currency}"
            )
            continue
        if entity["status"] == "processed":
            outcome = confirm_refund(row, actor="reconcile")
        elif entity["status"] == "failed":
            outcome = fail_refund(row, actor="reconcile")
        else:
            outcome = f"no change: refund is {entity['status']} at Razorpay"
        db.session.commit()
        outcomes.append(f"{refund_id}: {outcome}")
    return outcomes, failures
