"""The floor: the baseline plus the database work no real implementation can skip.
``gunicorn -c gunicorn.conf.py bench.floor_app:app``, with ``BIKSHOP_DATABASE_URL`` set.

Its endpoints are ``bench/bare_app.py``'s, each with the one statement its job needs, straight
on the driver (no pool, no ORM, no auth, no validation), on the database bikshop is measured
on and with bikshop's durability settings (on SQLite, the pragmas bikshop sets on each
connection: WAL with ``synchronous=NORMAL``; PostgreSQL as configured):

- placeOrder answers only once one ``INSERT`` of the raw request under a unique draft id is
  committed (no order number, items, address, event or dashboard index);
- getOrder answers only once the order's row is read from bikshop's ``orders`` table by Bik's
  order id (404 if there is none).

No implementation that stores an order before answering, or reads it before answering with
it, can be faster on the same machine: the floor's share of the baseline is the most the
database and the machine allow, and bikshop's share of the floor is what bikshop's own work
costs.
"""

from __future__ import annotations

import os
import sqlite3

import psycopg
from flask import Flask, jsonify, request

from bench.bare_app import _STORED, bik_order, placed
from bikshop import _sqlite_pragmas
from bikshop.jsonio import BikshopJSONProvider, loads

app = Flask(__name__)
app.json = BikshopJSONProvider(app)

_TABLE = "bench_floor_orders"
_connection = None
_opened_for = None  # (process id, database URL) of _connection


def _open(url: str):
    """A connection in autocommit; on SQLite with the settings bikshop gives every connection
    it opens (WAL, synchronous=NORMAL, its WAL checkpoint size), by bikshop's own function."""
    if url.startswith("sqlite"):
        connection = sqlite3.connect(
            url.removeprefix("sqlite:///"), isolation_level=None, timeout=10
        )
        _sqlite_pragmas(connection, None)
        return connection
    return psycopg.connect(url.replace("+psycopg", ""), autocommit=True)


def create_table(url: str) -> None:
    """The floor's table, made before its server starts (two workers making it at once could
    collide on PostgreSQL's catalog)."""
    key = "INTEGER PRIMARY KEY" if url.startswith("sqlite") else "BIGSERIAL PRIMARY KEY"
    connection = _open(url)
    try:
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {_TABLE} "
            f"(id {key}, draft_order_id TEXT NOT NULL UNIQUE, raw_request TEXT NOT NULL)"
        )
    finally:
        connection.close()


def _connect():
    """This process's connection, made after gunicorn's fork."""
    global _connection, _opened_for
    key = (os.getpid(), os.environ["BIKSHOP_DATABASE_URL"])
    if _opened_for != key:
        close()
        _connection, _opened_for = _open(key[1]), key
    return _connection


def close() -> None:
    """Close this process's connection, if it has one (the tests, between databases)."""
    global _connection, _opened_for
    if _connection is not None and _opened_for[0] == os.getpid():
        _connection.close()
    _connection = _opened_for = None


def _run(sql: str, values: tuple) -> list[tuple]:
    """One statement on this process's connection (``?`` placeholders), in autocommit: a
    write is committed when this returns. Prepared on PostgreSQL, as bikshop's are."""
    connection = _connect()
    if isinstance(connection, sqlite3.Connection):
        return connection.execute(sql, values).fetchall()
    cursor = connection.execute(sql.replace("?", "%s"), values, prepare=True)
    return cursor.fetchall() if cursor.description else []


_INSERT = f"INSERT INTO {_TABLE} (draft_order_id, raw_request) VALUES (?, ?)"
# bikshop's own orders table, by Bik's order id (its unique index), as getOrder must read it.
_SELECT = "SELECT number, draft_order_id, payment_status FROM orders WHERE public_id = ?"


@app.post("/bik/placeOrder")
def place_order():
    """The baseline's placeOrder, answered only once the raw request is committed."""
    raw = request.get_data()
    body = loads(raw)
    _run(_INSERT, (body["draftOrderId"], raw.decode()))
    return placed(body)


@app.post("/bik/getOrder")
def get_order():
    """The baseline's getOrder (Bik's sample order under the asked id), answered only once the
    order's row is read from bikshop's table by that id; 404 if there is none."""
    public_id = loads(request.get_data())["orderId"]
    rows = _run(_SELECT, (public_id,))
    if not rows:
        return jsonify({"error": "not found"}), 404
    number, draft_id, payment_status = rows[0]
    order = bik_order(
        _STORED["order"],
        public_id=public_id,
        number=number,
        draft_id=draft_id,
        paid=payment_status == "paid",
    )
    return jsonify({"order": order})


@app.get("/healthz")
def healthz():
    return {"status": "ok"}
