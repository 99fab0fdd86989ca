"""Orders, their items, their timeline, and the database-backed counters that number them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bikshop.extensions import db
from bikshop.models.types import Money, UTCDateTime, utcnow

ORDER_STATUSES = ("ORDERED", "IN PROGRESS", "DELIVERED", "CANCELLED")
PAYMENT_STATUSES = ("pending", "paid", "partially_refunded", "refunded")
# paymentStatus as Bik reads it: the stored ones, and Shopify's "voided" for a cancelled order
# nobody paid (:attr:`BikOrderFields.bik_payment_status`).
BIK_PAYMENT_STATUSES = (*PAYMENT_STATUSES, "voided")
PAID_STATUSES = PAYMENT_STATUSES[1:]  # the customer paid (some of it may have gone back)
FULFILLMENT_STATUSES = ("unfulfilled", "partial", "fulfilled")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Counter(db.Model):
    """A named, monotonically increasing number (order numbers, invoice numbers)."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, nullable=False)


# The tag ``check-bik`` gives the real order it places on the server it checks.
CONTRACT_CHECK_TAG = "bikshop_contract_check"


class BikOrderFields:
    """What Bik's answer derives from an order's columns; shared by :class:`Order` and the
    plain snapshots the Bik endpoints answer from (``bikshop.services.orders.OrderSnapshot``).
    Needs ``tracking_url``, ``draft_order_id`` and ``invoice_token``."""

    @property
    def bik_payment_status(self) -> str:
        """``paymentStatus`` as Bik reads it. A cancelled order nobody paid is ``voided``, as
        Shopify (whose spellings Bik knows) calls it, not ``pending``: Bik tells a customer
        whose payment is pending to pay, and this payment can never be made. The stored status
        stays ``pending`` (the machine has no such state), and a payment that arrives anyway
        is flagged for a refund as before."""
        if self.status == "CANCELLED" and self.payment_status == "pending":
            return "voided"
        return self.payment_status

    @property
    def delivery_info(self) -> dict:
        return {"trackingURL": self.tracking_url}

    @property
    def partners_data(self) -> dict:
        return {"id": self.draft_order_id}

    @property
    def invoice_url(self) -> str:
        from bikshop.links import invoice_url

        return invoice_url(self)


class Order(BikOrderFields, db.Model):
    """An order Bik placed: money, customer, delivery address and the three state machines."""

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(_in("status", ORDER_STATUSES), name="status"),
        CheckConstraint(_in("payment_status", PAYMENT_STATUSES), name="payment_status"),
        CheckConstraint(_in("fulfillment_status", FULFILLMENT_STATUSES), name="fulfillment_status"),
        CheckConstraint(
            "sub_total >= 0 AND shipping_charge >= 0 AND discount >= 0 AND total >= 0"
            " AND amount_refunded >= 0",
            name="money_not_negative",
        ),
        Index("ix_orders_created_at", "created_at"),
        Index("ix_orders_email", "email"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # "ORD-1001", Bik's orderId
    name: Mapped[str] = mapped_column(String(40))  # "#1001"
    draft_order_id: Mapped[str] = mapped_column(String(128), unique=True)
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    raw_request: Mapped[str] = mapped_column(Text)
    invoice_token: Mapped[str] = mapped_column(String(64), unique=True)
    invoice_number: Mapped[int | None] = mapped_column(Integer, unique=True)

    status: Mapped[str] = mapped_column(String(16), default="ORDERED")
    payment_status: Mapped[str] = mapped_column(String(24), default="pending")
    fulfillment_status: Mapped[str] = mapped_column(String(16), default="unfulfilled")
    tracking_url: Mapped[str | None] = mapped_column(String(2048))

    currency: Mapped[str] = mapped_column(String(3))
    sub_total: Mapped[Decimal] = mapped_column(Money)
    shipping_charge: Mapped[Decimal] = mapped_column(Money)
    discount: Mapped[Decimal] = mapped_column(Money)
    total: Mapped[Decimal] = mapped_column(Money)
    amount_refunded: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))

    phone_number: Mapped[str] = mapped_column(String(32))
    phone_digits: Mapped[str] = mapped_column(String(32))  # digits only; ix_orders_phone_tail
    email: Mapped[str | None] = mapped_column(String(320))
    customer_name: Mapped[str] = mapped_column(String(512), default="")
    tags: Mapped[str | None] = mapped_column(String(1024))
    address: Mapped[dict | None] = mapped_column(JSON)  # BikAddress as received, or None

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Bumped by every change; the invoice ETag and the PDF cache key on it.
    version: Mapped[int] = mapped_column(Integer, default=1)

    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order", order_by="OrderItem.position", cascade="all, delete-orphan"
    )
    events: Mapped[list[OrderEvent]] = relationship(
        back_populates="order", order_by="OrderEvent.id", cascade="all, delete-orphan"
    )

    @property
    def placed_by_check_bik(self) -> bool:
        """``check-bik``'s own test order (it tags it so), which the dashboard marks."""
        return CONTRACT_CHECK_TAG in (tag.strip() for tag in (self.tags or "").split(","))

    def __repr__(self) -> str:
        return f"<Order {self.public_id}>"


class OrderItem(db.Model):
    """One line of an order, priced by Bik."""

    __tablename__ = "order_items"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("price >= 0", name="price_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    # Catalog ids are kept as text: Shopify-style ids can exceed 2**53.
    product_id: Mapped[str] = mapped_column(String(64))
    variant_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(1024))
    variant_name: Mapped[str | None] = mapped_column(String(1024))
    quantity: Mapped[int] = mapped_column(Integer)
    price: Mapped[Decimal] = mapped_column(Money)
    image: Mapped[str | None] = mapped_column(String(2048))
    hsn_code: Mapped[str | None] = mapped_column(String(16))

    order: Mapped[Order] = relationship(back_populates="items")

    @property
    def line_total(self) -> Decimal:
        return self.price * self.quantity


class OrderEvent(db.Model):
    """One entry of an order's timeline: what happened, when, and who or what caused it."""

    __tablename__ = "order_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    kind: Mapped[str] = mapped_column(String(48))  # placed, status_changed, payment_link_created…
    actor: Mapped[str] = mapped_column(String(320))  # "bik", "razorpay", "admin:a@b.c", "cli"
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict | None] = mapped_column(JSON)

    order: Mapped[Order] = relationship(back_populates="events")
