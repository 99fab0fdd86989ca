"""The shop owner's dashboard accounts, failed sign-ins, and the indexes the dashboard's order
search needs on the orders table."""

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Boolean, ForeignKey, Index, String, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import String as StringType

from bikshop.extensions import db
from bikshop.models.orders import Order
from bikshop.models.payments import WebhookEvent
from bikshop.models.types import UTCDateTime, utcnow

# The national part of a phone number: its last ten digits (a whole Indian mobile number), so
# "+91 98765 43210", "9876543210" and "098765 43210" all meet on one indexed value.
PHONE_TAIL_DIGITS = 10


class AdminUser(UserMixin, db.Model):
    """A dashboard login; the password is stored only as a slow hash."""

    __tablename__ = "admin_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    # The key of the browser session this admin was loaded for (not a column): what Flask-Login
    # keeps in the session cookie. Set by bikshop.services.admins on sign-in and on each load.
    session_key = None
    # That session's remembered order list (AdminSession.list_query), loaded with it.
    list_query = ""

    @property
    def is_active(self) -> bool:
        return self.active

    def get_id(self) -> str | None:
        return self.session_key


class AdminSession(db.Model):
    """One signed-in browser. Its cookie carries ``<admin id>.<random key>``, the database only
    the key's SHA-256: signing out, disabling the account or a new password deletes the row,
    which ends that session on the server (a copied cookie is worth nothing after)."""

    __tablename__ = "admin_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    admin_id: Mapped[int] = mapped_column(
        ForeignKey("admin_users.id", ondelete="CASCADE"), index=True
    )
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The order list as this browser last left it (its query string: search, filters, page),
    # for the order page's way back. Here, not in the session cookie, which is signed but
    # readable: the search is often a customer's phone, email or name.
    list_query: Mapped[str] = mapped_column(String(1000), default="", server_default="")


class LoginFailure(db.Model):
    """One failed sign-in, counted per account and per address to throttle guessing.

    Kept in the database so every gunicorn worker sees the same count.
    """

    __tablename__ = "admin_login_failures"
    __table_args__ = (
        Index("ix_admin_login_failures_email_created_at", "email", "created_at"),
        Index("ix_admin_login_failures_address_created_at", "address", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    address: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class phone_tail(FunctionElement):  # noqa: N801  (reads like the SQL function it renders)
    """SQL for the last PHONE_TAIL_DIGITS characters of a digits column, on either database."""

    type = StringType()
    name = "phone_tail"
    inherit_cache = True


@compiles(phone_tail, "sqlite")
def _phone_tail_sqlite(element, compiler, **kw):
    return f"substr({compiler.process(element.clauses, **kw)}, -{PHONE_TAIL_DIGITS})"


@compiles(phone_tail, "postgresql")
def _phone_tail_postgresql(element, compiler, **kw):
    return f"right({compiler.process(element.clauses, **kw)}, {PHONE_TAIL_DIGITS})"


# The summary tiles' sets, as literal SQL: the same text is the partial index's WHERE and the
# tile query's, so both databases' planners see that the small index answers the tile (a bound
# parameter would hide that from SQLite's planner).
AWAITING_PAYMENT = "payment_status = 'pending' AND status <> 'CANCELLED'"
# Open, not (all) sent, and not refunded in full: the customer has its money back, so the
# goods are not to go (a partial refund may be for one item of several: those still ship).
TO_SHIP = (
    "status IN ('ORDERED', 'IN PROGRESS') AND fulfillment_status IN ('unfulfilled', 'partial') "
    "AND payment_status <> 'refunded'"
)

# The dashboard's order list: newest first within a filter, and phone search by national number.
_orders = Order.__table__
Index("ix_orders_status_id", _orders.c.status, _orders.c.id)
Index("ix_orders_payment_status_id", _orders.c.payment_status, _orders.c.id)
Index("ix_orders_fulfillment_status_id", _orders.c.fulfillment_status, _orders.c.id)
Index("ix_orders_phone_tail", phone_tail(_orders.c.phone_digits))
# Partial: only the orders awaiting payment or shipping, a small set however old the shop is.
Index(
    "ix_orders_awaiting_payment",
    _orders.c.total,
    sqlite_where=text(AWAITING_PAYMENT),
    postgresql_where=text(AWAITING_PAYMENT),
)
Index("ix_orders_to_ship", _orders.c.id, sqlite_where=text(TO_SHIP), postgresql_where=text(TO_SHIP))
# The order page lists the order's webhooks; there is one or more per payment.
Index("ix_webhook_events_order_id", WebhookEvent.__table__.c.order_id)
