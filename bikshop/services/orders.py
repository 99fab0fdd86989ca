"""Orders: place (idempotently), find, and change status, fulfilment and tracking."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import bindparam, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, selectinload

from bikshop.errors import ApiError
from bikshop.extensions import db
from bikshop.models import Order, OrderItem
from bikshop.models.types import utcnow
from bikshop.services.states import FULFILLMENT_STATUS, ORDER_STATUS, record, transition

# One statement, atomic on PostgreSQL (row lock) and SQLite (write lock): never MAX()+1.
# A raised BIKSHOP_ORDER_NUMBER_START takes effect on the next order.
_NEXT_NUMBER = text(
    "INSERT INTO counters (name, value) VALUES (:name, :start) "
    "ON CONFLICT (name) DO UPDATE SET value = CASE WHEN counters.value + 1 < :start "
    "THEN :start ELSE counters.value + 1 END "
    "RETURNING value"
)


@dataclass
class Placed:
    """The outcome of placeOrder: the order, and whether this call created it."""

    order: Order
    created: bool


def next_number(name: str, start: int) -> int:
    """The next value of counter ``name`` (``start`` the first time), in the open transaction."""
    return db.session.execute(_NEXT_NUMBER, {"name": name, "start": start}).scalar_one()


def fingerprint(request: dict) -> str:
    """A stable hash of a validated placeOrder body, to tell a retry from a different order."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def place_order(request: dict, raw_body: str, *, actor: str = "bik") -> Placed:
    """Persist a fully priced order from Bik; the same draft again returns the same order.

    Idempotency rests on the unique ``draft_order_id``: every request tries to insert (no
    look-up first: retries are rare, new orders are not), one wins, and a repeat's insert fails
    and it returns the winner's order, or a 409 if its body differs.
    """
    draft_id = request["draftOrderId"]
    digest = fingerprint(request)
    order = _build(request, raw_body, digest)
    try:
        order.number = next_number("order", current_app.config["ORDER_NUMBER_START"])
        order.public_id = f"{current_app.config['ORDER_ID_PREFIX']}{order.number}"
        order.name = f"#{order.number}"
        db.session.add(order)
        record(
            order,
            "placed",
            actor,
            f"Order placed through Bik (draft {draft_id})",
            {"paymentPending": request["paymentPending"]},
        )
        _commit_without_expiring()
    except IntegrityError:
        db.session.rollback()
        existing = _by_draft(draft_id)
        if existing is None:
            raise
        return _replay(existing, digest)
    return Placed(order, created=True)


def _commit_without_expiring() -> None:
    """Commit without expiring the new order: the answer is exactly what was just written (every
    column is set in Python), so re-reading the order and its items would cost two queries."""
    session = db.session()
    expire = session.expire_on_commit
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = expire


def _by_draft(draft_id: str) -> Order | None:
    return db.session.scalars(
        select(Order).where(Order.draft_order_id == draft_id).options(selectinload(Order.items))
    ).one_or_none()


def _replay(order: Order, digest: str) -> Placed:
    if order.request_fingerprint != digest:
        raise ApiError(
            409,
            f"draftOrderId {order.draft_order_id!r} was already placed as {order.public_id} "
            "with a different body",
            code="draft_conflict",
            fields=[{"field": "draftOrderId", "message": f"already placed as {order.public_id}"}],
        )
    return Placed(order, created=False)


def _build(request: dict, raw_body: str, digest: str) -> Order:
    incoming = request["order"]
    address = incoming.get("address")
    if address is not None:
        address = {k: v for k, v in address.items() if v is not None}
    paid = not request["paymentPending"]
    email = (incoming.get("email") or "").lower() or None
    name_parts = [(address or {}).get("firstName"), (address or {}).get("lastName")]
    return Order(
        draft_order_id=request["draftOrderId"],
        request_fingerprint=digest,
        raw_request=raw_body,
        invoice_token=secrets.token_urlsafe(24),  # 192 random bits
        status="ORDERED",
        payment_status="paid" if paid else "pending",
        paid_at=utcnow() if paid else None,  # captured elsewhere before Bik called
        fulfillment_status="unfulfilled",
        currency=(incoming.get("currency") or current_app.config["CURRENCY"]).upper(),
        sub_total=incoming["subTotal"],
        shipping_charge=incoming["shippingCharge"],
        discount=incoming["discount"],
        total=incoming["total"],
        phone_number=incoming["phoneNumber"],
        phone_digits="".join(c for c in incoming["phoneNumber"] if c.isdigit()),
        email=email,
        customer_name=" ".join(p for p in name_parts if p)[:512],
        tags=incoming.get("tags"),
        address=address,
        items=[
            OrderItem(
                position=position,
                product_id=item["productId"],
                variant_id=item["variantId"],
                name=item["name"],
                variant_name=item.get("variantName"),
                quantity=item["quantity"],
                price=item["price"],
                image=item.get("image") or None,
            )
            for position, item in enumerate(incoming["items"])
        ],
    )


# getOrder is Bik's hot path: one query with a join (not a second SELECT for the items), built
# once at import with a bound parameter instead of on every request.
_ORDER_BY_PUBLIC_ID = (
    select(Order).where(Order.public_id == bindparam("public_id")).options(joinedload(Order.items))
)


def find_order(public_id: str) -> Order | None:
    """The order Bik knows as ``public_id`` (e.g. ``ORD-1001``), items loaded."""
    return db.session.scalars(_ORDER_BY_PUBLIC_ID, {"public_id": public_id}).unique().one_or_none()


def find_by_invoice_token(token: str) -> Order | None:
    """The order behind an invoice link, or None."""
    return db.session.scalars(
        select(Order).where(Order.invoice_token == token).options(selectinload(Order.items))
    ).one_or_none()


def change_status(order: Order, to: str, *, actor: str) -> bool:
    """Move the order status (ORDERED → IN PROGRESS → DELIVERED, or CANCELLED); commits.

    Cancelling also cancels the order's open payment links, so the customer cannot pay it.
    """
    changed = transition(order, ORDER_STATUS, to, actor=actor)
    db.session.commit()
    if changed and to == "CANCELLED":
        from bikshop.services.payments import cancel_open_links  # payments builds on orders

        cancel_open_links(order, actor=actor)
    return changed


def set_fulfillment(order: Order, to: str, *, actor: str, tracking_url: str | None = None) -> bool:
    """Set fulfilment (and optionally the tracking URL Bik shares with the customer); commits."""
    changed = False
    if to != order.fulfillment_status:
        changed = transition(order, FULFILLMENT_STATUS, to, actor=actor)
    if tracking_url is not None and tracking_url != (order.tracking_url or ""):
        order.tracking_url = tracking_url or None
        order.version += 1
        record(
            order,
            "tracking_changed",
            actor,
            f"Tracking URL set to {tracking_url or 'none'}",
            {"trackingURL": tracking_url or None},
        )
        changed = True
    db.session.commit()
    return changed
