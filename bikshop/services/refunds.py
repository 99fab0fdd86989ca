"""Refunds through Razorpay's refund API, confirmed by its ``refund.processed`` webhook."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal
from typing import NoReturn

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from bikshop import razorpay_client
from bikshop.errors import ApiError
from bikshop.extensions import db
from bikshop.models import Order, Payment, Refund
from bikshop.models.types import LARGEST_ID, money_in_sql, utcnow
from bikshop.money import (
    MAX_MINOR_UNITS,
    RAZORPAY_MINIMUM,
    NotPayable,
    format_plain,
    from_minor_units,
    money_places,
    razorpay_takes,
    to_minor_units,
)
from bikshop.razorpay_client import GatewayFailure
from bikshop.services.states import (
    PAYMENT_STATUS,
    IllegalTransition,
    lock_order,
    record,
    transition,
    update_order,
)


def money_seen(order: Order, refunds: list[Refund] | None = None) -> str:
    """What the owner saw of the money already going back: refunds asked of Razorpay (pending
    ones count) and the amount refunded. The order page sends it with a refund or a return;
    if it is no longer so, that question was already answered (a second tap while the first
    was on its way, a page left open) and is refused rather than done twice. ``refunds``: all
    of the order's, when the caller has them loaded already."""
    if refunds is None:
        asked = db.session.scalar(
            select(func.count()).select_from(Refund).where(Refund.order_id == order.id)
        )
    else:
        asked = len(refunds)
    return f"{asked}:{order.amount_refunded}"


def _refuse_if_answered(order: Order, seen: str | None) -> None:
    """A 409, changing nothing, when money went back since the page showed ``seen``."""
    if seen is not None and seen != money_seen(order):
        raise ApiError(
            409,
            f"Money already went back on {order.name} since this page was opened (a second "
            "tap, or another device): nothing more was done. Check the payments below, and "
            "ask again only if more is to go back.",
            code="changed_meanwhile",
        )


def refund(order: Order, amount: Decimal | None, *, actor: str, seen: str | None = None) -> Refund:
    """Refund all (``None``) or part of a paid order through Razorpay; commits.

    The refund is stored as pending and becomes final when Razorpay's ``refund.processed``
    webhook arrives (or at once, if Razorpay answers that it is already processed). When
    Razorpay's answer is lost (a timeout, a 5xx), Razorpay may have made it: the refund stays
    pending, holding its amount back, and ``RefundUnconfirmed`` says so; reconcile-payments
    then asks again, and Razorpay's idempotency key makes that ask safe.
    """
    payment, refundable = _refundable(order)
    _refuse_if_answered(order, seen)
    amount = refundable if amount is None else Decimal(amount)
    minor = _check_amount(amount, refundable, payment.currency)
    row = Refund(order_id=order.id, payment_id=payment.id, amount=amount, status="pending")
    db.session.add(row)
    update_order(order, {})  # a new version: the invoice says a refund is on its way
    db.session.commit()  # reserved before asking Razorpay, so a second click cannot over-refund
    try:
        entity = _ask(row, payment, minor)
    except razorpay_client.RazorpayUnavailable as exc:
        if not exc.reached:
            _refused(row, actor, exc)
        record(
            order,
            "refund_unconfirmed",
            actor,
            f"Refund of {format_plain(amount)} {order.currency} asked of Razorpay, which did "
            f"not confirm it ({exc}); held as pending until Razorpay settles it",
            {"amount": str(amount), "receipt": receipt_of(row)},
        )
        db.session.commit()
        raise RefundUnconfirmed(amount, order.currency, exc) from None
    except razorpay_client.RazorpayError as exc:
        _refused(row, actor, exc)
    row = _adopt(order, row, entity, actor)
    if entity.get("status") == "processed":
        confirm_refund(row, actor="razorpay")
        db.session.commit()
    return row


def return_outside_razorpay(
    order: Order, amount: Decimal | None, *, actor: str, seen: str | None = None
) -> bool:
    """The owner gave the customer money back outside Razorpay (all that is left, ``None``, or
    part of it) for an order not paid through Razorpay: paid in cash, or before Bik placed it.
    Moves the order to refunded or partially_refunded, as a Razorpay refund would; commits.

    An order paid through Razorpay is refunded through Razorpay (``refund``): one record of
    what went back where. The amount is checked against what is left in the same UPDATE that
    counts it, so two owners recording at once cannot return more than was paid.
    """
    _lock_paid_order(order, "have money returned")
    _refuse_if_answered(order, seen)
    payments = db.session.scalars(
        select(Payment).where(Payment.order_id == order.id).order_by(Payment.id)
    ).all()
    if any(payment.razorpay_payment_id for payment in payments):
        raise ApiError(
            409,
            f"{order.name} was paid through Razorpay: refund it through Razorpay",
            code="refund_through_razorpay",
        )
    left = order.total - order.amount_refunded
    amount = left if amount is None else Decimal(amount)
    places = money_places(order.currency)
    finest = Decimal(1).scaleb(-places)  # ₹0.01, ¥1
    # What is left is always returnable whole, even a ¥946.5 that Bik priced finer than yen.
    if not amount.is_finite() or amount <= 0 or (amount != left and amount % finest):
        problem = (
            f"enter an amount above 0 with at most {places} decimals"
            if places
            else f"enter a whole amount above 0 ({order.currency} has no smaller unit)"
        )
    elif amount > left:
        problem = f"at most {format_plain(left)} {order.currency} is left to return"
    else:
        problem = None
    if problem:
        raise ApiError(
            422,
            f"Cannot record {format_plain(amount)} {order.currency} returned: {problem}",
            fields=[{"field": "amount", "message": problem}],
        )
    returned = order.amount_refunded + amount
    moved = transition(
        order,
        PAYMENT_STATUS,
        state_after_refunds(order, returned),
        actor=actor,
        message=f"Returned {format_plain(amount)} {order.currency} to the customer outside "
        f"Razorpay ({_of_total(returned, order)})",
        data={"amount": str(amount), "outsideRazorpay": True},
        values={"amount_refunded": money_in_sql(Order.amount_refunded + amount)},
        where=(money_in_sql(Order.amount_refunded) == order.amount_refunded,),
    )
    if not moved:  # another return was counted meanwhile: this one would be on stale figures
        raise ApiError(
            409,
            f"{order.name}'s refunds changed while this was being recorded; reload and check "
            "what is left to return",
            code="changed_meanwhile",
        )
    if payments:  # a cash payment (the latest, if ever more): it shows what went back too
        db.session.execute(
            update(Payment)
            .where(
                Payment.id == payments[-1].id,
                money_in_sql(Payment.amount_refunded + amount) <= Payment.amount,
            )
            .values(amount_refunded=money_in_sql(Payment.amount_refunded + amount))
            .execution_options(synchronize_session=False)
        )
    db.session.commit()
    return True


def _of_total(refunded: Decimal, order: Order) -> str:
    """How much of the order is refunded now, for the timeline: 400 INR of 947 INR in all."""
    currency = order.currency
    return f"{format_plain(refunded)} {currency} of {format_plain(order.total)} {currency} in all"


class RefundUnconfirmed(ApiError):
    """Razorpay's answer to a refund was lost: it is pending, and will be settled later."""

    def __init__(self, amount: Decimal, currency: str, exc: razorpay_client.RazorpayError):
        super().__init__(
            503,
            f"Razorpay did not confirm the refund of {format_plain(amount)} {currency} ({exc}), "
            "so it may or may not have been made. It stays pending and its amount is held back, "
            "so it cannot be asked twice; Razorpay's webhook or the next reconcile-payments run "
            "settles it (asking Razorpay again is safe: it makes one refund however often asked).",
            code="refund_unconfirmed",
        )


def receipt_of(row: Refund) -> str:
    """The ``receipt`` bikshop gives Razorpay with the refund: how either side finds the other."""
    return f"{RECEIPT_PREFIX}{row.id}"


RECEIPT_PREFIX = "bikshop-refund-"
_RECEIPT_NUMBER = re.compile(r"[0-9]{1,10}")


def _ask(row: Refund, payment: Payment, minor: int) -> dict:
    """Ask Razorpay for ``row``'s refund; the same key and body every time it is asked."""
    return razorpay_client.refund_payment(
        payment.razorpay_payment_id,
        minor,
        receipt=receipt_of(row),
        key=f"bikshop-{payment.razorpay_payment_id}-refund-{row.id}",
    )


def _refused(row: Refund, actor: str, exc) -> NoReturn:
    """Razorpay certainly did not make the refund: it no longer holds the amount back."""
    fail_refund(row, actor=actor, reason=str(exc))
    db.session.commit()
    raise GatewayFailure(exc, "refund the payment")


def _adopt(order: Order, row: Refund, entity: dict, actor: str) -> Refund:
    """Store Razorpay's answer (its refund id) on ``row``; commits. If Razorpay's webhook
    stored that refund first, its row is the one kept."""
    row.razorpay_refund_id = str(entity.get("id") or "") or None
    row.raw = entity
    record(
        order,
        "refund_requested",
        actor,
        f"Refund of {format_plain(row.amount)} {order.currency} asked of Razorpay "
        f"({row.razorpay_refund_id})",
        {"amount": str(row.amount), "razorpayRefundId": row.razorpay_refund_id},
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


def _lock_paid_order(order: Order, what: str) -> None:
    """One refund decision per order at a time: lock the order and reload it, then refuse (a
    409) unless it is paid, so that money can go back (``what``: "be refunded")."""
    lock_order(order)
    if order.payment_status not in ("paid", "partially_refunded"):
        raise ApiError(
            409,
            f"Only a paid order can {what}; {order.name} is {order.payment_status}",
            code="illegal_transition",
            fields=[{"field": "paymentStatus", "message": f"currently {order.payment_status}"}],
        )


def _refundable(order: Order) -> tuple[Payment, Decimal]:
    _lock_paid_order(order, "be refunded")
    payment = refunded_payment(
        db.session.scalars(select(Payment).where(Payment.order_id == order.id))
    )
    if payment is None:
        raise ApiError(
            409,
            f"{order.name} was not paid through Razorpay: refund the customer directly",
            code="not_refundable",
        )
    pending = db.session.scalars(
        select(Refund).where(Refund.payment_id == payment.id, Refund.status == "pending")
    )
    return payment, left_to_refund(payment, pending)


def state_after_refunds(order: Order, refunded: Decimal) -> str:
    """The payment status of ``order`` once ``refunded`` in all has gone back to the customer:
    refunded when that is the whole total, else partially refunded."""
    return "refunded" if refunded >= order.total else "partially_refunded"


def state_once_settled(order: Order) -> str:
    """The payment status ``order`` moves to once Razorpay settles the refunds of it still
    pending (``confirm_refund``, one by one)."""
    return state_after_refunds(order, order.amount_refunded + pending_refunds(order))


def pending_refunds(order: Order) -> Decimal:
    """What is asked of Razorpay to go back to the customer and not yet confirmed refunded."""
    pending = db.session.scalar(
        select(func.coalesce(func.sum(Refund.amount), 0)).where(
            Refund.order_id == order.id, Refund.status == "pending"
        )
    )
    return Decimal(pending)


def refunded_payment(payments: Iterable[Payment]) -> Payment | None:
    """The payment an order's refunds go back to: its latest Razorpay payment, if any."""
    online = [payment for payment in payments if payment.razorpay_payment_id]
    return max(online, key=lambda payment: payment.id, default=None)


def left_to_refund(payment: Payment, refunds: Iterable[Refund]) -> Decimal:
    """What can still be refunded of ``payment``: captured, less refunded, less the refunds of
    it still pending at Razorpay (held back until Razorpay settles them)."""
    pending = sum(
        (r.amount for r in refunds if r.payment_id == payment.id and r.status == "pending"),
        Decimal(0),
    )
    return payment.amount - payment.amount_refunded - pending


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
    # Never more refunded than captured, whatever order Razorpay's events come in (a refund
    # reported failed, its amount refunded again, then both reported processed).
    counted = db.session.execute(
        update(Payment)
        .where(
            Payment.id == row.payment_id,
            money_in_sql(Payment.amount_refunded + row.amount) <= Payment.amount,
        )
        .values(amount_refunded=money_in_sql(Payment.amount_refunded + row.amount))
        .execution_options(synchronize_session=False)
    ).rowcount
    order = db.session.get(Order, row.order_id, with_for_update=True, populate_existing=True)
    if counted != 1:
        record(
            order,
            "refund_unexpected",
            actor,
            f"Razorpay reports refund {row.razorpay_refund_id} of {format_plain(row.amount)} "
            f"{order.currency} processed, which would take the refunds past the payment: not "
            "counted; check the payment in Razorpay",
            {"amount": str(row.amount), "razorpayRefundId": row.razorpay_refund_id},
        )
        return "refund recorded; not counted: it would exceed the payment"
    refunded = order.amount_refunded + row.amount
    to = state_after_refunds(order, refunded)
    try:
        transition(
            order,
            PAYMENT_STATUS,
            to,
            actor=actor,
            message=f"Refunded {format_plain(row.amount)} {order.currency} "
            f"({_of_total(refunded, order)})",
            data={"amount": str(row.amount), "razorpayRefundId": row.razorpay_refund_id},
            values={"amount_refunded": money_in_sql(Order.amount_refunded + row.amount)},
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


def fail_refund(row: Refund, *, actor: str, reason: str | None = None) -> str:
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
        f"({reason or row.razorpay_refund_id})",
    )
    update_order(order, {})  # the invoice stops saying a refund is on its way
    return f"refund failed: {reason}" if reason else "refund failed"


class RefundEntity(Schema):
    """The fields of Razorpay's refund entity that bikshop reads (webhook, fetch and list)."""

    class Meta:
        unknown = INCLUDE

    id = fields.String(required=True, validate=validate.Length(max=64))  # its column
    payment_id = fields.String(required=True)
    amount = fields.Integer(
        strict=True, required=True, validate=validate.Range(min=1, max=MAX_MINOR_UNITS)
    )
    status = fields.String(load_default="")
    receipt = fields.String(allow_none=True, load_default=None)


def row_for(payment: Payment, entity: dict) -> Refund | None:
    """bikshop's row for a refund Razorpay tells of (loaded by ``RefundEntity``): by its id, or
    by the receipt bikshop gave it while the id is not stored yet (the answer to the ask was
    lost, or the webhook came first), or else the oldest pending refund of the same amount
    still without an id (asked before refunds carried a receipt). None if there is none: the
    refund was made in Razorpay's dashboard."""
    row = db.session.scalars(
        select(Refund).where(Refund.razorpay_refund_id == entity["id"])
    ).one_or_none()
    if row is not None:
        return row
    unmatched = select(Refund).where(
        Refund.payment_id == payment.id, Refund.razorpay_refund_id.is_(None)
    )
    receipt = entity.get("receipt") or ""
    if receipt.startswith(RECEIPT_PREFIX):
        # Signed, but any API user can set a receipt: one no row of ours could have (digits
        # beyond an id's range, or not ASCII) matches none, rather than failing the query.
        number = _RECEIPT_NUMBER.fullmatch(receipt[len(RECEIPT_PREFIX) :])
        if number is None or int(number.group()) > LARGEST_ID:
            return None
        return db.session.scalars(unmatched.where(Refund.id == int(number.group()))).one_or_none()
    amount = from_minor_units(entity["amount"], payment.currency)
    return db.session.scalars(
        unmatched.where(Refund.status == "pending", Refund.amount == amount).order_by(Refund.id)
    ).first()


def reconcile_refunds(*, older_than: timedelta) -> tuple[list[str], list[str]]:
    """Ask Razorpay about every refund still pending after ``older_than`` and apply what it
    says, as its ``refund.processed``/``refund.failed`` webhooks would: a lost webhook never
    leaves an order unrefunded on paper, nor its amount held back for good. A refund whose
    ask went unanswered is looked for among the payment's refunds by its receipt and, if
    Razorpay has none, asked again with the same idempotency key. Commits.

    Returns (outcomes, failures), one line per refund.
    """
    rows = db.session.scalars(
        select(Refund.id)
        .where(Refund.status == "pending", Refund.created_at <= utcnow() - older_than)
        .order_by(Refund.id)
    ).all()
    db.session.commit()  # no transaction held while Razorpay answers
    outcomes, failures = [], []
    for row_id in rows:
        row = db.session.get(Refund, row_id)
        payment = db.session.get(Payment, row.payment_id)
        label = row.razorpay_refund_id or receipt_of(row)
        db.session.commit()
        try:
            outcome = _settle(row, payment)
        except ValidationError as exc:
            db.session.rollback()
            failures.append(f"{label}: Razorpay gave a malformed refund ({exc.messages})")
            continue
        except razorpay_client.RazorpayError as exc:
            db.session.rollback()
            failures.append(f"{label}: {exc}")
            continue
        db.session.commit()
        outcomes.append(f"{label}: {outcome}")
    return outcomes, failures


def _settle(row: Refund, payment: Payment) -> str:
    """What Razorpay says of one pending refund, applied; the caller commits."""
    if not razorpay_takes(payment.currency):
        return f"ignored: a payment in {payment.currency}"
    minor = to_minor_units(row.amount, payment.currency)
    if row.razorpay_refund_id is None:
        try:
            entity = RefundEntity().load(_find_or_ask(row, payment, minor))
        except razorpay_client.RazorpayRejected as exc:
            return fail_refund(row, actor="reconcile", reason=f"Razorpay refused it: {exc}")
        stored = db.session.scalar(
            select(Refund.id).where(Refund.razorpay_refund_id == entity["id"])
        )
        if stored is not None:  # the webhook stored it on a row of its own: that one counts
            return fail_refund(row, actor="reconcile", reason=f"{entity['id']} is stored already")
    else:
        entity = RefundEntity().load(razorpay_client.fetch_refund(row.razorpay_refund_id))
        if entity["id"] != row.razorpay_refund_id:
            return f"ignored: Razorpay answered about {entity['id']}"
    if entity["amount"] != minor:
        return (
            f"ignored: Razorpay's refund is {entity['amount']} in minor units, "
            f"ours {format_plain(row.amount)} {payment.currency}"
        )
    if row.razorpay_refund_id is None:
        row.razorpay_refund_id, row.raw = entity["id"], entity
        order = db.session.get(Order, row.order_id)
        record(
            order,
            "refund_requested",
            "reconcile",
            f"Razorpay holds the refund of {format_plain(row.amount)} {order.currency} "
            f"as {entity['id']}",
            {"amount": str(row.amount), "razorpayRefundId": entity["id"]},
        )
        db.session.flush()
    if entity["status"] == "processed":
        return confirm_refund(row, actor="reconcile")
    if entity["status"] == "failed":
        return fail_refund(row, actor="reconcile")
    return f"no change: refund is {entity['status']} at Razorpay"


def _find_or_ask(row: Refund, payment: Payment, minor: int) -> dict:
    """The refund Razorpay made for ``row`` (found by its receipt), or Razorpay's answer when
    asked again with the same idempotency key and body."""
    for entity in razorpay_client.payment_refunds(payment.razorpay_payment_id):
        if entity.get("receipt") == receipt_of(row):
            return entity
    return _ask(row, payment, minor)
