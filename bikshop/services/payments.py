"""Payments: Razorpay payment links, the one pending → paid transition, reconciliation and refunds.

The webhook, the customer's redirect and ``reconcile-payments`` all end in ``apply_link_state``, so
they agree on what a link's state means; every move in it is a conditional UPDATE, so running them
at once changes the order once. No transaction is held open while Razorpay is being called.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from flask import current_app
from marshmallow import INCLUDE, Schema, ValidationError, fields, validate
from sqlalchemy import exists, func, select, update
from sqlalchemy.exc import IntegrityError

from bikshop import phones, razorpay_client
from bikshop.config import NoURLKnown
from bikshop.errors import ApiError
from bikshop.extensions import db
from bikshop.links import public_base
from bikshop.models import Order, OrderEvent, Payment, PaymentLink
from bikshop.models.types import utcnow
from bikshop.money import (
    RAZORPAY_MINIMUM,
    NotPayable,
    format_plain,
    from_minor_units,
    minor_units_fit,
    razorpay_takes,
    to_minor_units,
)
from bikshop.razorpay_client import GatewayFailure
from bikshop.services.refunds import (
    confirm_refund,
    reconcile_refunds,
    refund,
    return_outside_razorpay,
)
from bikshop.services.states import (
    PAYMENT_STATUS,
    IllegalTransition,
    record,
    transition,
    update_order,
)

__all__ = [  # refunds live in services/refunds.py; the dashboard reaches them from here
    "GatewayFailure",
    "apply_link_state",
    "can_pay_online",
    "cancel_open_links",
    "close_links_if_paid",
    "confirm_redirect",
    "confirm_refund",
    "create_or_reuse_link",
    "mark_paid",
    "mark_paid_offline",
    "online_payment_problem",
    "payment_confirming",
    "payment_in_review",
    "reconcile",
    "refund",
    "unsettled_links",
    "release_refunded_link",
    "return_outside_razorpay",
]

log = logging.getLogger(__name__)

# A link's own states, as Razorpay reports them: ``to`` -> the states it may come from. "paid"
# wins over everything (Razorpay has the money); the one way out of it is bikshop's own
# "refunded": a payment that settled nothing (``unsettled_links``) given back whole.
LINK_SOURCES = {
    "partially_paid": ("created", "partially_paid"),
    "paid": ("created", "partially_paid", "expired", "cancelled"),
    # Razorpay neither expires nor cancels a link once part of it is paid; a stale event that
    # says so must not let go of money the link holds (it stays flagged until settled).
    "expired": ("created",),
    "cancelled": ("created",),
    "refunded": ("paid", "partially_paid"),
}
# A link about to expire is not handed out again: the customer needs time to pay on it.
REUSE_MARGIN = timedelta(minutes=10)


class LinkPayment(Schema):
    """One captured payment as a fetched payment link lists it."""

    class Meta:
        unknown = INCLUDE

    payment_id = fields.String(allow_none=True, validate=validate.Length(max=64))  # its column
    status = fields.String(allow_none=True)
    method = fields.String(allow_none=True)
    amount = fields.Integer(strict=True)


class LinkEntity(Schema):
    """The fields of Razorpay's payment link entity we act on (webhook payloads and fetches)."""

    class Meta:
        unknown = INCLUDE

    # Lengths are those of the columns the values are kept in: anything longer is not Razorpay's.
    id = fields.String(required=True, validate=validate.Length(max=64))
    status = fields.String(required=True)
    amount = fields.Integer(strict=True, required=True)
    amount_paid = fields.Integer(strict=True, load_default=0)
    currency = fields.String(required=True)
    reference_id = fields.String(allow_none=True)
    order_id = fields.String(allow_none=True, validate=validate.Length(max=64))
    # Where the Pay button sends the customer: a web address, never javascript: or data:.
    short_url = fields.String(
        allow_none=True,
        validate=[validate.Length(max=2048), validate.Regexp(r"(?i)^https?://[^\s]+$")],
    )
    payments = fields.List(fields.Nested(LinkPayment), allow_none=True)
    # Unix seconds; 0 or absent: no expiry. Bounded so that no datetime can overflow.
    expire_by = fields.Integer(
        strict=True, allow_none=True, validate=validate.Range(min=0, max=253402300799)
    )


def read_link_entity(entity) -> dict:
    """Validate a payment link entity from Razorpay; RazorpayUnavailable when it is malformed."""
    try:
        return LinkEntity().load(entity if isinstance(entity, dict) else {})
    except ValidationError as exc:
        raise razorpay_client.RazorpayUnavailable(f"malformed payment link: {exc.messages}")


def _owes_online(order: Order) -> bool:
    configured = bool(current_app.config["RAZORPAY_KEY_ID"])
    return (
        configured
        and order.payment_status == "pending"
        and order.status != "CANCELLED"
        and not payment_in_review(order)
    )


def payment_in_review(order: Order) -> bool:
    """Razorpay holds money for this pending order that did not settle it (a payment whose
    amount or currency differs, see ``_apply_paid``): the shop has to look at it, and the
    customer is told so instead of being asked to pay again."""
    if order.payment_status != "pending" or order.status == "CANCELLED":
        return False
    return bool(db.session.scalar(select(exists().where(*_unsettled(order)))))


def unsettled_links(order: Order) -> list[PaymentLink]:
    """The order's links Razorpay reports paid, in whole or in part, whose money settled
    nothing: an amount or currency that differs, or a payment after the order was paid another
    way. That money sits at Razorpay until the shop refunds it or settles with the customer."""
    return list(db.session.scalars(select(PaymentLink).where(*_unsettled(order))))


def release_refunded_link(link: PaymentLink, payment: dict | None, *, actor: str) -> bool:
    """Razorpay refunded, in whole, the one payment on ``link`` that settled nothing (its
    ``payment`` entity, from the refund's webhook): nothing is held for the order any more. The
    link leaves ``unsettled_links`` (and the dashboard's warning), and a pending order can be
    paid again; the caller commits. False when money stays held (a part refunded, other
    payments on the link) or the link settled the order (its refunds are the order's own)."""
    payment = payment if isinstance(payment, dict) else {}
    amount, refunded = payment.get("amount"), payment.get("amount_refunded")
    whole = isinstance(amount, int) and isinstance(refunded, int) and 0 < amount <= refunded
    if not whole or not minor_units_fit(amount, link.currency):
        return False
    order = db.session.get(Order, link.order_id)
    held = db.session.scalar(select(exists().where(*_unsettled(order), PaymentLink.id == link.id)))
    if not held or from_minor_units(amount, link.currency) != link.amount_paid:
        return False
    if not _move_link(link, "refunded"):
        return False
    update_order(order, {})  # a new version: the invoice is drawn anew
    owed = order.payment_status == "pending" and order.status != "CANCELLED"
    record(
        order,
        "payment_link_refunded",
        actor,
        f"The payment on {link.razorpay_id} that did not settle the order is refunded in full"
        + ("; the customer can pay the order again" if owed else ""),
        {"paymentLink": link.razorpay_id},
    )
    return True


def _unsettled(order: Order) -> tuple:
    return (
        PaymentLink.order_id == order.id,
        PaymentLink.status.in_(("paid", "partially_paid")),
        ~exists().where(Payment.payment_link_id == PaymentLink.id),
    )


def online_payment_problem(order: Order) -> str | None:
    """Why an order that still owes money cannot be paid through Razorpay (its currency, or a
    total Razorpay cannot take), for the customer; None when it can, or when nothing is owed."""
    if not _owes_online(order):
        return None
    try:
        to_minor_units(order.total, order.currency)
    except NotPayable as exc:
        return str(exc)
    if order.total < RAZORPAY_MINIMUM:
        return f"Razorpay takes no payment below {RAZORPAY_MINIMUM} {order.currency}"
    return None


def can_pay_online(order: Order) -> bool:
    """The invoice offers a Pay button: Razorpay is configured, money is still owed, Razorpay
    can take the order's total in its currency, has not refused this order for good, and no
    payment of it is waiting to be confirmed."""
    return (
        _owes_online(order)
        and online_payment_problem(order) is None
        and _pay_held_by(order) is None
    )


def payment_confirming(order: Order) -> bool:
    """Razorpay sent the customer back with a signed "paid" that it has not confirmed yet
    (``confirm_redirect``: its fetch failed or lagged; the webhook or reconcile-payments will
    confirm it): the invoice says so instead of offering Pay. The order stays pending."""
    return _owes_online(order) and _pay_held_by(order) == "confirming"


_HOLDS = ("payment_link_refused", "payment_redirect_paid")


def _pay_held_by(order: Order) -> str | None:
    """Why the order's timeline says not to offer Pay now, if it does: "confirming" after a
    signed "paid" redirect, until the money of that link is known to be back with the
    customer (``release_refunded_link``: its one payment refunded in full). Razorpay signed
    that a payment was made: a link reported expired or cancelled since may still have taken
    it (a payment begun before expiry completes after it), so only its refund lifts the hold,
    never a second chance to pay. "refused" when Razorpay refused to make a link for this
    version of the order under the keys in use (``_new_link``) and the return address this
    request would give, since asking again would be refused again, until the order or the
    Razorpay settings change."""
    latest = db.session.execute(
        select(OrderEvent.kind, OrderEvent.data)
        .where(OrderEvent.order_id == order.id, OrderEvent.kind.in_(_HOLDS))
        .order_by(OrderEvent.id.desc())
        .limit(1)
    ).first()
    if latest is None:
        return None
    kind, data = latest
    if kind == "payment_redirect_paid":
        link = data.get("paymentLink") if isinstance(data, dict) else None
        link_status = db.session.scalar(
            select(PaymentLink.status).where(
                PaymentLink.order_id == order.id, PaymentLink.razorpay_id == link
            )
        )
        return None if link_status == "refunded" else "confirming"
    refused_now = (
        isinstance(data, dict)
        and data.get("orderVersion") == order.version
        and data.get("keys") == razorpay_client.keys_fingerprint()
        and _refused_here(data.get("callback"), order)
    )
    return "refused" if refused_now else None


def _refused_here(callback: str | None, order: Order) -> bool:
    """Whether a link refused with return address ``callback`` is the one this request would
    ask for. Without BIKSHOP_PUBLIC_URL the address is the request's Host, and a link refused
    for a forged one (a POST to Pay with a Host Razorpay will not take) held Pay back from the
    customer on the shop's own address. A request no link can be made from (a Host that is no
    host name) stands by the refusal: it only reads the page."""
    if not callback:  # recorded before the address was (2026-12-08), or with PUBLIC_URL's
        return True
    try:
        return callback == _callback_url(order)
    except (ApiError, NoURLKnown):
        return True


def create_or_reuse_link(order: Order) -> PaymentLink:
    """The link the customer should pay on: an unexpired one already made, else a new one.

    Raises ApiError 409 when nothing is owed and GatewayFailure when Razorpay fails (then nothing
    is stored). Commits.
    """
    for _ in range(3):  # an adopted link that turns out expired costs one more attempt
        if not can_pay_online(order):
            held = {"refused": "Razorpay refused it", "confirming": "a payment is being confirmed"}
            problem = (
                online_payment_problem(order)
                or held.get(_pay_held_by(order) or "")
                or f"payment {order.payment_status}"
            )
            raise ApiError(
                409, f"Order {order.name} cannot be paid online ({problem})", code="not_payable"
            )
        link = _reusable_link(order) or _new_link(order)
        if link.status == "created":
            return link
    raise GatewayFailure(razorpay_client.RazorpayRejected("no usable link"), "make a payment link")


def _reusable_link(order: Order) -> PaymentLink | None:
    """The newest open link for the order's amount that leads back here after paying.

    A link made under another address (a request's Host, where ``BIKSHOP_PUBLIC_URL`` is not
    set; or the shop's old address) would send the customer there after paying: one POST to
    the Pay button with a forged Host made the link every later customer tap was given, for as
    long as it lived. Such a link is left open, not reused (paid, it still pays the order, and
    a payment on any link cancels the others)."""
    callback = _callback_url(order)
    links = db.session.scalars(
        select(PaymentLink)
        .where(
            PaymentLink.order_id == order.id,
            PaymentLink.status == "created",
            PaymentLink.expire_by > utcnow() + REUSE_MARGIN,
            PaymentLink.amount == order.total,
            PaymentLink.currency == order.currency,
            PaymentLink.short_url.is_not(None),
        )
        .order_by(PaymentLink.id.desc())
    )
    for link in links:
        if (link.raw or {}).get("callback_url", callback) == callback:
            return link
    return None


def _callback_url(order: Order) -> str:
    """Where Razorpay sends the customer back after paying: the invoice's own return page."""
    return f"{public_base()}/invoice/{order.invoice_token}/paid"


def reference_id(order: Order, attempt: int) -> str:
    """Unique per attempt and the same when an attempt is retried, at most 40 characters.

    A piece of the invoice token keeps two installations (or a re-created database) that share
    a Razorpay account from ever adopting each other's links.
    """
    token = "".join(c for c in order.invoice_token if c.isalnum())[:6]
    suffix = f"-{token}-{attempt}"
    return order.public_id[: 40 - len(suffix)] + suffix


def _link_request(order: Order, attempt: int) -> dict:
    config = current_app.config
    expire_by = utcnow() + timedelta(minutes=config["RAZORPAY_LINK_EXPIRY_MINUTES"])
    request = {
        "amount": to_minor_units(order.total, order.currency),
        "currency": order.currency,
        "accept_partial": False,
        "reference_id": reference_id(order, attempt),
        "description": f"{config['STORE_NAME']} order {order.name}"[:2048],
        # Bik already talks to the customer on WhatsApp; Razorpay's SMS and email would be noise.
        "notify": {"sms": False, "email": False},
        "reminder_enable": False,
        "notes": {"order_id": order.public_id, "order_name": order.name},
        "callback_url": _callback_url(order),
        "callback_method": "get",
        "expire_by": int(expire_by.timestamp()),
    }
    customer = _link_customer(order)
    if customer:  # none of it in a form Razorpay takes: no customer at all, rather than {}
        request["customer"] = customer
    return request


# Razorpay's own examples of a link's customer: +919876543210, gaurav.kumar@razorpay.com.
_LINK_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")
_LINK_NAME_LENGTH = 50


def _link_customer(order: Order) -> dict:
    """Who a link is for, as Razorpay's dashboard lists it, in the strict form Razorpay's
    examples use, or left out: every part is optional, and a refusal would leave the order
    without a Pay button. Razorpay does not prefill them on its checkout, so a part left out
    costs the customer nothing. Bik's ``(+91) 98765-43210`` goes as ``+919876543210``; an
    email without a dotted domain, or a number not readable as international, is left out;
    a name is cut to 50 characters."""
    customer = {}
    contact = phones.e164(order.phone_number or "")
    if contact:
        customer["contact"] = contact
    if order.email and len(order.email) <= 254 and _LINK_EMAIL.fullmatch(order.email):
        customer["email"] = order.email
    name = (order.customer_name or "").strip()
    if name:
        customer["name"] = name[:_LINK_NAME_LENGTH].rstrip()
    return customer


def _new_link(order: Order) -> PaymentLink:
    count = select(func.count()).select_from(PaymentLink).where(PaymentLink.order_id == order.id)
    request = _link_request(order, db.session.scalar(count) + 1)
    order_id = order.id
    db.session.commit()
    # Asked again after counting, in a fresh transaction: a tap that stored its new link after
    # this one looked for a reusable link, but before it counted, would else make attempt n+1,
    # a second open link for one order. A link stored after the count shares this attempt's
    # reference instead, and Razorpay's duplicate answer leads to it (``_adopt``).
    reusable = _reusable_link(order)
    db.session.commit()  # no transaction (nor pooled connection) held while Razorpay answers
    if reusable is not None:
        return reusable
    try:
        try:
            entity = razorpay_client.create_link(request)
        except razorpay_client.RazorpayRejected as exc:
            if not exc.duplicate_reference:
                raise
            entity = _adopt(request)  # an earlier try timed out after Razorpay made the link
        entity = read_link_entity(entity)
    except razorpay_client.RazorpayError as exc:
        if isinstance(exc, razorpay_client.RazorpayRejected):  # retrying will not help: say so
            order = db.session.get(Order, order_id)
            update_order(order, {})  # a new version: the invoice stops offering Pay (_pay_held_by)
            record(
                order,
                "payment_link_refused",
                "razorpay",
                f"Razorpay refused to make a payment link ({exc}); the customer cannot pay "
                "online until this is fixed (check the Razorpay keys and account): the invoice "
                "offers Pay again once the keys or the order change",
                {
                    "referenceId": request["reference_id"],
                    "orderVersion": order.version,
                    "keys": razorpay_client.keys_fingerprint(),
                    "callback": request["callback_url"],
                },
            )
            db.session.commit()
        raise GatewayFailure(exc, "make a payment link")
    order = db.session.get(Order, order_id)
    link = PaymentLink(
        order_id=order.id,
        reference_id=request["reference_id"],
        razorpay_id=entity["id"],
        razorpay_order_id=entity.get("order_id") or None,
        short_url=entity.get("short_url"),
        amount=from_minor_units(request["amount"], request["currency"]),
        currency=request["currency"],
        amount_paid=Decimal("0"),
        status="created",
        # Razorpay's, which an adopted link (made by an earlier ask that timed out) has of its
        # own; this ask's own only if Razorpay gives none (time probe: an adopted link kept
        # a week from the second tap, and Pay sent customers to it after it expired).
        expire_by=datetime.fromtimestamp(entity.get("expire_by") or request["expire_by"], UTC),
        raw=entity,
    )
    db.session.add(link)
    record(
        order,
        "payment_link_created",
        "customer",
        f"Payment link {entity['id']} made for {format_plain(link.amount)} {link.currency}",
        {"paymentLink": entity["id"], "referenceId": link.reference_id},
    )
    try:
        db.session.commit()
    except IntegrityError:  # a second tap made the same attempt at the same moment
        db.session.rollback()
        link = db.session.scalars(
            select(PaymentLink).where(PaymentLink.reference_id == request["reference_id"])
        ).one()
    if entity["status"] != "created":  # adopted a link that already moved on
        outcome = apply_link_state(link, entity, actor="razorpay")
        db.session.commit()
        close_links_if_paid(order, outcome, actor="razorpay")
    db.session.refresh(order)
    if order.status == "CANCELLED" or order.payment_status != "pending":
        # Cancelled, or paid on another link, while Razorpay made this one: the cancel's (or
        # the payment's) own look for open links may have come before this link was stored
        # (it commits first, then looks; this stores the link first, then looks at the order:
        # one of the two sees the other).
        cancel_open_links(order, actor="bikshop")
    return link


def _adopt(request: dict) -> dict:
    ref = request["reference_id"]
    found = razorpay_client.links_by_reference(ref)
    if not found:  # Razorpay's lists can lag behind a create: worth asking again shortly
        raise razorpay_client.RazorpayUnavailable(f"Razorpay does not list reference {ref} yet")
    for entity in found:
        notes = entity.get("notes") if isinstance(entity.get("notes"), dict) else {}
        if (
            entity.get("reference_id") == ref
            and entity.get("amount") == request["amount"]
            and entity.get("currency") == request["currency"]
            and notes.get("order_id") == request["notes"]["order_id"]
        ):
            log.info("adopting existing payment link %s for reference %s", entity.get("id"), ref)
            return entity
    raise razorpay_client.RazorpayRejected(f"reference {ref} belongs to a link we did not make")


def apply_link_state(
    link: PaymentLink, entity: dict, *, actor: str, payment: dict | None = None
) -> str:
    """Bring ``link`` and its order in line with Razorpay's ``entity`` for it; the caller commits.

    ``payment`` is the webhook's payment entity, if any (a fetched link lists its payments).
    Returns the outcome, for the webhook record and the logs.
    """
    if entity.get("id") != link.razorpay_id:
        return f"ignored: entity {entity.get('id')} is not link {link.razorpay_id}"
    if not razorpay_takes(link.currency):  # made before bikshop checked currencies
        return (
            f"ignored: link {link.razorpay_id} is in {link.currency}, which Razorpay does not take"
        )
    for key in ("amount", "amount_paid"):  # signed, yet more money than any order holds
        if not minor_units_fit(entity[key], link.currency):
            return f"ignored: {key} {entity[key]} is out of range for {link.currency}"
    if entity.get("order_id") and not link.razorpay_order_id:
        link.razorpay_order_id = entity["order_id"]
    order = db.session.get(Order, link.order_id)
    status = entity["status"]
    if status == "paid":
        return _apply_paid(link, order, entity, payment, actor)
    if status == "partially_paid":
        paid = from_minor_units(entity["amount_paid"], link.currency)
        if _move_link(link, "partially_paid", amount_paid=paid):
            update_order(order, {})  # a new version: the invoice stops offering to pay
            record(
                order,
                "payment_partial",
                actor,
                f"Partial payment: {format_plain(paid)} {entity['currency']} received on "
                f"{link.razorpay_id}; the order stays pending",
                {"paymentLink": link.razorpay_id, "amountPaid": str(paid)},
            )
            return "link partially paid"
        return "no change: partial payment already known"
    if status in ("expired", "cancelled"):
        if _move_link(link, status):
            owed = order.payment_status == "pending" and order.status != "CANCELLED"
            record(
                order,
                f"payment_link_{status}",
                actor,
                f"Payment link {link.razorpay_id} {status}"
                + ("; a new one is made if the customer pays" if owed else ""),
                {"paymentLink": link.razorpay_id},
            )
            return f"link {status}"
        return f"ignored: link already {link.status}"
    return f"no change: link is {status}"


def cancel_open_links(order: Order, *, actor: str) -> list[str]:
    """Cancel the order's unpaid links at Razorpay, so a cancelled or paid order cannot be paid
    (again); commits.

    Best effort, after the cancellation or payment has committed: a link Razorpay will not
    cancel (paid in the meantime, or Razorpay unreachable) stays open, and a payment on it is
    flagged on the timeline by ``_apply_paid`` ("paid although the order is cancelled",
    "another payment ... refund it").
    """
    if not razorpay_client.is_configured():
        return []
    links = db.session.scalars(
        select(PaymentLink).where(
            PaymentLink.order_id == order.id,
            PaymentLink.status == "created",
            PaymentLink.razorpay_id.is_not(None),
        )
    ).all()
    outcomes = []
    for link in links:
        try:
            entity = razorpay_client.cancel_link(link.razorpay_id)
        except razorpay_client.RazorpayError as exc:
            outcomes.append(f"{link.razorpay_id}: not cancelled ({exc})")
            record(
                order,
                "payment_link_cancel_failed",
                actor,
                f"Could not cancel payment link {link.razorpay_id} ({exc}); "
                "a payment on it will be flagged for a refund",
                {"paymentLink": link.razorpay_id},
            )
            continue
        outcomes.append(f"{link.razorpay_id}: {apply_link_state(link, entity, actor=actor)}")
    db.session.commit()
    return outcomes


def close_links_if_paid(order: Order, outcome: str, *, actor: str) -> None:
    """After ``apply_link_state``'s change has committed: if it paid the order (``outcome`` is
    "paid"), cancel the order's other open links, as cash received does. A link made after an
    earlier one expired stays open otherwise, and the earlier one can still be paid (Razorpay
    took the payment just before expiry): the customer could pay twice. Commits."""
    if outcome == "paid":
        cancel_open_links(order, actor=actor)


def _move_link(link: PaymentLink, to: str, *, amount_paid: Decimal | None = None) -> bool:
    values = {"status": to, "updated_at": utcnow()}
    where = [PaymentLink.id == link.id, PaymentLink.status.in_(LINK_SOURCES[to])]
    if amount_paid is not None:
        values["amount_paid"] = amount_paid
        if to == "partially_paid":
            where.append(PaymentLink.amount_paid != amount_paid)
    result = db.session.execute(
        update(PaymentLink)
        .where(*where)
        .values(values)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(link)
    return result.rowcount == 1


def _apply_paid(link, order, entity, payment, actor) -> str:
    paid = from_minor_units(entity["amount_paid"], link.currency)
    payment_id, method, raw = _captured_payment(entity, payment)
    problems = (
        _not_captured(payment_id, payment)
        + _mismatches(link, order, entity, payment)
        + _recorded_elsewhere(payment_id, order)
    )
    moved = _move_link(link, "paid", amount_paid=paid)
    if problems:
        if moved:  # told once, however many doors report the same link
            update_order(order, {})  # a new version: the invoice stops offering to pay
            log.warning(
                "payment mismatch on %s for %s: %s",
                link.razorpay_id,
                order.public_id,
                "; ".join(problems),
            )
            record(
                order,
                "payment_mismatch",
                actor,
                f"Payment on {link.razorpay_id} does not match the order: {'; '.join(problems)}. "
                "The order stays pending: check it in Razorpay.",
                {"paymentLink": link.razorpay_id, "problems": problems},
            )
        return "mismatch: " + "; ".join(problems)
    try:
        changed = mark_paid(
            order,
            actor=actor,
            amount=paid,
            currency=entity["currency"],
            method=method,
            razorpay_payment_id=payment_id,
            payment_link_id=link.id,
            raw=raw,
            paid_at=_paid_moment(raw, order),
        )
    except IllegalTransition:
        changed = False
    if changed:
        if order.status == "CANCELLED":
            record(
                order,
                "paid_after_cancel",
                actor,
                "Paid although the order is cancelled, and a cancelled order stays cancelled: "
                "refund the payment to the customer",
            )
        return "paid"
    if moved:  # a second link paid after the order was already settled: real money, say so
        update_order(order, {})  # a new version: the invoice tells the customer of it
        record(
            order,
            "payment_extra",
            actor,
            f"Another payment ({payment_id}) arrived on {link.razorpay_id} while the order was "
            f"already {order.payment_status}: refund it in Razorpay",
            {"paymentLink": link.razorpay_id, "razorpayPaymentId": payment_id},
        )
        log.warning("extra payment %s on %s for %s", payment_id, link.razorpay_id, order.public_id)
        return f"extra payment {payment_id}: order already {order.payment_status}, refund it"
    return f"no change: order already {order.payment_status}"


def _not_captured(payment_id: str | None, payment: dict | None) -> list[str]:
    """A link reported paid settles an order only with a captured payment in the report: the
    event's payment entity captured, or (a fetched link, no entity) a captured entry in its
    ``payments``, which Razorpay fills only once a payment is captured. A signed report that
    contradicts itself (a failed or merely authorised payment, none at all) is the shop's to
    check in Razorpay, not a paid order."""
    if payment and payment.get("captured") is not True:
        return [f"payment {payment.get('id')} is {payment.get('status')}, not captured"]
    if not payment_id:
        return ["Razorpay reports the link paid but no captured payment on it"]
    return []


def _mismatches(link, order, entity, payment) -> list[str]:
    expected = to_minor_units(order.total, link.currency)
    problems = []
    amounts = [("paid", entity["amount_paid"])]
    if payment and "amount" in payment:
        amounts.append(("payment", payment.get("amount")))
    if len(amounts) == 2 and amounts[0][1] == amounts[1][1]:
        amounts = [("paid", amounts[0][1])]  # the link and its payment agree: say it once
    for what, paise in amounts:
        if paise != expected:
            shown = (
                format_plain(from_minor_units(paise, link.currency))
                if isinstance(paise, int)
                else repr(paise)
            )
            problems.append(
                f"{what} amount {shown} but the order total is {format_plain(order.total)}"
            )
    currencies = {entity["currency"], link.currency}
    if payment and "currency" in payment:
        currencies.add(payment.get("currency"))
    if currencies != {order.currency}:
        problems.append(
            f"currency {'/'.join(sorted(map(str, currencies)))}, order {order.currency}"
        )
    return problems


def _recorded_elsewhere(payment_id: str | None, order: Order) -> list[str]:
    """A payment Razorpay reports for this order's link that is already recorded as another
    order's: one payment never settles two orders (and its row is unique)."""
    if not payment_id:
        return []
    other = db.session.scalars(
        select(Order.public_id)
        .join(Payment, Payment.order_id == Order.id)
        .where(Payment.razorpay_payment_id == payment_id, Order.id != order.id)
    ).first()
    return [f"payment {payment_id} is already recorded on order {other}"] if other else []


def _captured_payment(entity: dict, payment: dict | None) -> tuple[str | None, str | None, dict]:
    if payment and payment.get("id"):
        return payment["id"], _method(payment.get("method")), payment
    captured = [p for p in entity.get("payments") or [] if p.get("status") == "captured"]
    if captured:
        last = captured[-1]
        return last.get("payment_id"), _method(last.get("method")), last
    return None, None, {"paymentLink": entity["id"]}


def _paid_moment(payment: dict, order: Order) -> datetime | None:
    """When the customer paid, by Razorpay's payment (its ``created_at``, unix seconds): a
    webhook Razorpay retried for hours, or a payment reconcile-payments found, stamped the
    invoice's "Paid" with the time bikshop learnt of it (time probe: paid 11:50 PM, shown
    6:34 AM the next day). None (now) if it gives none, or one before the order or ahead."""
    stamp = payment.get("created_at")
    if not isinstance(stamp, int) or isinstance(stamp, bool):
        return None
    try:
        moment = datetime.fromtimestamp(stamp, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment if order.created_at <= moment <= utcnow() else None


def _method(method) -> str | None:
    """How the customer paid, as kept (32 characters): a name Razorpay invents later still fits."""
    return method[:32] if isinstance(method, str) and method else None


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
    refuse_cancelled: str | None = None,
    paid_at: datetime | None = None,
) -> bool:
    """Move ``order`` from pending to paid and record the payment, in the caller's transaction.
    ``paid_at``: when the customer paid, if not now (Razorpay's payment says when).

    Returns False (and records nothing) when the order is already paid: a repeat is a no-op.
    The caller has already checked amount and currency against the order. With
    ``refuse_cancelled``, a cancelled order is refused (a 409), also if cancelled meanwhile.
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
        values={"paid_at": paid_at or utcnow()},
        refuse_cancelled=refuse_cancelled,
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


def payment_of(order: Order) -> Payment | None:
    """The payment that paid ``order`` (``mark_paid`` records one), for its receipt; None for
    an order placed paid (paid elsewhere before Bik called) or not paid."""
    return db.session.scalars(
        select(Payment).where(Payment.order_id == order.id).order_by(Payment.id.desc()).limit(1)
    ).first()


# How a customer reads Razorpay's payment methods (and the dashboard's "cash").
METHOD_WORDS = {
    "upi": "UPI", "card": "card", "netbanking": "netbanking", "wallet": "wallet", "emi": "EMI",
    "cardless_emi": "EMI", "paylater": "pay later", "bank_transfer": "bank transfer",
    "cash": "cash",
}  # fmt: skip


def mark_paid_offline(order: Order, *, actor: str, method: str = "cash") -> bool:
    """The owner received the money outside Razorpay (cash on delivery); commits.

    Its open payment links are then cancelled, as for a cancelled order: the customer must
    not be able to pay twice.
    """
    changed = mark_paid(
        order,
        actor=actor,
        amount=order.total,
        currency=order.currency,
        method=method if order.total else None,  # a free order: nothing was handed over
        refuse_cancelled="marked paid",
    )
    db.session.commit()
    if changed:
        cancel_open_links(order, actor=actor)
    return changed


def confirm_redirect(order: Order, params: dict) -> str:
    """The customer came back from Razorpay: check the signature, then fetch the link and apply
    its state. Query parameters alone never change anything. Commits.

    Returns what the customer should be told: ``paid`` (or, for an order no longer pending,
    what :func:`_settled_notice` says); ``checking`` (Razorpay holds a payment
    that does not settle the order, e.g. the amount differs: the shop has to look at it); or
    ``confirming`` (Razorpay has not said yet: its webhook or reconcile-payments will). A signed
    "paid" that is not confirmed yet goes on the timeline, so the invoice itself (opened from
    the chat, not from this redirect) stops offering Pay meanwhile (``payment_confirming``).
    """
    valid = razorpay_client.callback_signature_valid(
        link_id=params["razorpay_payment_link_id"],
        reference_id=params.get("razorpay_payment_link_reference_id") or "",
        status=params["razorpay_payment_link_status"],
        payment_id=params["razorpay_payment_id"],
        signature=params["razorpay_signature"],
        secret=current_app.config["RAZORPAY_KEY_SECRET"] or "",
    )
    # Nothing a forged query holds reaches the database: the link is looked up once signed.
    link = None
    if valid:
        link = db.session.scalars(
            select(PaymentLink).where(
                PaymentLink.razorpay_id == params["razorpay_payment_link_id"],
                PaymentLink.order_id == order.id,
            )
        ).one_or_none()
    if link is None:
        log.warning(
            "payment redirect for %s refused: bad signature or unknown link", order.public_id
        )
        raise ApiError(
            400,
            "This payment confirmation link is not valid. Your invoice shows the current state.",
            code="bad_signature",
        )
    link_id, razorpay_id = link.id, link.razorpay_id
    db.session.commit()
    try:
        outcome = refresh_link(link_id, razorpay_id, actor="razorpay")
        log.info("payment redirect for %s: %s", order.public_id, outcome)
    except razorpay_client.RazorpayError:
        pass  # the webhook or reconcile-payments will confirm it
    db.session.refresh(order)
    if order.payment_status != "pending":
        return _settled_notice(order, link_id)
    link = db.session.get(PaymentLink, link_id)
    if link.status in ("paid", "partially_paid"):
        return "checking"
    signed_paid = params["razorpay_payment_link_status"] == "paid"
    if signed_paid and _owes_online(order) and _pay_held_by(order) != "confirming":
        update_order(order, {})  # a new version: the invoice's ETag changes with what it says
        record(
            order,
            "payment_redirect_paid",
            "customer",
            f"The customer came back from Razorpay with a signed 'paid' for {link.razorpay_id} "
            f"({params['razorpay_payment_id']}), not confirmed by Razorpay yet: the invoice "
            "says the payment is being confirmed and offers no Pay button",
            {"paymentLink": link.razorpay_id, "razorpayPaymentId": params["razorpay_payment_id"]},
        )
        db.session.commit()
    return "confirming"


def _settled_notice(order: Order, link_id: int) -> str:
    """What the customer back from a link of an order no longer pending is told: ``paid`` when
    this link's payment settled it; ``paid_cancelled`` when it did but the order is cancelled
    (the shop refunds it); ``refunded`` when it did and was refunded since; ``extra`` when the
    order had been settled otherwise (another link, cash): this payment is one too many."""
    settled_here = db.session.scalar(
        select(Payment.id).where(Payment.order_id == order.id, Payment.payment_link_id == link_id)
    )
    if settled_here is None:
        return "extra"
    if order.status == "CANCELLED":
        return "paid_cancelled"
    return "paid" if order.payment_status == "paid" else "refunded"


def refresh_link(link_id: int, razorpay_id: str, *, actor: str) -> str:
    """Ask Razorpay for the link and apply what it says (see :func:`apply_link_state`); returns
    the outcome. Commits; raises ``RazorpayError`` when Razorpay cannot say."""
    entity = read_link_entity(razorpay_client.fetch_link(razorpay_id))
    link = db.session.get(PaymentLink, link_id)
    outcome = apply_link_state(link, entity, actor=actor)
    db.session.commit()
    close_links_if_paid(db.session.get(Order, link.order_id), outcome, actor=actor)
    return outcome


def _refreshed(report: ReconcileReport, link_id: int, razorpay_id: str) -> str | None:
    """:func:`refresh_link` for reconcile: counted in ``report``, a failure noted there (and
    None returned) instead of raised."""
    report.checked += 1
    try:
        return refresh_link(link_id, razorpay_id, actor="reconcile")
    except razorpay_client.RazorpayError as exc:
        report.failures.append(f"{razorpay_id}: {exc}")
        return None


def _close_leftover_links(
    report: ReconcileReport, *, older_than: timedelta, asked: set[int]
) -> None:
    """Links still open on an order that is paid, refunded or cancelled: their cancel was lost
    (Razorpay down, or the worker killed after the order changed). Each is asked about first
    (unless this run already has: ``asked``), so a payment taken on it meanwhile is applied
    (flagged to refund), then cancelled."""
    rows = db.session.execute(
        select(PaymentLink.id, PaymentLink.razorpay_id, PaymentLink.order_id)
        .join(Order, Order.id == PaymentLink.order_id)
        .where(
            PaymentLink.status == "created",
            PaymentLink.razorpay_id.is_not(None),
            PaymentLink.created_at <= utcnow() - older_than,
            (Order.payment_status != "pending") | (Order.status == "CANCELLED"),
        )
        .order_by(PaymentLink.id)
    ).all()
    db.session.commit()
    for link_id, razorpay_id, order_id in rows:
        if link_id not in asked:
            outcome = _refreshed(report, link_id, razorpay_id)
            if outcome is None:
                continue
            if db.session.get(PaymentLink, link_id).status != "created":  # paid, expired …
                report.outcomes.append(f"{razorpay_id}: {outcome}")
                continue
        elif db.session.get(PaymentLink, link_id).status != "created":
            continue
        for line in cancel_open_links(db.session.get(Order, order_id), actor="reconcile"):
            (report.failures if ": not cancelled" in line else report.outcomes).append(line)


@dataclass
class ReconcileReport:
    """What one reconcile run did."""

    checked: int = 0
    outcomes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


# A link that expired or was cancelled can still be paid: Razorpay completes a payment the
# customer began before (a UPI approval can take minutes). Reconcile keeps asking about such a
# link of a pending order for this long after it closed.
CLOSED_LINK_WATCH = timedelta(hours=24)


def reconcile(*, older_than: timedelta) -> ReconcileReport:
    """Fetch every link of a still-pending order made more than ``older_than`` ago, open or
    closed in the last ``CLOSED_LINK_WATCH``, and apply its state: a lost webhook never leaves a
    paid order pending. Then the same for refunds still pending
    (``refunds.reconcile_refunds``). Safe beside webhooks. Commits."""
    report = ReconcileReport()
    now = utcnow()
    rows = db.session.execute(
        select(PaymentLink.id, PaymentLink.razorpay_id)
        .join(Order, Order.id == PaymentLink.order_id)
        .where(
            PaymentLink.status.in_(("created", "partially_paid"))
            | (
                PaymentLink.status.in_(("expired", "cancelled"))
                & (PaymentLink.updated_at >= now - CLOSED_LINK_WATCH)
            ),
            PaymentLink.razorpay_id.is_not(None),
            PaymentLink.created_at <= now - older_than,
            Order.payment_status == "pending",
        )
        .order_by(PaymentLink.id)
    ).all()
    db.session.commit()
    asked = set()  # links Razorpay answered about in this run
    for link_id, razorpay_id in rows:
        outcome = _refreshed(report, link_id, razorpay_id)
        if outcome is not None:
            asked.add(link_id)
            report.outcomes.append(f"{razorpay_id}: {outcome}")
    # A cancelled order still pending had its links asked about just now.
    _close_leftover_links(report, older_than=older_than, asked=asked)
    outcomes, failures = reconcile_refunds(older_than=older_than)
    report.outcomes += outcomes
    report.failures += failures
    return report
