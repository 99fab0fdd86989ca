"""The dashboard's order list: search, filters, keyset pages, summary tiles and CSV rows."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import Integer, cast, func, select, text
from sqlalchemy.orm import defer, selectinload

from bikshop.extensions import db
from bikshop.models import Order, OrderItem
from bikshop.models.admin import AWAITING_PAYMENT, PHONE_TAIL_DIGITS, TO_SHIP, phone_tail

PAGE_SIZE = 50
# Filter values beyond the machines' own states, for the summary tiles' links.
STATUS_GROUPS = {
    "open": ("ORDERED", "IN PROGRESS"),
    "not_cancelled": ("ORDERED", "IN PROGRESS", "DELIVERED"),
}
FULFILLMENT_GROUPS = {"unshipped": ("unfulfilled", "partial")}
_PHONE_CHARS = re.compile(r"^[+\d\s().\-/]+$")
_HASH_NUMBER = re.compile(r"^#\s*(\d{1,9})$")


@dataclass
class OrderFilters:
    """What the owner asked for: a search text and filters, all optional and combinable."""

    q: str = ""
    status: str = ""
    payment: str = ""
    fulfillment: str = ""
    date_from: date | None = None
    date_to: date | None = None


@dataclass
class OrderPage:
    """One page of the list, newest first, with cursors to the newer and older pages."""

    orders: list[Order]
    newer: int | None = None  # ``after`` for the previous page
    older: int | None = None  # ``before`` for the next page


@dataclass
class Summary:
    """The tiles on top of the list."""

    today_orders: int
    today_revenue: Decimal
    pending_count: int
    pending_value: Decimal
    to_ship: int
    today: date = field(default_factory=date.today)


def store_zone() -> ZoneInfo:
    """The shop's time zone (``BIKSHOP_STORE_TIMEZONE``)."""
    return ZoneInfo(current_app.config["STORE_TIMEZONE"])


def local_today() -> date:
    """Today's date where the shop is."""
    return datetime.now(store_zone()).date()


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=store_zone()).astimezone(UTC)


def search_condition(text: str):
    """What a typed search means: an order name or number, a phone, an email, or a name."""
    text = (text or "").strip()
    if not text:
        return None
    if "@" in text:
        return Order.email == text.lower()
    number = _order_number(text)
    if number is not None:
        return Order.number == number
    if _PHONE_CHARS.match(text):
        # "+91 98765 43210", "9876543210", "098765 43210" and "0091…" share the same last digits.
        digits = "".join(c for c in text if c.isdigit()).lstrip("0")
        return phone_tail(Order.phone_digits) == digits[-PHONE_TAIL_DIGITS:]
    return func.lower(Order.customer_name).contains(text.lower(), autoescape=True)


def _order_number(text: str) -> int | None:
    prefix = (current_app.config["ORDER_ID_PREFIX"] or "").upper()
    upper = text.upper().replace(" ", "")
    if prefix and upper.startswith(prefix) and upper[len(prefix) :].isdigit():
        return int(upper[len(prefix) :][:9])
    match = _HASH_NUMBER.match(text)
    if match:
        return int(match.group(1))
    # A bare number shorter than a phone number, not starting like one, is an order number.
    if text.isdigit() and len(text) < 10 and not text.startswith("0"):
        return int(text)
    return None


def filter_conditions(filters: OrderFilters) -> list:
    """The WHERE clauses for ``filters``."""
    conditions = []
    searched = search_condition(filters.q)
    if searched is not None:
        conditions.append(searched)
    if filters.status:
        conditions.append(Order.status.in_(STATUS_GROUPS.get(filters.status, (filters.status,))))
    if filters.payment:
        conditions.append(Order.payment_status == filters.payment)
    if filters.fulfillment:
        group = FULFILLMENT_GROUPS.get(filters.fulfillment, (filters.fulfillment,))
        conditions.append(Order.fulfillment_status.in_(group))
    if filters.date_from:
        conditions.append(Order.created_at >= _start_of(filters.date_from))
    if filters.date_to:
        conditions.append(Order.created_at < _start_of(filters.date_to + timedelta(days=1)))
    return conditions


def order_page(
    filters: OrderFilters, *, before: int | None = None, after: int | None = None
) -> OrderPage:
    """A page of orders matching ``filters``, newest first, keyset-paginated on the id.

    Keyset, not OFFSET: page 20,000 costs the same as page 1.
    """
    query = (
        select(Order)
        .where(*filter_conditions(filters))
        .options(selectinload(Order.items), defer(Order.raw_request))
    )
    if after is not None:
        rows = db.session.scalars(
            query.where(Order.id > after).order_by(Order.id.asc()).limit(PAGE_SIZE + 1)
        ).all()
        more_newer = len(rows) > PAGE_SIZE
        orders = list(reversed(rows[:PAGE_SIZE]))
        return OrderPage(
            orders,
            newer=orders[0].id if more_newer and orders else None,
            older=orders[-1].id if orders else None,
        )
    if before is not None:
        query = query.where(Order.id < before)
    rows = db.session.scalars(query.order_by(Order.id.desc()).limit(PAGE_SIZE + 1)).all()
    orders = list(rows[:PAGE_SIZE])
    return OrderPage(
        orders,
        newer=orders[0].id if before is not None and orders else None,
        older=orders[-1].id if len(rows) > PAGE_SIZE else None,
    )


def sum_money(column):
    """SUM of a money column, exact on both databases (SQLite keeps Numeric as REAL, so it sums
    whole paise as integers there)."""
    if db.engine.dialect.name == "sqlite":
        return func.coalesce(func.sum(cast(func.round(column * 100), Integer)), 0)
    return func.coalesce(func.sum(column), 0)


def _as_money(value) -> Decimal:
    if db.engine.dialect.name == "sqlite":
        return (Decimal(int(value)) / 100).quantize(Decimal("0.01"))
    return Decimal(value).quantize(Decimal("0.01"))


def _tile(columns: list, index: str, where: str) -> tuple:
    """One summary tile's figures over the orders its partial index holds.

    SQLite's planner, without ANALYZE statistics, prefers a full status index to the small
    partial one (70-90 ms instead of about 1 ms at a million orders), so SQLite is told which
    index to use; PostgreSQL picks it unaided. Everything in the SQL is bikshop's own text.
    """
    dialect = db.engine.dialect
    hint = f" INDEXED BY {index}" if dialect.name == "sqlite" else ""
    figures = ", ".join(
        str(column.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        for column in columns
    )
    sql = f"SELECT {figures} FROM orders{hint} WHERE {where}"  # noqa: S608 (no client input)
    return tuple(db.session.execute(text(sql)).one())


def summary() -> Summary:
    """Today's orders and revenue, payments pending (count, value), orders to ship."""
    today = local_today()
    not_cancelled = Order.status != "CANCELLED"
    today_count, today_revenue = db.session.execute(
        select(func.count(), sum_money(Order.total)).where(
            Order.created_at >= _start_of(today), not_cancelled
        )
    ).one()
    pending_count, pending_value = _tile(
        [func.count(), sum_money(Order.total)], "ix_orders_awaiting_payment", AWAITING_PAYMENT
    )
    (to_ship,) = _tile([func.count()], "ix_orders_to_ship", TO_SHIP)
    return Summary(
        today_orders=today_count,
        today_revenue=_as_money(today_revenue),
        pending_count=pending_count,
        pending_value=_as_money(pending_value),
        to_ship=to_ship,
        today=today,
    )


CSV_HEADER = [
    "order",
    "order_id",
    "placed_at",
    "customer",
    "phone",
    "email",
    "items",
    "currency",
    "sub_total",
    "shipping",
    "discount",
    "total",
    "refunded",
    "payment_status",
    "fulfillment_status",
    "status",
    "tracking_url",
]


def csv_rows(filters: OrderFilters, *, batch: int = 1000) -> Iterator[list]:
    """Every order matching ``filters`` as CSV values, newest first, read in batches.

    Plain rows (no ORM objects) through a server-side cursor on PostgreSQL and a lazily
    stepped cursor on SQLite, so memory stays flat however many orders match.
    """
    items = (
        select(func.coalesce(func.sum(OrderItem.quantity), 0))
        .where(OrderItem.order_id == Order.id)
        .scalar_subquery()
    )
    query = (
        select(
            Order.name,
            Order.public_id,
            Order.created_at,
            Order.customer_name,
            Order.phone_number,
            Order.email,
            items,
            Order.currency,
            Order.sub_total,
            Order.shipping_charge,
            Order.discount,
            Order.total,
            Order.amount_refunded,
            Order.payment_status,
            Order.fulfillment_status,
            Order.status,
            Order.tracking_url,
        )
        .where(*filter_conditions(filters))
        .order_by(Order.id.desc())
        .execution_options(yield_per=batch)
    )
    zone = store_zone()
    for row in db.session.execute(query):
        values = list(row)
        values[2] = values[2].astimezone(zone).isoformat(timespec="seconds")
        yield values


@dataclass
class OrderDetails:
    """Everything the order page shows beside the order itself."""

    payment_links: list
    payments: list
    refunds: list
    webhooks: list
    events: list


def order_details(order: Order) -> OrderDetails:
    """The order's payment links, payments, refunds, webhooks and timeline (newest first)."""
    from bikshop.models import OrderEvent, Payment, PaymentLink, Refund, WebhookEvent

    def newest(model, stamp):
        return list(
            db.session.scalars(
                select(model).where(model.order_id == order.id).order_by(stamp.desc(), model.id)
            )
        )

    return OrderDetails(
        payment_links=newest(PaymentLink, PaymentLink.created_at),
        payments=newest(Payment, Payment.created_at),
        refunds=newest(Refund, Refund.created_at),
        webhooks=newest(WebhookEvent, WebhookEvent.received_at),
        events=list(
            db.session.scalars(
                select(OrderEvent)
                .where(OrderEvent.order_id == order.id)
                .order_by(OrderEvent.id.desc())
            )
        ),
    )


def next_statuses(machine, current: str) -> list[str]:
    """The states ``machine`` allows from ``current``, in the machine's order."""
    return [state for state, sources in machine.edges.items() if current in sources]
