"""Orders: place (idempotently), find, and change status, fulfilment and tracking."""

from __future__ import annotations

import hashlib
import json
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from flask import current_app
from sqlalchemy import Integer, String, bindparam, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from bikshop.database import (
    ORDERS_PER_CHECKPOINT,
    DirectStatement,
    autocommit_connection,
    checkpoint_after_response,
    read_connection,
    sqlite_writer,
)
from bikshop.errors import ApiError
from bikshop.extensions import db
from bikshop.metrics import count_committed
from bikshop.models import Order, OrderEvent, OrderItem
from bikshop.models.orders import BikOrderFields
from bikshop.models.types import utcnow
from bikshop.services.states import (
    FULFILLMENT_STATUS,
    ORDER_STATUS,
    event_columns,
    lock_order,
    record,
    refuse_if_cancelled,
    state_words,
    transition,
    update_order,
)

# One statement, atomic on PostgreSQL (row lock) and SQLite (write lock): never MAX()+1.
# A raised BIKSHOP_ORDER_NUMBER_START takes effect on the next order.
_NEXT_NUMBER = text(
    "INSERT INTO counters (name, value) VALUES (:name, :start) "
    "ON CONFLICT (name) DO UPDATE SET value = CASE WHEN counters.value + 1 < :start "
    "THEN :start ELSE counters.value + 1 END "
    "RETURNING value"
)


class OrderSnapshot(BikOrderFields):
    """An order's columns (``raw_request`` aside) and its items as plain values: what the Bik
    endpoints answer from. Reading and writing them with SQLAlchemy Core instead of ORM objects
    halves the cost of Bik's two calls (bench/bik_endpoints.py); everything else uses
    :class:`~bikshop.models.Order`."""

    def __init__(self, columns: dict, items: list[dict]):
        self.__dict__.update(columns)
        self.items = items


@dataclass
class Placed:
    """The outcome of placeOrder: the order, and whether this call created it."""

    order: OrderSnapshot
    created: bool


def next_number(name: str, start: int, connection: Connection | None = None) -> int:
    """The next value of counter ``name`` (``start`` the first time), in the open transaction
    (the session's, or ``connection``'s)."""
    run = connection or db.session
    return run.execute(_NEXT_NUMBER, {"name": name, "start": start}).scalar_one()


# What a retry must repeat to be the same order: every stored value that comes from Bik's body,
# with Bik's name for it (a 409 names what differs). The items' order is the fingerprint's.
_FINGERPRINTED_NAMES = {
    "draft_order_id": "draftOrderId", "payment_status": "paymentPending",
    "currency": "order.currency", "sub_total": "order.subTotal",
    "shipping_charge": "order.shippingCharge", "discount": "order.discount",
    "total": "order.total", "phone_number": "order.phoneNumber", "email": "order.email",
    "tags": "order.tags", "address": "order.address",
}  # fmt: skip
_FINGERPRINTED_ITEM_NAMES = {
    "product_id": "productId", "variant_id": "variantId", "name": "name",
    "variant_name": "variantName", "quantity": "quantity", "price": "price", "image": "image",
}  # fmt: skip
_FINGERPRINTED = tuple(_FINGERPRINTED_NAMES)
_FINGERPRINTED_ITEM = tuple(_FINGERPRINTED_ITEM_NAMES)


def canonical_order(columns: dict, items: list[dict], *, blank_address_lines: bool = False) -> str:
    """The text :func:`fingerprint` hashes: the order as it is stored, so that what changes
    nothing stored (``"INR"`` or ``""``, an email's case, ``2`` or ``2.0``, key order, unknown
    fields) changes nothing in it. An address line sent as ``""`` counts as one left out (a
    form's empty field, or none), as ``variantName`` does; ``blank_address_lines`` keeps them,
    as the rule of 2026-12-02 did."""
    picked = _fingerprinted(columns, items, blank_address_lines=blank_address_lines)
    return json.dumps(picked, sort_keys=True, separators=(",", ":"), default=str)


def _fingerprinted(columns: dict, items: list[dict], *, blank_address_lines: bool = False) -> dict:
    """What :func:`canonical_order` writes out, as values."""
    picked = {key: columns[key] for key in _FINGERPRINTED}
    address = picked["address"]
    if address and not blank_address_lines:
        picked["address"] = {key: value for key, value in address.items() if value != ""}
    picked["items"] = [[item[key] for key in _FINGERPRINTED_ITEM] for item in items]
    return picked


def _differences(
    stored: OrderSnapshot, columns: dict, items: list[dict]
) -> list[tuple[str, object, object]]:
    """Where a new body differs from the order ``stored`` as it was placed: (Bik's name for
    the field, the value placed, the value sent now); none when the difference is in what an
    earlier rule recorded. Its payment status may have moved since (a payment), so the status
    it was placed with is the one its fingerprint was taken with; for an order fingerprinted
    by an earlier rule, ``paymentPending`` is named only while the order is still pending
    (placed so)."""
    was = _fingerprinted(stored.__dict__, stored.items)
    placed_as = _placed_payment_status(stored)
    now = _fingerprinted(columns, items)
    found = [
        (name, was[key], now[key])
        for key, name in _FINGERPRINTED_NAMES.items()
        if key not in ("address", "payment_status") and was[key] != now[key]
    ]
    old_address, new_address = was["address"] or {}, now["address"] or {}
    if (was["address"] is None) != (now["address"] is None):
        found.append(
            (_FINGERPRINTED_NAMES["address"], _address(was["address"]), _address(now["address"]))
        )
    else:
        keys = sorted(set(old_address) | set(new_address))
        found += [
            (f"order.address.{k}", old_address.get(k), new_address.get(k))
            for k in keys
            if old_address.get(k) != new_address.get(k)
        ]
    if len(was["items"]) != len(now["items"]):
        found.append(
            ("order.items", _item_count(len(was["items"])), _item_count(len(now["items"])))
        )
    else:
        for index, (old, new) in enumerate(zip(was["items"], now["items"], strict=True)):
            found += [
                (f"order.items[{index}].{name}", a, b)
                for name, a, b in zip(_FINGERPRINTED_ITEM_NAMES.values(), old, new, strict=True)
                if a != b
            ]
    if placed_as is None:
        placed_as = "pending" if was["payment_status"] == "pending" else now["payment_status"]
    if placed_as != now["payment_status"]:
        found.insert(
            0, ("paymentPending", placed_as == "pending", now["payment_status"] == "pending")
        )
    return found


class _InWords(str):
    """What a 409 shows in words rather than as a value: ``2 items``, ``no address``."""


def _item_count(count: int) -> _InWords:
    return _InWords(f"{count} item{'' if count == 1 else 's'}")


def _address(address: dict | None) -> _InWords:
    return _InWords("no address" if address is None else "an address")


_SHOWN_LENGTH = 60


def _shown(value) -> str:
    """A value as a 409 quotes it, in Bik's JSON terms: ``"Bengaluru"``, ``998``, ``true``,
    ``null``; a long text cut to 60 characters."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")  # as Bik sends it: 49.5, 947
    if isinstance(value, _InWords):
        return str(value)
    if isinstance(value, str) and len(value) > _SHOWN_LENGTH:
        value = value[: _SHOWN_LENGTH - 1] + "…"  # cut before quoting: no escape cut in two
    return json.dumps(value, ensure_ascii=False, default=str)


def _placed_payment_status(stored: OrderSnapshot) -> str | None:
    """The payment status ``stored`` was placed with (``pending`` or ``paid``), read back from
    its fingerprint; None for an order fingerprinted by an earlier rule."""
    for status in ("pending", "paid"):
        columns = stored.__dict__ | {"payment_status": status}
        if fingerprint(columns, stored.items) == stored.request_fingerprint:
            return status
    return None


def fingerprint(columns: dict, items: list[dict], **rule) -> str:
    """A stable hash of a new order's stored values, to tell a retry from a different order."""
    return hashlib.sha256(canonical_order(columns, items, **rule).encode()).hexdigest()


def _fingerprint_before_2026_12(request: dict) -> str:
    """How orders placed before 2026-12-03 were fingerprinted: the validated body as it came.
    A retry of one of them is checked against this as well."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _earlier_fingerprints(request: dict, columns: dict, items: list[dict]) -> set[str]:
    """What an order placed under an earlier rule holds for this same body: a retry that
    straddles an upgrade is still the same order."""
    earlier = {
        _fingerprint_before_2026_12(request),
        fingerprint(columns, items, blank_address_lines=True),
    }
    if request["paymentPending"] and columns["payment_status"] == "paid":
        # A ₹0 order placed before 2026-12-07 was stored pending.
        earlier.add(fingerprint(columns | {"payment_status": "pending"}, items))
    return earlier


def place_order(request: dict, raw_body: str, *, actor: str = "bik") -> Placed:
    """Persist a fully priced order from Bik; the same draft again returns the same order.

    Idempotency rests on the unique ``draft_order_id``: every request tries to insert (no
    look-up first: retries are rare, new orders are not), one wins, and a repeat's insert fails
    and it returns the winner's order, or a 409 if its body differs.

    Every value is prepared before the first write, so the transaction, which holds the order
    counter (and on SQLite the whole database) until it commits, is as short as it can be.
    """
    # The app's settings and engine, looked up once (each lookup goes through Flask's proxies).
    config, engine = current_app._get_current_object().config, db.engine
    draft_id = request["draftOrderId"]
    columns, items = _columns(request, raw_body, config["CURRENCY"])
    columns["request_fingerprint"] = digest = fingerprint(columns, items)
    event = placed_event(actor, draft_id, request["paymentPending"])
    write = _INSERT_ORDER_BY_DIALECT.get(engine.dialect.name, _insert_order_stepwise)
    try:
        columns["id"], number = write(engine, config, columns, items, event)
    except IntegrityError:
        existing = _snapshot(_ORDERS.c.draft_order_id, draft_id)
        if existing is None:
            raise
        return _replay(
            existing,
            digest,
            lambda: _earlier_fingerprints(request, columns, items),
            lambda: _differences(existing, columns, items),
        )
    count_committed("order")
    if number % ORDERS_PER_CHECKPOINT == 0:
        checkpoint_after_response(engine)
    columns |= _numbered(number, config["ORDER_ID_PREFIX"])
    return Placed(OrderSnapshot(columns, items), created=True)


def _numbered(number: int, prefix: str) -> dict:
    """The columns that follow from an order's number and the id prefix: ``ORD-1001`` and
    ``#1001``."""
    return {"number": number, "public_id": f"{prefix}{number}", "name": f"{NAME_PREFIX}{number}"}


NAME_PREFIX = "#"
_ORDERS, _ITEMS, _EVENTS = Order.__table__, OrderItem.__table__, OrderEvent.__table__


def _inserting(table) -> DirectStatement:
    """``INSERT INTO table`` every column but its id, run straight on the driver."""
    return DirectStatement(table.insert(), keys=[c.key for c in table.c if c.key != "id"])


# No RETURNING for the order's id: the cursor's lastrowid is SQLite's own.
_NEXT_ORDER_NUMBER = DirectStatement(_NEXT_NUMBER.columns(value=Integer))
_INSERT_ORDER = _inserting(_ORDERS)
_INSERT_ITEMS = _inserting(_ITEMS)
_INSERT_EVENT = _inserting(_EVENTS)


def _insert_order_stepwise(
    engine, config, columns: dict, items: list[dict], event: dict
) -> tuple[int, int]:
    """Number and insert the order, its items and its first event in one transaction, one
    statement each; returns (id, number). For SQLite, where a statement costs no round trip
    and SQLAlchemy's own work per statement is most of a statement's cost (DirectStatement)."""
    start = config["ORDER_NUMBER_START"]
    # Pool checkout and return outside the writer lock; the transaction, from its first
    # statement to its commit, inside (pysqlite sends BEGIN with the first write).
    with engine.connect() as connection, sqlite_writer(engine, connection), connection.begin():
        ((number,),) = _NEXT_ORDER_NUMBER.write_returning(
            connection, {"name": "order", "start": start}
        )
        order_id = _INSERT_ORDER.write(
            connection, columns | _numbered(number, config["ORDER_ID_PREFIX"])
        )
        _INSERT_ITEMS.write_many(connection, [item | {"order_id": order_id} for item in items])
        _INSERT_EVENT.write(connection, event | {"order_id": order_id})
    return order_id, number


def _insert_order_postgresql(
    engine, config, columns: dict, items: list[dict], event: dict
) -> tuple[int, int]:
    """The same rows as :func:`_insert_order_stepwise` in one statement, run in autocommit: one
    round trip, and the order counter is locked only while that statement commits."""
    params = (
        columns
        | {f"event_{name}": value for name, value in event.items()}
        | {
            "counter_start": config["ORDER_NUMBER_START"],
            "id_prefix": config["ORDER_ID_PREFIX"],
            "name_prefix": NAME_PREFIX,
            "items": json.dumps(items, default=str),
        }
    )
    with autocommit_connection() as connection:
        (row,) = _PG_INSERT_ORDER.rows(connection, params)
    return row


def _pg_insert_order_statement():
    """``WITH number AS (counter), new_order AS (INSERT orders) , items, event SELECT id,
    number``: PostgreSQL runs data-modifying CTEs as one atomic statement. Column lists and
    types come from the tables, so a new column cannot be missed here."""
    dialect = postgresql.dialect()
    numbered = {"id", "number", "public_id", "name"}
    order_columns = [c for c in _ORDERS.c if c.name not in numbered]
    item_columns = [c for c in _ITEMS.c if c.name not in ("id", "order_id")]
    timeline_columns = [c for c in _EVENTS.c if c.name not in ("id", "order_id")]

    def sql_type(column) -> str:
        # Strings as TEXT: an explicit CAST to VARCHAR(n) would silently cut a long value; the
        # column itself refuses one (validation has already refused it).
        if isinstance(column.type, String):
            return "TEXT"
        return column.type.compile(dialect=dialect)

    def cast(name: str, column) -> str:
        return f"CAST(:{name} AS {sql_type(column)})"

    counter = _NEXT_NUMBER.text.replace(":name", "'order'").replace(":start", ":counter_start")
    # Names and types come from the table definitions; every value is bound.
    sql = f"""
WITH number AS ({counter}),
new_order AS (
  INSERT INTO orders ({", ".join(c.name for c in order_columns)}, number, public_id, name)
  SELECT {", ".join(cast(c.name, c) for c in order_columns)}, number.value,
         CAST(:id_prefix AS TEXT) || number.value, CAST(:name_prefix AS TEXT) || number.value
  FROM number
  RETURNING id, number
),
new_items AS (
  INSERT INTO order_items (order_id, {", ".join(c.name for c in item_columns)})
  SELECT new_order.id, {", ".join(f"item.{c.name}" for c in item_columns)}
  FROM new_order, jsonb_to_recordset(CAST(:items AS JSONB)) AS item(
    {", ".join(f"{c.name} {sql_type(c)}" for c in item_columns)})
),
new_event AS (
  INSERT INTO order_events (order_id, {", ".join(c.name for c in timeline_columns)})
  SELECT new_order.id, {", ".join(cast("event_" + c.name, c) for c in timeline_columns)}
  FROM new_order
)
SELECT id, number FROM new_order
"""  # noqa: S608
    typed = [bindparam(c.name, type_=c.type) for c in order_columns]
    typed += [bindparam("event_" + c.name, type_=c.type) for c in timeline_columns]
    return text(sql).bindparams(*typed).columns(id=Integer, number=Integer)


_PG_INSERT_ORDER = DirectStatement(_pg_insert_order_statement())
_INSERT_ORDER_BY_DIALECT = {"postgresql": _insert_order_postgresql}


def placed_event(actor: str, draft_id: str, payment_pending: bool) -> dict:
    """The timeline entry placeOrder writes with the order (column values)."""
    return event_columns(
        "placed",
        actor,
        f"Order placed through Bik (draft {draft_id})",
        {"paymentPending": payment_pending},
    )


def _replay(
    order: OrderSnapshot,
    digest: str,
    earlier: Callable[[], set[str]],
    differences: Callable[[], list[str]],
) -> Placed:
    stored = order.request_fingerprint
    if stored != digest and stored not in earlier():
        found = differences()
        named = [name for name, _, _ in found]
        which = f" ({', '.join(named)} {'differs' if len(named) == 1 else 'differ'})"
        raise ApiError(
            409,
            f"draftOrderId {order.draft_order_id!r} was already placed as {order.public_id} "
            f"with a different body{which if named else ''}",
            code="draft_conflict",
            fields=[{"field": "draftOrderId", "message": f"already placed as {order.public_id}"}]
            + [
                {
                    "field": name,
                    "message": f"differs from {order.public_id} as placed: "
                    f"{_shown(was)} then, {_shown(now)} now",
                }
                for name, was, now in found
            ],
        )
    return Placed(order, created=False)


def _columns(request: dict, raw_body: str, currency: str) -> tuple[dict, list[dict]]:
    """The new order's column values (all but its number and fingerprint) and its items' (all
    but order_id); ``currency`` where Bik sent none."""
    incoming = request["order"]
    address = incoming.get("address")
    if address is not None:
        address = {k: v for k, v in address.items() if v is not None}
    # A ₹0 order (a free sample, a discount as large as the basket) owes nothing: paid at once,
    # or Bik would tell the customer a payment is pending that nobody can make.
    paid = not request["paymentPending"] or incoming["total"] == 0
    email = (incoming.get("email") or "").lower() or None
    name_parts = [(address or {}).get("firstName"), (address or {}).get("lastName")]
    now = utcnow()
    columns = {
        "draft_order_id": request["draftOrderId"],
        "raw_request": raw_body,
        "invoice_token": secrets.token_urlsafe(24),  # 192 random bits
        "invoice_number": None,
        "status": "ORDERED",
        "payment_status": "paid" if paid else "pending",
        "fulfillment_status": "unfulfilled",
        "tracking_url": None,
        "currency": (incoming.get("currency") or currency).upper(),
        "sub_total": incoming["subTotal"],
        "shipping_charge": incoming["shippingCharge"],
        "discount": incoming["discount"],
        "total": incoming["total"],
        "amount_refunded": Decimal("0.00"),
        "phone_number": incoming["phoneNumber"],
        "phone_digits": "".join(c for c in incoming["phoneNumber"] if c.isdigit()),
        "email": email,
        # Composed (NFC), as searches are: "é" sent as e and an accent is "é".
        "customer_name": unicodedata.normalize("NFC", " ".join(p for p in name_parts if p))[:512],
        "tags": incoming.get("tags"),
        "address": address,
        "created_at": now,
        "updated_at": now,
        "paid_at": now if paid else None,  # captured elsewhere before Bik called
        "version": 1,
    }
    items = [
        {
            "position": position,
            "product_id": item["productId"],
            "variant_id": item["variantId"],
            "name": item["name"],
            "variant_name": item.get("variantName") or None,  # answered "" either way
            "quantity": item["quantity"],
            "price": item["price"],
            "image": item.get("image") or None,
            "hsn_code": None,
        }
        for position, item in enumerate(incoming["items"])
    ]
    return columns, items


# Bik's reads: one statement, the order joined to its items, built once at import with a bound
# parameter. Columns no answer reads are left out (raw_request alone can be 1 MiB, and on SQLite
# every timestamp is parsed from text); tests/test_bik_dump.py fails if one an answer needs is.
_UNANSWERED = {
    "raw_request", "phone_digits", "customer_name", "invoice_number", "amount_refunded",
    "updated_at", "paid_at", "version",
}  # fmt: skip
_ITEM_PREFIX = "item_"
_SNAPSHOT_COLUMNS = [c for c in _ORDERS.c if c.name not in _UNANSWERED]
_SNAPSHOT_ITEM_COLUMNS = [
    c.label(_ITEM_PREFIX + c.name) for c in _ITEMS.c if c.name not in ("order_id", "hsn_code")
]


def _snapshot_query(column):
    return (
        select(*_SNAPSHOT_COLUMNS, *_SNAPSHOT_ITEM_COLUMNS)
        .select_from(_ORDERS.outerjoin(_ITEMS, _ITEMS.c.order_id == _ORDERS.c.id))
        .where(column == bindparam("key"))
        .order_by(_ITEMS.c.position)
    )


_SNAPSHOT_BY = {
    column: DirectStatement(_snapshot_query(column))
    for column in (_ORDERS.c.public_id, _ORDERS.c.draft_order_id)
}
_ORDER_KEYS = [c.name for c in _SNAPSHOT_COLUMNS]
_ITEM_KEYS = [c.name.removeprefix(_ITEM_PREFIX) for c in _SNAPSHOT_ITEM_COLUMNS]
_FIRST_ITEM_COLUMN = len(_ORDER_KEYS)


def _snapshot(column, key: str) -> OrderSnapshot | None:
    with read_connection() as connection:
        rows = _SNAPSHOT_BY[column].rows(connection, {"key": key})
    if not rows:
        return None
    items = [dict(zip(_ITEM_KEYS, row[_FIRST_ITEM_COLUMN:], strict=True)) for row in rows]
    if items[0]["id"] is None:  # the outer join found no item (never stored, but be exact)
        items = []
    order = dict(zip(_ORDER_KEYS, rows[0][:_FIRST_ITEM_COLUMN], strict=True))
    return OrderSnapshot(order, items)


def order_snapshot(public_id: str) -> OrderSnapshot | None:
    """The order Bik knows as ``public_id`` (e.g. ``ORD-1001``) with its items, as Bik reads it."""
    return _snapshot(_ORDERS.c.public_id, public_id)


def find_order(public_id: str) -> Order | None:
    """The order ``public_id`` as a model, items loaded (the dashboard)."""
    return db.session.scalars(
        select(Order).where(Order.public_id == public_id).options(selectinload(Order.items))
    ).one_or_none()


def find_by_invoice_token(token: str) -> Order | None:
    """The order behind an invoice link, or None."""
    return db.session.scalars(
        select(Order).where(Order.invoice_token == token).options(selectinload(Order.items))
    ).one_or_none()


def change_status(order: Order, to: str, *, actor: str) -> bool:
    """Move the order status (ORDERED → IN PROGRESS → DELIVERED, or CANCELLED); commits.

    Cancelling also cancels the order's open payment links, so the customer cannot pay it.
    Delivering issues the tax invoice if it has no number yet (``invoices.issue_tax_invoice``).
    """
    changed = transition(order, ORDER_STATUS, to, actor=actor)
    db.session.commit()
    if changed and to == "CANCELLED":
        from bikshop.services.payments import cancel_open_links  # payments builds on orders

        cancel_open_links(order, actor=actor)
    if changed and to == "DELIVERED":
        _issue_tax_invoice(order)
    return changed


def _issue_tax_invoice(order: Order) -> None:
    from bikshop.services.invoices import issue_tax_invoice  # invoices builds on orders

    issue_tax_invoice(order)


def fulfillment_seen(order: Order) -> str:
    """What the order page showed of the fulfilment form's two fields, as a short digest. The
    page sends it back with the form: if either changed meanwhile (another tab, a phone),
    saving the page's copy would silently undo that change, so it is refused instead."""
    shown = json.dumps([order.fulfillment_status, order.tracking_url or ""])
    return hashlib.sha256(shown.encode()).hexdigest()[:16]


def set_fulfillment(
    order: Order,
    to: str,
    *,
    actor: str,
    tracking_url: str | None = None,
    seen: str | None = None,
) -> bool:
    """Set fulfilment (and optionally the tracking URL Bik shares with the customer); commits.
    A cancelled order is not shipped: neither changes there (a 409), even when the cancel
    lands at the same moment. ``seen``: :func:`fulfillment_seen` as the page showed it; a 409,
    changing nothing, if the fulfilment or the link changed since. Shipping (partly or fully)
    issues the tax invoice if it has no number yet (``invoices.issue_tax_invoice``)."""
    refused = "fulfilled or given a tracking link"
    lock_order(order)  # ``seen`` is compared with what the change before this one committed
    refuse_if_cancelled(order, refused)
    if seen is not None and seen != fulfillment_seen(order):
        now = state_words(order.fulfillment_status)
        asked = f"{state_words(to)}, tracking link {tracking_url or 'none'}"
        raise ApiError(
            409,
            f"The fulfilment of {order.name} changed since this page was opened (another tab "
            f"or device): it is now {now}, tracking link {order.tracking_url or 'none'}. "
            f"Nothing was saved (you asked for {asked}): the form below shows the order as it "
            "is now; change it again if your change still applies.",
            code="changed_meanwhile",
        )
    link = (order.tracking_url or "") if tracking_url is None else tracking_url
    if to == "unfulfilled" and link:
        # Bik shares the link with the customer ("Track your parcel"): with no parcel on its
        # way it would follow nothing, and stay on the order if it were cancelled.
        raise ApiError(
            400,
            "A tracking link follows a parcel on its way: set the fulfilment to partly or "
            "fully fulfilled with it, or clear the link. Nothing was saved.",
        )
    changed = False
    if to != order.fulfillment_status:
        changed = transition(order, FULFILLMENT_STATUS, to, actor=actor, refuse_cancelled=refused)
    if tracking_url is not None and tracking_url != (order.tracking_url or ""):
        update_order(order, {"tracking_url": tracking_url or None}, refuse_cancelled=refused)
        record(
            order,
            "tracking_changed",
            actor,
            f"Tracking URL set to {tracking_url or 'none'}",
            {"trackingURL": tracking_url or None},
        )
        changed = True
    db.session.commit()
    if changed and order.fulfillment_status in ("partial", "fulfilled"):
        _issue_tax_invoice(order)
    return changed
