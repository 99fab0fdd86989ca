"""Razorpay payment links, the payments and refunds they produced, and every webhook received."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bikshop.extensions import db
from bikshop.models.types import Money, UTCDateTime, utcnow


class PaymentLink(db.Model):
    """One payment link made for an order (one per attempt; an unexpired one is reused)."""

    __tablename__ = "payment_links"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    reference_id: Mapped[str] = mapped_column(String(40), unique=True)
    razorpay_id: Mapped[str | None] = mapped_column(String(64), unique=True)  # plink_…
    # The order_… Razorpay makes behind the link: how a payment.failed event finds its link.
    razorpay_order_id: Mapped[str | None] = mapped_column(String(64), index=True)
    short_url: Mapped[str | None] = mapped_column(String(2048))
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    amount_paid: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    # created | partially_paid | paid | expired | cancelled
    status: Mapped[str] = mapped_column(String(24), default="created")
    expire_by: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    raw: Mapped[dict | None] = mapped_column(JSON)

    order = relationship("Order")


class Payment(db.Model):
    """Money Razorpay captured for an order."""

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    payment_link_id: Mapped[int | None] = mapped_column(ForeignKey("payment_links.id"))
    razorpay_payment_id: Mapped[str | None] = mapped_column(String(64), unique=True)  # pay_…
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    method: Mapped[str | None] = mapped_column(String(32))  # upi, card, …, or "cash"
    status: Mapped[str] = mapped_column(String(24), default="captured")
    amount_refunded: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    raw: Mapped[dict | None] = mapped_column(JSON)

    order = relationship("Order")


class Refund(db.Model):
    """A refund asked of Razorpay, confirmed by its webhook."""

    __tablename__ = "refunds"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)
    razorpay_refund_id: Mapped[str | None] = mapped_column(String(64), unique=True)  # rfnd_…
    amount: Mapped[Decimal] = mapped_column(Money)
    status: Mapped[str] = mapped_column(String(24), default="pending")  # pending|processed|failed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    raw: Mapped[dict | None] = mapped_column(JSON)


class WebhookEvent(db.Model):
    """Every webhook delivery received, kept with its raw body and what came of it."""

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_received_at", "received_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Unique: the dedupe key, inserted in the same transaction as the state change. Only the
    # delivery that claimed it holds it; duplicates and forgeries keep theirs in received_event_id,
    # so a forged header can never block the genuine event.
    event_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    received_event_id: Mapped[str | None] = mapped_column(String(64))
    event: Mapped[str | None] = mapped_column(String(64))
    signature_valid: Mapped[bool] = mapped_column(Boolean)
    outcome: Mapped[str] = mapped_column(String(255))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))
    raw_body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
