"""The dashboard's order list: search, filters, keyset pages, summary tiles and CSV rows."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import Integer, and_, cast, event, false, func, or_, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import defer, selectinload
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import String

from bikshop import addresses
from bikshop.extensions import db
from bikshop.models import Order, OrderItem, Payment
from bikshop.models.admin import AWAITING_PAYMENT, PHONE_TAIL_DIGITS, TO_SHIP, phone_tail
from bikshop.models.types import LARGEST_ID
from bikshop.services.invoices import invoice_label, invoice_number_of

PAGE_SIZE = 50
# Filter values beyond the machines' own states, for the summary tiles' links.
STATUS_GROUPS = {
    "open": ("ORDERED", "IN PROGRESS"),
    "not_cancelled": ("ORDERED", "IN PROGRESS", "DELIVERED"),
}
FULFILLMENT_GROUPS = {"unshipped": ("unfulfilled", "partial")}
PAYMENT_GROUPS = {"not_refunded": ("pending", "paid", "partially_refunded")}
_PHONE_CHARS = re.compile(r"^[+\d\s().\-/]+$")
_DIGITS = re.compile(r"^[0-9]+$")  # ASCII only: int() also reads other scripts' digits
_HASH_NUMBER = re.compile(r"^#\s*([0-9]+)$")
_NOT_ALNUM = re.compile(r"[^A-Z0-9]")
# The days a date filter may name: the shop's midnight of each, in UTC, is a datetime.
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2999, 12, 31)


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
    today_revenue: dict[str, Decimal]  # per currency, net of refunds
    pending_count: int
    pending_value: dict[str, Decimal]  # per currency
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


class lowered(FunctionElement):  # noqa: N801  (reads like the SQL function it renders)
    """SQL for a text in lower case, non-ASCII letters included, whatever the database's locale.

    SQLite's lower() folds ASCII only, and so does PostgreSQL's in a database created with the C
    locale: "ÉMILE" would stay "éMILE" there, never meeting the "émile" Python makes of a search.
    """

    type = String()
    name = "lowered"
    inherit_cache = True


@compiles(lowered, "sqlite")
def _lowered_sqlite(element, compiler, **kw):
    return f"bikshop_lower({compiler.process(element.clauses, **kw)})"


@compiles(lowered, "postgresql")
def _lowered_postgresql(element, compiler, **kw):
    # ICU's root locale lowers every script the same way, whatever the database's own ctype;
    # "und-x-icu" is there wherever PostgreSQL was built with ICU: every distribution's package,
    # and the default build since PostgreSQL 16. A server without it keeps its own lower().
    value = compiler.process(element.clauses, **kw)
    if getattr(compiler.dialect, _ICU, True):
        return f'lower(({value}) COLLATE "und-x-icu")'
    return f"lower({value})"


_ICU = "bikshop_has_icu"


def install_lowered(engine: Engine) -> None:
    """Make :class:`lowered` work on ``engine``'s connections. SQLite: each connection gets
    ``bikshop_lower``, Python's lower(), as searches use. PostgreSQL: whether the server has
    ICU's root collation is read once, at the first connection; without it (a server built
    without ICU) the server's own lower() is used rather than failing every name search."""
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _python_lower(dbapi_connection, connection_record) -> None:
            dbapi_connection.create_function(
                "bikshop_lower",
                1,
                lambda value: value.lower() if isinstance(value, str) else value,
                deterministic=True,
            )

    elif engine.dialect.name == "postgresql":

        @event.listens_for(engine, "first_connect")
        def _has_icu(dbapi_connection, connection_record) -> None:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu'")
                setattr(engine.dialect, _ICU, cursor.fetchone() is not None)
            finally:
                cursor.close()
                dbapi_connection.rollback()  # no transaction left open: the pool sets autocommit


def search_condition(text: str):
    """What a typed search means: an order name or number, a phone, an email, or a name; and,
    typed whole, a tax invoice's number (INV-00042) or Bik's draft id (``partnersData.id``)."""
    text = (text or "").strip()
    if not text:
        return None
    if "@" in text:
        return Order.email == text.lower()
    number = _order_number(text)
    if number is not None:
        # A number too long for any order names none (never the order its first digits name).
        return Order.number == number if number <= LARGEST_ID else false()
    invoice = invoice_number_of(text)
    if invoice is not None:
        return Order.invoice_number == invoice if invoice <= LARGEST_ID else false()
    # A unique column: an index look-up, beside whatever else the text may be.
    exact = [Order.draft_order_id == text]
    if _PHONE_CHARS.match(text):
        phone = phone_condition(text)
        return false() if phone is None else or_(phone, *exact)
    return or_(_name_condition(text), *exact)


def phone_condition(phone: str):
    """The orders whose phone number ends in the digits of ``phone``, read as the dashboard's
    search reads a typed number; None when ``phone`` has no digits.

    "+91 98765 43210", "9876543210", "098765 43210" and "0091…" share the same last digits.
    A number of ten digits or fewer keeps a leading 0 in its stored tail ("087 123 4567"),
    so the digits as typed are tried too: two values of the one indexed expression."""
    digits = "".join(c for c in phone if c.isdigit())
    tails = {digits[-PHONE_TAIL_DIGITS:], digits.lstrip("0")[-PHONE_TAIL_DIGITS:]} - {""}
    if not tails:
        return None
    return phone_tail(Order.phone_digits).in_(sorted(tails))


# Apostrophes as keyboards type them: a phone's ’ for the ' a laptop stored, and the other way.
_APOSTROPHES = ("'", "\u2019", "\u2018", "\u02bc")
_PLAIN_APOSTROPHE = str.maketrans(dict.fromkeys(_APOSTROPHES[1:], "'"))


def _name_condition(text: str):
    """Every word typed is somewhere in the customer's name, in any order and letter case:
    "sharma priya" and "priya  sharma" find Priya Sharma. Text is compared in Unicode's
    composed form (NFC: "é" typed as e and an accent is "é"), an apostrophe of any kind
    matches any other (O’Brien finds O'Brien), and YILMAZ finds Yılmaz, ÇİĞDEM Çiğdem."""
    # Turkish capitals: "İ".lower() is "i" and a combining dot; "I".lower() is "i", never the
    # dotless "ı" that YILMAZ stands for in Yılmaz, so an i typed also reads as ı.
    words = unicodedata.normalize("NFC", text).lower().replace("i\u0307", "i").split()
    conditions = []
    for word in words:
        plain = word.translate(_PLAIN_APOSTROPHE)
        spellings = {plain.replace("'", mark) for mark in _APOSTROPHES} if "'" in plain else {word}
        spellings |= {spelling.replace("i", "ı") for spelling in spellings if "i" in spelling}
        conditions.append(
            or_(
                *(
                    lowered(Order.customer_name).contains(spelling, autoescape=True)
                    for spelling in sorted(spellings)
                )
            )
        )
    return and_(*conditions)


def filtered_out_order(filters: OrderFilters) -> str | None:
    """The order a search names by its number (#1003, 1003, ORD-1003) when it exists but the
    other filters hide it (a Payment filter left from the last search): its public id, so the
    empty list can say so and lead to it."""
    number = _order_number((filters.q or "").strip())
    if number is None or number > LARGEST_ID:
        return None
    return db.session.scalar(select(Order.public_id).where(Order.number == number))


def _order_number(text: str) -> int | None:
    # The id's prefix however it is typed: ORD-1001, ord 1001, ORD1001, ORD_1001.
    prefix = _NOT_ALNUM.sub("", (current_app.config["ORDER_ID_PREFIX"] or "").upper())
    upper = _NOT_ALNUM.sub("", text.upper())
    if prefix and upper.startswith(prefix) and _DIGITS.match(upper[len(prefix) :]):
        return int(upper[len(prefix) :])
    match = _HASH_NUMBER.match(text)
    if match:
        return int(match.group(1))
    # A bare number shorter than a phone number, not starting like one, is an order number.
    if _DIGITS.match(text) and len(text) < 10 and not text.startswith("0"):
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
        group = PAYMENT_GROUPS.get(filters.payment, (filters.payment,))
        conditions.append(Order.payment_status.in_(group))
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
    # The same order; "+ 0" only keeps the database from walking the id's index to find it.
    key = Order.id + 0 if _long_after(filters) else Order.id
    if after is not None:
        rows = db.session.scalars(
            query.where(Order.id > after).order_by(key.asc()).limit(PAGE_SIZE + 1)
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
    rows = db.session.scalars(query.order_by(key.desc()).limit(PAGE_SIZE + 1)).all()
    orders = list(rows[:PAGE_SIZE])
    # A page from a cursor has newer orders only if one matches (a cursor typed or kept from
    # long ago may be past the newest): one look-up on the id's index.
    newer = None
    if before is not None and orders:
        newest = orders[0].id
        later = select(Order.id).where(*filter_conditions(filters), Order.id > newest).limit(1)
        newer = newest if db.session.scalar(later) is not None else None
    return OrderPage(orders, newer=newer, older=orders[-1].id if len(rows) > PAGE_SIZE else None)


def _long_after(filters: OrderFilters) -> bool:
    """True when twice as many orders were placed after the date range as in it. A page is the
    newest orders of the range, so the database walks the id's index down from the newest
    order of all and reads every later one first (soak probe: the oldest month of a million
    orders took 1.2-1.5 s); then the range is read through ix_orders_created_at and sorted
    instead. Decided on ids at the range's edges (ids follow the clock closely enough to
    choose a plan by; the rows are chosen by created_at either way): three index look-ups."""
    if not filters.date_to:
        return False
    end = _start_of(filters.date_to + timedelta(days=1))
    placed = select(Order.id).order_by(Order.created_at).limit(1)
    first_after = db.session.scalar(placed.where(Order.created_at >= end))
    if first_after is None:
        return False
    first_in = 0
    if filters.date_from:
        since = db.session.scalar(placed.where(Order.created_at >= _start_of(filters.date_from)))
        first_in = first_after if since is None else since
    newest = db.session.scalar(select(func.max(Order.id))) or 0
    # Sorting the range costs about 1.5 times walking past a row (measured at 500,000 orders).
    return newest - first_after > 2 * (first_after - first_in)


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


def _per_currency(rows) -> dict[str, Decimal]:
    """``(currency, amount)`` rows as one amount per currency, the shop's own currency first:
    rupees and dollars are never added together."""
    shop_currency = current_app.config["CURRENCY"]
    amounts = {currency: _as_money(amount) for currency, amount in rows}
    return dict(sorted(amounts.items(), key=lambda item: (item[0] != shop_currency, item[0])))


def _tile(columns: list, index: str, where: str, group_by: str = "") -> list[tuple]:
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
    grouped = f" GROUP BY {group_by}" if group_by else ""
    sql = f"SELECT {figures} FROM orders{hint} WHERE {where}{grouped}"  # noqa: S608 (our text)
    return [tuple(row) for row in db.session.execute(text(sql))]


def summary() -> Summary:
    """Today's orders and takings (less refunds), payments pending (count, value), orders to
    ship; money per currency."""
    today = local_today()
    not_cancelled = Order.status != "CANCELLED"
    today_rows = db.session.execute(
        select(Order.currency, func.count(), sum_money(Order.total - Order.amount_refunded))
        .where(Order.created_at >= _start_of(today), not_cancelled)
        .group_by(Order.currency)
    ).all()
    pending_rows = _tile(
        [Order.currency, func.count(), sum_money(Order.total)],
        "ix_orders_awaiting_payment",
        AWAITING_PAYMENT,
        group_by="currency",
    )
    [(to_ship,)] = _tile([func.count()], "ix_orders_to_ship", TO_SHIP)
    return Summary(
        today_orders=sum(count for _, count, _ in today_rows),
        today_revenue=_per_currency((currency, amount) for currency, _, amount in today_rows),
        pending_count=sum(count for _, count, _ in pending_rows),
        pending_value=_per_currency((currency, amount) for currency, _, amount in pending_rows),
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
    # What shipping and accounts need beside the figures: what to pack, where it goes, the
    # tax invoice and the payment to look up in Razorpay.
    "products",
    "address",
    "invoice_number",
    "razorpay_payment_id",
]


def csv_rows(filters: OrderFilters, *, batch: int = 1000) -> Iterator[list]:
    """Every order matching ``filters`` as CSV values, newest first, read in batches.

    Plain rows (no ORM objects) through a server-side cursor on PostgreSQL and a lazily
    stepped cursor on SQLite, so memory stays flat however many orders match. Everything is
    one statement: the products and the payment id are subqueries of each row.
    """
    items = (
        select(func.coalesce(func.sum(OrderItem.quantity), 0))
        .where(OrderItem.order_id == Order.id)
        .scalar_subquery()
    )
    paid_through = (  # the latest online payment: where a refund goes back to
        select(Payment.razorpay_payment_id)
        .where(Payment.order_id == Order.id, Payment.razorpay_payment_id.is_not(None))
        .order_by(Payment.id.desc())
        .limit(1)
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
            product_list(),
            Order.invoice_number,
            paid_through,
            Order.address,
        )
        .where(*filter_conditions(filters))
        .order_by(Order.id.desc())
        .execution_options(yield_per=batch)
    )
    # The query is built now and only run as rows are read: a filter that cannot become SQL
    # fails before the export's first byte, not halfway through a download.
    return _csv_values(query, store_zone())


def _csv_values(query, zone: ZoneInfo) -> Iterator[list]:
    shown = len(CSV_HEADER) - 3  # as the query reads them: the columns up to the products
    for row in db.session.execute(query):
        values = list(row[:shown])
        values[2] = values[2].astimezone(zone).isoformat(timespec="seconds")
        invoice_number, payment_id, address = row[shown:]
        invoice = invoice_label(invoice_number) if invoice_number is not None else None
        yield [*values, addresses.one_line(address), invoice, payment_id]


class product_list(FunctionElement):  # noqa: N801  (reads like the SQL it renders)
    """An order's items on one line, in their order: ``2 × Toner (50 ml); 1 × Cream`` (a
    variant named "Default", Bik's word for none, is left out). A subquery of the orders row,
    so the database builds it in the same pass as the rest of an export's row. Constant SQL:
    table and column names only, no value."""

    type = String()
    name = "product_list"
    inherit_cache = True


_PRODUCT_LINE = (
    "CAST(order_items.quantity AS TEXT) || ' × ' || order_items.name || CASE WHEN "
    "COALESCE(order_items.variant_name, '') IN ('', 'Default') THEN '' "
    "ELSE ' (' || order_items.variant_name || ')' END"
)


@compiles(product_list, "sqlite")
def _product_list_sqlite(element, compiler, **kw):
    # group_concat keeps the order its input arrives in (SQLite 3.44 adds ORDER BY to it).
    return (
        f"(SELECT group_concat(line, '; ') FROM (SELECT {_PRODUCT_LINE} AS line "  # noqa: S608
        "FROM order_items WHERE order_items.order_id = orders.id ORDER BY order_items.position))"
    )


@compiles(product_list, "postgresql")
def _product_list_postgresql(element, compiler, **kw):
    return (
        f"(SELECT string_agg({_PRODUCT_LINE}, '; ' ORDER BY order_items.position) "  # noqa: S608
        "FROM order_items WHERE order_items.order_id = orders.id)"
    )


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
