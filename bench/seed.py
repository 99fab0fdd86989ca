"""Seed stored orders fast, each row exactly as placeOrder stores it.

One real order is placed through bikshop's own placeOrder (in-process, the same code path as
HTTP); its rows in ``orders``, ``order_items`` and ``order_events`` are the template. Clones
differ only where two placeOrder calls differ: ids, number, public id and name, draft id,
request fingerprint and raw request, invoice token and timestamps. They are written in one
transaction (executemany on SQLite, COPY on PostgreSQL) and the order counter is moved past
them, so the next real placeOrder continues the numbering.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
from sqlalchemy import text

from bench.common import Settings, sample_body_json

_MARKER = "bench_template_draft"
_CHUNK = 50_000
_SPREAD = timedelta(days=365)  # clones are spread over the past year, oldest first


def seed_orders(settings: Settings, total: int, *, say: Callable[[str], None] = print) -> int:
    """Bring the database to ``total`` stored orders; returns how many there are."""
    from bikshop import create_app
    from bikshop.database import dispose_engines
    from bikshop.extensions import db

    app = create_app(settings.app_config())
    try:
        with app.app_context():
            existing = db.session.execute(text("SELECT count(*) FROM orders")).scalar_one()
            if existing >= total:
                return existing
            started = time.monotonic()
            template_draft = f"{_MARKER}_{secrets.token_hex(4)}"
            canonical = _place_template(app, settings, template_draft)
            clones = total - existing - 1
            if clones:
                url = settings.database_url
                writer = _seed_sqlite if url.startswith("sqlite") else _seed_postgresql
                writer(url, template_draft, canonical, clones)
            # Let the kernel write the new pages out now, not during the next measurement.
            os.sync()
            say(f"  seeded {total - existing:,} orders in {time.monotonic() - started:.0f} s")
    finally:
        with app.app_context():
            db.session.remove()
            dispose_engines()
    return total


def _place_template(app, settings: Settings, draft_id: str) -> str:
    """Place one order through placeOrder; return its canonical fingerprint text."""
    from sqlalchemy import select

    from bikshop.bik.schemas import PlaceOrderRequest
    from bikshop.extensions import db
    from bikshop.jsonio import loads
    from bikshop.models import Order
    from bikshop.services.orders import _columns, canonical_order

    raw = sample_body_json(draft_id)
    answer = app.test_client().post(
        "/bik/placeOrder",
        data=raw,
        headers={"Content-Type": "application/json", **settings.auth_header},
    )
    if answer.status_code != 200:
        raise RuntimeError(f"template placeOrder failed: {answer.status_code} {answer.data!r}")
    with app.test_request_context():
        # The same canonical text services.orders.fingerprint hashes; the draft id appears in
        # it only as a value, so replacing it gives exactly the clone's canonical text.
        canonical = canonical_order(
            *_columns(PlaceOrderRequest().load(loads(raw)), raw, app.config["CURRENCY"])
        )
        stored = db.session.scalar(
            select(Order.request_fingerprint).where(Order.draft_order_id == draft_id)
        )
        db.session.remove()
    if hashlib.sha256(canonical.encode()).hexdigest() != stored:
        raise RuntimeError("seed: fingerprint recipe no longer matches services.orders")
    return canonical


class _Clones:
    """The varying values of clone ``i`` (0-based) of the template order."""

    def __init__(self, template_draft: str, canonical: str, count: int, prefix: str, first: int):
        self.template_draft = template_draft
        self.canonical = canonical
        self.count = count
        self.prefix = prefix
        self.first = first  # the first clone's order number
        self.run = secrets.token_hex(4)
        self.start = datetime.now(UTC) - _SPREAD
        self.step = _SPREAD / max(count, 1)

    def __iter__(self) -> Iterator[dict]:
        for i in range(self.count):
            number = self.first + i
            draft = f"bench_{self.run}_{i:07d}"
            canonical = self.canonical.replace(self.template_draft, draft)
            yield {
                "i": i,
                "number": number,
                "public_id": f"{self.prefix}{number}",
                "name": f"#{number}",
                "draft_order_id": draft,
                "request_fingerprint": hashlib.sha256(canonical.encode()).hexdigest(),
                "invoice_token": secrets.token_urlsafe(24),  # as placeOrder: 192 random bits
                "created_at": self.start + self.step * i,
            }


def _template_rows(cursor, placeholder: str, draft: str, cast: str = ""):
    """The template's rows in the three tables as stored, with their column names."""

    def columns(table: str) -> list[str]:
        if placeholder == "?":
            return [row[1] for row in cursor.execute(f"PRAGMA table_info({table})").fetchall()]
        cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
            "ORDER BY ordinal_position",
            (table,),
        )
        return [row[0] for row in cursor.fetchall()]

    def select(table: str, where: str, value) -> list[tuple]:
        names = columns(table)
        fields = ", ".join(f"{name}{cast}" for name in names)
        cursor.execute(f"SELECT {fields} FROM {table} WHERE {where} = {placeholder}", (value,))
        return names, cursor.fetchall()

    order_cols, (order,) = select("orders", "draft_order_id", draft)
    order_id = order[order_cols.index("id")]
    item_cols, items = select("order_items", "order_id", order_id)
    event_cols, events = select("order_events", "order_id", order_id)
    return (order_cols, order), (item_cols, items), (event_cols, events)


def _rows(template, clones: _Clones, ids: dict[str, int], stamp: Callable, as_value: Callable):
    """Yield (table, row) for every clone: its order, then its items and its event."""
    (order_cols, order), (item_cols, items), (event_cols, events) = template
    raw_at = order_cols.index("raw_request")
    o = {name: order_cols.index(name) for name in order_cols}
    it = {name: item_cols.index(name) for name in item_cols}
    ev = {name: event_cols.index(name) for name in event_cols}
    item_no = ids["order_items"]
    event_no = ids["order_events"]
    for clone in clones:
        order_id = ids["orders"] + clone["i"]
        at = stamp(clone["created_at"])
        row = list(order)
        row[o["id"]] = as_value(order_id)
        for name in ("number", "public_id", "name", "draft_order_id", "request_fingerprint"):
            row[o[name]] = as_value(clone[name])
        row[o["invoice_token"]] = clone["invoice_token"]
        row[raw_at] = order[raw_at].replace(clones.template_draft, clone["draft_order_id"])
        row[o["created_at"]] = row[o["updated_at"]] = at
        yield "orders", row
        for item in items:
            row = list(item)
            row[it["id"]], row[it["order_id"]] = as_value(item_no), as_value(order_id)
            item_no += 1
            yield "order_items", row
        for event in events:
            row = list(event)
            row[ev["id"]], row[ev["order_id"]] = as_value(event_no), as_value(order_id)
            row[ev["message"]] = event[ev["message"]].replace(
                clones.template_draft, clone["draft_order_id"]
            )
            row[ev["created_at"]] = at
            event_no += 1
            yield "order_events", row


def _prefix(template) -> str:
    """The order id prefix (``ORD-``) the template was placed with."""
    (order_cols, order), _, _ = template
    number = int(order[order_cols.index("number")])
    return order[order_cols.index("public_id")].removesuffix(str(number))


def _seed_sqlite(url: str, template_draft: str, canonical: str, count: int) -> None:
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        # A bulk load of throwaway data: skip fsyncs, give the indexes a big cache.
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-262144")
        cursor = conn.cursor()
        conn.execute("BEGIN IMMEDIATE")
        template = _template_rows(cursor, "?", template_draft)
        # The write lock is held: no placeOrder can take a number until we commit.
        number = cursor.execute("SELECT value FROM counters WHERE name = 'order'").fetchone()[0]
        ids = {
            table: cursor.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}").fetchone()[0]
            for table in ("orders", "order_items", "order_events")
        }
        clones = _Clones(template_draft, canonical, count, _prefix(template), number + 1)
        # SQLAlchemy's SQLite DATETIME text form, as bikshop's UTCDateTime stores it.
        stored_at = template[0][1][template[0][0].index("created_at")]
        if not isinstance(stored_at, str) or len(stored_at) != 26:
            raise RuntimeError(f"seed: unexpected SQLite timestamp form {stored_at!r}")

        def stamp(moment: datetime) -> str:
            return moment.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")

        _write_batches(
            _rows(template, clones, ids, stamp, lambda v: v),
            {t: cols for t, (cols, _) in zip(_TABLES, template, strict=True)},
            lambda table, cols, rows: cursor.executemany(
                f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                rows,
            ),
        )
        cursor.execute("UPDATE counters SET value = ? WHERE name = 'order'", (number + count,))
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


_TABLES = ("orders", "order_items", "order_events")


def _write_batches(rows, columns: dict[str, list[str]], write) -> None:
    """Group the row stream by table in chunks and hand each chunk to ``write``."""
    pending: dict[str, list] = {table: [] for table in _TABLES}
    for table, row in rows:
        batch = pending[table]
        batch.append(row)
        if len(batch) >= _CHUNK:
            for name in _TABLES:  # parents before children
                if pending[name]:
                    write(name, columns[name], pending[name])
                    pending[name] = []
    for name in _TABLES:
        if pending[name]:
            write(name, columns[name], pending[name])


def _seed_postgresql(url: str, template_draft: str, canonical: str, count: int) -> None:
    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        # Text copies of the stored values: COPY reads them back into the same types.
        template = _template_rows(cursor, "%s", template_draft, cast="::text")
        # The counter row stays locked until we commit: a concurrent placeOrder waits for it
        # before it inserts anything, so neither its number nor its row ids can collide.
        cursor.execute("SELECT value FROM counters WHERE name = 'order' FOR UPDATE")
        number = cursor.fetchone()[0]
        ids = {}
        for table in _TABLES:
            cursor.execute(
                f"SELECT greatest(max(id), pg_sequence_last_value("
                f"pg_get_serial_sequence('{table}', 'id')), 0) + 1 FROM {table}"
            )
            ids[table] = cursor.fetchone()[0]
        clones = _Clones(template_draft, canonical, count, _prefix(template), number + 1)

        def write(table, cols, rows):
            with cursor.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)

        _write_batches(
            _rows(template, clones, ids, lambda m: m.isoformat(sep=" "), str),
            {t: cols for t, (cols, _) in zip(_TABLES, template, strict=True)},
            write,
        )
        for table in _TABLES:
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"
            )
        cursor.execute("UPDATE counters SET value = %s WHERE name = 'order'", (number + count,))
    # What autovacuum would do to a grown table: planner statistics and the visibility map.
    with psycopg.connect(url, autocommit=True) as conn:
        for table in _TABLES:
            conn.execute(f"VACUUM ANALYZE {table}")
        conn.execute("CHECKPOINT")  # the bulk load's WAL written out before anything is timed
